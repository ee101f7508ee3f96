"""scripts/fewshot_table.py on a tiny relation run: every scorer that fits the run, in the column
of its kind, with the figures evaluate_episodes gives on the same embedding."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from metriclab.cli import main as cli
from metriclab.data import EpisodeSet
from metriclab.evaluation import embed, evaluate_episodes
from metriclab.evaluation.episodes import SCORERS
from metriclab.runs import open_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import fewshot_table


@pytest.fixture(scope="module")
def run_and_sets(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("table")
    run = root / "run"
    overrides = [
        "train.objective=relation", "model.comparator=relation", "train.n_way=5",
        "train.k_shot=1", "train.n_query=3", "train.steps=3",
    ]  # fmt: skip
    assert cli(["train", "--no-progress", "--run-dir", str(run), *overrides]) == 0
    test = open_run(run).data.test
    files = []
    for k_shot in (1, 2):
        path = root / f"tiny-{k_shot}shot.jsonl"
        EpisodeSet.sample(test, 5, k_shot, 3, 8, seed=k_shot).save(path)
        files.append(path)
    return run, files


def test_table_rows_columns_and_figures(run_and_sets, capsys) -> None:
    run, files = run_and_sets
    assert fewshot_table.main([str(run), "--episodes", *map(str, files)]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in out.splitlines() if line.startswith("| `")}  # fmt: skip
    expected = {n for n in SCORERS.names() if n not in ("siamese", "matching")}
    assert set(rows) == expected  # relation: trained with it; matching: not
    # Columns per set: inductive, then transductive; each scorer fills the one of its kind.
    for name, cells in rows.items():
        transductive = SCORERS.get(name).transductive
        for s in range(len(files)):
            inductive, trans = cells[2 + 2 * s].strip(), cells[3 + 2 * s].strip()
            assert bool(trans) == transductive and bool(inductive) != transductive
    opened = open_run(run)
    vectors = embed(opened.model.embedding_net, opened.data.test, progress=False)
    for s, path in enumerate(files):
        episodes = EpisodeSet.load(path)
        result = evaluate_episodes(vectors, episodes, "prototype", distance=opened.model.distance)
        assert rows["prototype"][2 + 2 * s].startswith(f"{100 * result.mean:.2f} ±")


def test_a_run_without_episode_files_is_told_what_to_pass(run_and_sets, capsys) -> None:
    run, _ = run_and_sets
    assert fewshot_table.main([str(run)]) == 2
    assert "pass --episodes" in capsys.readouterr().out
