"""What a rebase onto a release would do to every change of the series (``patchkit forecast``).

The records of :func:`patchkit.ops.forecast.forecast`: one :class:`ForecastPatch` per series
entry, with the rebase's statuses (``applied``, ``merged``, ``already-applied``,
``conflict``, ``skipped``), and for a change the rebase would stop on, what it would stop on.
"Left out after a conflict": a change that conflicts (or that does not apply to the base, so
that the rebase would refuse to start) is recorded and left out, as ``rebase --skip`` would
leave it out; the changes after it are replayed without it (docs/rebase.md, "Forecast").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patchkit.core.conflicts import ConflictRegion
from patchkit.core.model import (
    SCHEMA,
    ChangeKind,
    ChangeLine,
    EditResult,
    OverlayEntry,
    PatchStatus,
    _summary,
    kind_detail,
)

__all__ = ["ConflictFile", "ForecastPatch", "ForecastResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictFile:
    """One file a change would conflict in, and its conflict regions (capped)."""

    file: str
    hunks: tuple[ConflictRegion, ...] = ()
    reason: str = ""  # a conflict with no text regions: the file was deleted, is binary, ...
    more: int = 0  # regions beyond the cap, not listed

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "hunks": [h.to_dict() for h in self.hunks]}
        if self.reason:
            d["reason"] = self.reason
        if self.more:
            d["more"] = self.more
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastPatch:
    """One change of the series, as a rebase onto the release would meet it."""

    name: str
    kind: ChangeKind = ChangeKind.DIFF
    status: PatchStatus
    files: tuple[str, ...] = ()
    conflicts: tuple[ConflictFile, ...] = ()
    risks: tuple[str, ...] = ()  # why a clean result still deserves a look (merged, re-evaluated)
    changes: tuple[ChangeLine, ...] = ()  # range-diff: +/- lines that differ from the old change
    message: str = ""
    edits: tuple[EditResult, ...] = ()  # kind edit: each [[edit]] on each file
    entries: tuple[OverlayEntry, ...] = ()  # kind overlay: each file, its upstream-changed flag
    # The rebase would stop on it (or refuse to start): the ones after it are replayed without it.
    left_out: bool = False
    refused: bool = False  # it does not apply to the base: the rebase would not even start
    after_left_out: tuple[str, ...] = ()  # earlier left-out changes that touch a file of this one

    @property
    def needs_attention(self) -> bool:
        return self.left_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "files": list(self.files),
            "conflicts": [c.to_dict() for c in self.conflicts],
            "risks": list(self.risks),
            "changes": [c.to_dict() for c in self.changes],
            "message": self.message,
            "left_out": self.left_out,
            "refused": self.refused,
            "after_left_out": list(self.after_left_out),
            **kind_detail(self.kind, self.edits, self.entries),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastResult:
    """A rebase of the series from ``base`` onto ``onto``, forecast: nothing was changed."""

    base: str
    onto: str
    patches: tuple[ForecastPatch, ...]
    starts: bool = True  # False: the series does not apply to its base; a rebase would refuse
    notes: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """A ``rebase --onto`` would start and go through without stopping."""
        return self.starts and not any(p.left_out for p in self.patches)

    @property
    def needs_attention(self) -> bool:
        return not self.clean

    @property
    def summary(self) -> dict[str, int]:
        return _summary([p.status for p in self.patches])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "forecast",
            "base": self.base,
            "onto": self.onto,
            "clean": self.clean,
            "starts": self.starts,
            "patches": [p.to_dict() for p in self.patches],
            "summary": self.summary,
            "notes": list(self.notes),
        }
