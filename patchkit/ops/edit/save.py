"""``patchkit edit --save``: the person's changes collected (uncommitted files amended into the
commit at HEAD, commits on top of it, a ``git rebase -i``'s reorders, squashes and drops),
checked (no edit's or overlay's commit changed, no patch file changed on both sides), and
the save's progress recorded; then the later patches replayed and ``patches/`` written.
"""

from __future__ import annotations

from collections.abc import Mapping

from patchkit.core.model import ChangeKind
from patchkit.errors import EditStateError
from patchkit.files import checkpoint
from patchkit.git.commits import commit_diffs, uncommitted_paths
from patchkit.ops.edit import messages
from patchkit.ops.edit.compare import changed_files, digest
from patchkit.ops.edit.guard import not_busy
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.recover import require
from patchkit.ops.edit.replay import finish
from patchkit.ops.edit.session import EditSession
from patchkit.ops.edit.state import EditEntry, EditPhase, EditStateRecord, SaveProgress
from patchkit.ops.edit.worktree import chain as chain_of
from patchkit.ops.edit.worktree import git_busy, has_orig_head

__all__ = ["save"]


def save(s: EditSession) -> EditOutcome:
    """Save (or redo an interrupted save): stops with a conflict, or ``patches/`` written."""
    with s.ws.lock():
        record = require(s)
        if record.phase is EditPhase.STOPPED:
            not_busy(record)
        if record.phase is EditPhase.OPEN:
            record = _begin(s, record)
        return finish(s, record)


def _begin(s: EditSession, record: EditStateRecord) -> EditStateRecord:
    """Check the worktree's chain, amend the uncommitted changes into HEAD, and record what
    is to be replayed (phase ``saving``)."""
    wt = s.wt
    busy = git_busy(s)
    if busy:
        raise EditStateError(
            f"{busy} is in progress in {s.worktree_path}; finish or abort it first"
        )
    head = wt.head()
    chain = chain_of(s, record, head)
    dirty = uncommitted_paths(wt)
    originals = {e.name: e for e in record.entries if e.commit}
    diffs = commit_diffs(
        s.store, [c for c, _ in chain] + [e.commit for e in originals.values() if e.commit]
    )
    by_name = {e.name: e for e in record.entries}
    only_other = _only_edit_or_overlay(record)
    seen: dict[str, str] = {}
    for commit, _parents in chain:
        names = messages.trailers(diffs[commit].message)
        for n in names:
            if n not in by_name:
                raise EditStateError(
                    f"commit {commit[:12]}: {messages.TRAILER}: {n} names no patch of this "
                    "series; remove the trailer to make it a new patch"
                )
            if n in seen:
                raise EditStateError(
                    f"commits {seen[n][:12]} and {commit[:12]} both say "
                    f"{messages.TRAILER}: {n}; squash or drop one (git rebase -i)"
                )
            seen[n] = commit
        entry = by_name[names[0]] if names else None
        if entry is not None and entry.commit == commit:
            continue
        old = diffs[entry.commit].diff if entry is not None and entry.commit else b""
        changed = changed_files(diffs[commit].diff, old)
        if entry is not None and not changed:
            continue
        _refuse_other_kinds(entry, changed, only_other)
        if entry is not None and entry.digest != digest(s.ws.patches_dir / entry.name):
            raise EditStateError(
                f"patches/{entry.name} changed on disk since the worktree was made, and its "
                "commit changed too; keep one (patchkit edit --discard --force, or put the "
                "file back) and save again"
            )
    if dirty:
        if head == record.base_commit:
            raise EditStateError(
                f"HEAD is release {record.version} itself: commit your change (git commit) "
                "to make it a new patch"
            )
        names = messages.trailers(diffs[head].message)
        _refuse_other_kinds(by_name[names[0]] if names else None, set(dirty), only_other)
    # Which entries come after HEAD (replayed) and which the person removed (dropped).
    in_chain = set(seen)
    tip_index = record.names.index(record.tip) if record.tip else -1
    moved = [i for i, e in enumerate(record.entries) if e.commit == head]
    if moved and not has_orig_head(s):
        tip_index = moved[-1]  # HEAD moved (git checkout) onto another patch of the chain
    later = [e for e in record.entries[tip_index + 1 :] if e.commit and e.name not in in_chain]
    amended = head
    if dirty:
        checkpoint("edit: amend")
        # Only the paths status named: `add -A .` would walk every index entry.
        wt.git("add", "-A", "--sparse", "--", *[":(literal)" + p for p in dirty])
        wt.git("commit", "-q", "--amend", "--no-verify", "--allow-empty", "--no-edit")
        amended = wt.head()
        checkpoint("edit: amended")
    picks: list[str] = []
    parent = amended
    for i, e in enumerate(later):
        assert e.commit is not None
        if diffs[e.commit].parents[:1] != (parent,):
            picks = [x.commit for x in later[i:] if x.commit]
            break
        parent = e.commit
    progress = SaveProgress(
        before=head, dirty=bool(dirty), amended=amended, picks=tuple(picks), head=parent
    )
    record = record.with_(phase=EditPhase.SAVING, save=progress)
    s.state.save(record)
    return record


def _only_edit_or_overlay(record: EditStateRecord) -> dict[str, list[EditEntry]]:
    """File -> the edits/overlays touching it, for files no diff of the series touches."""
    diff_files = {f for e in record.entries if e.kind is ChangeKind.DIFF for f in e.files}
    out: dict[str, list[EditEntry]] = {}
    for e in record.entries:
        if e.kind is not ChangeKind.DIFF:
            for f in e.files:
                if f not in diff_files:
                    out.setdefault(f, []).append(e)
    return out


def _refuse_other_kinds(
    entry: EditEntry | None, changed: set[str], only_other: Mapping[str, list[EditEntry]]
) -> None:
    """Refuse a change in the worktree that only an edit or overlay makes (their files in
    ``patches/`` are the source, not the worktree)."""
    if entry is not None and entry.kind is not ChangeKind.DIFF:
        shown = sorted(changed)[0] if changed else "a file"
        raise EditStateError(
            f"{shown}: changed in the worktree in the commit of {entry.name}, an {entry.kind}; "
            f"change patches/{entry.name} instead (or patchkit materialize --replace "
            f"{entry.name} first)"
        )
    for path in sorted(changed):
        owners = only_other.get(path)
        if owners:
            owner = owners[-1]
            raise EditStateError(
                f"{path}: only patches/{owner.name} ({owner.kind}) changes this file; change "
                f"patches/{owner.name} instead (or patchkit materialize --replace "
                f"{owner.name} first)"
            )
