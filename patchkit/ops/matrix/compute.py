"""The whole matrix: columns from the cache where it has them, the missing units planned and
run once each (:mod:`.units`), the columns assembled in version order, drift attributed."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from patchkit.core.globs import glob_to_regex
from patchkit.core.model import CheckResult, Matrix, PatchResult
from patchkit.core.versions import release_version
from patchkit.errors import NotImportedError, StoreError
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.kinds import Change
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
    Group,
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


@dataclass(eq=False, slots=True, kw_only=True)
class _Column:
    """One release: its cell keys, what the cache had, and (recomputed) its blobs and units."""

    label: str
    tree: str
    keys: tuple[str, ...]
    cells: dict[str, PatchResult]  # from the cache, by key
    blobs: dict[str, str]  # from the cache
    targets: list[tuple[str, ...]]  # per change, on this release
    touched: tuple[str, ...]  # every change's targets
    ids: dict[str, str | None] = field(default_factory=dict)  # blob ids, when recomputed
    # per group of this release: its unit (None: cached)
    plan: list[tuple[Group, UnitKey | None]] = field(default_factory=list)

    def cached(self) -> bool:
        """Whether the cache holds the whole column."""
        return all(k in self.cells for k in self.keys) and all(
            p in self.blobs for p in self.touched
        )


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
    commits = store.release_commits() if (store.path / "HEAD").exists() else {}
    if versions:
        for label in versions:
            vf.release(label)  # UnknownVersionError names it and the known ones
        missing = [v for v in versions if v not in commits]
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
        labels = [r.version for r in vf.ordered() if r.version in commits]
    with (
        CellCache(ws.state_dir / CACHE_DIR if cache else None, warn) as cells_cache,
        store.blob_reader() as blob_reader,  # git starts up while the series is read
    ):
        series = ws.series
        changes = list(ws.changes(series))
        digests = [change_digest(c, e.strip) for c, e in zip(changes, series.entries, strict=True)]
        engine = engine_fingerprint()
        # label -> (commit, tree) of the releases asked, their other platforms and the base:
        # one round trip
        releases = [vf.release(v) for v in labels]
        platforms = [label for r in releases for _p, label in r.platform_labels()[1:]]
        asked = [v for v in dict.fromkeys([*labels, *platforms, vf.base]) if v in commits]
        found = blob_reader.trees_of([commits[v] for v in asked])
        trees = {v: (commits[v], tree) for v, tree in zip(asked, found, strict=True) if tree}
        lost = [v for v in labels if v not in trees]
        if lost:
            raise StoreError(f"{store.path}: the commits of {', '.join(lost)} are not in the store")
        # A multi-platform release's platforms whose trees differ get columns of their own,
        # right after it (`2.5.24@linux-arm64`); identical trees are checked once.
        if platforms:
            from patchkit.ops.platforms import matrix_labels  # multi-platform releases only

            extra = matrix_labels(releases, trees)
            labels = [x for v in labels for x in (v, *extra.get(v, ()))]
        base_tree = trees.get(vf.base, ("", ""))[1]
        base_ref = (vf.base, base_tree) if base_tree else None

        resolve = _Targets(changes, blob_reader)
        columns = []
        for v in labels:
            tree = trees[v][1]
            cells, blobs = cells_cache.load(v, tree)
            keys = tuple(cell_keys(engine, v, tree, base_tree, digests))
            targets = resolve.on(tree)
            columns.append(
                _Column(
                    label=v,
                    tree=tree,
                    keys=keys,
                    cells=cells,
                    blobs=blobs,
                    targets=targets,
                    touched=tuple(sorted({p for own in targets for p in own})),
                )
            )
        todo = [col for col in columns if not col.cached()]
        if todo:
            done = _run_missing(store, blob_reader, todo, changes, base_ref, jobs, stats)
        ordered = []
        for col in columns:
            if col.cached():
                ordered.append(_from_cache(col))
                continue
            out = _assemble(col, changes, done)
            cells_cache.store(col.label, col.tree, out.cells, out.blobs)
            ordered.append(out)
        cells_cache.flush()

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

            def diffs(asks: Sequence[tuple[str, str, Sequence[str]]]) -> list[str]:
                texts = store.plain_diffs([(trees[o][0], trees[n][0], f) for o, n, f in asks])
                return [_cut(t.decode("utf-8", "replace")) for t in texts]

            matrix = replace(matrix, drift=attribute_drift(matrix, diffs=diffs))
    return matrix


class _Targets:
    """Each change's targets, release by release. Globs match the release's files and any
    file an earlier change targets (it may create it), so that a group holds every file its
    globs can see. A change that does not consult the lister (a diff, an overlay) has the
    same targets on every release: asked once."""

    def __init__(self, changes: Sequence[Change], reader: BlobReader) -> None:
        self._changes, self._reader = changes, reader
        self._fixed: dict[int, tuple[str, ...]] = {}

    def on(self, tree: str) -> list[tuple[str, ...]]:
        earlier: set[str] = set()
        asked = False

        def lister(patterns: Sequence[str]) -> list[str]:
            nonlocal asked
            asked = True
            regexes = [glob_to_regex(p) for p in patterns]
            found = set(self._reader.list_paths(tree, patterns))
            found.update(p for p in earlier if any(r.match(p) for r in regexes))
            return sorted(found)

        out = []
        for i, change in enumerate(self._changes):
            own = self._fixed.get(i)
            if own is None:
                asked = False
                own = tuple(change.targets(lister))
                if not asked:
                    self._fixed[i] = own
            earlier.update(own)
            out.append(own)
        return out


def _run_missing(
    store: Store,
    reader: BlobReader,
    todo: Sequence[_Column],
    changes: Sequence[Change],
    base_ref: tuple[str, str] | None,
    jobs: int,
    stats: MatrixStats,
) -> dict[UnitKey, list[PatchResult | None]]:
    """Plan which (group, blobs) units the missing cells need, and run each once."""
    units: dict[UnitKey, Unit] = {}
    grouped: dict[tuple[tuple[str, ...], ...], list[Group]] = {}  # releases share targets
    found = iter(reader.blob_ids([(col.tree, p) for col in todo for p in col.touched]))
    for col in todo:
        col.ids.update((p, next(found)) for p in col.touched)
        symlinked = reader.symlinked(col.tree, col.touched)
        key_of_targets = tuple(col.targets)
        if key_of_targets not in grouped:
            grouped[key_of_targets] = groups_of(col.targets)
        for group in grouped[key_of_targets]:
            if all(col.keys[i] in col.cells for i in group.indexes):
                col.plan.append((group, None))
                continue
            key = (
                group,
                tuple(col.ids[p] for p in group.paths),
                tuple(changes[i].applies_to(release_version(col.label)) for i in group.indexes),
                symlinked.intersection(group.paths),
            )
            units.setdefault(key, Unit(key=key, version=release_version(col.label)))
            col.plan.append((group, key))
    unit_list = list(units.values())
    stats.units = len(unit_list)
    if jobs > 0:
        workers = min(jobs, len(unit_list))
    else:  # processes pay off only for enough work: a fork and a reader each cost ~20 ms
        workers = min(os.cpu_count() or 1, len(unit_list) // AUTO_UNITS_PER_WORKER)
    if workers <= 1:
        out = run_units(reader, changes, unit_list, base_ref)
    else:
        stats.workers = workers
        out = run_units_in_processes(store, changes, unit_list, base_ref, workers)
    return {u.key: cells for u, cells in zip(unit_list, out, strict=True)}


def _from_cache(col: _Column) -> _ColumnOut:
    check = CheckResult(
        version=col.label, patches=tuple(col.cells[k] for k in col.keys), tree=col.tree
    )
    return _ColumnOut(
        check=check,
        blobs={p: col.blobs[p] for p in col.touched},
        cells={k: col.cells[k] for k in col.keys},
        cached=len(col.keys),
    )


def _assemble(
    col: _Column, changes: Sequence[Change], done: Mapping[UnitKey, list[PatchResult | None]]
) -> _ColumnOut:
    """A recomputed column: its groups' cells from the units, or from the cache."""
    row: list[PatchResult | None] = [None] * len(changes)
    out_cells: dict[str, PatchResult] = {}
    n_cached = 0
    for group, unit in col.plan:
        fresh = None if unit is None else done[unit]
        for j, i in enumerate(group.indexes):
            r = col.cells[col.keys[i]] if fresh is None else fresh[j]
            n_cached += fresh is None
            if r is None:
                r = skipped_result(changes[i], release_version(col.label))
            row[i] = r
            out_cells[col.keys[i]] = r
    check = CheckResult(
        version=col.label, patches=tuple(r for r in row if r is not None), tree=col.tree
    )
    return _ColumnOut(
        check=check,
        blobs={p: col.ids[p] or "" for p in col.touched},
        cells=out_cells,
        cached=n_cached,
        computed=len(changes) - n_cached,
    )


def _cut(text: str) -> str:
    if len(text) > DIFF_LIMIT:
        return text[:DIFF_LIMIT] + f"\n... (cut at {DIFF_LIMIT} characters)\n"
    return text
