"""patchkit.heap: the C heap trim the import calls (glibc here; a no-op elsewhere)."""

from __future__ import annotations

import os
import sys

import pytest

from patchkit import heap


def test_trim_runs_and_is_real_on_glibc_linux() -> None:
    heap.trim()  # never raises, whatever the C library
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION"):
        assert heap.TRIMS
    elif os.environ.get("CI") == "true":
        pytest.fail("CI runs on glibc Linux: the trim must be real there")
