from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.cli import main
from tests.helpers.projectbuilder import make_project, numbered, udiff

BASE = numbered(10)
PATCH = udiff("f", BASE, BASE.replace("line 4\n", "line 4 ours\n"), "Description: x\n\n")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    releases = {
        "1.0": {"f": BASE},
        "1.1": {"f": "top\n" + BASE},  # offset: still applies
        "1.2": {"f": BASE.replace("line 4\n", "line 4 changed\n")},  # stops applying
        "1.3": {"f": BASE},  # applies again (a revert)
        "2.0": {"f": BASE},  # tracked, not imported
    }
    root = make_project(tmp_path, releases, {"p.patch": PATCH}, base="1.0")
    p = Project.open(root)
    for v in ("1.3", "1.0", "1.2", "1.1"):
        p.import_release(v)
    return p


def test_bisect_finds_first_release_where_the_patch_stops_applying(project: Project) -> None:
    from patchkit.ops.bisect import bisect_patch

    r = bisect_patch(project, "p.patch")
    assert (r.first_bad, r.last_good) == ("1.2", "1.1")
    assert [(s.version, s.status.value) for s in r.steps] == [
        ("1.0", "applied"),
        ("1.1", "offset"),
        ("1.2", "conflict"),
        ("1.3", "applied"),
    ]
    assert r.not_imported == ("2.0",)


def test_bisect_cli_json_and_exit_code(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project.root), "bisect", "p.patch", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "bisect" and doc["first_bad"] == "1.2" and doc["last_good"] == "1.1"


def test_bisect_unknown_patch_is_a_one_line_error(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project.root), "bisect", "nope.patch"]) == 2
    err = capsys.readouterr().err
    assert "nope.patch" in err and "p.patch" in err and err.count("\n") == 1
