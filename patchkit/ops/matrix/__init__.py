"""The compatibility matrix: every release x every patch, fast, cached, in parallel, mergeable.

How a matrix is computed (see docs/matrix.md):

* Each release is one *column*: the series applied cumulatively, in memory, to the
  release's blobs read through one long-lived ``git cat-file --batch`` (no checkout).
* Patches that share files form a *group*; a group's cells depend only on its files. Each
  (group, blob ids, admitted patches) is computed once and shared by every release that
  has the same blobs; units run in this process or, when there are many, across forked
  processes (``jobs``), each with its own reader.
* Every cell is cached under ``.patchkit/cache/matrix/`` by a key chaining the
  release label and tree id, the base tree id, the engine fingerprint (patchkit
  version and the engine's source) and the content of this patch *and every
  earlier one* (application is cumulative). A group whose cells are all cached is not
  recomputed; a group with a miss is recomputed whole.
* Risk flags: a cell that applies only with fuzz, or with a hunk moved by at least
  ``LARGE_OFFSET`` lines, is compared with what the 3-way line merge of ``merge.merge3``
  (the rebase's own; with the base release as the common ancestor) makes of the same change.
* Drift: a failing patch names the first release where it fails after the last one
  where it applied, and the files whose upstream blobs differ between the two.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchkit.core.apply import apply_patch
from patchkit.core.merge import merge3
from patchkit.core.model import (
    SCHEMA,
    CheckResult,
    Drift,
    HunkResult,
    Matrix,
    PatchResult,
    PatchStatus,
)
from patchkit.core.patchfile import Patch, patch_applies_to
from patchkit.core.versions import order_labels, parse_versions
from patchkit.errors import NotImportedError, PatchkitError, StoreError, UsageError
from patchkit.git.objects import BlobReader
from patchkit.git.runner import run_git_in
from patchkit.git.store import UPSTREAM_PREFIX, Store
from patchkit.ops.check import skipped_result

if TYPE_CHECKING:
    from patchkit.project import Project

__all__ = [
    "LARGE_OFFSET",
    "RISK_FLAGS",
    "MatrixError",
    "MatrixStats",
    "changed_since",
    "compute_matrix",
    "github_matrix",
    "load_results",
    "matrix_from_dict",
    "merge_matrices",
    "series_fingerprint",
]

AUTO_UNITS_PER_WORKER = 200  # -j 0 forks a worker per this many units of work, if the CPUs allow
LARGE_OFFSET = 20  # a hunk moved this many lines or more is flagged "large-offset"
CACHE_FORMAT = 1
CACHE_DIR = "cache/matrix"
DIFF_LIMIT = 64 * 1024  # upstream diff text kept per drift record
FAILED = frozenset({PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET})
GOOD = frozenset(
    {PatchStatus.APPLIED, PatchStatus.OFFSET, PatchStatus.FUZZ, PatchStatus.ALREADY_APPLIED}
)
# Flags that say "the in-memory answer may be wrong": a person should look.
RISK_FLAGS = frozenset({"3way-conflict", "3way-differs"})

Warn = Callable[[str], None]


class MatrixError(PatchkitError):
    """Bad matrix input: result files that do not join, a ref that does not exist, ..."""


@dataclass(slots=True)
class MatrixStats:
    """What a computation did (for tests and the benchmark)."""

    cells: int = 0
    cached: int = 0  # cells read from the cache
    computed: int = 0  # cells classified now
    workers: int = 0  # processes used (0: in this process)
    units: int = 0  # distinct (patch group, blobs) computations run: releases share the rest


# --------------------------------------------------------------------------- keys


def _engine_fingerprint() -> str:
    """patchkit's version and the source of the code that decides a cell's answer."""
    from patchkit import __version__

    h = hashlib.sha256(f"patchkit {__version__} cache {CACHE_FORMAT}\0".encode())
    here = Path(__file__).parent
    for name in ("diff.py", "patchfile.py", "series.py", "matrix.py", "merge.py"):
        with contextlib.suppress(OSError):
            h.update((here / name).read_bytes())
    return h.hexdigest()


def _patch_digest(patch: Patch, data: bytes) -> str:
    h = hashlib.sha256(f"{patch.name}\0-p{patch.strip}\0".encode())
    h.update(data)
    return h.hexdigest()


def series_fingerprint(digests: Sequence[str]) -> str:
    """One id for the series: its patches' names, -pN and bytes, in order."""
    h = hashlib.sha256(b"patchkit series\0")
    for d in digests:
        h.update(d.encode() + b"\n")
    return "sha256:" + h.hexdigest()


