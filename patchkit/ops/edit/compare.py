"""Whether something changed: a patch file against the digest its commit was made from, and a
commit's diff against the original commit's (``index`` lines and hunk line numbers aside, so a
patch whose lines only moved counts as unchanged).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from patchkit.ops.edit.swap import manifest

__all__ = ["changed_files", "digest", "per_file"]

_INDEX_LINE = re.compile(rb"^index [0-9a-f]+\.\.[0-9a-f]+.*\n", re.M)
_HUNK_HEAD = re.compile(rb"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)
_FILE_HEAD = re.compile(rb"^diff --git a/(.*) b/(.*)$", re.M)


def digest(path: Path) -> str:
    """SHA-256 of a patch file, or of an overlay directory's listing and contents."""
    if path.is_dir():
        return hashlib.sha256(json.dumps(sorted(manifest(path).items())).encode()).hexdigest()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def _normal(diff: bytes) -> bytes:
    """A diff without what moves when nothing changed: index lines, hunk line numbers."""
    return _HUNK_HEAD.sub(b"@@", _INDEX_LINE.sub(b"", diff))


def per_file(diff: bytes) -> dict[str, bytes]:
    """A git diff split by file (normalised), path -> its part."""
    out: dict[str, bytes] = {}
    heads = list(_FILE_HEAD.finditer(diff))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(diff)
        out[m.group(2).decode("utf-8", "surrogateescape")] = _normal(diff[m.start() : end])
    return out


def changed_files(new: bytes, old: bytes) -> set[str]:
    """The files whose part differs between two git diffs."""
    a, b = per_file(new), per_file(old)
    return {p for p in set(a) | set(b) if a.get(p) != b.get(p)}
