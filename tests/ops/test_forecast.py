"""``patchkit forecast``: every change of the series as a rebase onto a release would meet it,
with nothing in the project, its rebase or edit state or the store changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.core.model import PatchStatus
from patchkit.errors import NotImportedError, RebaseStateError, UnknownVersionError
from tests.helpers.projectbuilder import (
    FORECAST_EXPECTED,
    forecast_scenario,
    make_project,
    rebase_scenario,
)

KILLED = -9


def _everything(root: Path) -> dict[str, bytes]:
    """Every file and symlink under ``root``, .patchkit (the store, rebase and edit state)
    included, path -> bytes (a symlink: its target)."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[rel] = path.read_bytes()
        elif path.is_dir():
            out[rel + "/"] = b""
    return out


def _refs(root: Path) -> str:
    proc = subprocess.run(
        ["git", "--git-dir", str(root / ".patchkit/store.git"), "for-each-ref"],
        capture_output=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    )
    return proc.stdout.decode()


@pytest.fixture
def scenario(tmp_path: Path) -> Project:
    return forecast_scenario(tmp_path)


def test_every_change_is_forecast_without_stopping_at_the_first_conflict(
    scenario: Project,
) -> None:
    result = scenario.forecast("2.0")
    assert {p.name: p.status.value for p in result.patches} == FORECAST_EXPECTED
    assert (result.base, result.onto, result.starts, result.clean) == ("1.0", "2.0", True, False)
    left_out = [p.name for p in result.patches if p.left_out]
    assert left_out == ["conflict.patch", "dependent.patch", "health.edit.toml"]


def test_a_conflict_records_each_sides_text_of_each_region(scenario: Project) -> None:
    by_name = {p.name: p for p in scenario.forecast("2.0").patches}
    (conflict,) = by_name["conflict.patch"].conflicts
    assert conflict.file == "etc/conflict.conf"
    (region,) = conflict.hunks
    assert (region.line, region.ours, region.base, region.theirs) == (
        4,
        "conflict 4 upstream\n",
        "conflict 4\n",
        "conflict 4 ours\n",
    )
    assert not region.truncated


def test_changes_after_a_left_out_one_are_replayed_without_it(scenario: Project) -> None:
    by_name = {p.name: p for p in scenario.forecast("2.0").patches}
    dependent = by_name["dependent.patch"]
    # It builds on conflict.patch's line, which the replay left out: its base side is that line.
    assert dependent.after_left_out == ("conflict.patch",)
    assert dependent.conflicts[0].hunks[0].base == "conflict 4 ours\n"
    independent = by_name["independent.patch"]
    assert (independent.status, independent.after_left_out) == (PatchStatus.APPLIED, ())


def test_an_already_applied_change_is_reported_as_the_rebase_would_drop_it(
    scenario: Project,
) -> None:
    b = next(p for p in scenario.forecast("2.0").patches if p.name == "b.patch")
    assert b.status is PatchStatus.ALREADY_APPLIED and not b.left_out
    assert "already contains" in b.message


def test_merged_changes_carry_their_risks_and_range_diff(scenario: Project) -> None:
    by_name = {p.name: p for p in scenario.forecast("2.0").patches}
    moved = by_name["moved.patch"]
    assert moved.status is PatchStatus.APPLIED
    assert moved.risks == ("hunk 1 of etc/moved.conf moved +30 lines",)
    partly = by_name["partly.patch"]
    assert partly.status is PatchStatus.MERGED
    # Upstream made the line-15 fix itself: the change no longer makes it.
    assert [(c.mark, c.text) for c in partly.changes] == [
        ("--", "partly 15"),
        ("-+", "partly 15 fixed"),
    ]


def test_an_edit_reports_its_no_match_with_the_nearest_line(scenario: Project) -> None:
    edit = next(p for p in scenario.forecast("2.0").patches if p.name == "health.edit.toml")
    assert edit.status is PatchStatus.CONFLICT and edit.left_out
    (detail,) = edit.edits
    assert (detail.reason, detail.matches, detail.expected) == ("no-match", 0, "1")
    assert detail.nearest is not None and "localhost:80" in detail.nearest.text


def test_an_overlay_reports_upstream_changed(scenario: Project) -> None:
    overlay = next(p for p in scenario.forecast("2.0").patches if p.name == "sockets/")
    assert overlay.status is PatchStatus.APPLIED
    (entry,) = overlay.entries
    assert entry.flags == ("upstream-changed: etc/http.ini",)
    assert any(r.startswith("upstream-changed: etc/http.ini") for r in overlay.risks)


def test_the_forecast_is_what_the_rebase_meets_patch_by_patch(scenario: Project) -> None:
    """A rebase with --skip at every stop meets the same statuses (the same machinery)."""
    forecast = {p.name: p.status for p in scenario.forecast("2.0").patches}
    result = scenario.rebase("2.0")
    met: dict[str, PatchStatus] = {}
    while result.pending:
        (stopped,) = [p for p in result.patches if p.status is PatchStatus.CONFLICT]
        met[stopped.name] = stopped.status
        result = scenario.rebase_skip()
    met.update({p.name: p.status for p in result.patches if p.name not in met})
    assert met == forecast


def test_nothing_is_changed_and_no_worktree_is_left(scenario: Project) -> None:
    root = scenario.root
    before, refs = _everything(root), _refs(root)
    scenario.forecast("2.0")
    after = _everything(root)
    # The scratch directory (created once, empty again) is the one trace.
    assert after.pop(".patchkit/scratch/") == b""
    assert after == before
    assert _refs(root) == refs


