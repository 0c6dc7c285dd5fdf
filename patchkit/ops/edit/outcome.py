"""What an edit command did: the record ``patchkit edit`` and ``patchkit new`` return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patchkit.core.model import SCHEMA

__all__ = ["EditOutcome"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EditOutcome:
    """What an edit command did."""

    action: str  # open | save | continue | abort | done | discard | new
    worktree: str = ""
    version: str = ""
    tip: str = ""  # the patch HEAD is at
    written: tuple[str, ...] = ()  # files of patches/ rewritten or created
    created: tuple[str, ...] = ()  # new patches
    dropped: tuple[str, ...] = ()  # entries that left the series
    stopped: str = ""  # the patch whose replay conflicts (exit 1)
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "edit",
            "action": self.action,
            "worktree": self.worktree,
            "version": self.version,
            "tip": self.tip,
            "written": list(self.written),
            "created": list(self.created),
            "dropped": list(self.dropped),
            "stopped": self.stopped or None,
            "conflicts": list(self.conflicts),
            "notes": list(self.notes),
        }
