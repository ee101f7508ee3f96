"""`LabeledImages`: a labelled image collection held in memory, and class-disjoint splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metriclab.data.preprocess import Preprocess


@dataclass(frozen=True)
class LabeledImages:
    """Images, labels and names of one data set, decoded once into memory.

    Attributes:
        images: ``(N, C, H, W)`` uint8 tensor.
        labels: ``(N,)`` int64 tensor; ``labels[i]`` indexes ``class_names``.
        class_names: one name per class, e.g. ``"7"`` or ``"Latin/character03"``.
        item_ids: ``N`` stable ids (``"digits:<index>"`` or a relative file path); episode sets
            refer to items by these, so a set survives a reordering of the data.
        groups: optional ``(num_classes,)`` int64 tensor, the group of each class (e.g. an alphabet).
        group_names: names of the groups, indexed by ``groups``.
        description: a short human-readable description of the source (kept in episode files).
        preprocess: how the files were decoded into ``images`` (:class:`Preprocess`), as the data
            set declares it; ``None`` for images built by hand. Kept by every split and subset.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    item_ids: tuple[str, ...]
    groups: torch.Tensor | None = None
    group_names: tuple[str, ...] = ()
    description: str = ""
    preprocess: Preprocess | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, C, H, W), got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(self.labels.shape)}")
        if len(self.item_ids) != n:
            raise ValueError(f"item_ids must have {n} entries, got {len(self.item_ids)}")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(self.class_names)}), the range of class_names"
            )
        if self.groups is not None and self.groups.shape != (len(self.class_names),):
            raise ValueError(
                f"groups must give one group per class, shape ({len(self.class_names)},), "
                f"got {tuple(self.groups.shape)}"
            )
        if len(set(self.item_ids)) != n:
            raise ValueError("item_ids must be unique; found a repeated id")
        if self.preprocess is not None:
            _check_preprocess(self.preprocess, tuple(self.images.shape[1:]))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def subset(self, positions: np.ndarray | torch.Tensor) -> LabeledImages:
        """The items at ``positions``, with labels and class names re-indexed to the kept classes."""
        positions = torch.as_tensor(np.asarray(positions), dtype=torch.int64)
        labels = self.labels[positions]
        kept, new_labels = torch.unique(labels, sorted=True, return_inverse=True)
        groups = None if self.groups is None else self.groups[kept]
        return LabeledImages(
            images=self.images[positions],
            labels=new_labels.to(torch.int64),
            class_names=tuple(self.class_names[c] for c in kept.tolist()),
            item_ids=tuple(self.item_ids[p] for p in positions.tolist()),
            groups=groups,
            group_names=self.group_names,
            description=self.description,
            preprocess=self.preprocess,
        )

    def select_classes(self, classes: Sequence[int]) -> LabeledImages:
        """The items whose label is in ``classes`` (class indices of this data set)."""
        mask = torch.isin(self.labels, torch.as_tensor(list(classes), dtype=torch.int64))
        return self.subset(torch.nonzero(mask).flatten())

    def split_classes(
        self, test_fraction: float = 0.5, seed: int = 0, test_classes: Sequence[str] | None = None
    ) -> tuple[LabeledImages, LabeledImages]:
        """Split into (train, test) with no class in both.

        Either ``test_classes`` names the held-out classes, or ``test_fraction`` of the classes
        (rounded, at least one on each side) is drawn at random with ``seed``.
        """
        return self._split_off(
            self._pick_classes(test_classes, test_fraction, seed, "test_classes", "test_fraction")
        )

    def split_groups(
        self,
        test_groups: Sequence[str] | None = None,
        test_fraction: float | None = None,
        seed: int = 0,
    ) -> tuple[LabeledImages, LabeledImages]:
        """Split into (train, test) by whole groups (e.g. Omniglot alphabets), no group in both.

        Either ``test_groups`` names the held-out groups, or ``test_fraction`` of the groups present
        (rounded, at least one on each side) is drawn at random with ``seed``.
        """
        groups = self._pick_groups(test_groups, test_fraction, seed, "test_groups", "test_fraction")
        return self._split_off(self._classes_in(groups))

    def split_validation(
        self,
        fraction: float | None = None,
        classes: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        seed: int = 0,
    ) -> tuple[LabeledImages, LabeledImages]:
        """Carve (train, validation) out of a training set: validation classes leave training.

        Give exactly one of ``fraction`` (of the classes, drawn with ``seed``), ``classes`` (names)
        or ``groups`` (group names, e.g. alphabets). Call it on the training half of a split so
        that test classes stay unseen.
        """
        given = [
            name
            for name, value in (("fraction", fraction), ("classes", classes), ("groups", groups))
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"split_validation takes exactly one of fraction, classes or groups, got "
                f"{', '.join(given) or 'none'}"
            )
        if groups is not None:
            held_out = self._classes_in(self._pick_groups(groups, None, seed, "groups", "fraction"))
        else:
            held_out = self._pick_classes(classes, fraction, seed, "classes", "fraction")
        return self._split_off(held_out)

    def _split_off(self, held_out: list[int]) -> tuple[LabeledImages, LabeledImages]:
        """(the other classes, the ``held_out`` classes), each with at least one class."""
        if not held_out or len(held_out) == self.num_classes:
            raise ValueError("a class split needs at least one class on each side")
        kept = sorted(set(range(self.num_classes)) - set(held_out))
        return self.select_classes(kept), self.select_classes(held_out)

    def _pick_classes(
        self,
        names: Sequence[str] | None,
        fraction: float | None,
        seed: int,
        names_argument: str,
        fraction_argument: str,
    ) -> list[int]:
        if names is not None:
            unknown = [c for c in names if c not in self.class_names]
            if unknown:
                more = ", …" if self.num_classes > 20 else ""
                raise ValueError(
                    f"{names_argument} names {unknown[0]!r}, which is not a class; "
                    f"valid classes: {', '.join(self.class_names[:20])}{more}"
                )
            return sorted(self.class_names.index(c) for c in names)
        return _draw(list(range(self.num_classes)), fraction, seed, fraction_argument)

    def _classes_in(self, groups: list[int]) -> list[int]:
        in_groups = torch.isin(self.groups, torch.as_tensor(groups, dtype=torch.int64))
        return torch.nonzero(in_groups).flatten().tolist()

    def _pick_groups(
        self,
        names: Sequence[str] | None,
        fraction: float | None,
        seed: int,
        names_argument: str,
        fraction_argument: str,
    ) -> list[int]:
        if self.groups is None:
            raise ValueError(
                f"{self.description or 'this data set'} has no groups; split by classes instead"
            )
        present = sorted(set(self.groups.tolist()))
        if (names is None) == (fraction is None):
            raise ValueError(f"give exactly one of {names_argument} or {fraction_argument}")
        if names is None:
            return _draw(present, fraction, seed, fraction_argument)
        valid = [self.group_names[g] for g in present]
        unknown = [name for name in names if name not in valid]
        if unknown:
            raise ValueError(
                f"{names_argument} names {unknown[0]!r}, which is not a group of this data; "
                f"valid groups: {', '.join(valid)}"
            )
        return sorted(self.group_names.index(name) for name in names)


