"""Drift attribution: for each run of failures of a patch, where it began and what upstream
changed there (docs/matrix.md, "Drift attribution"). Pure: the diff text comes from a callback."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from patchkit.core.model import FAILED, PRESENT, Drift, Matrix, PatchResult, PatchStatus

__all__ = ["DIFF_LIMIT", "UpstreamDiffs", "attribute_drift"]

DIFF_LIMIT = 64 * 1024  # upstream diff text kept per drift record

# [(last good release, first bad release, files)] -> the upstream diff of those files, each
# (asked once for all the records: the diffs may be made side by side)
UpstreamDiffs = Callable[[Sequence[tuple[str, str, Sequence[str]]]], Sequence[str]]


def attribute_drift(
    matrix: Matrix,
    *,
    diffs: UpstreamDiffs | None = None,
    known: Iterable[Drift] = (),
) -> tuple[Drift, ...]:
    """For every run of failures of a patch: where it started, and which upstream files changed.

    Releases are taken in the matrix's order (version order). ``skipped`` cells neither
    end a run nor count as good. ``known`` drift records lend their upstream diff text
    when one is not computable here (a merged report without the store).
    """
    lend = {(d.patch, d.first_bad, d.last_good): d.upstream_diff for d in known}
    # Matrix.result scans every cell: indexed once here, the first cell of each (release, patch)
    # as Matrix.result finds it.
    cells: dict[tuple[str, str], PatchResult] = {}
    for c in matrix.checks:
        for r in c.patches:
            cells.setdefault((c.version, r.name), r)
    out: list[Drift] = []
    asks: list[tuple[str, str, Sequence[str]]] = []  # the diffs to make
    asked: list[int] = []  # which record each is for
    for name in matrix.patches:
        for last_good, run, status in _failure_runs(matrix, cells, name):
            changed = _changed_files(matrix, cells, name, last_good, run[0])
            if diffs is not None and last_good is not None and changed:
                asks.append((last_good, run[0], changed))
                asked.append(len(out))
            out.append(
                Drift(
                    patch=name,
                    first_bad=run[0],
                    last_good=last_good,
                    versions=tuple(run),
                    status=status,
                    files=changed,
                    upstream_diff=lend.get((name, run[0], last_good), ""),
                )
            )
    if diffs is not None and asks:
        for k, text in zip(asked, diffs(asks), strict=True):
            if text:
                out[k] = replace(out[k], upstream_diff=text)
    return tuple(out)


def _failure_runs(
    matrix: Matrix, cells: Mapping[tuple[str, str], PatchResult], name: str
) -> list[tuple[str | None, list[str], PatchStatus]]:
    """(last good release, failing releases, status on the first) for each run of failures."""
    runs: list[tuple[str | None, list[str], PatchStatus]] = []
    last_good: str | None = None
    current: list[str] | None = None
    for version in matrix.versions:
        r = cells.get((version, name))
        if r is None or r.status is PatchStatus.SKIPPED:
            continue
        if r.status in FAILED:
            if current is None:
                current = [version]
                runs.append((last_good, current, r.status))
            else:
                current.append(version)
        elif r.status in PRESENT:
            current = None
            last_good = version
    return runs


def _changed_files(
    matrix: Matrix,
    cells: Mapping[tuple[str, str], PatchResult],
    patch: str,
    good: str | None,
    bad: str,
) -> tuple[str, ...]:
    r = cells.get((bad, patch))
    if r is None or good is None:
        return ()
    old, new = matrix.blobs.get(good, {}), matrix.blobs.get(bad, {})
    return tuple(f for f in r.files if f in old and f in new and old[f] != new[f])
