"""A line-level 3-way merge that treats adjacent edits as independent (pure: no I/O).

git's merge (xdiff) reports a conflict when the two sides change *adjacent* lines, e.g.
upstream wraps a line in ``#ifndef``/``#endif`` while the patch edits that line. This merge
is finer, with one precise rule:

* Each side is diffed against the base into *chunks*: a base range ``[start, end)`` and the
  lines that replace it (``start == end``: a pure insertion at that point).
* Two chunks from different sides **conflict** when their base ranges share a base line,
  when both insert at the same point (unless they insert the same lines), or when one
  inserts strictly inside the range the other replaces. Identical chunks merge as one.
* Chunks that only *touch* (one ends where the other starts) are **adjacent**: both are
  applied, the one that starts first (an insertion before a replacement at the same point)
  first. This is the one thing git does not do, and it is accepted only when (1) the
  upstream chunk is a pure insertion and the patch chunk replaces or deletes lines (upstream
  wrapped or annotated lines the patch edits). Two replacements of neighbouring lines (a line
  and its continuation) are too often one edit, and a patch *insertion* next to an upstream
  change has no line of its own to anchor its order: both stay conflicts. And (2) the patch
  chunk is *unambiguous*: the base lines it replaces occur exactly once in the upstream
  file. Otherwise the pair is left as a conflict.
* No line is ever placed by fuzzy context search: positions come from the two diffs only.

:func:`merge3` returns the merged lines, with zdiff3-style markers around the chunks that
still conflict, and says how many conflicts are left and how many adjacent pairs it
resolved, so that the caller can flag such a merge for review.
"""

from __future__ import annotations

import difflib
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Merge3Result", "count_runs", "merge3"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Merge3Result:
    lines: tuple[str, ...]
    conflicts: int  # regions left with markers
    adjacent: int  # adjacent-but-independent pairs resolved (0: git would have merged it too)
    regions: tuple[int, ...] = ()  # 1-based lines of the output where each conflict starts


@dataclass(frozen=True, slots=True)
class _Chunk:
    start: int
    end: int
    lines: tuple[str, ...]
    side: int  # 0: ours, 1: theirs


_SMALL = 40_000  # below this many line pairs SequenceMatcher is fast enough as it is


def _opcodes(
    a: Sequence[str], b: Sequence[str], ao: int = 0, bo: int = 0
) -> list[tuple[int, int, int, int]]:
    """Non-equal regions of a line diff of ``a`` -> ``b`` as (a1, a2, b1, b2), offset by ao/bo.

    Lines that occur exactly once on each side and keep their order (patience anchors)
    split a large diff into small ones; SequenceMatcher (quadratic in the worst case) only
    sees the gaps between anchors.
    """
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    a, b, ao, bo = a[head : len(a) - tail], b[head : len(b) - tail], ao + head, bo + head
    if not a and not b:
        return []
    if not a or not b or len(a) * len(b) <= _SMALL:
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        return [
            (ao + i1, ao + i2, bo + j1, bo + j2)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            if tag != "equal"
        ]
    anchors = _patience_anchors(a, b)
    if not anchors:
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        return [
            (ao + i1, ao + i2, bo + j1, bo + j2)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            if tag != "equal"
        ]
    out: list[tuple[int, int, int, int]] = []
    pi = pj = 0
    for i, j in [*anchors, (len(a), len(b))]:
        if i > pi or j > pj:  # between two neighbouring anchors there is nothing to diff
            out.extend(_opcodes(a[pi:i], b[pj:j], ao + pi, bo + pj))
        pi, pj = i + 1, j + 1
    return out


