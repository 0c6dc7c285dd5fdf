"""patchkit.ops.lint: every problem of a project's files, without a store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from patchkit import Project
from patchkit.cli.commands.lint import lint
from patchkit.cli.ui import Ui
from patchkit.ops.lint import LintProblem, Severity, lint_project
from tests.helpers.projectbuilder import make_project, numbered, udiff

CONF = numbered(10)
GOOD = udiff("etc/a.conf", CONF, CONF.replace("line 5\n", "line 5 ours\n"), "Description: a\n\n")
# The @@ line promises 3 old and 3 new lines (through line 9); the diff goes on at line 10.
BROKEN = (
    "Description: counts are wrong\n\n"
    "--- a/etc/b.conf\n+++ b/etc/b.conf\n@@ -1,3 +1,3 @@\n"
    " line 1\n-line 2\n+line 2 ours\n line 3\n line 4\n line 5\n line 6\n"
)


def _project(tmp_path: Path, patches: dict[str, str], series: str | None = None) -> Project:
    root = make_project(tmp_path, {"1.0": {"etc/a.conf": CONF}}, patches, base="1.0", series=series)
    return Project.open(root)


def test_a_good_project_has_no_problems_and_lists_every_file_read(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": GOOD})
    result = lint_project(project)
    assert result.ok and result.problems == ()
    assert result.files == ("upstream-versions.toml", "patches/series", "patches/a.patch")


def test_lint_needs_no_store(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": GOOD})
    lint_project(project)
    assert not project.state_dir.exists()


def test_a_broken_patch_is_an_error_naming_its_file_and_line(tmp_path: Path) -> None:
    result = lint_project(_project(tmp_path, {"a.patch": GOOD, "b.patch": BROKEN}))
    assert not result.ok
    [problem] = result.errors
    assert problem.file == "patches/b.patch" and problem.line == 10
    assert "@@ line counts do not match" in problem.message
    assert str(problem).startswith("patches/b.patch:10: ")


def test_every_broken_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    result = lint_project(
        _project(tmp_path, {"a.patch": BROKEN, "b.patch": GOOD, "c.patch": BROKEN})
    )
    assert [p.file for p in result.errors] == ["patches/a.patch", "patches/c.patch"]


def test_every_bad_series_line_is_reported_with_its_line(tmp_path: Path) -> None:
    series = "a.patch\nmissing.patch\na.patch\nb.patch -R\n../out.patch\n"
    result = lint_project(_project(tmp_path, {"a.patch": GOOD, "b.patch": GOOD}, series))
    got = [(p.file, p.line) for p in result.errors]
    assert got == [
        ("patches/series", 3),  # duplicate
        ("patches/series", 4),  # unknown option
        ("patches/series", 5),  # climbs out
        ("patches/series", 2),  # names a file that does not exist
    ]
    assert "duplicate patch 'a.patch' (first listed at line 1)" in result.errors[0].message
    assert "does not exist" in result.errors[3].message
    # The good entries are still parsed: a broken a.patch would be reported too.


def test_a_bad_toml_is_reported_and_the_patches_are_still_read(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": BROKEN})
    toml = project.versions_path
    toml.write_text(toml.read_text().replace('status = "supported"', 'status = "gone"'))
    result = lint_project(project)
    assert [p.file for p in result.errors] == ["upstream-versions.toml", "patches/a.patch"]
    first = result.errors[0]
    assert first.line == 8 and "status 'gone' is not one of" in first.message


def test_invalid_toml_syntax_names_the_line(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": GOOD})
    project.versions_path.write_text('schema = 1\nbase = "1.0"\n[upstream\nname = "x"\n')
    [problem] = lint_project(project).errors
    assert problem.file == "upstream-versions.toml" and problem.line == 3
    assert "invalid TOML" in problem.message


def test_a_patch_file_the_series_does_not_list_is_a_warning(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": GOOD, "sub/old.patch": GOOD}, "a.patch\n")
    (project.patches_dir / "README").write_text("not a patch\n")
    result = lint_project(project)
    assert result.ok  # warnings do not fail
    [warning] = result.warnings
    assert warning.severity is Severity.WARNING and warning.file == "patches/sub/old.patch"
    assert "not listed in patches/series" in warning.message


def test_a_missing_series_is_an_empty_series(tmp_path: Path) -> None:
    project = _project(tmp_path, {})
    project.series_path.unlink()
    result = lint_project(project)
    assert result.ok and result.files == ("upstream-versions.toml",)


def test_a_patch_that_is_not_utf8_is_still_parsed(tmp_path: Path) -> None:
    # patch files are bytes (any encoding survives); only the TOML and series must be UTF-8
    project = _project(tmp_path, {"a.patch": GOOD})
    (project.patches_dir / "a.patch").write_bytes(b"Description: caf\xe9\n\n" + GOOD.encode())
    project.series_path.write_bytes(b"a.patch # caf\xe9\n")
    [problem] = lint_project(project).errors
    assert problem.file == "patches/series" and "not UTF-8" in problem.message


def test_json_has_schema_command_problems_and_summary(tmp_path: Path) -> None:
    project = _project(
        tmp_path, {"a.patch": GOOD, "b.patch": BROKEN, "c.patch": GOOD}, "a.patch\nb.patch\n"
    )
    doc = json.loads(json.dumps(lint_project(project).to_dict()))
    assert doc["schema"] == 1 and doc["command"] == "lint"
    assert doc["summary"] == {"error": 1, "warning": 1}
    error = doc["problems"][0]
    assert set(error) == {"file", "line", "message", "severity", "text"}
    assert error["text"] == f"{error['file']}:{error['line']}: {error['message']}"


def test_a_problem_without_a_line_prints_as_file_colon_message() -> None:
    problem = LintProblem(file="upstream-versions.toml", message="not found")
    assert str(problem) == "upstream-versions.toml: not found"


def test_edit_files_and_overlays_are_parsed_by_their_kind(tmp_path: Path) -> None:
    series = "a.patch\nbad.edit.toml\nfiles/\ngone/\n"
    project = _project(tmp_path, {"a.patch": GOOD}, series)
    (project.patches_dir / "bad.edit.toml").write_text(
        'description = "x"\n\n[[edit]]\nfiles = "etc/a.conf"\nreplace = "a"\nwith = "b"\n'
        'count = "x..y"\n'
    )
    (project.patches_dir / "files" / "etc").mkdir(parents=True)
    (project.patches_dir / "files" / "etc" / "new.patch").write_text("an overlay file\n")
    result = lint_project(project)
    assert [(p.file, p.line) for p in result.problems] == [
        ("patches/bad.edit.toml", 7),
        ("patches/series", 4),  # the overlay directory does not exist
    ]
    assert "bad count 'x..y'" in result.problems[0].message
    # files of a listed overlay are the overlay's, not unlisted patches
    assert result.warnings == ()


def _ui(quiet: bool = False) -> tuple[Ui, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()

    def console(f: io.StringIO) -> Console:
        return Console(file=f, width=300, color_system=None, highlight=False)

    return Ui(out=console(out), err=console(err), quiet=quiet), out, err


def test_the_command_prints_one_error_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": GOOD, "b.patch": BROKEN})
    ui, out, err = _ui()
    assert lint(project=project, as_json=False, ui=ui) == 1
    [line] = err.getvalue().splitlines()
    assert line.startswith("patchkit: error: patches/b.patch:10: hunk ended at line 9")
    assert out.getvalue() == "lint: 4 files read, 1 error, 0 warnings\n"


def test_the_command_exits_0_on_warnings_and_keeps_errors_visible_with_q(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a.patch": GOOD, "old.patch": GOOD}, "a.patch\n")
    ui, out, err = _ui(quiet=True)
    assert lint(project=project, as_json=False, ui=ui) == 0
    assert err.getvalue().startswith("patchkit: warning: patches/old.patch: not listed")
    assert out.getvalue() == ""


def test_the_command_json_is_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path, {"b.patch": BROKEN})
    ui, _, _ = _ui()
    assert lint(project=project, as_json=True, ui=ui) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "lint" and doc["summary"] == {"error": 1, "warning": 0}
