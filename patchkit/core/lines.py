"""Line splitting: the one rule every diff, merge and edit uses (on "\n" only)."""

from __future__ import annotations

__all__ = ["lines_of", "split_lines"]

# What str.splitlines splits ASCII text on besides "\n" (and "\r\n", which keeps the "\r" in
# its line either way): text without them splits the same with either.
_ASCII_BREAKS = "\r\v\f\x1c\x1d\x1e"


def split_lines(text: str) -> list[str]:
    """Split on ``"\\n"`` only, keeping the endings (``str.splitlines`` also splits on ``\\r``, ``\\f``, ...).

    >>> split_lines("a\\r\\nb\\x0cc")
    ['a\\r\\n', 'b\\x0cc']
    """
    if not text:
        return []
    if text.isascii() and not any(c in text for c in _ASCII_BREAKS):
        return text.splitlines(True)  # the same lines, split in C
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def lines_of(data: bytes | None) -> list[str]:
    """The lines of a file's bytes (``None``: absent, no lines), undecodable bytes kept as
    surrogates so that ``"".join(lines).encode("utf-8", "surrogateescape")`` gives them back."""
    return split_lines((data or b"").decode("utf-8", "surrogateescape"))
