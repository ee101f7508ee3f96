"""Run every ``scripts/bench_*.py`` and write ``BENCHMARKS.md`` from the sections they print.

Each benchmark runs in its own process (``PYTHONPATH`` = the repository root, one OpenMP thread)
and prints its whole Markdown section on stdout, from a ``## <Topic>`` heading on. This script only
puts a header (machine, date, command) above those sections and writes the file atomically.
Sections of the old file that no benchmark produces (reproductions, hand-written notes) are kept
as they are, in order, after the generated ones; a benchmark that fails keeps its old section.
A benchmark that cannot run here (e.g. its data set is missing) exits with status 77, the
automake convention for "skipped": its old section is kept and the suite does not fail.

    python scripts/bench.py                 # all benchmarks, ~10 min (make bench)
    python scripts/bench.py --quick         # a few minutes
    python scripts/bench.py --only eval     # one benchmark (bench_eval.py)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import enum
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # metriclab.atomic from this checkout

from metriclab.atomic import write_text  # noqa: E402

#: Exit status of a benchmark that skipped itself because something it needs is absent.
SKIPPED = 77
#: Benchmarks run in this order; others found later run after them, by name.
ORDER = ("losses", "episodes", "eval", "data")
#: The header's hidden record of which sections this script wrote (the rest are kept as is).
MARKER = re.compile(r"^<!-- generated sections: (\[.*\]) -->$", re.MULTILINE)
Section = tuple[str, str]  # (heading without "## ", the section's text from its heading line)


class NoSection(enum.Enum):
    """Why a benchmark produced no section; either way its old section is kept."""

    FAILED = "failed"
    SKIPPED = "skipped"


def _headings(lines: Sequence[str]) -> list[int]:
    """Indices of the ``## `` heading lines, skipping those inside fenced code blocks."""
    found, fenced = [], False
    for number, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif line.startswith("## ") and not fenced:
            found.append(number)
    return found


def split_sections(text: str) -> tuple[str, list[Section]]:
    """The text before the first ``## `` heading and the ``## `` sections, in order."""
    lines = text.splitlines()
    starts = _headings(lines)
    bounds = zip(starts, [*starts[1:], len(lines)], strict=False)
    sections = [(lines[a][3:].strip(), "\n".join(lines[a:b]).strip() + "\n") for a, b in bounds]
    return "\n".join(lines[: starts[0]] if starts else lines), sections


def generated_headings(text: str) -> list[str]:
    """The headings that an earlier run of this script recorded as its own."""
    found = MARKER.search(text)
    if not found:
        return []
    with contextlib.suppress(json.JSONDecodeError):
        headings = json.loads(found.group(1))
        if isinstance(headings, list) and all(isinstance(h, str) for h in headings):
            return headings
    return []


def section_of(stdout: str) -> Section | None:
    """The section a benchmark printed: its stdout from the first ``## `` heading on, or None."""
    lines = stdout.splitlines()
    starts = _headings(lines)
    if not starts:
        return None
    return lines[starts[0]][3:].strip(), "\n".join(lines[starts[0] :]).strip() + "\n"


def assemble(header: str, previous: str, produced: Sequence[Section]) -> str:
    """The new BENCHMARKS.md: header, generated sections, then the old file's other sections.

    A generated section replaces the old section of the same heading in place (so ``--only``
    keeps the order); new ones follow the generated sections of earlier runs. Old sections that
    no run of this script produced are kept verbatim, in their order, after them.
    """
    _preamble, old = split_sections(previous)
    ours = set(generated_headings(previous)) | {heading for heading, _ in produced}
    generated = [(h, t) for h, t in old if h in ours]
    fresh = dict(produced)
    generated = [(h, fresh.pop(h, t)) for h, t in generated]
    generated += [(h, t) for h, t in produced if h in fresh]
    kept = [(h, t) for h, t in old if h not in ours]
    marker = f"<!-- generated sections: {json.dumps([h for h, _ in generated])} -->"
    body = [header.strip() + "\n\n" + marker + "\n"] + [t for _, t in generated + kept]
    return "\n".join(body)


