"""Command functions called directly: keyword arguments, a Ui over strings, no argparse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit import Project
from patchkit._version import __version__
from patchkit.cli.commands.check import check
from patchkit.cli.commands.matrix import DEFAULT_FAIL_ON, matrix, parse_fail_on
from patchkit.cli.commands.rebase import rebase
from patchkit.cli.commands.versions import versions
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK
from patchkit.core.model import FAILED, PatchStatus
from patchkit.errors import NotImportedError, UsageError
from tests.cli.conftest import MemoryUi
from tests.helpers.projectbuilder import make_project
from tests.ops.test_matrix import PATCHES, RELEASES


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = make_project(tmp_path, RELEASES, PATCHES, base="1.0")
    project = Project.open(root)
    for v in ("1.0", "2.0", "3.0"):
        project.import_release(v)
    return project


def test_check_called_directly(project: Project, memory_ui: MemoryUi) -> None:
    assert check(project=project, version="1.0", as_json=False, ui=memory_ui.ui) == EXIT_OK
    assert "Series against 1.0" in memory_ui.out and memory_ui.err == ""
    # 3.0: a.patch conflicts, so the command says "needs attention".
    assert check(project=project, version="3.0", as_json=False, ui=memory_ui.ui) == EXIT_ATTENTION


def test_check_json_on_stdout_table_on_stderr(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = MemoryUi()
    assert check(project=project, version=None, as_json=True, ui=memory.ui) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "check" and doc["version"] == "1.0"
    assert doc["patchkit"] == __version__
    assert memory.out == "" and "Series against 1.0" in memory.err


def test_quiet_shows_nothing(project: Project) -> None:
    memory = MemoryUi(quiet=True)
    assert check(project=project, version="3.0", as_json=False, ui=memory.ui) == EXIT_ATTENTION
    assert memory.out == memory.err == ""


def test_check_of_an_unimported_release_raises_the_one_line_error(project: Project) -> None:
    with pytest.raises(NotImportedError, match=r"patchkit import 4\.0"):
        check(project=project, version="4.0", as_json=False, ui=MemoryUi().ui)


def test_versions_called_directly(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert versions(project=project, as_json=True, ui=MemoryUi().ui) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["imported"]) for v in doc["versions"]] == [
        ("1.0", True),
        ("2.0", True),
        ("3.0", True),
        ("4.0", False),
    ]


def test_matrix_called_directly_then_merged_without_a_store(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(project.root)
    memory = MemoryUi()
    code = matrix(project_dir=root, store=None, output_format="json", ui=memory.ui)
    assert code == EXIT_ATTENTION  # conflicts on 3.0, and the default --fail-on names conflict
    whole = capsys.readouterr().out
    assert "Compatibility matrix" in memory.err
    result = tmp_path / "result.json"
    result.write_text(whole)
    # --merge needs no project: a directory that is not one is fine.
    elsewhere = tmp_path / "nowhere"
    code = matrix(
        project_dir=str(elsewhere),
        store=None,
        merge=[str(result)],
        output_format="json",
        fail_on="",
        ui=MemoryUi(quiet=True).ui,
    )
    assert code == EXIT_OK
    merged = json.loads(capsys.readouterr().out)
    assert merged["results"] == json.loads(whole)["results"]
    with pytest.raises(UsageError, match="--merge takes result files only"):
        matrix(project_dir=root, store=None, versions=["1.0"], merge=[str(result)], ui=memory.ui)


def test_fail_on_words() -> None:
    assert parse_fail_on(DEFAULT_FAIL_ON) == FAILED
    assert parse_fail_on(" fuzz, conflict ,") == {PatchStatus.FUZZ, PatchStatus.CONFLICT}
    assert parse_fail_on("") == frozenset()
    with pytest.raises(UsageError, match="unknown status 'bogus'"):
        parse_fail_on("bogus")


def test_rebase_status_without_a_rebase(project: Project, memory_ui: MemoryUi) -> None:
    assert rebase(project=project, status=True, ui=memory_ui.ui) == EXIT_OK
    assert memory_ui.out == "no rebase in progress\n"
