"""`LabeledImages`: a labelled image collection held in memory, and class-disjoint splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


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
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    item_ids: tuple[str, ...]
    groups: torch.Tensor | None = None
    group_names: tuple[str, ...] = ()
    description: str = ""

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
        if test_classes is not None:
            unknown = [c for c in test_classes if c not in self.class_names]
            if unknown:
                raise ValueError(
                    f"test_classes names {unknown[0]!r}, which is not a class; "
                    f"valid classes: {', '.join(self.class_names[:20])}"
                )
            test = sorted(self.class_names.index(c) for c in test_classes)
        else:
            if not 0.0 < test_fraction < 1.0:
                raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
            n_test = min(max(round(self.num_classes * test_fraction), 1), self.num_classes - 1)
            rng = np.random.default_rng(seed)
            test = sorted(rng.permutation(self.num_classes)[:n_test].tolist())
        if not test or len(test) == self.num_classes:
            raise ValueError("a class split needs at least one class on each side")
        train = [c for c in range(self.num_classes) if c not in set(test)]
        return self.select_classes(train), self.select_classes(test)
