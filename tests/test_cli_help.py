"""The command line's self-description: ``--version``, a help text for every argument, and a
module that imports nothing heavy before a command runs."""

import argparse
import ast
import sys
from pathlib import Path

import pytest
import tomllib

from metriclab import cli

ROOT = Path(__file__).parents[1]


def test_version_prints_the_packages_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert capsys.readouterr().out.strip() == f"metriclab {declared}"


def _every_parser(
    parser: argparse.ArgumentParser, name: str = "metriclab"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                found += _every_parser(sub, f"{name} {command}")
    return found


def test_every_argument_of_every_command_has_a_help_text() -> None:
    undescribed = [
        f"{name}: {action.metavar or action.dest}"
        for name, parser in _every_parser(cli._parser())
        for action in parser._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert undescribed == []


@pytest.mark.parametrize("word", ["RUN_DIR", "BUNDLE", "INDEX", "--split", "--kind"])
def test_the_words_a_new_user_asked_about_are_described(word: str) -> None:
    described = {
        option: action.help
        for _, parser in _every_parser(cli._parser())
        for action in parser._actions
        for option in [*action.option_strings, action.metavar or ""]
    }
    assert described[word] and len(described[word]) > 15


def test_cli_module_imports_only_the_standard_library_at_the_top() -> None:
    """Heavy modules load inside the command functions, so --help answers without torch."""
    tree = ast.parse((ROOT / "metriclab" / "cli.py").read_text("utf-8"))
    top_level = [
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else node.names[:1])
    ]
    heavy = [m for m in top_level if m.split(".")[0] not in sys.stdlib_module_names]
    assert top_level and heavy == []
