"""``patches/series`` following the worktree's commits (pure): reordered, squashed, dropped
and new entries, with every comment, blank line, ``-pN`` and trailing comment kept.

>>> s = parse_series("# top\\na.patch -p0  # A\\n\\nb.patch\\n")
>>> reorder(s, ["b.patch", "a.patch"]).render()
'# top\\nb.patch\\n\\na.patch -p0  # A\\n'
>>> reorder(s, ["a.patch", "new.patch"]).render()
'# top\\na.patch -p0  # A\\nnew.patch\\n\\n'
"""

from __future__ import annotations

from collections.abc import Sequence

from patchkit.core.series import Series, parse_series

__all__ = ["reorder"]


def reorder(series: Series, names: Sequence[str]) -> Series:
    """``series`` with its entries in the order ``names`` gives.

    Entries not named leave it (their lines go; the rest stay as they are). The entries kept
    fill the entry lines in their new order, each line carrying its own options and comment.
    A name the series lacks gets a line ``NAME`` right after the line of the entry before it
    in ``names`` (the first: before the first entry line; an empty series: at the end).
    """
    if tuple(names) == series.names:
        return series
    old = set(series.names)
    kept = series.without([n for n in series.names if n not in set(names)])
    by_name = {e.name: kept.lines[e.line - 1] for e in kept.entries}
    order = [n for n in names if n in old]
    lines: list[str] = list(kept.lines)
    slot_of: dict[str, int] = {}
    for entry, name in zip(kept.entries, order, strict=True):
        lines[entry.line - 1] = by_name[name]
        slot_of[name] = entry.line - 1
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # New entries: after their predecessor's line (its index moves as lines are inserted).
    index: list[str | None] = [None] * len(lines)
    for name, i in slot_of.items():
        index[i] = name
    first_slot = min(slot_of.values()) if slot_of else len(lines)
    previous: str | None = None
    for name in names:
        if name in old:
            previous = name
            continue
        at = index.index(previous) + 1 if previous is not None else first_slot
        lines.insert(at, name + "\n")
        index.insert(at, name)
        if previous is None:
            first_slot += 1
        previous = name
    return parse_series("".join(lines), path=series.path)
