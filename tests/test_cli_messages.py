"""Messages that must not mislead: raw operating-system errors, and evaluation that fails to write
its results after computing them (the table is printed first)."""

import errno
from pathlib import Path

import pytest

from metriclab import cli


@pytest.mark.parametrize(
    ("failure", "advice"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/out"), "permission"),
        (OSError(errno.EROFS, "Read-only file system", "/data/out"), "read-only"),
        (FileExistsError(errno.EEXIST, "File exists", "/data/out"), "remove it"),
    ],
)
def test_a_raw_os_error_becomes_one_sentence_with_the_path_and_a_fix(
    failure: OSError,
    advice: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fails(args: object) -> None:
        raise failure

    monkeypatch.setitem(cli.HANDLERS, "configs", fails)
    assert cli.main(["configs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /data/out: ") and advice in err
    assert "[Errno" not in err and "disk space" not in err and err.count("\n") == 1


def test_our_own_sentences_pass_through_unchanged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(args: object) -> None:
        raise OSError("cannot write checkpoint x.pt: Permission denied; choose another --run-dir")

    monkeypatch.setitem(cli.HANDLERS, "configs", fails)
    assert cli.main(["configs"]) == 2
    assert capsys.readouterr().err == (
        "error: cannot write checkpoint x.pt: Permission denied; choose another --run-dir\n"
    )


def test_eval_prints_its_table_before_a_failed_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    tiny = ["train.steps=2", "train.batch_size=16", "eval.episodes=20", "eval.pairs=100"]
    assert cli.main(["train", "--no-progress", "--run-dir", str(run), *tiny]) == 0
    capsys.readouterr()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # a path below a file cannot be written, even by root
    argv = ["eval", str(run), "--no-progress", "--no-plots", "--json", str(blocked / "r.json")]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "5-way 1-shot (seeded) accuracy" in captured.out and "ROC AUC" in captured.out
    assert captured.err.startswith("error: ") and "r.json" in captured.err
