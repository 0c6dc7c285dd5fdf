"""What a killed edit command left, finished or undone before any command goes on: a swap of
``patches/`` whose new set is in place is adopted (state moved on, HEAD settled), one that is
not is undone (the save is then redone from its progress), leftover directories removed.
"""

from __future__ import annotations

from patchkit.errors import EditStateError
from patchkit.ops.edit.session import EditSession
from patchkit.ops.edit.state import EditPhase, EditStateRecord
from patchkit.ops.edit.swap import manifest, recover
from patchkit.ops.edit.worktree import settle

__all__ = ["load", "require"]


def load(s: EditSession) -> EditStateRecord | None:
    """The state, after finishing or undoing a swap a kill interrupted."""
    record = s.state.load()
    patches = s.ws.patches_dir
    if record is None:
        if s.temp.exists() or s.old.exists():
            recover(patches, s.temp, s.old, manifest(patches))
        return None
    if s.worktree_path.exists():
        s.wt.drop_stale_locks()
    if record.phase is EditPhase.WRITING and record.swap is not None:
        swap = record.swap
        done = recover(patches, s.temp, s.old, dict(swap.manifest))
        if done:
            record = record.with_(
                entries=swap.entries, tip=swap.tip, phase=EditPhase.OPEN, save=None, swap=None
            )
            s.state.save(record)
            settle(s, record)
        else:
            record = record.with_(phase=EditPhase.SAVING, swap=None)
            s.state.save(record)
    elif s.temp.exists() or s.old.exists():
        recover(patches, s.temp, s.old, manifest(patches))
    return record


def require(s: EditSession) -> EditStateRecord:
    """:func:`load`, refused when no worktree is open or its directory is gone."""
    record = load(s)
    if record is None:
        raise EditStateError("no edit worktree is open (open one with: patchkit edit [PATCH])")
    if not s.worktree_path.exists():
        raise EditStateError(
            f"the edit worktree {s.worktree_path} is gone; run patchkit edit --discard"
        )
    return record
