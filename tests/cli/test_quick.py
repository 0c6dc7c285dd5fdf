"""The quiet JSON matrix without the parser (patchkit.cli.quick): the same reading of the
command line as argparse's, the same output and exit code as the full command, warm or not."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchkit.cli import main
from patchkit.cli.commands.matrix import DEFAULT_FAIL_ON
from patchkit.cli.main import build_parser
from patchkit.cli.quick import answer, matrix_args
from tests.ops.test_matrix import matrix_project


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return matrix_project(tmp_path)


# Command lines tried: the form quick.py reads, in every order, and its near misses.
_GLOBAL = st.sampled_from(
    [
        ["-q"],
        ["--quiet"],
        ["-v"],
        ["--project", "p"],
        ["--project=p"],
        ["--store", "s"],
        ["--store=s"],
        ["--form", "json"],
        ["-qv"],
        ["--project="],
        ["--format", "json"],
    ]
)
_AFTER = st.sampled_from(
    [
        ["--format", "json"],
        ["--format=json"],
        ["--format", "table"],
        ["--format", "matrix"],
        ["--fail-on", ""],
        ["--fail-on=conflict,fuzz"],
        ["--fail-on", " conflict , "],
        ["--fail-on", "--q"],
        ["--fail-on=-x"],
        ["-j", "2"],
        ["--jobs=3"],
        ["-j", "-1"],
        ["-j", "\u0663"],  # an Arabic-Indic 3: int() reads it, argparse too
        ["-j3"],
        ["-j=3"],
        ["-q"],
        ["-v"],
        ["--project", "q"],
        ["--store", "t"],
        ["--no-cache"],
        ["--", "x"],
        ["--fail-on"],
        ["--help"],
        ["-h"],
    ]
)
_POSITIONALS = st.lists(st.sampled_from(["1.0", "2.0", "x y", "-1", ""]), max_size=3)


@st.composite
def _command_lines(draw: st.DrawFn) -> list[str]:
    before = [t for group in draw(st.lists(_GLOBAL, max_size=3)) for t in group]
    options = draw(st.lists(_AFTER, max_size=4))
    at = draw(st.integers(0, len(options)))
    after = [t for group in options[:at] for t in group] + draw(_POSITIONALS)
    after += [t for group in options[at:] for t in group]
    if draw(st.integers(0, 3)) == 0:
        after += draw(_POSITIONALS)  # a second run of positionals: argparse refuses it
    return [*before, draw(st.sampled_from(["matrix", "matrix", "matrix", "check"])), *after]


_TOKENS = st.sampled_from(
    ["matrix", "-q", "--format", "json", "--fail-on", "", "-j", "1", "--project", "--", "x"]
)
_ARGV = st.one_of(_command_lines(), st.lists(_TOKENS, max_size=8))


def _argparse(argv: list[str]) -> dict[str, object] | None:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(build_parser().parse_args(argv))
        except SystemExit:
            return None


@settings(
    max_examples=int(os.environ.get("PATCHKIT_HYPOTHESIS_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_ARGV)
def test_what_it_reads_is_what_argparse_reads(argv: list[str]) -> None:
    read = matrix_args(argv)
    if read is None:
        return  # the full command line runs: nothing to compare
    parsed = _argparse(argv)
    assert parsed is not None, f"{argv}: read here, refused by argparse"
    assert parsed["command"] == "matrix"
    assert (
        parsed["project_dir"],
        parsed["store"],
        parsed["quiet"],
        parsed["verbose"],
        parsed["versions"],
        parsed["output_format"],
        parsed["fail_on"],
        parsed["jobs"],
    ) == (
        read.project_dir,
        read.store,
        read.quiet,
        read.verbose,
        read.versions,
        read.output_format,
        DEFAULT_FAIL_ON if read.fail_on is None else read.fail_on,
        read.jobs,
    ), argv
    # Nothing else set: the options quick.py does not read keep their defaults.
    assert (parsed["no_cache"], parsed["only_changed"], parsed["merge"]) == (False, None, None)
    assert (parsed["github_matrix"], parsed["group_size"]) == (False, 1)


def _full(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _quick(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int | None, str, str]:
    code = answer(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "tail",
    [
        ["--format", "json"],
        ["--format=json", "--fail-on", ""],
        ["--fail-on", "fuzz,offset", "--format", "json", "-j", "1"],
        ["2.0", "4.0", "--format", "json"],
    ],
)
def test_the_same_output_and_exit_code_cold_and_warm(
    proj: Path, capsys: pytest.CaptureFixture[str], tail: list[str]
) -> None:
    argv = ["-q", "--project", str(proj), "matrix", *tail]
    cache = proj / ".patchkit/cache"
    want = _full(capsys, argv)  # the full command line, cold: it writes the snapshot
    assert want[0] in (0, 1) and want[1].count("\n") == 1
    assert _quick(capsys, argv) == want  # warm: from the snapshot
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    assert _quick(capsys, argv) == want  # cold: computed without the parser
    assert _quick(capsys, argv) == want  # and warm again


def test_anything_else_is_left_to_the_full_command_line(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(proj)]
    assert main(["-q", *p, "matrix", "--format", "json"]) == 1  # the snapshot is there
    capsys.readouterr()
    assert answer([*p, "matrix", "--format", "json"]) is None  # not quiet: a table on stderr
    assert answer(["-q", *p, "matrix"]) is None  # a table
    assert answer(["-q", *p, "matrix", "--format", "json", "--no-cache"]) is None
    assert answer(["-q", *p, "check", "--json"]) is None
    # An unknown status: not answered from the snapshot; the command's own run names it.
    bogus = ["-q", *p, "matrix", "--format", "json", "--fail-on", "bogus"]
    want = _full(capsys, bogus)
    assert want[0] == 2 and "bogus" in want[2]
    assert _quick(capsys, bogus) == want


def test_errors_are_the_full_command_lines(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-q", "--project", str(proj), "matrix", "9.9", "--format", "json"]
    assert _quick(capsys, argv) == _full(capsys, argv)
    code, out, err = _full(capsys, argv)
    assert code == 3 and out == "" and err.startswith("patchkit: error: ")


def test_the_installed_entry_point_answers_a_pipe(proj: Path) -> None:
    """`python -m patchkit` (the entry point the console script calls), stdout a pipe."""
    argv = ["-q", "--project", str(proj), "matrix", "--format", "json", "--fail-on", ""]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHKIT_TEST_")}
    runs = [
        subprocess.run([sys.executable, "-m", "patchkit", *argv], capture_output=True, env=env)
        for _ in range(2)  # cold, then warm
    ]
    assert [r.returncode for r in runs] == [0, 0]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.count(b"\n") == 1
    assert runs[0].stderr == runs[1].stderr == b""
