"""The edit worktree of one workspace (``.patchkit/edit/``) behind one object: one method per
command, each a call into the module that does it (see the package docstring).

Each command is one process: it takes the project lock, recovers what a killed command left
(:mod:`.recover`), moves the state on step by step (saved after each) and returns a record.
``patches/`` is only ever changed by one directory swap at the end of a save
(:mod:`patchkit.ops.edit.swap`) or, for ``new``, by two atomic writes (file, then series).
"""

from __future__ import annotations

from collections.abc import Sequence

from patchkit.ops.edit import close, new, opening, replay, save, status
from patchkit.ops.edit.guard import edit_guard, edit_in_progress
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.session import EDIT_REF, EditSession
from patchkit.ops.edit.status import EditStatus
from patchkit.ops.workspace import Workspace

__all__ = [
    "EDIT_REF",
    "EditOutcome",
    "EditStatus",
    "Editor",
    "edit_guard",
    "edit_in_progress",
]


class Editor:
    """The edit worktree of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.session = EditSession.of(ws)

    def open(
        self, patch: str | None = None, *, version: str | None = None, add: Sequence[str] = ()
    ) -> EditOutcome:
        return opening.open_edit(self.session, patch, version=version, add=add)

    def save(self) -> EditOutcome:
        return save.save(self.session)

    def cont(self) -> EditOutcome:
        return replay.continue_save(self.session)

    def abort(self) -> EditOutcome:
        return replay.abort_save(self.session)

    def done(self) -> EditOutcome:
        return close.done(self.session)

    def discard(self, *, force: bool = False) -> EditOutcome:
        return close.discard(self.session, force=force)

    def status(self) -> EditStatus:
        return status.status(self.session)

    def new(
        self, name: str, *, after: str | None = None, message: str | None = None
    ) -> EditOutcome:
        return new.new(self.session, name, after=after, message=message)