def test_a_stopped_rebase_is_left_exactly_as_it_was(tmp_path: Path) -> None:
    project = rebase_scenario(tmp_path)
    assert project.rebase("1.1").pending == ()  # stopped on c.patch, the last one
    root = project.root
    assert (root / ".patchkit/rebase/worktree/etc/c.conf").exists()
    before, refs = _everything(root), _refs(root)
    result = project.forecast("1.1")
    assert result.notes and "a rebase onto 1.1 is in progress" in result.notes[0]
    after = _everything(root)
    after.pop(".patchkit/scratch/")
    assert after == before
    assert _refs(root) == refs
    # ... and it goes on as if nothing happened.
    assert project.rebase_abort().state.value == "aborted"


def test_an_open_edit_worktree_is_left_exactly_as_it_was(scenario: Project) -> None:
    scenario.edit()
    root = scenario.root
    wt = root / ".patchkit/edit/worktree"
    (wt / "etc/clean.conf").write_text("unsaved work\n")
    before, refs = _everything(root), _refs(root)
    result = scenario.forecast("2.0")
    assert any("edit worktree is open" in n for n in result.notes)
    after = _everything(root)
    after.pop(".patchkit/scratch/")
    assert after == before
    assert _refs(root) == refs
    assert (wt / "etc/clean.conf").read_text() == "unsaved work\n"


def test_a_series_that_does_not_apply_to_its_base_is_forecast_with_those_left_out(
    tmp_path: Path,
) -> None:
    project = rebase_scenario(tmp_path)
    (project.root / "patches/series").write_text("a.patch\nmissing.patch\nc.patch\n")
    (project.root / "patches/missing.patch").write_text(
        "--- a/etc/nowhere.conf\n+++ b/etc/nowhere.conf\n@@ -1 +1 @@\n-x\n+y\n"
    )
    with pytest.raises(RebaseStateError, match=r"does not apply to its base 1\.0"):
        project.rebase("1.1")
    result = project.forecast("1.1")
    assert not result.starts and not result.clean
    missing = result.patches[1]
    assert (missing.status, missing.left_out) == (PatchStatus.MISSING_TARGET, True)
    assert "a rebase refuses to start" in missing.message
    assert [p.status for p in result.patches] == [
        PatchStatus.APPLIED,
        PatchStatus.MISSING_TARGET,
        PatchStatus.CONFLICT,
    ]


def test_a_clean_forecast(tmp_path: Path) -> None:
    project = rebase_scenario(tmp_path)
    (project.root / "patches/series").write_text("a.patch\nd.patch\n")
    result = project.forecast("1.1")
    assert result.clean and not result.needs_attention
    assert [p.status for p in result.patches] == [PatchStatus.APPLIED, PatchStatus.MERGED]


def test_bad_input_is_one_error_and_creates_no_store(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"1": {"f": "a\n"}, "2": {"f": "b\n"}}, {}, base="1")
    project = Project.open(root)
    with pytest.raises(NotImportedError, match="'1' is not imported yet"):
        project.forecast("2")
    assert not (root / ".patchkit/store.git").exists()
    with pytest.raises(UnknownVersionError):
        project.forecast("9")
    project.import_release("1")
    project.import_release("2")
    with pytest.raises(RebaseStateError, match=r"already based on 1$"):
        project.forecast("1")


# -- SIGKILL: the next command clears what a killed forecast left ------------------------------


def _cli(root: Path, *args: str, kill_at: int | None = None, log: Path | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHKIT_TEST_")}
    if kill_at is not None:
        env["PATCHKIT_TEST_KILL_AT"] = str(kill_at)
    if log is not None:
        env["PATCHKIT_TEST_CHECKPOINTS"] = str(log)
    proc = subprocess.run(
        [sys.executable, "-m", "patchkit", "--project", str(root), "-q", *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc.returncode


def test_a_killed_forecast_leaves_nothing_once_the_next_command_ran(
    scenario: Project, tmp_path: Path
) -> None:
    root = scenario.root
    log = tmp_path / "checkpoints.log"
    assert _cli(root, "forecast", "2.0", log=log) == 1
    names = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    assert len(names) >= 20
    # Inside the worktree's creation, the series commits, a pick, a conflict, an edit's
    # evaluation, a commit: every kind of step, and the first and last checkpoints.
    wanted = {1, len(names)}
    for step in ("worktree: add", "series commits", "pick conflict.patch", "evaluate health"):
        wanted |= {i + 1 for i, n in enumerate(names) if n.startswith(step)}
    wanted |= {i + 1 for i, n in enumerate(names) if n.startswith("commit ")}
    before, refs = _everything(root), _refs(root)
    assert before.pop(".patchkit/scratch/") == b""
    seen_leftovers = False
    for n in sorted(wanted):
        assert _cli(root, "forecast", "2.0", kill_at=n) == KILLED, n
        leftovers = list((root / ".patchkit/scratch").iterdir())
        seen_leftovers = seen_leftovers or bool(leftovers)
        # The next command (any: here `versions`) clears it.
        assert _cli(root, "versions") == 0
        after = _everything(root)
        assert after.pop(".patchkit/scratch/") == b"", n
        assert after == before, f"kill at {n} ({names[n - 1]}) left {set(after) ^ set(before)}"
        assert _refs(root) == refs
    assert seen_leftovers
    # And a forecast after all that sees what it always saw.
    assert {p.name: p.status.value for p in scenario.forecast("2.0").patches} == FORECAST_EXPECTED
