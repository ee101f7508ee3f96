"""`Preprocess`: how a data set's files became the uint8 tensors a model sees, recorded on the data.

Every registered data set declares its preprocessing (:class:`~metriclab.data.registry.DataSetSpec`)
and :func:`~metriclab.data.registry.load_dataset` stamps the record on the images it returns; the
record then travels through every split, subset and class copy. Whoever has to repeat the
preprocessing on new files (export writes it into a bundle) reads it from the data, never from
the data set's name, so a new white-on-black data set exports correctly without an edit elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Preprocess:
    """The decoding and normalisation of one data set.

    Attributes:
        size: side in pixels every image was resized to (``size``×``size``), or ``None`` when the
            images kept their native size.
        channels: 1 (grey) or 3 (RGB): files are converted to this before resizing.
        invert: pixel values were mapped v → 255 − v after decoding (Omniglot ships black ink on
            white; metriclab keeps ink bright on a zero background, so zero padding is empty).
        mean, std: per-channel normalisation of the [0, 1] floats, ``(x / 255 − mean) / std``;
            ``None`` (both) means plain ``x / 255``, which every built-in data set uses.
    """

    size: int | None
    channels: int
    invert: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (isinstance(self.size, bool) or self.size < 1):
            raise ValueError(
                f"Preprocess size must be a positive pixel count or None, got {self.size}"
            )
        if self.channels not in (1, 3):
            raise ValueError(
                f"Preprocess channels must be 1 (grey) or 3 (RGB), got {self.channels}"
            )
        if (self.mean is None) != (self.std is None):
            raise ValueError("Preprocess mean and std go together: give both or neither")
        if self.mean is not None and self.std is not None:
            mean, std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
            if len(mean) != self.channels or len(std) != self.channels:
                raise ValueError(
                    f"Preprocess mean and std need one value per channel ({self.channels}), got "
                    f"{len(mean)} and {len(std)}"
                )
            if not all(math.isfinite(s) and s > 0 for s in std):
                raise ValueError(f"Preprocess std must be positive and finite, got {std}")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` → float32 network input of the same shape, normalised as recorded."""
        if images.dtype != torch.uint8:
            raise ValueError(f"expected a uint8 image batch, got {images.dtype}")
        out = images.to(torch.float32).div_(255.0)
        if self.mean is None or self.std is None:
            return out
        mean = torch.tensor(self.mean, dtype=out.dtype, device=out.device)[:, None, None]
        std = torch.tensor(self.std, dtype=out.dtype, device=out.device)[:, None, None]
        return out.sub_(mean).div_(std)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML values: ``{"size", "channels", "invert", "mean", "std"}``."""
        values = asdict(self)
        for key in ("mean", "std"):
            values[key] = None if values[key] is None else list(values[key])
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocess:
        """The record :meth:`to_dict` wrote; an unknown key is an error that names it."""
        known = {"size", "channels", "invert", "mean", "std"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown preprocess key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}"
            )
        if "channels" not in values or "size" not in values:
            raise ValueError("a preprocess record needs 'size' and 'channels'")

        def floats(key: str) -> tuple[float, ...] | None:
            value = values.get(key)
            return None if value is None else tuple(float(v) for v in _sequence(value, key))

        size = values["size"]
        return cls(
            size=None if size is None else int(size),
            channels=int(values["channels"]),
            invert=bool(values.get("invert", False)),
            mean=floats("mean"),
            std=floats("std"),
        )


def _sequence(value: Any, key: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"preprocess {key} must be a list of numbers, got {value!r}")
    return value
