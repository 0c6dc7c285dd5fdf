"""Where one workspace's edit worktree lives: its state file, the worktree, the sibling
directories a save swaps ``patches/`` through, and the ref that keeps the chain reachable.

Every edit module takes an :class:`EditSession` (the workspace and these places) as its first
argument, so the commands are plain functions over typed values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from patchkit.git.store import Store
from patchkit.git.worktree import Worktree
from patchkit.ops.edit.state import EditStateFile
from patchkit.ops.workspace import Workspace

__all__ = ["EDIT_REF", "EditSession"]

EDIT_REF = "refs/patchkit/edit/last"  # keeps the whole chain reachable (gc)


@dataclass(frozen=True, slots=True, kw_only=True)
class EditSession:
    """The edit worktree of one workspace: the workspace and the paths of its edit state."""

    ws: Workspace
    dir: Path  # .patchkit/edit
    state: EditStateFile
    worktree_path: Path
    temp: Path  # the new patches/ is built here, then exchanged (swap.py)
    old: Path  # where the two-renames fallback moves the old set

    @classmethod
    def of(cls, ws: Workspace) -> EditSession:
        edit_dir = ws.state_dir / "edit"
        parent = ws.patches_dir.parent
        return cls(
            ws=ws,
            dir=edit_dir,
            state=EditStateFile(edit_dir / "state.json"),
            worktree_path=edit_dir / "worktree",
            temp=parent / f".{ws.patches_dir.name}.patchkit-new",
            old=parent / f".{ws.patches_dir.name}.patchkit-old",
        )

    @property
    def store(self) -> Store:
        return self.ws.store

    @property
    def wt(self) -> Worktree:
        return Worktree(self.store, self.worktree_path)
