"""``patches/series`` (quilt format), parsed and rendered (pure: no I/O).

:func:`parse_series` returns a :class:`Series` that remembers its original lines, so
``series.render()`` gives the text back byte for byte and ``series.without(...)`` drops
entries without touching comments. The patch files themselves live in :mod:`patchkit.core.patchfile`.

>>> s = parse_series("a.patch\\n# off for now\\nb.patch -p0  # trailing\\n")
>>> s.names, [e.strip for e in s.entries]
(('a.patch', 'b.patch'), [1, 0])
>>> s.without(["a.patch"]).render()
'# off for now\\nb.patch -p0  # trailing\\n'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from patchkit.core.lines import split_lines
from patchkit.core.patchfile import check_relative_path
from patchkit.errors import SeriesError

__all__ = ["Series", "SeriesEntry", "parse_series"]


# --------------------------------------------------------------------------- series


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesEntry:
    """One patch of the series: its file name (relative to ``patches/``), ``-pN`` and 1-based line."""

    name: str
    strip: int = 1
    line: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """An ordered quilt series that remembers its text, so rewriting it changes only what must change."""

    entries: tuple[SeriesEntry, ...]
    lines: tuple[str, ...] = ()  # the original lines, endings included
    path: str = "patches/series"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def entry(self, name: str) -> SeriesEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def render(self) -> str:
        """The series text: the parsed text byte for byte, minus lines dropped by :meth:`without`."""
        return "".join(self.lines)

    def without(self, names: Iterable[str]) -> Series:
        """A series with the entries named removed; comments, blank lines and options elsewhere stay as they are.

        Names that are not in the series are ignored (dropping twice is harmless).
        """
        drop = set(names)
        drop_lines = {e.line for e in self.entries if e.name in drop}
        kept_lines = tuple(t for i, t in enumerate(self.lines, 1) if i not in drop_lines)
        # Line numbers of the kept entries move up; recompute them so they stay true.
        renumber: dict[int, int] = {}
        new_no = 0
        for i in range(1, len(self.lines) + 1):
            if i not in drop_lines:
                new_no += 1
                renumber[i] = new_no
        entries = tuple(
            SeriesEntry(name=e.name, strip=e.strip, line=renumber[e.line])
            for e in self.entries
            if e.name not in drop
        )
        return Series(entries=entries, lines=kept_lines, path=self.path)

    def with_entry_replaced(self, old: str, new: str, *, strip: int = 1) -> Series:
        """A series where entry ``old`` is entry ``new`` (same place; its comment kept; a
        ``-pN`` option written only when ``strip`` is not the default 1)."""
        entry = self.entry(old)
        raw = self.lines[entry.line - 1]
        body, hash_, comment = raw.rstrip("\n").partition("#")
        ending = raw[len(raw.rstrip("\n")) :] or "\n"
        indent = body[: len(body) - len(body.lstrip())]
        text = indent + new + (f" -p{strip}" if strip != 1 else "")
        if hash_:
            text += "  #" + comment
        lines = list(self.lines)
        lines[entry.line - 1] = text + ending
        return parse_series("".join(lines), path=self.path)


_STRIP_OPTION = re.compile(r"-p(\d+)")


def _strip_comment(line: str) -> str:
    """Drop a ``#`` comment: a whole-line one, or one that follows whitespace (``a#b.patch`` is a name)."""
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def parse_series(text: str, *, path: str = "patches/series") -> Series:
    """Parse a quilt ``series`` file: one patch a line, optional ``-pN`` (default 1), ``#`` comments.

    Unknown options (``-R``, ``-x``, ...), duplicate names and names that are
    absolute or climb out with ``..`` raise :class:`SeriesError` naming ``path:line``.
    """
    lines = split_lines(text)
    entries: list[SeriesEntry] = []
    seen: dict[str, int] = {}
    for no, raw in enumerate(lines, 1):
        tokens = _strip_comment(raw).split()
        if not tokens:
            continue
        name, options = tokens[0], tokens[1:]
        where = f"{path}:{no}"
        if name.startswith("-"):
            raise SeriesError(
                f"{where}: expected a patch file name before the options, got {name!r}"
            )
        problem = check_relative_path(name)
        if problem:
            raise SeriesError(f"{where}: {problem} {name!r}: name patches relative to patches/")
        strip = 1
        for opt in options:
            m = _STRIP_OPTION.fullmatch(opt)
            if m is None:
                raise SeriesError(
                    f"{where}: unknown option {opt!r} for {name} (only -pN is supported)"
                )
            strip = int(m.group(1))
        if name in seen:
            raise SeriesError(
                f"{where}: duplicate patch {name!r} (first listed at line {seen[name]})"
            )
        seen[name] = no
        entries.append(SeriesEntry(name=name, strip=strip, line=no))
    return Series(entries=tuple(entries), lines=tuple(lines), path=path)
