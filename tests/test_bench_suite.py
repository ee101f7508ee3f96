"""scripts/bench.py's assembly of BENCHMARKS.md, on fake benchmark outputs (no real benchmark)."""

from __future__ import annotations

import datetime
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
WHEN = datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.timezone.utc)

OLD = textwrap.dedent(
    """\
    # Benchmarks

    Hand-written intro that the header replaces.

    ## Losses

    Old hand-written losses table.

    ## Reproductions: CAMRI

    | method | recall |
    | --- | ---: |
    | CAMRI | 0.91 |

    ```
    ## not a heading: inside a code block
    ```

    ## Evaluation

    Old evaluation prose.

    ## Omniglot

    Accuracy 95.1 %.
    """
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_suite_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def headings(text: str) -> list[str]:
    return [
        line for line in text.splitlines() if line.startswith("## ") and "code block" not in line
    ]


def test_generated_sections_replace_old_ones_and_foreign_ones_follow_verbatim(bench) -> None:
    produced = [("Losses", "## Losses\n\nnew losses\n"), ("Episodes", "## Episodes\n\nnew\n")]
    text = bench.assemble(bench.header(["--quick"], WHEN), OLD, produced)
    assert headings(text) == [
        "## Losses", "## Episodes", "## Reproductions: CAMRI", "## Evaluation", "## Omniglot",
    ]  # fmt: skip
    assert "new losses" in text and "Old hand-written losses" not in text
    assert "Hand-written intro" not in text
    for foreign in ("Reproductions: CAMRI", "Evaluation", "Omniglot"):
        old_text = dict(bench.split_sections(OLD)[1])[foreign]
        assert old_text in text  # kept byte for byte, code block included
    assert text.index("## Episodes") < text.index("## Reproductions: CAMRI")


def test_header_names_machine_date_command_and_noise(bench) -> None:
    text = bench.assemble(bench.header(["--quick"], WHEN), "", [("Losses", "## Losses\n")])
    top = text.split("## Losses")[0]
    assert top.startswith("# Benchmarks\n")
    assert "`python scripts/bench.py --quick`" in top and "make bench" in top
    assert "2026-01-02 03:04 UTC" in top
    for fact in ("cores", f"Python {sys.version.split()[0]}", "torch", "faiss", "PML", "numpy"):
        assert fact in top
    assert "median" in top and "noisy" in top and "shared" in top


def test_a_second_run_keeps_its_sections_first_and_in_place(bench) -> None:
    produced = [("Losses", "## Losses\n\nv1\n"), ("Evaluation", "## Evaluation\n\nv1\n")]
    first = bench.assemble(bench.header([], WHEN), OLD, produced)
    # --only eval: Losses (generated earlier) stays before the foreign sections, Evaluation in place.
    second = bench.assemble(
        bench.header(["--only", "eval"], WHEN), first, [("Evaluation", "## Evaluation\n\nv2\n")]
    )
    assert headings(second) == [
        "## Losses", "## Evaluation", "## Reproductions: CAMRI", "## Omniglot",
    ]  # fmt: skip
    assert "v2" in second and "\nv1\n" in second  # Losses v1 kept, Evaluation replaced
    assert bench.assemble(bench.header([], WHEN), second, []).count("## Omniglot") == 1


def test_section_of_skips_diagnostics_and_rejects_output_without_heading(bench) -> None:
    assert bench.section_of("note: shim used\n## Data\n\n| a |\n## Sub\nx\n") == (
        "Data",
        "## Data\n\n| a |\n## Sub\nx\n",
    )
    assert bench.section_of("| a | b |\n") is None


def test_run_suite_writes_file_and_keeps_a_failed_benchmarks_old_section(
    bench, tmp_path: Path
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "bench_losses.py").write_text(
        "import os, sys\nprint('diagnostic line')\n"
        "print('## Losses\\n\\nquick' if '--quick' in sys.argv else '## Losses\\n\\nfull')\n"
        "print('threads', os.environ['OMP_NUM_THREADS'])\n"
    )
    (scripts / "bench_eval.py").write_text("raise SystemExit(3)\n")
    (scripts / "bench_data.py").write_text("print('| load | s |')\n")
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(OLD)
    failed = bench.run_suite(bench.discover(scripts), True, output, ["--quick"])
    text = output.read_text()
    assert failed == 1
    assert "## Data\n\nCommand: `python scripts/bench_data.py --quick`" in text
    assert "| load | s |" in text
    assert "## Losses\n\nquick\nthreads 1\n" in text and "diagnostic line" not in text
    assert "Old evaluation prose." in text and "Accuracy 95.1 %." in text
    assert list(bench.discover(scripts)) == ["losses", "eval", "data"]


def test_a_benchmark_that_skips_itself_keeps_its_old_section_and_does_not_fail(
    bench, tmp_path: Path
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "bench_losses.py").write_text("print('## Losses\\n\\nnew')\n")
    (scripts / "bench_eval.py").write_text(f"raise SystemExit({bench.SKIPPED})\n")
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(OLD)
    assert bench.run_suite(bench.discover(scripts), True, output, []) == 0
    text = output.read_text()
    assert "## Losses\n\nnew" in text and "Old hand-written losses table." not in text
    assert "## Evaluation\n\nOld evaluation prose." in text
