"""The conflict regions a 3-way merge left in a file, as the text of each side (pure).

Reads the markers of git's ``merge``, ``diff3`` and ``zdiff3`` conflict styles and of
:func:`~patchkit.core.merge.merge3`::

    <<<<<<< ours-label
    ours
    ||||||| base-label        (diff3 and zdiff3 only)
    base
    =======
    theirs
    >>>>>>> theirs-label

A region that is not closed (a file that merely contains a marker-like line) is not a region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from patchkit.core.lines import split_lines

__all__ = ["ConflictRegion", "conflict_regions"]

_OPEN = re.compile(r"<{7}(?: |\n|$)")
_BASE = re.compile(r"\|{7}(?: |\n|$)")
_SPLIT = re.compile(r"={7}\n?$")
_CLOSE = re.compile(r">{7}(?: |\n|$)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictRegion:
    """One conflict region: where it starts and the text each side has there."""

    line: int  # 1-based line of its opening marker in the file
    ours: str
    base: str | None  # None: the markers had no base section (git's "merge" style)
    theirs: str
    truncated: bool = False  # a side was cut to the cap (:meth:`capped`)

    def capped(self, *, max_lines: int, max_chars: int) -> ConflictRegion:
        """The region with each side cut to ``max_lines`` lines and ``max_chars`` characters."""
        cut = False

        def cap(text: str) -> str:
            nonlocal cut
            lines = split_lines(text)
            out = "".join(lines[:max_lines])
            if len(out) > max_chars:
                out = out[:max_chars]
            if out != text:
                cut = True
            return out

        ours, theirs = cap(self.ours), cap(self.theirs)
        base = None if self.base is None else cap(self.base)
        return replace(self, ours=ours, base=base, theirs=theirs, truncated=self.truncated or cut)

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "ours": self.ours,
            "base": self.base,
            "theirs": self.theirs,
            "truncated": self.truncated,
        }


def conflict_regions(text: str) -> list[ConflictRegion]:
    """Every closed conflict region of ``text``, in order."""
    lines = split_lines(text)
    regions: list[ConflictRegion] = []
    i = 0
    while i < len(lines):
        if not _OPEN.match(lines[i]):
            i += 1
            continue
        region = _region(lines, i)
        if region is None:
            i += 1
            continue
        found, i = region
        regions.append(found)
    return regions


def _region(lines: list[str], start: int) -> tuple[ConflictRegion, int] | None:
    """The region opened at ``lines[start]`` and the index after it, or None if not closed."""
    sides: list[list[str]] = [[]]
    base: list[str] | None = None
    section = "ours"
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if section == "ours" and _BASE.match(line):
            section, base = "base", []
            continue
        if section in ("ours", "base") and _SPLIT.match(line):
            section = "theirs"
            sides.append([])
            continue
        if section == "theirs" and _CLOSE.match(line):
            return (
                ConflictRegion(
                    line=start + 1,
                    ours="".join(sides[0]),
                    base=None if base is None else "".join(base),
                    theirs="".join(sides[1]),
                ),
                j + 1,
            )
        if section == "theirs" and _OPEN.match(line):
            return None  # a new region opens before this one closed
        (base if section == "base" and base is not None else sides[-1]).append(line)
    return None
