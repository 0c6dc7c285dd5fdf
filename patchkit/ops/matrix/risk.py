"""Risk flags of a cell that applied only with fuzz or a large offset (docs/matrix.md).

Such a cell is compared with what the 3-way line merge (:func:`patchkit.core.merge.merge3`,
the rebase's own) makes of the same change, the base release as the common ancestor. Pure:
the base release's files come in a :class:`BaseFiles` the caller read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from patchkit.core.lines import lines_of
from patchkit.core.merge import merge3
from patchkit.core.model import LARGE_OFFSET, PatchResult, PatchStatus

__all__ = ["BaseFiles", "merge3_bytes", "risk_flags"]


@dataclass(slots=True)
class BaseFiles:
    """Per change (by series index), its files on the base release before and after it."""

    before: dict[int, dict[str, bytes | None]] = field(default_factory=dict)
    after: dict[int, dict[str, bytes | None] | None] = field(
        default_factory=dict
    )  # None: it does not apply on base


def merge3_bytes(ours: bytes, base: bytes, theirs: bytes) -> tuple[bool, bytes]:
    """(clean, result) of taking base -> theirs into ours, in process: a matrix may ask this
    for hundreds of cells. Lines split on "\\n" only (a "\\r" or "\\f" is inside a line)."""
    result = merge3(lines_of(base), lines_of(ours), lines_of(theirs))
    return result.conflicts == 0, "".join(result.lines).encode("utf-8", "surrogateescape")


def risk_flags(
    result: PatchResult,
    index: int,
    current: Mapping[str, bytes | None],
    contents: Mapping[str, bytes | None],
    base: BaseFiles | None,
) -> tuple[str, ...]:
    """Flags of an applied cell: large-offset, and how 3-way merging sees fuzz/large offsets.

    ``current``: the change's files before it on this release; ``contents``: after it.
    """
    large = any(abs(h.offset) >= LARGE_OFFSET for h in result.hunks)
    flags = ["large-offset"] if large else []
    if result.status is not PatchStatus.FUZZ and not large:
        return ()
    after = None if base is None else base.after[index]
    if base is None or after is None:
        return (*flags, "no-3way")
    verdict = "3way-ok"
    for path in result.files:
        b, o, t = base.before[index].get(path), after.get(path), current.get(path)
        if b is None or o is None or t is None:
            continue  # created or deleted files have no fuzz to check
        clean, merged = merge3_bytes(t, b, o)
        if not clean:
            verdict = "3way-conflict"
            break
        if merged != contents.get(path):
            verdict = "3way-differs"
    return (*flags, verdict)
