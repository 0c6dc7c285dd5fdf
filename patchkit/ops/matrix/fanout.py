"""CI fan-out: the job list for GitHub Actions, per-job results read back and joined, and a
matrix cut down to some patches and releases (``--only-changed``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from patchkit.core.model import SCHEMA, CheckResult, Matrix
from patchkit.core.versions import order_labels
from patchkit.errors import MatrixError, UsageError
from patchkit.ops.matrix.codec import matrix_from_dict
from patchkit.ops.matrix.drift import attribute_drift

__all__ = ["github_matrix", "limit", "load_results", "merge_matrices"]


def github_matrix(labels: Sequence[str], *, group_size: int = 1) -> dict[str, Any]:
    """A GitHub Actions ``strategy.matrix``: ``{"include": [{"name", "versions"}, ...]}``.

    ``versions`` is space-separated, ready for ``patchkit import``/``matrix`` in a shell.
    """
    if group_size < 1:
        raise UsageError("--group-size must be 1 or more")
    include = []
    for i in range(0, len(labels), group_size):
        group = list(labels[i : i + group_size])
        name = group[0] if len(group) == 1 else f"{group[0]}..{group[-1]}"
        include.append({"name": name, "versions": " ".join(group)})
    return {"include": include}


def load_results(paths: Sequence[str | os.PathLike[str]]) -> list[Matrix]:
    """Read ``matrix --format json`` files; any that is not one is a MatrixError naming it."""
    out = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_bytes())
        except OSError as e:
            raise MatrixError(f"{path}: cannot read ({e.strerror})") from e
        except ValueError as e:
            raise MatrixError(f"{path}: not JSON ({e})") from e
        if not isinstance(doc, dict) or doc.get("command") != "matrix":
            raise MatrixError(f"{path}: not a 'patchkit matrix --format json' result")
        if doc.get("schema") != SCHEMA:
            raise MatrixError(
                f"{path}: schema {doc.get('schema')!r}, but this patchkit reads schema {SCHEMA}; "
                "produce every result with the same patchkit"
            )
        try:
            out.append(matrix_from_dict(doc))
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise MatrixError(f"{path}: malformed matrix result ({type(e).__name__}: {e})") from e
        if not out[-1].fingerprint:
            raise MatrixError(f"{path}: has no series fingerprint (made by an older patchkit?)")
    return out


def merge_matrices(
    matrices: Sequence[Matrix],
    *,
    names: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
) -> Matrix:
    """Join per-job matrices of one series into one; drift is attributed over the whole.

    ``order``: the tracked releases in version order (default: PEP 440 order of the labels).
    """
    if not matrices:
        raise UsageError("--merge needs at least one result file")
    names = list(names or [f"result {i + 1}" for i in range(len(matrices))])
    first = matrices[0]
    for name, m in zip(names, matrices, strict=True):
        if m.fingerprint != first.fingerprint:
            raise MatrixError(
                f"{name}: made from another series ({m.fingerprint[:19]} vs {first.fingerprint[:19]} "
                f"in {names[0]}); rerun every job on the same commit"
            )
    checks: dict[str, CheckResult] = {}
    blobs: dict[str, dict[str, str]] = {}
    for name, m in zip(names, matrices, strict=True):
        for c in m.checks:
            if c.version in checks and checks[c.version].to_dict() != c.to_dict():
                raise MatrixError(
                    f"{name}: release {c.version} appears in two results with different answers"
                )
            checks[c.version] = c
            if c.version in m.blobs:
                blobs[c.version] = m.blobs[c.version]
    labels = list(checks)
    if order:
        known = [v for v in order if v in checks]
        labels = known + [v for v in order_labels(labels) if v not in known]
    else:
        labels = order_labels(labels)
    merged = Matrix(
        versions=tuple(labels),
        patches=first.patches,
        checks=tuple(checks[v] for v in labels),
        fingerprint=first.fingerprint,
        blobs=blobs,
    )
    known_drift = [d for m in matrices for d in m.drift]
    return replace(merged, drift=attribute_drift(merged, known=known_drift))


def limit(matrix: Matrix, *, patches: set[str] | None, versions: set[str] | None) -> Matrix:
    """The matrix restricted to some patches (rows) and releases (columns)."""
    keep_v = [v for v in matrix.versions if versions is None or v in versions]
    keep_p = [p for p in matrix.patches if patches is None or p in patches]
    checks = tuple(
        replace(c, patches=tuple(p for p in c.patches if p.name in keep_p))
        for c in matrix.checks
        if c.version in keep_v
    )
    drift = tuple(
        d for d in matrix.drift if d.patch in keep_p and any(v in keep_v for v in d.versions)
    )
    return replace(
        matrix,
        versions=tuple(keep_v),
        patches=tuple(keep_p),
        checks=checks,
        drift=drift,
        blobs={v: b for v, b in matrix.blobs.items() if v in keep_v},
    )
