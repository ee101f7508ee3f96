"""Run folders: the resolved config, the recorded class split and the trained model of a run.

A run folder made by ``metriclab train`` holds ``config.yaml``, ``split.json`` (the class names on
each side of the split it trained on, and the data set they came from) and ``checkpoints/``. This
module is the one place that opens a run folder; it sits below training, evaluation and export
and imports none of them, so evaluating or exporting a run loads no training code.

The recorded split is what keeps unseen classes unseen: evaluation selects the recorded classes
by name from whatever the data holds now. Extra classes (folders added since training) are
ignored and reported; a missing recorded class is refused; nothing is redrawn silently.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metriclab import checkpoints
from metriclab.assemble import build_model, check_n_way, load_data, split_test, split_validation
from metriclab.atomic import write_text
from metriclab.config import Config, apply_overrides, config_from_dict
from metriclab.data import LabeledImages
from metriclab.models import SiameseNet

SPLIT = "split.json"
#: Config keys that decide the class split: with a recorded split they may not change.
SPLIT_KEYS = (
    "data.test_fraction",
    "data.split_seed",
    "data.test_classes",
    "data.test_groups",
    "data.val_fraction",
    "data.val_groups",
)


class SplitWarning(UserWarning):
    """What a run's split says differs from the data at hand (extra classes, no record)."""


@dataclass(frozen=True)
class RecordedSplit:
    """The classes on each side of a run's split, by name, and the data set they came from.

    ``train`` holds the classes the objective trained on (before any rotated or mirrored copies),
    ``validation`` the classes carved off them for validation, ``test`` the unseen classes.
    """

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    source: dict[str, Any]

    @classmethod
    def of(
        cls,
        config: Config,
        fit: LabeledImages,
        validation: LabeledImages | None,
        test: LabeledImages,
    ) -> RecordedSplit:
        """The record of a split just drawn from ``config``'s data."""
        return cls(
            tuple(fit.class_names),
            () if validation is None else tuple(validation.class_names),
            tuple(test.class_names),
            {"name": config.data.name, "path": config.data.path, "description": test.description},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.source,
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
        }

    def save(self, run_dir: Path) -> None:
        """Write ``run_dir/split.json`` atomically."""
        write_text(run_dir / SPLIT, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, record: dict[str, Any], where: str) -> RecordedSplit:
        """The split :meth:`to_dict` wrote; ``where`` names the file in the error if damaged."""
        try:
            sides = [
                tuple(str(n) for n in record[side]) for side in ("train", "validation", "test")
            ]
            return cls(*sides, dict(record["data"]))
        except (KeyError, TypeError, ValueError) as failure:
            raise ValueError(
                f"the split recorded in {where} is damaged ({type(failure).__name__}: {failure}); "
                "restore it from a backup or train the run again"
            ) from None

    @classmethod
    def load(cls, run_dir: Path) -> RecordedSplit | None:
        """The split recorded in ``run_dir``, or None for a run made before splits were recorded."""
        path = run_dir / SPLIT
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text("utf-8"))
        except ValueError as failure:
            raise ValueError(
                f"{path} is not valid JSON ({failure}); restore it from a backup or train the run again"
            ) from None
        return cls.from_dict(record, str(path))

    def select(
        self, data: LabeledImages, where: str
    ) -> tuple[LabeledImages, LabeledImages | None, LabeledImages, tuple[str, ...]]:
        """``(fit, validation, test, ignored)``: the recorded classes of ``data``, by name.

        ``ignored`` names the classes of ``data`` outside the record. Classes keep the data's
        order, as when the split was drawn, so labels are the same as at training time. Raises
        ``ValueError`` naming the first recorded class missing from ``data``.
        """
        index = {name: i for i, name in enumerate(data.class_names)}
        for name in (*self.train, *self.validation, *self.test):
            if name not in index:
                raise ValueError(
                    f"class {name!r} of the split recorded in {where} is not in the data "
                    f"({data.description or self.source.get('name')}); point data.path at the data "
                    "the run was trained on, or train a new run"
                )
        recorded = {*self.train, *self.validation, *self.test}
        ignored = tuple(name for name in data.class_names if name not in recorded)
        fit = data.select_classes([index[name] for name in self.train])
        test = data.select_classes([index[name] for name in self.test])
        validation = (
            data.select_classes([index[name] for name in self.validation])
            if self.validation
            else None
        )
        return fit, validation, test, ignored


@dataclass(frozen=True)
class SplitData:
    """The data of a run, split as recorded (or as its config draws it).

    ``train`` is the whole training side (``fit`` plus ``validation`` classes), as
    :func:`~metriclab.assemble.build_data` returns it.
    """

    train: LabeledImages
    fit: LabeledImages
    validation: LabeledImages | None
    test: LabeledImages
    split: RecordedSplit
    recorded: bool
    ignored: tuple[str, ...] = ()