def _cell_keys(
    engine: str, label: str, tree: str, base_tree: str, digests: Sequence[str]
) -> list[str]:
    """Cell i's key covers patches 0..i: a change to an earlier patch changes every later key."""
    chain = hashlib.sha256(f"{engine}\0{label}\0{tree}\0{base_tree}".encode()).hexdigest()
    keys = []
    for d in digests:
        chain = hashlib.sha256(f"{chain}\0{d}".encode()).hexdigest()
        keys.append(chain)
    return keys


# --------------------------------------------------------------------------- from JSON


def _hunk_from_dict(d: Mapping[str, Any]) -> HunkResult:
    return HunkResult(
        file=str(d["file"]),
        index=int(d["index"]),
        status=PatchStatus(d["status"]),
        offset=int(d.get("offset", 0)),
        fuzz=int(d.get("fuzz", 0)),
        line=int(d["line"]) if d.get("line") is not None else None,
        text=str(d.get("text", "")),
    )


def _patch_from_dict(d: Mapping[str, Any]) -> PatchResult:
    return PatchResult(
        name=str(d["name"]),
        status=PatchStatus(d["status"]),
        files=tuple(str(f) for f in d["files"]),
        hunks=tuple(_hunk_from_dict(h) for h in d["hunks"]),
        message=str(d.get("message", "")),
        flags=tuple(str(f) for f in d.get("flags", ())),
    )


def _drift_from_dict(d: Mapping[str, Any]) -> Drift:
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
    checks = tuple(
        CheckResult(
            version=str(c["version"]),
            patches=tuple(_patch_from_dict(p) for p in c["patches"]),
        )
        for c in doc["checks"]
    )
    return Matrix(
        versions=tuple(str(v) for v in doc["versions"]),
        patches=tuple(str(p) for p in doc["patches"]),
        checks=checks,
        fingerprint=str(doc.get("fingerprint", "")),
        drift=tuple(_drift_from_dict(d) for d in doc.get("drift", ())),
        blobs={
            str(v): {str(p): str(b) for p, b in m.items()} for v, m in doc.get("blobs", {}).items()
        },
    )


# --------------------------------------------------------------------------- the cache


