"""The whole matrix: columns from the cache where it has them, the missing units planned and
run once each (:mod:`.units`), the columns assembled in version order, drift attributed."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from patchkit.core.model import CheckResult, Matrix, PatchResult
from patchkit.errors import NotImportedError
from patchkit.git.store import UPSTREAM_PREFIX, Store
from patchkit.ops.check import skipped_result
from patchkit.ops.matrix.cache import CACHE_DIR, CellCache
from patchkit.ops.matrix.drift import DIFF_LIMIT, attribute_drift
from patchkit.ops.matrix.keys import (
    cell_keys,
    change_digest,
    engine_fingerprint,
    series_fingerprint,
)
from patchkit.ops.matrix.units import (
    Unit,
    UnitKey,
    groups_of,
    run_units,
    run_units_in_processes,
)

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["AUTO_UNITS_PER_WORKER", "MatrixStats", "compute_matrix"]

AUTO_UNITS_PER_WORKER = 200  # -j 0 forks a worker per this many units of work, if the CPUs allow


@dataclass(slots=True)
class MatrixStats:
    """What a computation did (for tests and the benchmark)."""

    cells: int = 0
    cached: int = 0  # cells read from the cache
    computed: int = 0  # cells classified now
    workers: int = 0  # processes used (0: in this process)
    units: int = 0  # distinct (change group, blobs) computations run: releases share the rest


@dataclass(frozen=True, slots=True, kw_only=True)
class _Column:
    label: str
    tree: str
    keys: tuple[str, ...]


@dataclass(slots=True)
class _ColumnOut:
    check: CheckResult
    blobs: dict[str, str]
    cells: dict[str, PatchResult]  # the column's cells by key (to cache)
    cached: int = 0
    computed: int = 0


def compute_matrix(
    ws: Workspace,
    versions: Sequence[str] | None = None,
    *,
    jobs: int = 0,
    cache: bool = True,
    warn: Callable[[str], None] | None = None,
    attribute: bool = True,
    stats: MatrixStats | None = None,
) -> Matrix:
    """Every requested (default: every tracked and imported) release x every change.

    ``jobs``: worker processes (0: one per CPU; 1: none). ``cache``: read and write
    ``.patchkit/cache/matrix``. ``warn`` receives one-line warnings (corrupt cache...).
    Raises UnknownVersionError / NotImportedError naming every bad label.
    """
    warn = warn or (lambda msg: None)
    stats = stats if stats is not None else MatrixStats()
    vf = ws.versions
    store = ws.store
    trees = _release_trees(store)
    if versions:
        for label in versions:
            vf.release(label)  # UnknownVersionError names it and the known ones
        missing = [v for v in versions if v not in trees]
        if missing:
            cmds = " && ".join(f"patchkit import {v}" for v in missing)
            which = ", ".join(missing)
            raise NotImportedError(
                f"version{'s' if len(missing) > 1 else ''} {which} "
                f"{'are' if len(missing) > 1 else 'is'} tracked but not imported yet; run: {cmds}"
            )
        wanted = set(versions)
        labels = [r.version for r in vf.ordered() if r.version in wanted]
    else:
        labels = [r.version for r in vf.ordered() if r.version in trees]
    series = ws.series
    changes = list(ws.changes(series))
    digests = [change_digest(c, e.strip) for c, e in zip(changes, series.entries, strict=True)]
    paths = [c.paths for c in changes]
    engine = engine_fingerprint()
    base_tree = trees.get(vf.base, ("", ""))[1]
    base_ref = (vf.base, base_tree) if base_tree else None
    touched = sorted({p for own in paths for p in own})
    store_cache = CellCache(ws.state_dir / CACHE_DIR if cache else None, warn)

    columns = [
        _Column(
            label=v,
            tree=trees[v][1],
            keys=tuple(cell_keys(engine, v, trees[v][1], base_tree, digests)),
        )
        for v in labels
    ]
    loaded = [store_cache.load(c.label, c.tree) for c in columns]
    results: dict[str, _ColumnOut] = {}
    todo: list[int] = []
    for n, (col, (cells, blobs)) in enumerate(zip(columns, loaded, strict=True)):
        if all(k in cells for k in col.keys) and all(p in blobs for p in touched):
            check = CheckResult(
                version=col.label, patches=tuple(cells[k] for k in col.keys), tree=col.tree
            )
            results[col.label] = _ColumnOut(
                check=check,
                blobs={p: blobs[p] for p in touched},
                cells={k: cells[k] for k in col.keys},
                cached=len(col.keys),
            )
        else:
            todo.append(n)

    # Plan: which (group, blobs) units the missing cells need; each is run once.
    groups = groups_of(paths)
    units: dict[UnitKey, Unit] = {}
    plan: dict[int, list[UnitKey | None]] = {}  # per column, per group (None: cached)
    done: dict[UnitKey, list[PatchResult | None]] = {}
    ids: dict[int, dict[str, str | None]] = {}
    if todo:  # a warm run reads no blob
        with store.blob_reader() as reader:
            found = iter(reader.blob_ids([(columns[n].tree, p) for n in todo for p in touched]))
            ids = {n: {p: next(found) for p in touched} for n in todo}
            for n in todo:
                col, (cells, _) = columns[n], loaded[n]
                plan[n] = []
                for gi, group in enumerate(groups):
                    if all(col.keys[i] in cells for i in group.indexes):
                        plan[n].append(None)
                        continue
                    applies = tuple(changes[i].applies_to(col.label) for i in group.indexes)
                    key = (gi, tuple(ids[n][p] for p in group.paths), applies)
                    units.setdefault(key, Unit(key=key, version=col.label))
                    plan[n].append(key)
            unit_list = list(units.values())
            stats.units = len(unit_list)
            if jobs > 0:
                workers = min(jobs, len(unit_list))
            else:  # processes pay off only for enough work: a fork and a reader each cost ~20 ms
                workers = min(os.cpu_count() or 1, len(unit_list) // AUTO_UNITS_PER_WORKER)
            if workers <= 1:
                out = run_units(reader, groups, changes, unit_list, base_ref)
            else:
                stats.workers = workers
                out = run_units_in_processes(store, groups, changes, unit_list, base_ref, workers)
            done = {u.key: cells for u, cells in zip(unit_list, out, strict=True)}

    for n in todo:
        col, (cells, _) = columns[n], loaded[n]
        row: list[PatchResult | None] = [None] * len(changes)
        out_cells: dict[str, PatchResult] = {}
        n_cached = 0
        for group, unit in zip(groups, plan[n], strict=True):
            fresh = None if unit is None else done[unit]
            for j, i in enumerate(group.indexes):
                r = cells[col.keys[i]] if fresh is None else fresh[j]
                n_cached += fresh is None
                if r is None:
                    r = skipped_result(changes[i], col.label)
                row[i] = r
                out_cells[col.keys[i]] = r
        check = CheckResult(
            version=col.label, patches=tuple(r for r in row if r is not None), tree=col.tree
        )
        blobs = {p: ids[n][p] or "" for p in touched}
        results[col.label] = _ColumnOut(
            check=check,
            blobs=blobs,
            cells=out_cells,
            cached=n_cached,
            computed=len(changes) - n_cached,
        )
        store_cache.store(col.label, col.tree, out_cells, blobs)

    ordered = [results[v] for v in labels]
    stats.cells = sum(len(o.check.patches) for o in ordered)
    stats.cached = sum(o.cached for o in ordered)
    stats.computed = sum(o.computed for o in ordered)
    matrix = Matrix(
        versions=tuple(labels),
        patches=tuple(c.name for c in changes),
        checks=tuple(o.check for o in ordered),
        fingerprint=series_fingerprint(digests),
        blobs={o.check.version: o.blobs for o in ordered},
    )
    if attribute:

        def diff(old: str, new: str, files: Sequence[str]) -> str:
            return _upstream_diff(store, trees[old][0], trees[new][0], files)

        matrix = replace(matrix, drift=attribute_drift(matrix, diff=diff))
    return matrix


# Two queries of the store that Store itself does not offer yet (they belong in git/store.py).


def _release_trees(store: Store) -> dict[str, tuple[str, str]]:
    """label -> (commit, tree) of every imported release, in one git call."""
    if not (store.path / "HEAD").exists():
        return {}
    out = store.git(
        "for-each-ref", "--format=%(refname)%00%(objectname)%00%(tree)", UPSTREAM_PREFIX
    ).stdout.decode("utf-8", "surrogateescape")
    trees = {}
    for line in filter(None, out.split("\n")):
        ref, commit, tree = line.split("\0")
        trees[ref[len(UPSTREAM_PREFIX) :]] = (commit, tree)
    return trees


def _upstream_diff(store: Store, old: str, new: str, files: Sequence[str]) -> str:
    if not files:
        return ""
    out = store.git(
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-renames",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        old,
        new,
        "--",
        *[":(literal)" + f for f in files],
    ).stdout.decode("utf-8", "replace")
    if len(out) > DIFF_LIMIT:
        out = out[:DIFF_LIMIT] + f"\n... (cut at {DIFF_LIMIT} characters)\n"
    return out
