"""The zlib implementation an import inflates layers and deflates pack objects with.

python-isal (a dependency where it has wheels: Linux x86-64/aarch64, macOS) inflates
about 2x and deflates at level 1 about 4x faster than the standard library's zlib,
with the same streams (docs/import-benchmark.md); elsewhere the standard library's
zlib is used, with identical results. The choice is made once, at import time, and
named by `ZLIB_NAME` (shown by `patchkit import -v`). ``PATCHKIT_ZLIB=zlib`` forces the
standard library (the tests run both ways).

It reads the environment, so it lives here, beside `patchkit.files`, and not in the
pure `patchkit.core`.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

__all__ = ["ZLIB", "ZLIB_NAME", "zlib_backend"]


def zlib_backend(prefer: str | None = None) -> tuple[Any, str]:
    """The zlib-compatible module to use and its name, e.g. ``(isal_zlib, "isal 1.7.1")``.

    ``prefer`` overrides ``PATCHKIT_ZLIB``: ``"zlib"`` is the standard library, anything
    else isal when it is installed.
    """
    if (prefer or os.environ.get("PATCHKIT_ZLIB", "")) != "zlib":
        try:
            import isal  # type: ignore[import-not-found,unused-ignore]
            from isal import isal_zlib  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            pass
        else:
            return isal_zlib, f"isal {isal.__version__}"
    return zlib, f"zlib {zlib.ZLIB_RUNTIME_VERSION} (standard library)"


ZLIB, ZLIB_NAME = zlib_backend()
