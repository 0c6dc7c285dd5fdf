"""The later patches replayed onto the one being saved: without a merge where none of their
files changed (one `git fast-import`), else `git cherry-pick` in the worktree, which stops on
a conflict (markers, phase ``stopped``); ``--continue`` takes the resolution and goes on,
``--abort`` puts the worktree back as it was before the save.
"""

from __future__ import annotations

import dataclasses
import re

from patchkit.errors import EditStateError
from patchkit.files import checkpoint
from patchkit.git.commits import ChainStep, commit_chain, commit_diffs, paths_between, raw_changes
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.recover import require
from patchkit.ops.edit.session import EDIT_REF, EditSession
from patchkit.ops.edit.state import EditPhase, EditStateRecord, SaveProgress
from patchkit.ops.edit.worktree import chain, git_path, names_of
from patchkit.ops.edit.writeback import write

__all__ = ["abort_save", "continue_save", "finish", "replay"]

_NL = b"\n"
_MARKER = re.compile(rb"^(<{7} |>{7} |\|{7} |={7}$)", re.M)


def continue_save(s: EditSession) -> EditOutcome:
    """``patchkit edit --continue``: the resolution taken, the replay and the save finished."""
    with s.ws.lock():
        record = require(s)
        if record.phase is EditPhase.OPEN:
            raise EditStateError("nothing to continue: no save is stopped (patchkit edit --save)")
        if record.phase is EditPhase.STOPPED:
            record = _take_resolution(s, record)
        return finish(s, record, action="continue")


def finish(s: EditSession, record: EditStateRecord, *, action: str = "save") -> EditOutcome:
    """The rest of a save: the replay (unless stopped), then ``patches/`` written; or what a
    save stopped on a conflict returns (exit 1)."""
    if record.phase is EditPhase.SAVING:
        record = replay(s, record)
    if record.phase is EditPhase.STOPPED:
        return _stopped(s, record)
    return write(s, record, action=action)


def abort_save(s: EditSession) -> EditOutcome:
    """``patchkit edit --abort``: the worktree as before the save, ``patches/`` untouched."""
    with s.ws.lock():
        record = require(s)
        notes: tuple[str, ...] = ()
        if record.phase is EditPhase.OPEN or record.save is None:
            notes = ("no save in progress: nothing to abort",)
        else:
            _undo_save(s, record.save)
            record = record.with_(phase=EditPhase.OPEN, save=None, swap=None)
            s.state.save(record)
        return EditOutcome(
            action="abort",
            worktree=str(s.worktree_path),
            version=record.version,
            tip=record.tip,
            notes=notes,
        )


def _undo_save(s: EditSession, save: SaveProgress) -> None:
    wt = s.wt
    checkpoint("edit: abort")
    wt.git("cherry-pick", "--abort", check=False)
    wt.quit_pick()
    wt.reset_hard(save.amended)
    if save.dirty:
        wt.git("reset", "-q", "--mixed", save.before)  # the changes uncommitted again
    else:
        wt.reset_hard(save.before)


def replay(s: EditSession, record: EditStateRecord) -> EditStateRecord:
    """Replay the later patches onto the amended one; redone from ``save.head`` (where
    ``save.picks`` go) after a kill.

    A patch none of whose files differ between its old parent and its new one is
    replayed without a merge (its blobs over the new parent: what the 3-way merge gives
    then), all of them in one `git fast-import`, the worktree untouched. From the first
    that overlaps, `git cherry-pick` in the worktree (git's 3-way; markers on conflict).
    """
    save = record.save
    assert save is not None
    if not save.picks:
        return record
    if not save.stopped_on:
        record = _replay_disjoint(s, record)
        save = record.save
        assert save is not None
        if not save.picks:
            return record
    wt = s.wt
    checkpoint("edit: replay")
    wt.git("cherry-pick", "--quit", check=False)
    wt.reset_hard(save.head)
    return _pick(s, record, list(save.picks))


def _replay_disjoint(s: EditSession, record: EditStateRecord) -> EditStateRecord:
    save = record.save
    assert save is not None
    store = s.store
    picks = list(save.picks)
    diffs = commit_diffs(store, picks)
    changes = raw_changes(store, picks)
    differ = paths_between(store, diffs[picks[0]].parents[0], save.head)
    steps: list[ChainStep] = []
    for commit in picks:
        touched = set(changes[commit])
        if touched & differ:
            break
        steps.append(ChainStep(message=diffs[commit].message, changes=changes[commit]))
    if not steps:
        return record
    checkpoint("edit: replay without merge")
    made = commit_chain(store, save.head, steps, ref=EDIT_REF)
    record = record.with_(
        save=dataclasses.replace(save, head=made[-1], picks=tuple(picks[len(made) :]))
    )
    s.state.save(record)
    return record


