"""``patchkit edit --status``: the tip patch, uncommitted files, new commits, patches whose
change differs, and whether a save is stopped (read only; JSON in docs/json.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patchkit.core.model import SCHEMA
from patchkit.git.commits import commit_diffs, commits_between, is_ancestor, uncommitted_paths
from patchkit.ops.edit import messages
from patchkit.ops.edit.compare import changed_files
from patchkit.ops.edit.recover import load
from patchkit.ops.edit.session import EditSession
from patchkit.ops.edit.state import EditPhase, EditStateRecord

__all__ = ["EditStatus", "status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EditStatus:
    """``patchkit edit --status``."""

    open: bool
    worktree: str = ""
    version: str = ""
    phase: str = ""
    tip: str = ""
    head: str = ""
    uncommitted: tuple[str, ...] = ()
    new_commits: tuple[tuple[str, str], ...] = ()  # (commit, subject)
    modified: tuple[str, ...] = ()  # patches whose commit's change differs
    stopped: str = ""
    conflicts: tuple[str, ...] = ()
    patches: tuple[tuple[str, str, str | None], ...] = ()  # (name, kind, commit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "edit",
            "action": "status",
            "open": self.open,
            "worktree": self.worktree,
            "version": self.version,
            "phase": self.phase,
            "tip": self.tip,
            "head": self.head,
            "uncommitted": list(self.uncommitted),
            "new_commits": [{"commit": c, "subject": s} for c, s in self.new_commits],
            "modified": list(self.modified),
            "stopped": {"patch": self.stopped, "conflicts": list(self.conflicts)}
            if self.stopped
            else None,
            "patches": [{"name": n, "kind": k, "commit": c} for n, k, c in self.patches],
        }


def status(s: EditSession) -> EditStatus:
    """What the worktree holds (after recovering what a killed command left)."""
    with s.ws.lock():
        record = load(s)
    if record is None:
        return EditStatus(open=False)
    if not s.worktree_path.exists():
        return EditStatus(
            open=True, version=record.version, phase=record.phase.value, tip=record.tip
        )
    wt = s.wt
    head = wt.head()
    uncommitted = tuple(uncommitted_paths(wt))
    new_commits, modified = _commits(s, record, head)
    if uncommitted and head != record.base_commit:
        names = messages.trailers(commit_diffs(s.store, [head])[head].message)
        if names and names[0] not in modified:
            modified.append(names[0])
    tip = record.tip
    for e in record.entries:
        if e.commit == head:
            tip = e.name
    save = record.save
    return EditStatus(
        open=True,
        worktree=str(s.worktree_path),
        version=record.version,
        phase=record.phase.value,
        tip=tip,
        head=head,
        uncommitted=uncommitted,
        new_commits=tuple(new_commits),
        modified=tuple(modified),
        stopped=save.stopped_on if save and record.phase is EditPhase.STOPPED else "",
        conflicts=save.conflicts if save and record.phase is EditPhase.STOPPED else (),
        patches=tuple((e.name, e.kind.value, e.commit) for e in record.entries),
    )


def _commits(
    s: EditSession, record: EditStateRecord, head: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """(new commits as (commit, subject), patches whose commit's change differs) of the
    chain up to ``head``; nothing when HEAD is off the release."""
    new_commits: list[tuple[str, str]] = []
    modified: list[str] = []
    if not is_ancestor(s.store, record.base_commit, head):
        return new_commits, modified
    chain = commits_between(s.store, record.base_commit, head)
    by_name = {e.name: e for e in record.entries}
    diffs = commit_diffs(
        s.store, [c for c, _ in chain] + [e.commit for e in record.entries if e.commit]
    )
    for commit, _ in chain:
        names = messages.trailers(diffs[commit].message)
        if not names:
            new_commits.append((commit, messages.split_message(diffs[commit].message)[0]))
            continue
        e = by_name.get(names[0])
        if e is None or e.commit == commit or e.commit is None:
            continue
        if changed_files(diffs[commit].diff, diffs[e.commit].diff):
            modified.append(e.name)
    return new_commits, modified
