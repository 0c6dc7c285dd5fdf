"""Line splitting: the one rule every diff, merge and edit uses (on "\n" only)."""

from __future__ import annotations

import functools

__all__ = ["lines_of", "split_lines"]

# What str.splitlines splits on besides "\n": text without them splits the same with either.
# (A character wider than the text's own is not searched: ASCII text pays for the first six.)
_OTHER_BREAKS = "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def split_lines(text: str) -> list[str]:
    """Split on ``"\\n"`` only, keeping the endings (``str.splitlines`` also splits on ``\\r``, ``\\f``, ...).

    >>> split_lines("a\\r\\nb\\x0cc")
    ['a\\r\\n', 'b\\x0cc']
    """
    if not text:
        return []
    if not any(c in text for c in _OTHER_BREAKS):
        return text.splitlines(True)  # the same lines, split in C
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def lines_of(data: bytes | None) -> list[str]:
    """The lines of a file's bytes (``None``: absent, no lines), undecodable bytes kept as
    surrogates so that ``"".join(lines).encode("utf-8", "surrogateescape")`` gives them back.
    A new list each call (the caller may change it)."""
    return list(_lines_of(data or b""))


@functools.lru_cache(maxsize=64)
def _lines_of(data: bytes) -> tuple[str, ...]:
    # The same file is split again and again: applied to by one change after another, merged
    # for a risk flag, on every release that has it. Its lines are kept for the next time.
    return tuple(split_lines(data.decode("utf-8", "surrogateescape")))
