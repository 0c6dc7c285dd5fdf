from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from patchkit import PatchStatus, Project, RebaseState
from patchkit.cli import main
from patchkit.errors import LockedError, NotImportedError, RebaseStateError
from patchkit.files import project_lock

from .projectbuilder import make_project, numbered, snapshot


def udiff(path: str, old: str, new: str, header: str = "") -> str:
    body = "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}", n=3
        )
    )
    return header + body


A10 = numbered(30)
A11 = "".join(f"new top {i}\n" for i in range(5)) + A10.replace("line 20\n", "line 20 upstream\n")
B10 = "alpha\nbeta\ngamma\n"
B11 = "alpha\nBETA\ngamma\n"
C10 = numbered(10)
C11 = C10.replace("line 4\n", "line 4 theirs\n")
D10 = numbered(12)
D11 = D10.replace("line 6\n", "line 6 upstream\n")

PATCHES = {
    "a.patch": udiff("etc/a.conf", A10, A10.replace("line 5\n", "line 5 patched\n"),
                     "Description: patch line 5\nForwarded: no\n\n"),
    "d.patch": udiff("etc/d.conf", D10, D10.replace("line 3\n", "line 3 ours\n"), "Description: d\n\n"),
    "b.patch": udiff("etc/b.conf", B10, B11, "Description: upstream took this in 1.1\n\n"),
    "c.patch": udiff("etc/c.conf", C10, C10.replace("line 4\n", "line 4 ours\n"), "Description: c\n\n"),
}
SERIES = "# our series\na.patch\n# d merges\nd.patch -p1\nb.patch\nc.patch\n"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = make_project(
        tmp_path,
        {
            "1.0": {"etc/a.conf": A10, "etc/b.conf": B10, "etc/c.conf": C10, "etc/d.conf": D10},
            "1.1": {"etc/a.conf": A11, "etc/b.conf": B11, "etc/c.conf": C11, "etc/d.conf": D11},
        },
        PATCHES,
        base="1.0",
        series=SERIES,
    )
    p = Project.open(root)
    p.import_release("1.0")
    p.import_release("1.1")
    return p


def test_check_on_base_applies_everything(project: Project) -> None:
    result = project.check()
    assert [p.status for p in result.patches] == [PatchStatus.APPLIED] * 4


def test_check_on_new_release_classifies_each_patch(project: Project) -> None:
    result = project.check("1.1")
    statuses = {p.name: p.status for p in result.patches}
    assert statuses == {
        "a.patch": PatchStatus.OFFSET,
        "d.patch": PatchStatus.FUZZ,
        "b.patch": PatchStatus.ALREADY_APPLIED,
        "c.patch": PatchStatus.CONFLICT,
    }
    (hunk,) = result.patches[0].hunks
    assert hunk.offset == 5


def test_rebase_stops_on_conflict_with_markers_and_table(project: Project) -> None:
    before = snapshot(project.root)
    result = project.rebase("1.1")
    assert result.state is RebaseState.STOPPED
    statuses = {p.name: p.status for p in result.patches}
    assert statuses == {
        "a.patch": PatchStatus.APPLIED,
        "d.patch": PatchStatus.MERGED,
        "b.patch": PatchStatus.ALREADY_APPLIED,
        "c.patch": PatchStatus.CONFLICT,
    }
    assert result.patches[-1].conflicts == ("etc/c.conf",)
    text = (Path(result.worktree) / "etc/c.conf").read_text()
    assert "<<<<<<<" in text and ">>>>>>>" in text
    # Nothing in the project changed while stopped.
    assert snapshot(project.root) == before


def test_continue_refuses_while_markers_remain(project: Project) -> None:
    project.rebase("1.1")
    with pytest.raises(RebaseStateError, match=r"conflict markers remain in etc/c.conf:\d+"):
        project.rebase_continue()


def test_continue_after_resolution_refreshes_and_moves_base(project: Project) -> None:
    result = project.rebase("1.1")
    (Path(result.worktree) / "etc/c.conf").write_text(C11.replace("line 4 theirs\n", "line 4 theirs+ours\n"))
    done = project.rebase_continue()
    assert done.state is RebaseState.COMPLETED
    assert done.dropped == ("b.patch",)
    assert set(done.refreshed) == {"a.patch", "d.patch", "c.patch"}
    root = project.root
    # Comments and -p options survive; the already-applied patch left the series, its file stays.
    assert (root / "patches/series").read_text() == "# our series\na.patch\n# d merges\nd.patch -p1\nc.patch\n"
    assert (root / "patches/b.patch").exists()
    assert project.versions.base == "1.1"
    # a.patch: only the hunk position moved; header and body otherwise byte-identical.
    old_a, new_a = PATCHES["a.patch"], (root / "patches/a.patch").read_text()
    changed = [(o, n) for o, n in zip(old_a.splitlines(), new_a.splitlines(), strict=True) if o != n]
    assert changed == [("@@ -2,7 +2,7 @@", "@@ -7,7 +7,7 @@")]
    assert "line 4 theirs+ours" in (root / "patches/c.patch").read_text()
    assert (root / "patches/c.patch").read_text().startswith("Description: c\n\n")
    # The refreshed series applies exactly to the new base.
    assert [p.status for p in project.check().patches] == [PatchStatus.APPLIED] * 3
    assert not (project.state_dir / "rebase").exists()


