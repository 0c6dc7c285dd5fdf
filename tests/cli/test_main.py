"""The dispatch table: every entry consistent with its parser, the error handler, --version."""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import patchkit
from patchkit._version import __version__
from patchkit.cli import main
from patchkit.cli.commands import CONTEXT, Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_ERROR, EXIT_INTERRUPTED, error_handler
from patchkit.cli.main import COMMANDS, GLOBAL_OPTIONS, build_parser, dispatch
from patchkit.errors import NotImportedError, UsageError
from patchkit.output.formats import patchkit_version
from tests.cli.conftest import MemoryUi


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_function_takes_exactly_its_options_and_context(name: str) -> None:
    """A new table entry whose function and parser disagree fails here, not at a user's prompt."""
    command = COMMANDS[name]
    parser = subparsers(build_parser())[name]
    dests = {a.dest for a in parser._actions if a.dest != "help"} - set(GLOBAL_OPTIONS)
    params = inspect.signature(command.run).parameters
    assert not dests & CONTEXT, f"{name}: an option's dest shadows a context name"
    assert set(params) == dests | (set(params) & CONTEXT), f"{name}: {set(params) ^ dests}"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), name
    # A default in the function (for direct calls) is the parser's: one value, not two.
    for action in parser._actions:
        param = params.get(action.dest)
        if param is not None and param.default is not inspect.Parameter.empty:
            expected = action.default if action.default is not None else None
            if action.nargs == "*" and expected is None:
                expected = []
            assert param.default == expected or (not param.default and not expected), (
                f"{name} {action.dest}: {param.default!r} vs {action.default!r}"
            )


def test_the_table_is_the_parser_and_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(subparsers(build_parser())) == list(COMMANDS)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS.values():
        assert command.name in out and command.help[:30] in out.replace("\n", " ").replace(
            "  ", " "
        )


def test_a_new_command_is_one_table_entry(tmp_path: Path) -> None:
    """What docs/cli.md tells the engineer adding `lint`: a module with a function and a row."""
    seen: dict[str, object] = {}

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--strict", action="store_true")

    def lint(*, strict: bool, project_dir: str, ui: object) -> int:
        seen.update(strict=strict, project_dir=project_dir, ui=ui)
        return EXIT_ATTENTION

    table = {
        **COMMANDS,
        "lint": Command(name="lint", help="x", add_arguments=add_arguments, run=lint),
    }
    parser = build_parser(table)
    options = vars(parser.parse_args(["--project", str(tmp_path), "lint", "--strict"]))
    assert options.pop("command") == "lint"
    for name in GLOBAL_OPTIONS:
        options.pop(name)
    memory = MemoryUi()
    code = dispatch(table["lint"], options, ui=memory.ui, project_dir=str(tmp_path), parser=parser)
    assert code == EXIT_ATTENTION
    assert seen == {"strict": True, "project_dir": str(tmp_path), "ui": memory.ui}


def test_dispatch_opens_the_project_only_for_a_function_that_asks(tmp_path: Path) -> None:
    calls: list[str] = []

    def needs(*, project: object) -> int:
        calls.append("called")
        return 0

    def without(*, ui: object) -> int:
        calls.append("without")
        return 0

    memory = MemoryUi()
    cmd = Command(name="x", help="x", add_arguments=lambda p: None, run=without)
    assert dispatch(cmd, {}, ui=memory.ui, project_dir=str(tmp_path)) == 0
    cmd = Command(name="x", help="x", add_arguments=lambda p: None, run=needs)
    with pytest.raises(patchkit.PatchkitError, match="not found"):
        dispatch(cmd, {}, ui=memory.ui, project_dir=str(tmp_path))
    assert calls == ["without"]


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (NotImportedError("version '2' is not imported yet"), 3, "patchkit: error: version '2'"),
        (UsageError("--fail-on: unknown status 'x'"), 2, "patchkit: error: --fail-on"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "patchkit: interrupted"),
        (RuntimeError("boom"), EXIT_ERROR, "patchkit: internal error (RuntimeError: boom)"),
        (BrokenPipeError(), 0, ""),
    ],
)
def test_error_handler_maps_each_failure_to_one_line_and_its_code(
    error: BaseException, code: int, line: str
) -> None:
    memory = MemoryUi()
    with error_handler(memory.ui.err) as outcome:
        raise error
    assert outcome.code == code
    assert memory.err.startswith(line) and memory.err.count("\n") == (1 if line else 0)
    assert "Traceback" not in memory.err


def test_error_handler_shows_the_traceback_of_an_internal_error_with_verbose() -> None:
    memory = MemoryUi()
    with error_handler(memory.ui.err, verbose=True) as outcome:
        raise RuntimeError("boom")
    assert outcome.code == EXIT_ERROR and "Traceback" in memory.err and "boom" in memory.err


def test_version_is_the_packages_one_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == f"patchkit {__version__}\n"
    # _version.py is what the installed distribution (pyproject.toml, dynamic) says too.
    assert patchkit_version() == __version__ == importlib.metadata.version("patchkit")


def test_version_from_the_console_script() -> None:
    exe = Path(sys.executable).with_name("patchkit")
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout == f"patchkit {__version__}\n" and done.stderr == ""


def test_every_json_document_carries_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.projectbuilder import make_project
    from tests.ops.test_matrix import PATCHES, RELEASES

    root = make_project(tmp_path, RELEASES, PATCHES, base="1.0")
    p = ["-q", "--project", str(root)]
    runs = [
        ["import", "1.0", "--json"],
        ["import", "2.0", "--json"],
        ["versions", "--json"],
        ["check", "--json"],
        ["matrix", "--format", "json"],
        ["bisect", "a.patch", "--json"],
        ["audit", "--json"],
        ["build", "1.0", "--out", str(tmp_path / "ctx"), "--json"],
        ["rebase", "--onto", "2.0", "--json"],
        ["rebase", "--status", "--json"],
    ]
    commands = set()
    for argv in runs:
        main([*p, *argv])
        doc = json.loads(capsys.readouterr().out)
        assert doc["patchkit"] == __version__, argv
        assert doc["schema"] == 1
        commands.add(doc["command"])
    assert commands >= {"import", "versions", "check", "matrix", "bisect", "rebase", "build"}
    # --github-matrix prints GitHub's own strategy.matrix: a "patchkit" key would be a matrix axis.
    assert main([*p, "matrix", "--github-matrix"]) == 0
    assert "patchkit" not in json.loads(capsys.readouterr().out)
