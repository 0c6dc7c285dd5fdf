"""Handing the C heap's free memory back to the system, where the C library can.

The import frees a lot as it goes (its tree packs finished directories, per-layer
buffers end with the layer), mostly in blocks that glibc's malloc keeps between live
ones: without a trim the peak RSS of a 100,000-entry import was 12% above that of a
50,000-entry one, with a trim every few thousand files 8% (docs/import-benchmark.md).
`trim` calls glibc's ``malloc_trim(0)`` (which also returns free pages in the middle of
the heap); it does nothing on other C libraries (musl, macOS, Windows). It only touches
memory already freed, so it never changes a result.

It calls into the C library, so it lives here, beside `patchkit.files`, and not in the
pure `patchkit.core`.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["TRIMS", "trim"]


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the C library this interpreter runs on
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_TRIM = _malloc_trim()

TRIMS = _TRIM is not None  # whether `trim` does anything here


def trim() -> None:
    """Return the C heap's free memory to the system (glibc); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)