def _pick(s: EditSession, record: EditStateRecord, picks: list[str]) -> EditStateRecord:
    save = record.save
    assert save is not None
    wt = s.wt
    proc = wt.git(
        "-c",
        "merge.conflictStyle=zdiff3",
        "-c",
        "core.editor=true",
        "cherry-pick",
        "--allow-empty",
        "--keep-redundant-commits",
        *picks,
        check=False,
    )
    checkpoint("edit: replayed")
    return _after_pick(s, record, proc.returncode == 0)


def _after_pick(s: EditSession, record: EditStateRecord, ok: bool) -> EditStateRecord:
    save = record.save
    assert save is not None
    wt = s.wt
    head = wt.head()
    if ok:
        record = record.with_(save=dataclasses.replace(save, picks=(), head=head, stopped_on=""))
        s.state.save(record)
        return record
    stopped = wt.git("rev-parse", "--verify", "--quiet", "CHERRY_PICK_HEAD", check=False)
    commit = stopped.stdout.decode().strip()
    if not commit:
        raise EditStateError(
            "git cherry-pick failed in the edit worktree without a conflict; "
            "patchkit edit --abort puts the worktree back"
        )
    names = names_of(s, commit)
    rest = save.picks[save.picks.index(commit) :] if commit in save.picks else save.picks
    record = record.with_(
        phase=EditPhase.STOPPED,
        save=dataclasses.replace(
            save,
            picks=tuple(rest),
            head=head,
            stopped_on=names[0] if names else commit[:12],
            conflicts=tuple(wt.unmerged()),
        ),
    )
    s.state.save(record)
    return record


def _markers_left(s: EditSession, paths: set[str]) -> list[str]:
    """``path:line`` of the first conflict marker in each of ``paths`` that has one."""
    left: list[str] = []
    for rel in sorted(paths):
        path = s.worktree_path / rel
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            m = _MARKER.search(data)
            if m:
                left.append(f"{rel}:{data.count(_NL, 0, m.start()) + 1}")
    return left


def _take_resolution(s: EditSession, record: EditStateRecord) -> EditStateRecord:
    save = record.save
    assert save is not None
    wt = s.wt
    left = _markers_left(s, set(save.conflicts) | set(wt.unmerged()))
    if left:
        raise EditStateError(
            f"conflict markers left in {', '.join(left)}; resolve them, git add, then "
            "patchkit edit --continue (or patchkit edit --abort)"
        )
    checkpoint("edit: resolve")
    wt.add_all()
    if not git_path(s, "CHERRY_PICK_HEAD").exists() and not git_path(s, "sequencer").exists():
        # The person committed the resolution (or quit the pick): pick what is left,
        # leaving out what the chain has already.
        done = set()
        for commit, _ in chain(s, record, wt.head()):
            done.update(names_of(s, commit))
        picks = [c for c in save.picks if not set(names_of(s, c)) & done]
        record = record.with_(
            phase=EditPhase.SAVING,
            save=dataclasses.replace(save, picks=tuple(picks), head=wt.head()),
        )
        s.state.save(record)
        return replay(s, record)
    proc = wt.git(
        "-c", "core.editor=true", "-c", "merge.conflictStyle=zdiff3",
        "cherry-pick", "--continue", check=False,
    )  # fmt: skip
    record = record.with_(phase=EditPhase.SAVING)
    return _after_pick(s, record, proc.returncode == 0)


def _stopped(s: EditSession, record: EditStateRecord) -> EditOutcome:
    save = record.save
    assert save is not None
    return EditOutcome(
        action="save",
        worktree=str(s.worktree_path),
        version=record.version,
        tip=record.tip,
        stopped=save.stopped_on,
        conflicts=save.conflicts,
        notes=(
            f"{save.stopped_on} no longer applies after your change: resolve the conflicts "
            f"in {s.worktree_path}, git add, then patchkit edit --continue "
            "(or patchkit edit --abort)",
        ),
    )
