"""Kinds of change: one module per kind behind :class:`~patchkit.kinds.base.Change`.

Adding a kind: a module here implementing the protocol, and its series-line form in
:func:`kind_of` and :func:`load_change`. Nothing in ``ops/`` changes.
"""

from __future__ import annotations

from patchkit.kinds.base import Change, ChangeKind, ChangeOutcome, PathLister
from patchkit.kinds.diff import DiffChange, load_diff

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from patchkit.kinds.edit import EditChange
    from patchkit.kinds.overlay import OverlayChange, OverlayFile, load_overlay

__all__ = [
    "Change",
    "ChangeKind",
    "ChangeOutcome",
    "DiffChange",
    "EditChange",
    "OverlayChange",
    "OverlayFile",
    "PathLister",
    "kind_of",
    "load_change",
    "load_overlay",
]


def __getattr__(name: str) -> Any:
    # Edits and overlays are loaded when a series has one: a series of diffs (a matrix of
    # them) does not pay for their parsers.
    if name == "EditChange":
        from patchkit.kinds.edit import EditChange

        return EditChange
    if name in ("OverlayChange", "OverlayFile", "load_overlay"):
        from patchkit.kinds import overlay

        return getattr(overlay, name)
    raise AttributeError(f"module 'patchkit.kinds' has no attribute {name!r}")


def kind_of(name: str) -> ChangeKind:
    """The kind a series line names, by its form (DESIGN.md, "Kinds of change")."""
    if name.endswith("/"):
        return ChangeKind.OVERLAY
    if name.endswith(".edit.toml"):
        return ChangeKind.EDIT
    return ChangeKind.DIFF


def load_change(data: bytes, *, name: str, strip: int = 1) -> Change:
    """Parse one series entry's file into its kind's :class:`Change`."""
    kind = kind_of(name)
    if kind is ChangeKind.DIFF:
        return load_diff(data, name=name, strip=strip)
    if kind is ChangeKind.EDIT:
        from patchkit.kinds.edit import load_edit

        return load_edit(data, name=name)
    from patchkit.errors import SeriesError

    # An overlay is a directory: its reader (Project.changes) calls load_overlay with its files.
    raise SeriesError(f"patches/{name}: an overlay is a directory; load it with load_overlay")
