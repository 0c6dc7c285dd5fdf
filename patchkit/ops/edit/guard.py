"""Refusals by phase: other commands while the edit worktree is open, ``edit`` while a rebase
is in progress, and an edit command while a save is stopped or interrupted.

Imports nothing of the edit but its state, so that the rebase can import :func:`edit_guard`.
"""

from __future__ import annotations

import json
from pathlib import Path

from patchkit.errors import EditStateError
from patchkit.ops.edit.state import EditPhase, EditStateRecord

__all__ = ["edit_guard", "edit_in_progress", "not_busy", "rebase_guard"]


def edit_in_progress(state_dir: Path) -> bool:
    """Whether an edit worktree is open in the project whose state lives in ``state_dir``."""
    return (state_dir / "edit" / "state.json").exists()


def edit_guard(state_dir: Path, command: str) -> None:
    """Refuse ``command`` (rebase, import, refresh) while the edit worktree is open."""
    if edit_in_progress(state_dir):
        raise EditStateError(
            f"an edit worktree is open ({state_dir / 'edit' / 'worktree'}); finish it with "
            f"patchkit edit --done (or --discard) before patchkit {command}"
        )


def rebase_guard(state_dir: Path) -> None:
    """Refuse to open while a rebase is in progress. Read here, not through ops.rebase, so
    that the rebase can import :func:`edit_guard` without an import cycle."""
    path = state_dir / "rebase" / "state.json"
    if not path.exists():
        return
    try:
        onto = str(json.loads(path.read_bytes()).get("onto", "?"))
    except (OSError, ValueError, AttributeError):
        onto = "?"
    raise EditStateError(
        f"a rebase onto {onto} is in progress; finish it with "
        "patchkit rebase --continue, --skip or --abort"
    )


def not_busy(record: EditStateRecord) -> None:
    """Refuse while a save is stopped on a conflict or was interrupted."""
    if record.phase is EditPhase.STOPPED and record.save is not None:
        raise EditStateError(
            f"the save is stopped on {record.save.stopped_on} (conflict in "
            f"{', '.join(record.save.conflicts) or 'the worktree'}); resolve it, git add, "
            "then patchkit edit --continue, or patchkit edit --abort"
        )
    if record.phase is not EditPhase.OPEN:
        raise EditStateError(
            "a save was interrupted; run patchkit edit --save again, or patchkit edit --abort"
        )