def split_data(
    config: Config,
    recorded: RecordedSplit | None,
    where: str = SPLIT,
    data: LabeledImages | None = None,
) -> SplitData:
    """``data`` (default: the data ``config`` names) split as ``recorded`` says, or drawn from
    the config when ``recorded`` is None.

    Drawing from the config is exactly what training did before splits were recorded
    (``build_data`` then ``split_validation``), so a new run trains on the same items as before.
    """
    data = load_data(config) if data is None else data
    if recorded is None:
        train, test = split_test(data, config)
        fit, validation = split_validation(train, config)
        split = RecordedSplit.of(config, fit, validation, test)
        return SplitData(train, fit, validation, test, split, False)
    fit, validation, test, ignored = recorded.select(data, where)
    check_n_way(config, test)
    names = {*recorded.train, *recorded.validation}
    train = data.select_classes([i for i, name in enumerate(data.class_names) if name in names])
    return SplitData(train, fit, validation, test, recorded, True, ignored)


@dataclass(frozen=True)
class Run:
    """A trained run opened for evaluation or export: config, model (eval mode) and its data."""

    folder: Path
    config: Config
    model: SiameseNet
    data: SplitData
    notes: tuple[str, ...]

    def split_record(self) -> dict[str, Any]:
        """What ``results.json`` and bundles record about the split the run was scored on."""
        return {
            **self.data.split.to_dict(),
            "recorded": self.data.recorded,
            "ignored_classes": list(self.data.ignored),
            "notes": list(self.notes),
        }


def split_notes(run_dir: Path, data: SplitData) -> tuple[str, ...]:
    """Plain sentences on how ``data``'s split differs from what the run trained on (or none)."""
    if not data.recorded:
        return (
            f"run {run_dir} has no {SPLIT} (trained before runs recorded their split); the split "
            "was drawn again from its config, so classes added to the data since training may "
            "sit on the wrong side",
        )
    if data.ignored:
        shown = ", ".join(repr(name) for name in data.ignored[:5])
        more = ", …" if len(data.ignored) > 5 else ""
        return (
            f"{len(data.ignored)} class(es) in the data are not in the split recorded in "
            f"{run_dir / SPLIT} ({shown}{more}) and were ignored; the {len(data.split.test)} "
            "recorded test classes were evaluated",
        )
    return ()


def refuse_split_keys(where: str, overrides: list[str]) -> None:
    """Refuse overrides of the keys that decide the split (:data:`SPLIT_KEYS`): a run with a
    recorded split is always scored on it."""
    for override in overrides:
        key = override.partition("=")[0]
        if key in SPLIT_KEYS:
            raise ValueError(
                f"{key} cannot change for {where}: the run records its class split in {SPLIT} "
                f"and is scored on it; drop {key}, or train a new run with it"
            )


def _check_overrides(run_dir: Path, overrides: list[str], recorded: bool) -> None:
    for override in overrides:
        if not override.startswith(("data.", "eval.")):
            raise ValueError(
                f"evaluation can only override data.* and eval.* keys, got {override!r}; "
                "train a new run to change the model or training"
            )
    if recorded:
        refuse_split_keys(f"run {run_dir}", overrides)


def open_run(run_dir: Path, overrides: list[str] | None = None) -> Run:
    """Open a run folder: its config, its trained model (best checkpoint if any, else the
    newest) and its data, split as recorded in ``split.json``.

    ``overrides`` (``data.*`` / ``eval.*`` only, and not the keys that decide the split) point
    evaluation at another copy of the data or change its episodes without touching the model.
    What differs from training time (extra classes, no recorded split) is warned about with a
    :class:`SplitWarning` and listed in :attr:`Run.notes`.
    """
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder {run_dir} does not exist; pass a folder made by 'metriclab train'"
        )
    recorded = RecordedSplit.load(run_dir)
    _check_overrides(run_dir, overrides or [], recorded is not None)
    state = checkpoints.load(checkpoints.for_evaluation(run_dir))
    config = config_from_dict(apply_overrides(state["config"], overrides or []))
    whole = load_data(config)
    channels, trained = whole.channels, state.get("channels")
    if trained is not None and trained != channels:
        raise ValueError(
            f"run {run_dir} was trained on {trained}-channel images but the data "
            f"({config.data.name}) has {channels}; evaluate on {trained}-channel data "
            f"(data.channels={trained})"
        )
    data = split_data(config, recorded, str(run_dir / SPLIT), whole)
    model = build_model(config, in_channels=channels, pretrained=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as failure:
        raise ValueError(
            f"the checkpoint of {run_dir} does not fit the model its config describes "
            f"({str(failure).splitlines()[0]}); was the config edited after training?"
        ) from None
    notes = split_notes(run_dir, data)
    for note in notes:
        warnings.warn(note, SplitWarning, stacklevel=2)
    return Run(run_dir, config, model.eval(), data, notes)


__all__ = [
    "SPLIT",
    "SPLIT_KEYS",
    "RecordedSplit",
    "Run",
    "SplitData",
    "SplitWarning",
    "open_run",
    "refuse_split_keys",
    "split_data",
    "split_notes",
]
