"""What a save compares and keeps: diffs per file without what moves, and a rewritten diff's
``-pN`` prefixes and context width (``core.patchfile``, shared with the rebase's refresh)."""

from __future__ import annotations

import pytest

from patchkit.core.patchfile import context_width, diff_prefixes, parse_patch
from patchkit.ops.edit.compare import changed_files, per_file

_ONE = b"diff --git a/f b/f\nindex 1111111..2222222 100644\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n x\n-y\n+Y\n z\n"
_MOVED = _ONE.replace(b"1111111..2222222", b"3333333..4444444").replace(b"-1,3 +1,3", b"-9,3 +9,3")
_TWO = _ONE + b"diff --git a/g b/g\n--- a/g\n+++ b/g\n@@ -1 +1 @@\n-a\n+b\n"


def test_moved_lines_are_no_change() -> None:
    assert changed_files(_MOVED, _ONE) == set()
    assert changed_files(_TWO, _ONE) == {"g"}
    assert list(per_file(_TWO)) == ["f", "g"]


@pytest.mark.parametrize(
    ("text", "strip", "prefixes"),
    [
        (b"--- f\n+++ f\n@@ -1 +1 @@\n-a\n+b\n", 0, ("", "")),
        (b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n", 1, ("a/", "b/")),
        (b"--- x/y/f\n+++ x/y/f\n@@ -1 +1 @@\n-a\n+b\n", 2, ("x/y/", "x/y/")),
        (b"--- /dev/null\n+++ x/y/f\n@@ -0,0 +1 @@\n+b\n", 2, ("a/a/", "b/b/")),
    ],
)
def test_prefixes_follow_strip(text: bytes, strip: int, prefixes: tuple[str, str]) -> None:
    assert diff_prefixes(parse_patch(text, name="p", strip=strip)) == prefixes


def test_context_width() -> None:
    assert context_width(parse_patch(_ONE, name="p")) == 1
    assert context_width(parse_patch(b"Description: empty\n", name="p")) == 3
