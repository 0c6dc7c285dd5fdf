"""Matrix records back from their ``to_dict()`` form (``--format json`` results, the cache):
the inverse of :mod:`patchkit.core.model`'s ``to_dict``.

Pure. A malformed document raises ``KeyError``/``ValueError``/``TypeError``/``AttributeError``;
the caller turns that into a one-line error naming the file (or, for a cache, recomputes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchkit.core.model import (
    ChangeKind,
    CheckResult,
    Drift,
    EditResult,
    HunkResult,
    Matrix,
    NearestLine,
    OverlayEntry,
    PatchResult,
    PatchStatus,
)

__all__ = [
    "check_from_dict",
    "drift_from_dict",
    "edit_from_dict",
    "entry_from_dict",
    "hunk_from_dict",
    "matrix_from_dict",
    "patch_result_from_dict",
]


def hunk_from_dict(d: Mapping[str, Any]) -> HunkResult:
    return HunkResult(
        file=str(d["file"]),
        index=int(d["index"]),
        status=PatchStatus(d["status"]),
        offset=int(d.get("offset", 0)),
        fuzz=int(d.get("fuzz", 0)),
        line=int(d["line"]) if d.get("line") is not None else None,
        text=str(d.get("text", "")),
    )


def edit_from_dict(d: Mapping[str, Any]) -> EditResult:
    nearest = d.get("nearest")
    return EditResult(
        index=int(d["index"]),
        file=str(d["file"]),
        op=str(d["op"]),
        status=PatchStatus(d["status"]),
        reason=str(d.get("reason", "")),
        matches=int(d.get("matches", 0)),
        expected=str(d.get("expected", "")),
        nearest=None
        if nearest is None
        else NearestLine(line=int(nearest["line"]), text=str(nearest["text"])),
        message=str(d.get("message", "")),
    )


def entry_from_dict(d: Mapping[str, Any]) -> OverlayEntry:
    return OverlayEntry(
        path=str(d["path"]),
        status=PatchStatus(d["status"]),
        action=str(d["action"]),
        mode=str(d.get("mode", "100644")),
        owner=str(d.get("owner", "")),
        flags=tuple(str(f) for f in d.get("flags", ())),
        message=str(d.get("message", "")),
    )


def patch_result_from_dict(d: Mapping[str, Any]) -> PatchResult:
    return PatchResult(
        name=str(d["name"]),
        status=PatchStatus(d["status"]),
        files=tuple(str(f) for f in d["files"]),
        hunks=tuple(hunk_from_dict(h) for h in d["hunks"]),
        message=str(d.get("message", "")),
        flags=tuple(str(f) for f in d.get("flags", ())),
        kind=ChangeKind(d.get("kind", ChangeKind.DIFF.value)),
        edits=tuple(edit_from_dict(e) for e in d.get("edits", ())),
        entries=tuple(entry_from_dict(e) for e in d.get("entries", ())),
    )


def check_from_dict(d: Mapping[str, Any]) -> CheckResult:
    """A release's column (``tree`` is not in the JSON: it stays empty)."""
    return CheckResult(
        version=str(d["version"]),
        patches=tuple(patch_result_from_dict(p) for p in d["patches"]),
    )


def drift_from_dict(d: Mapping[str, Any]) -> Drift:
    return Drift(
        patch=str(d["patch"]),
        first_bad=str(d["first_bad"]),
        last_good=None if d.get("last_good") is None else str(d["last_good"]),
        versions=tuple(str(v) for v in d["versions"]),
        status=PatchStatus(d["status"]),
        files=tuple(str(f) for f in d.get("files", ())),
        upstream_diff=str(d.get("upstream_diff", "")),
    )


def matrix_from_dict(doc: Mapping[str, Any]) -> Matrix:
    """The :class:`Matrix` a ``matrix --format json`` document describes."""
    return Matrix(
        versions=tuple(str(v) for v in doc["versions"]),
        patches=tuple(str(p) for p in doc["patches"]),
        checks=tuple(check_from_dict(c) for c in doc["checks"]),
        fingerprint=str(doc.get("fingerprint", "")),
        drift=tuple(drift_from_dict(d) for d in doc.get("drift", ())),
        blobs={
            str(v): {str(p): str(b) for p, b in m.items()} for v, m in doc.get("blobs", {}).items()
        },
    )
