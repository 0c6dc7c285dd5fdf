"""Closing the edit worktree: ``--done`` (save, then remove it and its state) and
``--discard`` (remove them without saving; unsaved work needs ``force``).
"""

from __future__ import annotations

import dataclasses
import shutil

from patchkit.errors import EditStateError
from patchkit.files import checkpoint
from patchkit.git.worktree import clear_worktree
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.recover import load
from patchkit.ops.edit.save import save
from patchkit.ops.edit.session import EDIT_REF, EditSession
from patchkit.ops.edit.worktree import unsaved

__all__ = ["discard", "done"]


def done(s: EditSession) -> EditOutcome:
    """Save, then remove the worktree and the state (a stopped save stays open)."""
    result = save(s)
    if result.stopped:
        return result
    with s.ws.lock():
        _remove(s)
    return dataclasses.replace(result, action="done", worktree="")


def discard(s: EditSession, *, force: bool = False) -> EditOutcome:
    """Remove the worktree and the state without saving."""
    with s.ws.lock():
        try:
            record = load(s)
        except EditStateError:
            if not force:
                raise
            record = None
        if record is None and not s.dir.exists():
            raise EditStateError("no edit worktree is open (nothing to discard)")
        if not force and record is not None and s.worktree_path.exists():
            lost = unsaved(s, record)
            if lost:
                raise EditStateError(
                    f"the edit worktree has {lost}; save them (patchkit edit --save) or "
                    "drop them with patchkit edit --discard --force"
                )
        _remove(s)
        return EditOutcome(action="discard", version=record.version if record else "")


def _remove(s: EditSession) -> None:
    checkpoint("edit: remove worktree")
    clear_worktree(s.store, s.worktree_path)
    s.store.git("update-ref", "-d", EDIT_REF, check=False)
    checkpoint("edit: remove state")
    s.state.remove()
    shutil.rmtree(s.dir, ignore_errors=True)