def machine() -> str:
    """Cores, CPU model, Python and library versions (from package metadata, nothing imported)."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        model = next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    versions = []
    for label, package in (
        ("torch", "torch"),
        ("faiss", "faiss-cpu"),
        ("PML", "pytorch-metric-learning"),
        ("numpy", "numpy"),
    ):
        try:
            versions.append(f"{label} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{label} not installed")
    return (
        f"{os.cpu_count()} cores ({model}, {platform.machine()} {platform.system()}), "
        f"Python {platform.python_version()}, {', '.join(versions)}"
    )


def header(argv: Sequence[str], when: datetime.datetime) -> str:
    command = " ".join(["python scripts/bench.py", *argv])
    return (
        "# Benchmarks\n\n"
        "The benchmark sections are printed by `scripts/bench_<topic>.py`; `make bench` (or\n"
        "`python scripts/bench.py [--quick] [--only NAME]`) reruns them and rewrites them here. The\n"
        "sections after them (reproductions, notes) are not generated and are kept as they are.\n\n"
        f"Last run: `{command}`, {when:%Y-%m-%d %H:%M} UTC. Each section gives its own command and\n"
        "whether it ran in `--quick` mode.\n\n"
        f"Machine: {machine()}. Every benchmark ran in its own process with `OMP_NUM_THREADS=1`.\n\n"
        "Each ratio compares the peer and metriclab on the same inputs in one process, each time the\n"
        "median of several runs. The machine was shared with other jobs (training runs) and is noisy:\n"
        "read the ratios, not the absolute times."
    )


def discover(scripts_dir: Path) -> dict[str, Path]:
    """``{topic: path}`` of the ``bench_<topic>.py`` scripts, in :data:`ORDER` then by name."""
    found = {p.stem.removeprefix("bench_"): p for p in sorted(scripts_dir.glob("bench_*.py"))}
    rank = {topic: i for i, topic in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(ORDER)), item[0])))


def wrapped(stdout: str, script: str, quick: bool) -> Section:
    """A section around the output of a benchmark that prints no ``## `` heading of its own."""
    title = script.removeprefix("bench_").removesuffix(".py").capitalize()
    command = f"python scripts/{script}{' --quick' if quick else ''}"
    return title, (
        f"## {title}\n\nCommand: `{command}`. Its output as printed (this script does not print "
        f"its own section yet):\n\n{stdout.strip()}\n"
    )


def run_benchmark(script: Path, quick: bool) -> Section | NoSection:
    """Run one benchmark in a fresh process: its section, or why it has none."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    print(f"bench: running {script.name}{' --quick' if quick else ''}", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode == SKIPPED:
        print(f"bench: {script.name} skipped itself; its old section is kept", file=sys.stderr)
        return NoSection.SKIPPED
    if done.returncode != 0:
        print(
            f"bench: {script.name} failed (exit status {done.returncode}); its old section is kept",
            file=sys.stderr,
        )
        return NoSection.FAILED
    return section_of(done.stdout) or wrapped(done.stdout, script.name, quick)


def run_suite(scripts: dict[str, Path], quick: bool, output: Path, argv: Sequence[str]) -> int:
    """Run ``scripts``, rewrite ``output``; the number of benchmarks that failed (not skipped)."""
    outcomes = [run_benchmark(path, quick) for path in scripts.values()]
    produced = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    skipped = outcomes.count(NoSection.SKIPPED)
    previous = output.read_text(encoding="utf-8") if output.is_file() else ""
    now = datetime.datetime.now(datetime.timezone.utc)
    write_text(output, assemble(header(argv, now), previous, produced))
    print(
        f"bench: wrote {output} ({len(produced)} of {len(scripts)} sections, {skipped} skipped)",
        file=sys.stderr,
    )
    return len(scripts) - len(produced) - skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick mode")
    parser.add_argument("--only", metavar="NAME", help="run one benchmark (e.g. eval)")
    args = parser.parse_args(argv)
    scripts = discover(ROOT / "scripts")
    if args.only is not None:
        name = args.only.removeprefix("bench_").removesuffix(".py")
        if name not in scripts:
            parser.error(
                f"--only {args.only!r} is not a benchmark; choose one of {', '.join(scripts)}"
            )
        scripts = {name: scripts[name]}
    shown = sys.argv[1:] if argv is None else list(argv)
    return 1 if run_suite(scripts, args.quick, ROOT / "BENCHMARKS.md", shown) else 0


if __name__ == "__main__":
    sys.exit(main())
