"""The edit worktree as git shows it: HEAD put back on the tip, the sparse set widened, the
chain of commits from the release to HEAD, the patch names a commit's trailers give, what is
unsaved, and which git operation of the person's is under way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from patchkit.errors import EditStateError
from patchkit.files import checkpoint
from patchkit.git.commits import (
    commit_diffs,
    commits_between,
    is_ancestor,
    uncommitted_paths,
    widen_sparse,
)
from patchkit.ops.edit import messages
from patchkit.ops.edit.session import EditSession
from patchkit.ops.edit.state import EditPhase, EditStateRecord

__all__ = [
    "Chain",
    "chain",
    "git_busy",
    "git_path",
    "has_orig_head",
    "names_of",
    "settle",
    "unsaved",
    "widen",
]

Chain = list[tuple[str, tuple[str, ...]]]  # (commit, parents), oldest first


def settle(s: EditSession, record: EditStateRecord) -> None:
    """HEAD back on the tip, ORIG_HEAD forgotten (it tells a rebase/reset since)."""
    wt = s.wt
    checkpoint("edit: checkout tip")
    if wt.head() != record.tip_commit:
        wt.git("checkout", "-q", "--detach", record.tip_commit)
    wt.git("update-ref", "-d", "ORIG_HEAD", check=False)
    files = {f for e in record.entries for f in e.files}
    widen_sparse(wt, files)


def widen(s: EditSession, globs: Sequence[str]) -> None:
    """The files matching ``globs`` on HEAD checked out too (uncommitted changes stay)."""
    if not globs:
        return
    with s.store.blob_reader() as reader:
        paths = reader.list_paths(s.wt.head(), list(globs))
    widen_sparse(s.wt, paths)


def chain(s: EditSession, record: EditStateRecord, head: str) -> Chain:
    """The commits from the release to ``head``; refused unless a line of commits on it."""
    if not is_ancestor(s.store, record.base_commit, head):
        raise EditStateError(
            f"the edit worktree's HEAD ({head[:12]}) is not a commit on release "
            f"{record.version}; move it back (git checkout {record.tip_commit[:12]}) or "
            "patchkit edit --discard --force"
        )
    rows = commits_between(s.store, record.base_commit, head)
    for commit, parents in rows:
        if len(parents) != 1:
            raise EditStateError(
                f"commit {commit[:12]} in the edit worktree is a merge; the series is a "
                "line of commits (git rebase it away first)"
            )
    return rows


def names_of(s: EditSession, commit: str) -> list[str]:
    """The patch names ``commit``'s trailers give, in order."""
    return messages.trailers(commit_diffs(s.store, [commit])[commit].message)


def unsaved(s: EditSession, record: EditStateRecord) -> str:
    """What a discard would lose ("" if nothing): uncommitted files, commits not patchkit's."""
    if record.phase is not EditPhase.OPEN:
        return "a save in progress"
    wt = s.wt
    dirty = uncommitted_paths(wt)
    head = wt.head()
    what = []
    if dirty:
        what.append(f"{len(dirty)} uncommitted file{'s' * (len(dirty) != 1)}")
    if head not in {e.commit for e in record.entries} | {record.base_commit}:
        what.append("commits patchkit did not make")
    return " and ".join(what)


def git_path(s: EditSession, name: str) -> Path:
    """``name`` in the worktree's git directory (``rev-parse --git-path``)."""
    path = Path(s.wt.git("rev-parse", "--git-path", name).stdout.decode().strip())
    return path if path.is_absolute() else s.worktree_path / path


_BUSY: tuple[tuple[str, str], ...] = (
    ("rebase-merge", "a git rebase"),
    ("rebase-apply", "a git rebase or am"),
    ("CHERRY_PICK_HEAD", "a git cherry-pick"),
    ("MERGE_HEAD", "a git merge"),
    ("REVERT_HEAD", "a git revert"),
)


def git_busy(s: EditSession) -> str:
    """What git operation of the person's is under way in the worktree ("" if none)."""
    args = [a for name, _ in _BUSY for a in ("--git-path", name)]
    out = s.wt.git("rev-parse", *args).stdout.decode().splitlines()
    for line, (_, what) in zip(out, _BUSY, strict=True):
        path = Path(line)
        if (path if path.is_absolute() else s.worktree_path / path).exists():
            return what
    return ""


def has_orig_head(s: EditSession) -> bool:
    """Whether ORIG_HEAD is set: a git rebase or reset since patchkit settled HEAD."""
    return s.wt.git("rev-parse", "--verify", "--quiet", "ORIG_HEAD", check=False).returncode == 0
