"""Checkpoint files: what a bad file is called, what a failed write advises, and the fallback
from a damaged newest checkpoint to the older kept one."""

import errno
import pickle
from pathlib import Path

import pytest
import torch

from metriclab import checkpoints
from metriclab.atomic import tempfile as atomic_tempfile


def _run_with_steps(run: Path, steps: list[int]) -> list[Path]:
    paths = []
    for step in steps:
        path = checkpoints.step_path(run, step)
        checkpoints.save(path, {"step": step, "weights": torch.full((3,), float(step))})
        paths.append(path)
    return paths


def test_a_text_file_is_not_called_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not a checkpoint\n")
    with pytest.raises(ValueError, match="not a file written by torch.save") as caught:
        checkpoints.load(path)
    assert "pickled code" not in str(caught.value)


def test_pickled_code_and_truncation_are_told_apart(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="holds pickled code"):
        checkpoints.load(evil)
    [good] = _run_with_steps(tmp_path / "run", [1])
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        checkpoints.load(cut)


def test_a_folder_is_called_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder"):
        checkpoints.load(tmp_path)


@pytest.mark.parametrize(
    ("code", "advice", "not_advice"),
    [
        (errno.EACCES, "writable", "disk space"),
        (errno.EROFS, "writable", "disk space"),
        (errno.ENOSPC, "free disk space", "writable"),
    ],
)
def test_a_failed_write_advises_by_its_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, advice: str, not_advice: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, "refused by the test")

    monkeypatch.setattr(atomic_tempfile, "mkstemp", refuse)
    with pytest.raises(OSError, match=advice) as caught:
        checkpoints.save(tmp_path / "step-0000001.pt", {"step": 1})
    assert not_advice not in str(caught.value) and "[Errno" not in str(caught.value)


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path: Path) -> None:
    older, newest = _run_with_steps(tmp_path, [200, 400])
    assert checkpoints.for_evaluation(tmp_path) == newest
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(checkpoints.DamagedCheckpointWarning, match=newest.name):
        assert checkpoints.for_evaluation(tmp_path) == older
    assert torch.equal(checkpoints.load(older)["weights"], torch.full((3,), 200.0))


def test_every_checkpoint_damaged_is_one_error(tmp_path: Path) -> None:
    for path in _run_with_steps(tmp_path, [200, 400]):
        path.write_bytes(b"PK\x03\x04 broken")
    with (
        pytest.warns(checkpoints.DamagedCheckpointWarning),
        pytest.raises(ValueError, match="no older checkpoint"),
    ):
        checkpoints.newest_readable(tmp_path)
