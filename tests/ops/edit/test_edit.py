"""The edit worktree: open, save, rebase -i, replay conflicts, kinds, new, guards, bad input."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.errors import EditStateError, NotFoundError, PatchkitError
from patchkit.ops.edit import edit_in_progress
from tests.ops.edit.conftest import (
    EDIT_TOML,
    FORMAT_PATCH_HEADER,
    SERIES,
    files,
    git,
    stat_snapshot,
)


def _all_applied(project: Project) -> bool:
    return project.check().summary["applied"] == len(project.series.names)


def _log(wt: Path) -> list[str]:
    return git(
        wt,
        "log",
        "--reverse",
        "--format=%s|%(trailers:key=Patchkit-Patch,valueonly,separator=%x2C)",
    ).splitlines()


def _edit_todo(tmp: Path, script: str) -> dict[str, str]:
    """GIT_SEQUENCE_EDITOR running ``script`` (Python, on the todo file's lines)."""
    editor = tmp / "seq_editor.py"
    editor.write_text(
        "import sys\n"
        "path = sys.argv[1]\n"
        "lines = [l for l in open(path).read().splitlines() if l and not l.startswith('#')]\n"
        f"{script}\n"
        "open(path, 'w').write('\\n'.join(lines) + '\\n')\n"
    )
    return {"GIT_SEQUENCE_EDITOR": f"{sys.executable} {editor}"}


# -- open ----------------------------------------------------------------------------


def test_open_makes_one_commit_per_patch_with_subject_and_trailer(project: Project) -> None:
    result = project.edit()
    wt = Path(result.worktree)
    assert wt == project.state_dir / "edit" / "worktree"
    assert result.tip == "c.patch"
    log = _log(wt)
    assert log[1:] == [
        "patch a|a.patch",
        "a two|a2.patch",
        "bee: change line 3|b.patch",
        "listen everywhere|listen.edit.toml",
        "c|c.patch",
    ]
    body = git(wt, "log", "-1", "--format=%B", "HEAD~4")
    assert body == "patch a\n\nmore about a\n\nPatchkit-Patch: a.patch\n\n"
    # The edit's effect is its commit; the worktree is sparse: only what the series touches.
    assert (wt / "etc/e.conf").read_text() == "listen = 0.0.0.0\nport = 25\n"
    assert (wt / "etc/a.conf").read_text().count("ours") == 1
    assert not (wt / "etc/other.conf").exists()
    assert not (wt / "usr").exists()
    assert edit_in_progress(project.state_dir)


def test_open_at_a_patch_and_add_globs(project: Project) -> None:
    wt = Path(project.edit("a.patch", add=["usr/**"]).worktree)
    assert git(wt, "log", "-1", "--format=%s").strip() == "patch a"
    assert "line 9 two" not in (wt / "etc/a.conf").read_text()
    assert (wt / "usr/share/doc/readme").read_text() == "docs\n"
    project.edit("a.patch", add=["etc/other.conf"])  # re-open widens it
    assert (wt / "etc/other.conf").exists()
    assert (wt / "usr/share/doc/readme").exists()


def test_open_on_another_release(project: Project) -> None:
    wt = Path(project.edit(version="1.1").worktree)
    assert "sea 4 up" in git(wt, "show", "HEAD~5:etc/c.conf")
    st = project.edit_status()
    assert st.version == "1.1"


def test_unknown_patch_is_refused(project: Project) -> None:
    with pytest.raises(NotFoundError, match=re.escape("'nope.patch' is not in patches/series")):
        project.edit("nope.patch")
    assert not edit_in_progress(project.state_dir)


# -- save ----------------------------------------------------------------------------


def test_save_without_change_leaves_patches_byte_identical(project: Project) -> None:
    before = stat_snapshot(project.patches_dir)
    ino = project.patches_dir.stat().st_ino
    wt = Path(project.edit("a2.patch").worktree)
    assert project.edit_save().written == ()
    git(wt, "checkout", "-q", "--detach", "HEAD~1")  # moving about is no change either
    assert project.edit_save().written == ()
    assert project.edit_done().written == ()
    assert stat_snapshot(project.patches_dir) == before
    assert project.patches_dir.stat().st_ino == ino


def test_uncommitted_change_goes_into_the_patch_at_head(project: Project) -> None:
    before = files(project.patches_dir)
    wt = Path(project.edit("a.patch").worktree)
    path = wt / "etc/a.conf"
    path.write_text(path.read_text().replace("line 2\n", "line 2 too\n"))
    result = project.edit_save()
    assert result.written == ("a.patch",)
    after = files(project.patches_dir)
    assert {k for k in after if after[k] != before.get(k)} == {"a.patch"}
    text = after["a.patch"].decode()
    assert text.startswith("Description: patch a\n more about a\nForwarded: no\n\n")
    assert "+line 2 too\n" in text and "+line 5 ours\n" in text
    # a2.patch was replayed onto it and still applies exactly.
    assert _all_applied(project)
    assert (wt / "etc/a.conf").read_text().count("line 9 two") == 0  # HEAD stays on a.patch
    assert project.edit_status().tip == "a.patch"


def test_format_patch_header_and_signature_round_trip(project: Project) -> None:
    wt = Path(project.edit("b.patch").worktree)
    path = wt / "etc/b.conf"
    path.write_text(path.read_text().replace("bee 7\n", "bee 7 also\n"))
    project.edit_save()
    data = (project.patches_dir / "b.patch").read_bytes().decode()
    assert data.startswith(FORMAT_PATCH_HEADER)
    assert data.endswith("-- \n2.39.5\n\n")
    assert "+bee 7 also\n" in data


def test_new_commit_becomes_a_new_patch_never_clobbering(project: Project) -> None:
    (project.patches_dir / "tune-the-sea.patch").write_text("not in the series\n")
    wt = Path(project.edit().worktree)
    (wt / "etc/c.conf").write_text((wt / "etc/c.conf").read_text() + "sea 11\n")
    git(wt, "commit", "-qam", "Tune the sea\n\nIt needs an eleventh line.\n\nSigned-off-by: M")
    result = project.edit_save()
    assert result.created == ("tune-the-sea-2.patch",)
    assert (project.patches_dir / "tune-the-sea.patch").read_text() == "not in the series\n"
    text = (project.patches_dir / "tune-the-sea-2.patch").read_text()
    assert text.startswith(
        "Description: Tune the sea\n It needs an eleventh line.\n .\n Signed-off-by: M\n\n"
    )
    assert "+sea 11\n" in text
    assert project.series.render() == SERIES + "tune-the-sea-2.patch\n"
    # Its commit now carries the trailer: a second save changes nothing.
    assert _log(wt)[-1] == "Tune the sea|tune-the-sea-2.patch"
    assert project.edit_save().written == ()
    assert _all_applied(project)


def test_rebase_i_reorder_keeps_comments_and_options(project: Project, tmp_path: Path) -> None:
    wt = Path(project.edit().worktree)
    # c.patch before b.patch (they touch different files).
    env = _edit_todo(tmp_path, "lines[2], lines[4] = lines[4], lines[2]")
    git(wt, "rebase", "-q", "-i", "HEAD~5", env=env)
    result = project.edit_save()
    assert result.written == ("series",)
    assert project.series.render() == (
        "# the series\na.patch\na2.patch  # second on a\n\n# from upstream's list\n"
        "c.patch\nlisten.edit.toml\nb.patch -p1\n"
    )


def test_rebase_i_squash_and_drop(project: Project, tmp_path: Path) -> None:
    before = files(project.patches_dir)
    wt = Path(project.edit().worktree)
    # squash a2 into a; drop c.
    env = _edit_todo(
        tmp_path,
        "lines[1] = 'squash ' + lines[1].split(' ', 1)[1]\nlines = lines[:4]",
    )
    git(wt, "rebase", "-q", "-i", "HEAD~5", env={**env, "GIT_EDITOR": "true"})
    result = project.edit_save()
    assert set(result.dropped) == {"a2.patch", "c.patch"}
    assert project.series.names == ("a.patch", "b.patch", "listen.edit.toml")
    assert "# second on a" not in project.series.render()
    a = (project.patches_dir / "a.patch").read_text()
    assert "+line 9 two\n" in a and a.startswith("Description: patch a\n")
    # Their files stay.
    for name in ("a2.patch", "c.patch"):
        assert (project.patches_dir / name).read_bytes() == before[name]


def test_replay_conflict_stops_then_abort_or_continue(project: Project) -> None:
    before = files(project.patches_dir)
    wt = Path(project.edit("a.patch").worktree)
    path = wt / "etc/a.conf"
    path.write_text(path.read_text().replace("line 9\n", "line 9 first\n"))
    result = project.edit_save()
    assert result.stopped == "a2.patch"
    assert result.conflicts == ("etc/a.conf",)
    assert "<<<<<<<" in path.read_text()
    assert files(project.patches_dir) == before
    st = project.edit_status()
    assert st.stopped == "a2.patch" and st.phase == "stopped"
    with pytest.raises(EditStateError, match=re.escape("conflict markers left in etc/a.conf:")):
        project.edit_continue()
    project.edit_abort()
    assert files(project.patches_dir) == before
    assert "line 9 first" in path.read_text() and "<<<<<<<" not in path.read_text()
    assert git(wt, "status", "--porcelain").strip() == "M etc/a.conf"
    # Again, resolved this time.
    assert project.edit_save().stopped == "a2.patch"
    text = path.read_text()
    start, end = text.index("<<<<<<<"), text.index(">>>>>>>")
    end = text.index("\n", end) + 1
    path.write_text(text[:start] + "line 9 first and two\n" + text[end:])
    git(wt, "add", "etc/a.conf")
    result = project.edit_continue()
    assert not result.stopped
    assert set(result.written) == {"a.patch", "a2.patch"}
    assert "+line 9 first and two\n" in (project.patches_dir / "a2.patch").read_text()
    assert _all_applied(project)


def test_a_change_only_an_edit_makes_is_refused(project: Project) -> None:
    before = files(project.patches_dir)
    wt = Path(project.edit().worktree)
    (wt / "etc/e.conf").write_text("listen = 10.0.0.1\nport = 25\n")
    with pytest.raises(EditStateError) as info:
        project.edit_save()
    assert str(info.value) == (
        "etc/e.conf: only patches/listen.edit.toml (edit) changes this file; change "
        "patches/listen.edit.toml instead (or patchkit materialize --replace "
        "listen.edit.toml first)"
    )
    assert info.value.exit_code == 3
    assert files(project.patches_dir) == before


def test_edit_file_changed_in_patches_shows_in_the_worktree(project: Project) -> None:
    wt = Path(project.edit().worktree)
    (project.patches_dir / "listen.edit.toml").write_text(EDIT_TOML.replace("0.0.0.0", "::"))
    project.edit()  # re-open: its commit follows the file
    assert (wt / "etc/e.conf").read_text() == "listen = ::\nport = 25\n"
    assert project.edit_save().written == ()


def test_head_moved_off_the_release_is_refused(project: Project) -> None:
    wt = Path(project.edit().worktree)
    git(wt, "checkout", "-q", "--orphan", "elsewhere")
    git(wt, "commit", "-qm", "foreign")
    with pytest.raises(EditStateError, match=re.escape("not a commit on release 1.0")):
        project.edit_save()


def test_discard_needs_force_when_dirty(project: Project) -> None:
    wt = Path(project.edit().worktree)
    (wt / "etc/c.conf").write_text("changed\n")
    with pytest.raises(EditStateError, match="1 uncommitted file"):
        project.edit_discard()
    assert (wt / "etc/c.conf").read_text() == "changed\n"
    project.edit_discard(force=True)
    assert not wt.exists() and not edit_in_progress(project.state_dir)


def test_status_json(project: Project) -> None:
    wt = Path(project.edit().worktree)
    (wt / "etc/c.conf").write_text((wt / "etc/c.conf").read_text() + "x\n")
    doc = json.loads(json.dumps(project.edit_status().to_dict()))
    assert doc["command"] == "edit" and doc["action"] == "status" and doc["schema"] == 1
    assert doc["uncommitted"] == ["etc/c.conf"]
    assert doc["modified"] == ["c.patch"]
    assert doc["tip"] == "c.patch" and doc["stopped"] is None
    assert doc["patches"][0]["name"] == "a.patch"


# -- new -----------------------------------------------------------------------------


def test_new_without_worktree(project: Project) -> None:
    project.new("fix-b.patch", after="a2.patch", message="Fix the bee")
    assert (project.patches_dir / "fix-b.patch").read_text() == "Description: Fix the bee\n"
    assert project.series.names[:3] == ("a.patch", "a2.patch", "fix-b.patch")
    assert "a2.patch  # second on a\nfix-b.patch\n" in project.series.render()
    assert _all_applied(project)


def test_new_moves_the_worktree_head(project: Project) -> None:
    wt = Path(project.edit().worktree)
    project.new("more-a.patch", after="a.patch", message="More a")
    assert git(wt, "log", "-1", "--format=%s").strip() == "More a"
    assert "line 9 two" not in (wt / "etc/a.conf").read_text()
    path = wt / "etc/a.conf"
    path.write_text(path.read_text().replace("line 15\n", "line 15 more\n"))
    result = project.edit_save()
    assert result.written == ("more-a.patch",)
    text = (project.patches_dir / "more-a.patch").read_text()
    assert text.startswith("Description: More a\n\n") and "+line 15 more\n" in text
    assert _all_applied(project)


@pytest.mark.parametrize("name", ["../x.patch", "/abs.patch", "a.patch", "series"])
def test_new_bad_names(project: Project, name: str) -> None:
    before = files(project.patches_dir)
    with pytest.raises(PatchkitError) as info:
        project.new(name)
    assert info.value.exit_code == 3
    assert files(project.patches_dir) == before


def test_new_refuses_a_dirty_worktree(project: Project) -> None:
    wt = Path(project.edit().worktree)
    (wt / "etc/c.conf").write_text("dirty\n")
    with pytest.raises(EditStateError, match="save first"):
        project.new("x.patch")
    assert not (project.patches_dir / "x.patch").exists()


# -- guards --------------------------------------------------------------------------


def test_rebase_import_refresh_refused_during_edit(project: Project) -> None:
    project.edit()
    with pytest.raises(EditStateError, match="before patchkit import"):
        project.import_release("1.1")
    with pytest.raises(EditStateError, match="before patchkit refresh"):
        project.refresh()


def test_edit_refused_during_rebase(project: Project) -> None:
    project.rebase("1.1")  # stops on c.patch
    with pytest.raises(PatchkitError, match=re.escape("a rebase onto 1.1 is in progress")):
        project.edit()


def test_swap_uses_rename_exchange_here(tmp_path: Path) -> None:
    from patchkit.ops.edit.swap import rename_exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "a/x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b/x").write_text("b")
    assert rename_exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a/x").read_text() == "b"


def test_modes_survive_a_save(project: Project) -> None:
    script = project.patches_dir / "hook.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    wt = Path(project.edit().worktree)
    (wt / "etc/c.conf").write_text((wt / "etc/c.conf").read_text() + "x\n")
    project.edit_save()
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o755