def _patience_anchors(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """(i, j) of lines unique in both ``a`` and ``b``, longest run in increasing order."""
    count_a = Counter(a)
    count_b = Counter(b)
    where_b = {line: j for j, line in enumerate(b)}
    pairs = [
        (i, where_b[line]) for i, line in enumerate(a) if count_a[line] == 1 and count_b[line] == 1
    ]
    # Longest increasing subsequence of the b positions (patience sorting).
    tops: list[int] = []  # index into pairs of the smallest tail of each pile
    tails: list[int] = []  # the b position of each pile's top (increasing: bisect finds the pile)
    back: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        lo = bisect_left(tails, j)
        back[k] = tops[lo - 1] if lo else -1
        if lo == len(tops):
            tops.append(k)
            tails.append(j)
        else:
            tops[lo] = k
            tails[lo] = j
    run: list[tuple[int, int]] = []
    k = tops[-1] if tops else -1
    while k >= 0:
        run.append(pairs[k])
        k = back[k]
    return run[::-1]


def _chunks(base: Sequence[str], other: Sequence[str], side: int) -> list[_Chunk]:
    return [_Chunk(a1, a2, tuple(other[b1:b2]), side) for a1, a2, b1, b2 in _opcodes(base, other)]


def _clash(a: _Chunk, b: _Chunk) -> bool:
    if a.start == b.start and a.end == b.end and a.lines == b.lines:
        return False  # the same change on both sides
    if max(a.start, b.start) < min(a.end, b.end):
        return True  # they change a common base line
    a_ins, b_ins = a.start == a.end, b.start == b.end
    if a_ins and b_ins:
        return a.start == b.start
    if a_ins:
        return b.start < a.start < b.end
    if b_ins:
        return a.start < b.start < a.end
    return False


def count_runs(haystack: Sequence[str], needle: Sequence[str]) -> int:
    """How many times ``needle`` occurs in ``haystack`` as a run of whole lines."""
    n, m = len(haystack), len(needle)
    if m == 0:
        return 0
    first = needle[0]
    return sum(
        1
        for i in range(n - m + 1)
        if haystack[i] == first and list(haystack[i : i + m]) == list(needle)
    )


def _unambiguous(chunk: _Chunk, base: Sequence[str], other: Sequence[str]) -> bool:
    """Whether the base lines that locate ``chunk`` occur exactly once in ``other``."""
    if chunk.end > chunk.start:
        anchor = list(base[chunk.start : chunk.end])
        if not any(line.strip() for line in anchor):
            anchor = list(base[max(chunk.start - 1, 0) : chunk.end + 1])
    else:
        anchor = list(base[max(chunk.start - 1, 0) : chunk.start + 1])
    return bool(anchor) and count_runs(other, anchor) == 1


def merge3(
    base: Sequence[str],
    ours: Sequence[str],
    theirs: Sequence[str],
    *,
    labels: tuple[str, str, str] = ("ours", "base", "theirs"),
) -> Merge3Result:
    """Merge ``theirs`` (the patch side) into ``ours`` (the new upstream side) over ``base``.

    Lines keep their newlines. See the module docstring for the rules.

    >>> base = ["a\\n", "x = 1\\n", "b\\n"]
    >>> ours = ["a\\n", "#ifndef X\\n", "x = 1\\n", "#endif\\n", "b\\n"]
    >>> theirs = ["a\\n", "x = 2\\n", "b\\n"]
    >>> r = merge3(base, ours, theirs)
    >>> "".join(r.lines), r.conflicts, r.adjacent
    ('a\\n#ifndef X\\nx = 2\\n#endif\\nb\\n', 0, 2)
    """
    mine = _chunks(base, ours, 0)
    same = {(c.start, c.end, c.lines) for c in mine}
    # A change both sides made identically is made once.
    chunks = sorted(
        mine + [c for c in _chunks(base, theirs, 1) if (c.start, c.end, c.lines) not in same],
        key=lambda c: (c.start, c.end > c.start, c.end, c.side),
    )
    groups: list[list[_Chunk]] = []
    for c in chunks:
        if groups and any(_clash(c, g) for g in groups[-1]):
            groups[-1].append(c)
        else:
            groups.append([c])
    clash = [len({c.side for c in g}) == 2 for g in groups]
    adjacent = 0
    for k in range(len(groups) - 1):
        if clash[k] or clash[k + 1]:
            continue
        a, b = groups[k][0], groups[k + 1][0]
        if a.side == b.side or not (a.end == b.start or a.start == b.start):
            continue
        patch_chunk, upstream_chunk = (a, b) if a.side == 1 else (b, a)
        shape_ok = (
            upstream_chunk.start == upstream_chunk.end and patch_chunk.end > patch_chunk.start
        )
        if shape_ok and _unambiguous(patch_chunk, base, ours):
            adjacent += 1
        else:
            clash[k] = clash[k + 1] = True
    # Merge runs of touching conflict groups into one region.
    regions_in: list[tuple[list[_Chunk], bool]] = []
    for g, cl in zip(groups, clash, strict=True):
        if (
            cl
            and regions_in
            and regions_in[-1][1]
            and min(c.start for c in g) <= max(c.end for c in regions_in[-1][0])
        ):
            regions_in[-1][0].extend(g)
        else:
            regions_in.append((list(g), cl))
    out: list[str] = []
    regions: list[int] = []
    pos = 0
    for group, cl in regions_in:
        start = min(c.start for c in group)
        end = max(c.end for c in group)
        out.extend(base[pos:start])
        if not cl:
            out.extend(group[0].lines)
        else:
            regions.append(len(out) + 1)
            out.append(f"<<<<<<< {labels[0]}\n")
            out.extend(_side(base, group, 0, start, end))
            out.append(f"||||||| {labels[1]}\n")
            out.extend(_terminated(base[start:end]))
            out.append("=======\n")
            out.extend(_side(base, group, 1, start, end))
            out.append(f">>>>>>> {labels[2]}\n")
        pos = max(pos, end)
    out.extend(base[pos:])
    return Merge3Result(
        lines=tuple(out), conflicts=len(regions), adjacent=adjacent, regions=tuple(regions)
    )


def _terminated(lines: Sequence[str]) -> list[str]:
    out = list(lines)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"  # a marker must start its own line
    return out


def _side(base: Sequence[str], group: list[_Chunk], side: int, start: int, end: int) -> list[str]:
    """One side's text over base[start:end]: base lines with that side's chunks applied."""
    out: list[str] = []
    pos = start
    for c in sorted((c for c in group if c.side == side), key=lambda c: (c.start, c.end)):
        out.extend(base[pos : c.start])
        out.extend(c.lines)
        pos = max(pos, c.end)
    out.extend(base[pos:end])
    return _terminated(out)