def test_skip_drops_the_conflicting_patch_and_keeps_its_file(project: Project) -> None:
    project.rebase("1.1")
    done = project.rebase_skip()
    assert done.state is RebaseState.COMPLETED
    assert set(done.dropped) == {"b.patch", "c.patch"}
    assert "c.patch" not in (project.root / "patches/series").read_text()
    assert (project.root / "patches/c.patch").read_text() == PATCHES["c.patch"]


def test_abort_restores_everything_byte_for_byte(project: Project) -> None:
    before = snapshot(project.root)
    project.rebase("1.1")
    aborted = project.rebase_abort()
    assert aborted.state is RebaseState.ABORTED
    assert snapshot(project.root) == before
    assert not (project.state_dir / "rebase").exists()
    # And a fresh rebase can start again.
    assert project.rebase("1.1").state is RebaseState.STOPPED


def test_commands_that_would_clobber_a_rebase_are_refused(project: Project) -> None:
    project.rebase("1.1")
    with pytest.raises(RebaseStateError, match="in progress"):
        project.rebase("1.1")
    with pytest.raises(RebaseStateError, match="in progress"):
        project.refresh()
    with pytest.raises(RebaseStateError, match="in progress"):
        project.import_release("1.1")
    # Reading is fine while stopped.
    assert project.check("1.1").patches


def test_no_rebase_in_progress(project: Project) -> None:
    for call in (project.rebase_continue, project.rebase_skip, project.rebase_abort):
        with pytest.raises(RebaseStateError, match="no rebase in progress"):
            call()


def test_series_that_does_not_apply_to_base_is_reported_before_starting(project: Project) -> None:
    (project.root / "patches/c.patch").write_text(
        udiff("etc/c.conf", C11, C11.replace("line 4 theirs\n", "x\n"), "Description: broken\n\n")
    )
    with pytest.raises(RebaseStateError, match=r"does not apply to its base 1.0: c.patch \(conflict\)"):
        project.rebase("1.1")
    assert not (project.state_dir / "rebase").exists()


def test_rebase_onto_unimported_release_names_the_import_command(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"1.0": {"x": "a\n"}, "2.0": {"x": "b\n"}}, {}, base="1.0")
    p = Project.open(root)
    p.import_release("1.0")
    with pytest.raises(NotImportedError, match=r"run: patchkit import 2\.0"):
        p.rebase("2.0")


def test_second_process_gets_a_clear_lock_error(project: Project) -> None:
    with project_lock(project.state_dir), pytest.raises(LockedError, match="another patchkit process"):
        Project.open(project.root).rebase("1.1")


def test_cli_rebase_exit_codes_and_json(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(project.root)
    assert main(["--project", root, "rebase", "--onto", "1.1", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["command"] == "rebase" and doc["state"] == "stopped"
    assert doc["patches"][-1]["conflicts"] == ["etc/c.conf"]
    assert main(["--project", root, "rebase", "--continue"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("patchkit: error: conflict markers remain") and err.count("\n") == 1
    assert main(["--project", root, "rebase", "--abort"]) == 0


def test_refresh_fixes_offsets_against_base(tmp_path: Path) -> None:
    base = numbered(20)
    moved = "".join(f"top {i}\n" for i in range(3)) + base
    patch = udiff("f", base, base.replace("line 9\n", "line 9 x\n"), "Description: keep me\n\n")
    root = make_project(tmp_path, {"1": {"f": moved}}, {"p.patch": patch}, base="1")
    p = Project.open(root)
    p.import_release("1")
    assert p.check().patches[0].status is PatchStatus.OFFSET
    assert p.refresh() == ("p.patch",)
    assert p.check().patches[0].status is PatchStatus.APPLIED
    assert (root / "patches/p.patch").read_text().startswith("Description: keep me\n\n--- a/f")
    assert p.refresh() == ()