class _Cache:
    """One JSON file per (release label, tree): cell key -> patch result, and the blob ids."""

    def __init__(self, root: Path | None, warn: Warn) -> None:
        self.root = root
        self.warn = warn

    def path(self, label: str, tree: str) -> Path | None:
        if self.root is None:
            return None
        name = hashlib.sha256(f"{label}\0{tree}".encode()).hexdigest()[:40]
        return self.root / f"{name}.json"

    def load(self, label: str, tree: str) -> tuple[dict[str, PatchResult], dict[str, str]]:
        path = self.path(label, tree)
        if path is None or not path.exists():
            return {}, {}
        try:
            doc = json.loads(path.read_bytes())
            if doc.get("format") != CACHE_FORMAT or doc.get("tree") != tree:
                raise ValueError("format or tree differs")
            raw_cells = doc["cells"]
            blobs = {str(k): str(v) for k, v in doc["blobs"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.warn(f"cache entry {path} is corrupt ({type(e).__name__}); recomputing {label}")
            return {}, {}
        cells: dict[str, PatchResult] = {}
        for key, value in raw_cells.items():
            try:
                cells[key] = _patch_from_dict(value)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                self.warn(
                    f"cache entry {path} has a corrupt cell ({type(e).__name__}); recomputing it"
                )
        return cells, blobs

    def store(
        self, label: str, tree: str, cells: Mapping[str, PatchResult], blobs: Mapping[str, str]
    ) -> None:
        path = self.path(label, tree)
        if path is None:
            return
        doc = {
            "format": CACHE_FORMAT,
            "version": label,
            "tree": tree,
            "cells": {k: v.to_dict() for k, v in cells.items()},
            "blobs": dict(blobs),
        }
        data = json.dumps(doc, sort_keys=True).encode()
        # Atomic: readers see the old entry or the new one; a failed write costs only speed.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            self.warn(f"cannot write cache entry {path} ({e.strerror}); results are still right")


# --------------------------------------------------------------------------- one column


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


@dataclass(slots=True)
class _Base:
    """Per patch (by series index), its files before and after it on the base release
    (for the 3-way flag)."""

    before: dict[int, dict[str, bytes | None]] = field(default_factory=dict)
    after: dict[int, dict[str, bytes | None] | None] = field(
        default_factory=dict
    )  # None: not applied


def _base_context(
    reader: BlobReader, label: str, tree: str, patches: Sequence[Patch], comp: _Component
) -> _Base:
    """One patch group on the base release: the others cannot change its files."""
    overlay: dict[str, bytes | None] = reader.read_many(tree, comp.paths)
    out = _Base()
    for i in comp.indexes:
        patch = patches[i]
        current = {p: overlay[p] for p in patch.paths}
        out.before[i] = current
        if not patch_applies_to(patch, label):
            out.after[i] = None
            continue
        applied = apply_patch(current, patch)
        if applied.status in GOOD:
            overlay.update(applied.contents)
            out.after[i] = {p: applied.contents.get(p, current[p]) for p in patch.paths}
        else:
            out.after[i] = None
    return out


def _merge3(ours: bytes, base: bytes, theirs: bytes) -> tuple[bool, bytes]:
    """3-way merge in process (the rebase's own line merge): (clean, result) of taking
    base -> theirs into ours. No subprocess: a matrix may ask this for hundreds of cells."""

    def lines(data: bytes) -> list[str]:
        return data.decode("utf-8", "surrogateescape").splitlines(keepends=True)

    result = merge3(lines(base), lines(ours), lines(theirs))
    return result.conflicts == 0, "".join(result.lines).encode("utf-8", "surrogateescape")


def _flags(
    result: PatchResult,
    index: int,
    current: Mapping[str, bytes | None],
    contents: Mapping[str, bytes | None],
    base: _Base | None,
) -> tuple[str, ...]:
    """Risk flags of an applied cell: large-offset, and how 3-way merging sees fuzz/large offsets."""
    large = any(abs(h.offset) >= LARGE_OFFSET for h in result.hunks)
    flags = ["large-offset"] if large else []
    if result.status is not PatchStatus.FUZZ and not large:
        return ()
    if base is None or base.after[index] is None:
        return (*flags, "no-3way")
    after = base.after[index]
    assert after is not None
    verdict = "3way-ok"
    for path in result.files:
        b, o, t = base.before[index].get(path), after.get(path), current.get(path)
        if b is None or o is None or t is None:
            continue  # created or deleted files have no fuzz to check
        clean, merged = _merge3(t, b, o)
        if not clean:
            verdict = "3way-conflict"
            break
        if merged != contents.get(path):
            verdict = "3way-differs"
    return (*flags, verdict)


@dataclass(frozen=True, slots=True)
class _Component:
    """Patches linked through the files they touch, and those files.

    A cell depends only on its component's files in the release (a patch is applied
    whole or not at all, so a failure on one file keeps its other files unchanged):
    releases that share those blobs share the component's answers.
    """

    paths: tuple[str, ...]
    indexes: tuple[int, ...]  # the patches, in series order


def _components(patches: Sequence[Patch]) -> list[_Component]:
    parent: dict[str, str] = {}

    def find(path: str) -> str:
        while parent[path] != path:
            parent[path] = parent[parent[path]]
            path = parent[path]
        return path

    for patch in patches:
        for path in patch.paths:
            parent.setdefault(path, path)
            root, other = find(patch.paths[0]), find(path)
            if root != other:
                parent[other] = root
    groups: dict[str, list[int]] = {}
    alone: list[list[int]] = []  # a patch that touches no file
    for i, patch in enumerate(patches):
        if patch.paths:
            groups.setdefault(find(patch.paths[0]), []).append(i)
        else:
            alone.append([i])
    return [
        _Component(tuple(sorted({p for i in idx for p in patches[i].paths})), tuple(idx))
        for idx in [*groups.values(), *alone]
    ]


# A unit of work: a component on one set of blobs, with the patches that apply to the release.
_UnitKey = tuple[int, tuple[str | None, ...], tuple[bool, ...]]


def _run_unit(
    comp: _Component,
    patches: Sequence[Patch],
    applies: Sequence[bool],
    files: Mapping[str, bytes | None],
    base: Callable[[], _Base | None],
) -> list[PatchResult | None]:
    """The component's cells (None: excluded by Upstream-Versions), applied cumulatively."""
    overlay = dict(files)
    out: list[PatchResult | None] = []
    for i, wanted in zip(comp.indexes, applies, strict=True):
        if not wanted:
            out.append(None)
            continue
        patch = patches[i]
        current = {path: overlay[path] for path in patch.paths}
        applied = apply_patch(current, patch)
        if applied.status not in FAILED:
            overlay.update(applied.contents)
        r = applied.to_patch_result()
        if r.status in (PatchStatus.FUZZ, PatchStatus.OFFSET):
            flags = _flags(r, i, current, applied.contents, base())
            if flags:
                r = replace(r, flags=flags)
        out.append(r)
    return out


def _run_in_processes(
    store: Store,
    comps: Sequence[_Component],
    patches: Sequence[Patch],
    units: Sequence[_UnitKey],
    base_ref: tuple[str, str] | None,
    workers: int,
) -> list[list[PatchResult | None]]:
    import concurrent.futures
    import multiprocessing

    groups = [units[i::workers] for i in range(workers)]
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [
            pool.submit(_units_worker, str(store.path), comps, patches, g, base_ref) for g in groups
        ]
        parts = [f.result() for f in futures]
    done: list[list[PatchResult | None]] = [[] for _ in units]
    for w, part in enumerate(parts):
        for k, res in enumerate(part):
            done[w + k * workers] = res
    return done


def _units_worker(
    store_path: str,
    comps: Sequence[_Component],
    patches: Sequence[Patch],
    units: Sequence[_UnitKey],
    base_ref: tuple[str, str] | None,
) -> list[list[PatchResult | None]]:
    """Run some units in a worker process, with its own `git cat-file --batch`."""
    with Store(Path(store_path)).blob_reader() as reader:
        return _run_units(reader, comps, patches, units, base_ref)


def _run_units(
    reader: BlobReader,
    comps: Sequence[_Component],
    patches: Sequence[Patch],
    units: Sequence[_UnitKey],
    base_ref: tuple[str, str] | None,
) -> list[list[PatchResult | None]]:
    memo: dict[int, _Base] = {}  # per patch group, made the first time a flag needs it

    def base_of(comp_index: int) -> Callable[[], _Base | None]:
        def base() -> _Base | None:
            if base_ref is None:
                return None
            if comp_index not in memo:
                memo[comp_index] = _base_context(reader, *base_ref, patches, comps[comp_index])
            return memo[comp_index]

        return base

    wanted = sorted({oid for _, oids, _ in units for oid in oids if oid})
    blobs = reader.read_objects(wanted)
    out = []
    for comp_index, oids, applies in units:
        comp = comps[comp_index]
        files = {p: (blobs[oid] if oid else None) for p, oid in zip(comp.paths, oids, strict=True)}
        out.append(_run_unit(comp, patches, applies, files, base_of(comp_index)))
    return out


# --------------------------------------------------------------------------- the whole matrix


def _release_trees(store: Store) -> dict[str, tuple[str, str]]:
    """label -> (commit, tree) of every imported release, in one git call."""
    if not (store.path / "HEAD").exists():
        return {}
    out = store.git(
        "for-each-ref", "--format=%(refname)%00%(objectname)%00%(tree)", UPSTREAM_PREFIX
    ).stdout.decode("utf-8", "surrogateescape")
    trees = {}
    for line in out.splitlines():
        ref, commit, tree = line.split("\0")
        trees[ref[len(UPSTREAM_PREFIX) :]] = (commit, tree)
    return trees


def _read_patches(project: Project) -> tuple[list[Patch], list[str]]:
    patches = project.patches()
    digests = [_patch_digest(p, (project.patches_dir / p.name).read_bytes()) for p in patches]
    return patches, digests


def compute_matrix(
    project: Project,
    versions: Sequence[str] | None = None,
    *,
    jobs: int = 0,
    cache: bool = True,
    warn: Warn | None = None,
    attribute: bool = True,
    stats: MatrixStats | None = None,
) -> Matrix:
    """Every requested (default: every tracked and imported) release x every patch.

    ``jobs``: worker processes (0: one per CPU; 1: none). ``cache``: read and write
    ``.patchkit/cache/matrix``. ``warn`` receives one-line warnings (corrupt cache...).
    Raises UnknownVersionError / NotImportedError naming every bad label.
    """
    warn = warn or (lambda msg: None)
    stats = stats if stats is not None else MatrixStats()
    vf = project.versions
    store = project.store
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
    patches, digests = _read_patches(project)
    engine = _engine_fingerprint()
    base_tree = trees.get(vf.base, ("", ""))[1]
    base_ref = (vf.base, base_tree) if base_tree else None
    touched = sorted({fp.path for p in patches for fp in p.files})
    store_cache = _Cache(project.state_dir / CACHE_DIR if cache else None, warn)

    columns = [
        _Column(
            label=v,
            tree=trees[v][1],
            keys=tuple(_cell_keys(engine, v, trees[v][1], base_tree, digests)),
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

    # Plan: which (component, blobs) units the missing cells need; each is run once.
    comps = _components(patches)
    units: dict[_UnitKey, int] = {}
    plan: dict[int, list[_UnitKey | None]] = {}  # per column, per component (None: cached)
    done: list[list[PatchResult | None]] = []
    if todo:  # a warm run reads no blob
        with store.blob_reader() as reader:
            found = iter(reader.blob_ids([(columns[n].tree, p) for n in todo for p in touched]))
            ids = {n: {p: next(found) for p in touched} for n in todo}
            for n in todo:
                col, (cells, _) = columns[n], loaded[n]
                plan[n] = []
                for ci, comp in enumerate(comps):
                    if all(col.keys[i] in cells for i in comp.indexes):
                        plan[n].append(None)
                        continue
                    applies = tuple(patch_applies_to(patches[i], col.label) for i in comp.indexes)
                    key = (ci, tuple(ids[n][p] for p in comp.paths), applies)
                    units.setdefault(key, len(units))
                    plan[n].append(key)
            unit_list = list(units)
            stats.units = len(unit_list)
            if jobs > 0:
                workers = min(jobs, len(unit_list))
            else:  # processes pay off only for enough work: a fork and a reader each cost ~20 ms
                workers = min(os.cpu_count() or 1, len(unit_list) // AUTO_UNITS_PER_WORKER)
            if workers <= 1:
                done = _run_units(reader, comps, patches, unit_list, base_ref)
            else:
                stats.workers = workers
                done = _run_in_processes(store, comps, patches, unit_list, base_ref, workers)

    for n in todo:
        col, (cells, _) = columns[n], loaded[n]
        row: list[PatchResult | None] = [None] * len(patches)
        out_cells: dict[str, PatchResult] = {}
        n_cached = 0
        for comp, unit in zip(comps, plan[n], strict=True):
            fresh = None if unit is None else done[units[unit]]
            for j, i in enumerate(comp.indexes):
                r = cells[col.keys[i]] if fresh is None else fresh[j]
                n_cached += fresh is None
                if r is None:
                    r = skipped_result(patches[i], col.label)
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
            computed=len(patches) - n_cached,
        )
        store_cache.store(col.label, col.tree, out_cells, blobs)

    ordered = [results[v] for v in labels]
    stats.cells = sum(len(o.check.patches) for o in ordered)
    stats.cached = sum(o.cached for o in ordered)
    stats.computed = sum(o.computed for o in ordered)
    release_blobs = {o.check.version: o.blobs for o in ordered}
    checks = tuple(o.check for o in ordered)
    matrix = Matrix(
        versions=tuple(labels),
        patches=tuple(p.name for p in patches),
        checks=checks,
        fingerprint=series_fingerprint(digests),
        blobs=release_blobs,
    )
    if attribute:

        def diff(old: str, new: str, files: Sequence[str]) -> str:
            return _upstream_diff(store, trees[old][0], trees[new][0], files)

        matrix = replace(matrix, drift=attribute_drift(matrix, diff=diff))
    return matrix


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


# --------------------------------------------------------------------------- drift


def attribute_drift(
    matrix: Matrix,
    *,
    diff: Callable[[str, str, Sequence[str]], str] | None = None,
    known: Iterable[Drift] = (),
) -> tuple[Drift, ...]:
    """For every run of failures of a patch: where it started, and which upstream files changed.

    Releases are taken in the matrix's order (version order). ``skipped`` cells neither
    end a run nor count as good. ``known`` drift records lend their upstream diff text
    when one is not computable here (a merged report without the store).
    """
    lend = {(d.patch, d.first_bad, d.last_good): d.upstream_diff for d in known}
    out: list[Drift] = []
    for name in matrix.patches:
        for last_good, run, status in _failure_runs(matrix, name):
            changed = _changed_files(matrix, name, last_good, run[0])
            text = ""
            if diff is not None and last_good is not None and changed:
                text = diff(last_good, run[0], changed)
            out.append(
                Drift(
                    patch=name,
                    first_bad=run[0],
                    last_good=last_good,
                    versions=tuple(run),
                    status=status,
                    files=changed,
                    upstream_diff=text or lend.get((name, run[0], last_good), ""),
                )
            )
    return tuple(out)


def _failure_runs(matrix: Matrix, name: str) -> list[tuple[str | None, list[str], PatchStatus]]:
    """(last good release, failing releases, status on the first) for each run of failures."""
    runs: list[tuple[str | None, list[str], PatchStatus]] = []
    last_good: str | None = None
    current: list[str] | None = None
    for version in matrix.versions:
        r = matrix.result(version, name)
        if r is None or r.status is PatchStatus.SKIPPED:
            continue
        if r.status in FAILED:
            if current is None:
                current = [version]
                runs.append((last_good, current, r.status))
            else:
                current.append(version)
        elif r.status in GOOD:
            current = None
            last_good = version
    return runs


def _changed_files(matrix: Matrix, patch: str, good: str | None, bad: str) -> tuple[str, ...]:
    r = matrix.result(bad, patch)
    if r is None or good is None:
        return ()
    old, new = matrix.blobs.get(good, {}), matrix.blobs.get(bad, {})
    return tuple(f for f in r.files if f in old and f in new and old[f] != new[f])


# --------------------------------------------------------------------------- fan-out


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


# --------------------------------------------------------------------------- --only-changed


def _project_git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return run_git_in(root, *args)
    except StoreError as e:
        raise MatrixError(str(e)) from e


def changed_since(project: Project, ref: str) -> tuple[set[str], set[str]]:
    """(patch names, release labels) changed since ``ref`` in the project's git repository.

    A patch changed when its file differs from ``ref`` (committed or not) or it moved
    in the series; a release when its ``[[version]]`` entry differs or is new.
    """
    root = project.root
    prefix = _project_git(root, "rev-parse", "--show-prefix")
    if prefix.returncode != 0:
        raise MatrixError(f"--only-changed: {root} is not in a git repository")
    if _project_git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise MatrixError(f"--only-changed: no commit '{ref}' in the git repository of {root}")
    pre = prefix.stdout.decode().strip()

    def old(rel: str) -> str | None:
        proc = _project_git(root, "show", f"{ref}:{pre}{rel}")
        return proc.stdout.decode("utf-8", "surrogateescape") if proc.returncode == 0 else None

    diff = _project_git(root, "diff", "--name-only", "--no-renames", "-z", ref, "--", ".")
    if diff.returncode != 0:
        raise MatrixError(f"--only-changed: git diff against '{ref}' failed")
    changed_files = {
        p.decode("utf-8", "surrogateescape")[len(pre) :] for p in diff.stdout.split(b"\0") if p
    }
    untracked = _project_git(
        root, "ls-files", "--others", "--exclude-standard", "-z", "--", "patches"
    )
    changed_files |= {
        p.decode("utf-8", "surrogateescape") for p in untracked.stdout.split(b"\0") if p
    }
    series = project.series
    patches = {e.name for e in series.entries if f"patches/{e.name}" in changed_files}
    old_series_text = old("patches/series")
    if old_series_text is not None and "patches/series" in changed_files:
        from patchkit.core.series import parse_series

        try:
            before = parse_series(old_series_text).entries
        except PatchkitError:
            before = ()
        position = {e.name: (i, e.strip) for i, e in enumerate(before)}
        for i, e in enumerate(series.entries):
            if position.get(e.name) != (i, e.strip):
                patches.add(e.name)
    elif old_series_text is None:
        patches |= set(series.names)
    releases: set[str] = set()
    vf = project.versions
    old_toml = old("upstream-versions.toml")
    try:
        old_vf = parse_versions(old_toml) if old_toml is not None else None
    except PatchkitError:
        old_vf = None
    old_entries = {r.version: r.to_dict() for r in old_vf.releases} if old_vf else {}
    for r in vf.releases:
        if old_entries.get(r.version) != r.to_dict():
            releases.add(r.version)
    return patches, releases


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
