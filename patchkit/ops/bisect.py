"""`patchkit bisect PATCH`: the first tracked release where a patch stops applying.

Every imported release is checked in memory (the series applied cumulatively, as `check`
does), in version order. Unlike `git bisect`, no release is skipped: checks are cheap and a
patch can stop applying and start again (upstream reverts), so the answer never rests on a
monotonicity guess.

* applies: the group ``MADE`` (``applied``, ``offset``, ``fuzz``; fuzz is reported, and flagged);
* stops applying: the group ``NOT_MADE`` (``conflict``, ``missing-target``, and
  ``already-applied``: upstream took it, so the patch is no longer needed);
* ``skipped`` releases (outside the patch's ``Upstream-Versions``) are neither.

``first_bad`` is the first release at or after base that stops applying, ``last_good`` the
nearest release before it where the patch applied (None if none did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchkit.core.model import MADE, NOT_MADE, SCHEMA, PatchStatus
from patchkit.errors import UsageError
from patchkit.ops.check import check_tree

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["BisectResult", "BisectStep", "bisect_patch"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BisectStep:
    version: str
    status: PatchStatus
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "status": self.status.value}
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class BisectResult:
    patch: str
    base: str
    first_bad: str | None
    last_good: str | None
    steps: tuple[BisectStep, ...] = ()
    not_imported: tuple[str, ...] = ()  # tracked releases that were not checked

    @property
    def needs_attention(self) -> bool:
        return self.first_bad is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "bisect",
            "patch": self.patch,
            "base": self.base,
            "first_bad": self.first_bad,
            "last_good": self.last_good,
            "results": [s.to_dict() for s in self.steps],
            "not_imported": list(self.not_imported),
        }


def bisect_patch(ws: Workspace, name: str) -> BisectResult:
    """Find where ``name`` (a change of the series) stops applying among imported releases."""
    changes = ws.changes()
    names = [c.name for c in changes]
    if name not in names:
        raise UsageError(
            f"'{name}' is not in patches/series (patches: {', '.join(names) or 'none'})"
        )
    vf = ws.versions
    imported = ws.imported()
    ordered = [r.version for r in vf.ordered()]
    labels = [v for v in ordered if v in imported]
    steps: list[BisectStep] = []
    with ws.store.blob_reader() as reader:
        for label in labels:
            tree = ws.release_tree(label)
            check = check_tree(reader, version=label, tree=tree, patches=changes)
            result = next(p for p in check.patches if p.name == name)
            steps.append(BisectStep(version=label, status=result.status, message=result.message))
    first_bad = last_good = None
    start = labels.index(vf.base) if vf.base in labels else 0
    for i, step in enumerate(steps):
        if i >= start and step.status in NOT_MADE:
            first_bad = step.version
            last_good = next((s.version for s in reversed(steps[:i]) if s.status in MADE), None)
            break
    return BisectResult(
        patch=name,
        base=vf.base,
        first_bad=first_bad,
        last_good=last_good,
        steps=tuple(steps),
        not_imported=tuple(v for v in ordered if v not in imported),
    )


def bisect_text(result: BisectResult) -> str:
    """One-paragraph human summary (the table is in :mod:`patchkit.output.report`-free plain text)."""
    lines = [
        f"{s.version:<20} {s.status.value}" + (f"  ({s.message})" if s.message else "")
        for s in result.steps
    ]
    if result.first_bad is None:
        lines.append(f"{result.patch} applies to every imported release from {result.base} on")
    else:
        after = f" (last applied: {result.last_good})" if result.last_good else ""
        lines.append(f"{result.patch} stops applying at {result.first_bad}{after}")
    if result.not_imported:
        lines.append("not checked (not imported): " + ", ".join(result.not_imported))
    return "\n".join(lines)