def _check_preprocess(preprocess: Preprocess, shape: tuple[int, ...]) -> None:
    """The record must describe images of ``shape`` ``(C, H, W)``, or it would mislead export."""
    channels, height, width = shape
    if preprocess.channels != channels:
        raise ValueError(
            f"preprocess records {preprocess.channels} channel(s) but the images have {channels}; "
            "record how these images were decoded"
        )
    if preprocess.size is not None and (height, width) != (preprocess.size, preprocess.size):
        raise ValueError(
            f"preprocess records size {preprocess.size} but the images are {height}×{width}; "
            "record how these images were decoded"
        )


def _draw(candidates: list[int], fraction: float | None, seed: int, argument: str) -> list[int]:
    """``fraction`` of ``candidates`` (rounded, at least one, never all) drawn with ``seed``."""
    if fraction is None or not 0.0 < fraction < 1.0:
        raise ValueError(f"{argument} must lie in (0, 1), got {fraction}")
    count = min(max(round(len(candidates) * fraction), 1), len(candidates) - 1)
    rng = np.random.default_rng(seed)
    return sorted(candidates[i] for i in rng.permutation(len(candidates))[:count].tolist())


def require_min_per_class(data: LabeledImages, n: int, purpose: str) -> None:
    """Raise ``ValueError`` naming the first class of ``data`` with fewer than ``n`` items.

    ``purpose`` says who needs them, e.g. ``"the siamese objective (same-class pairs)"``.
    """
    counts = torch.bincount(data.labels, minlength=data.num_classes)
    short = torch.nonzero(counts < n).flatten()
    if len(short):
        first = int(short[0])
        raise ValueError(
            f"class {data.class_names[first]!r} has {int(counts[first])} image(s) but {purpose} "
            f"needs at least {n} per class ({len(short)} class(es) fall short); add images or "
            f"remove those classes"
        )
