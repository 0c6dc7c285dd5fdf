"""Groups and units: the matrix's work, each piece done once, here or in worker processes.

A *group* is the changes linked through the paths they touch (``Change.paths``). A cell
depends only on its group's files in the release (a change applies whole or not at all, so
a failure on one file keeps its other files unchanged). A *unit* is one group on one set of
blob ids, with the changes the release's range admits: releases with the same unit share
its cells. Cells are computed through the :class:`~patchkit.kinds.Change` protocol only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from patchkit.core.globs import glob_to_regex
from patchkit.core.model import FAILED, PRESENT, PatchResult, PatchStatus
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.kinds import Change, PathLister
from patchkit.ops.matrix.risk import BaseFiles, risk_flags

__all__ = ["Group", "Unit", "UnitKey", "groups_of", "run_units", "run_units_in_processes"]


@dataclass(frozen=True, slots=True)
class Group:
    """Changes linked through the paths they touch, and those paths."""

    paths: tuple[str, ...]
    indexes: tuple[int, ...]  # the changes, in series order


# What a unit computes: (group index, blob id of each of its paths, which changes the release
# admits). Releases with equal keys share the unit's cells.
UnitKey = tuple[int, tuple[str | None, ...], tuple[bool, ...]]


@dataclass(frozen=True, slots=True)
class Unit:
    key: UnitKey
    version: str  # the first release that needs it: the version its changes are applied for


def groups_of(paths: Sequence[tuple[str, ...]]) -> list[Group]:
    """The groups of changes whose paths (``Change.paths``, by series index) are ``paths``."""
    parent: dict[str, str] = {}

    def find(path: str) -> str:
        while parent[path] != path:
            parent[path] = parent[parent[path]]
            path = parent[path]
        return path

    for own in paths:
        for path in own:
            parent.setdefault(path, path)
            root, other = find(own[0]), find(path)
            if root != other:
                parent[other] = root
    groups: dict[str, list[int]] = {}
    alone: list[list[int]] = []  # a change that touches no file
    for i, own in enumerate(paths):
        if own:
            groups.setdefault(find(own[0]), []).append(i)
        else:
            alone.append([i])
    return [
        Group(tuple(sorted({p for i in idx for p in paths[i]})), tuple(idx))
        for idx in [*groups.values(), *alone]
    ]


def _lister(files: Mapping[str, bytes | None]) -> PathLister:
    """Globs resolved among the group's files present in the release (a diff never asks)."""

    def lister(patterns: Sequence[str]) -> Sequence[str]:
        regexes = [glob_to_regex(p) for p in patterns]
        return sorted(
            p for p, data in files.items() if data is not None and any(r.match(p) for r in regexes)
        )

    return lister


def base_files(
    reader: BlobReader,
    label: str,
    tree: str,
    changes: Sequence[Change],
    group: Group,
    blobs: dict[str, bytes | None],
) -> BaseFiles:
    """One group on the base release (the others cannot change its files), for the 3-way flag.

    ``blobs``: blobs read already, by id (in a cold run, the base release's among them); the
    others are read and added: one `cat-file` round trip each costs more than the lookup.
    """
    oids = reader.blob_ids([(tree, p) for p in group.paths])
    missing = sorted({oid for oid in oids if oid and oid not in blobs})
    if missing:
        blobs.update(reader.read_objects(missing))
    overlay = {p: (blobs[oid] if oid else None) for p, oid in zip(group.paths, oids, strict=True)}
    lister = _lister(overlay)
    out = BaseFiles()
    for i in group.indexes:
        change = changes[i]
        current = {p: overlay[p] for p in change.targets(lister)}
        out.before[i] = current
        if not change.applies_to(label):
            out.after[i] = None
            continue
        applied = change.apply(current, version=label)
        if applied.status in PRESENT:
            overlay.update(applied.contents)
            out.after[i] = {p: applied.contents.get(p, current[p]) for p in current}
        else:
            out.after[i] = None
    return out


def run_unit(
    group: Group,
    changes: Sequence[Change],
    applies: Sequence[bool],
    version: str,
    files: Mapping[str, bytes | None],
    base: Callable[[], BaseFiles | None],
) -> list[PatchResult | None]:
    """The group's cells (None: excluded by its release range), applied cumulatively."""
    overlay = dict(files)
    lister = _lister(overlay)
    out: list[PatchResult | None] = []
    for i, wanted in zip(group.indexes, applies, strict=True):
        if not wanted:
            out.append(None)
            continue
        change = changes[i]
        current = {path: overlay[path] for path in change.targets(lister)}
        applied = change.apply(current, version=version)
        if applied.status not in FAILED:
            overlay.update(applied.contents)
        r = applied.result
        if r.status in (PatchStatus.FUZZ, PatchStatus.OFFSET):
            flags = risk_flags(r, i, current, applied.contents, base())
            if flags:
                r = replace(r, flags=flags)
        out.append(r)
    return out


def run_units(
    reader: BlobReader,
    groups: Sequence[Group],
    changes: Sequence[Change],
    units: Sequence[Unit],
    base_ref: tuple[str, str] | None,
) -> list[list[PatchResult | None]]:
    """Every unit's cells, in this process, blobs read through ``reader``."""
    wanted = sorted({oid for u in units for oid in u.key[1] if oid})
    blobs = reader.read_objects(wanted)  # every unit's, in one pipelined request
    memo: dict[int, BaseFiles] = {}  # per group, made the first time a flag needs it

    def base_of(group_index: int) -> Callable[[], BaseFiles | None]:
        def base() -> BaseFiles | None:
            if base_ref is None:
                return None
            if group_index not in memo:
                group = groups[group_index]
                memo[group_index] = base_files(reader, *base_ref, changes, group, blobs)
            return memo[group_index]

        return base

    out = []
    for unit in units:
        group_index, oids, applies = unit.key
        group = groups[group_index]
        files = {p: (blobs[oid] if oid else None) for p, oid in zip(group.paths, oids, strict=True)}
        out.append(run_unit(group, changes, applies, unit.version, files, base_of(group_index)))
    return out


def run_units_in_processes(
    store: Store,
    groups: Sequence[Group],
    changes: Sequence[Change],
    units: Sequence[Unit],
    base_ref: tuple[str, str] | None,
    workers: int,
) -> list[list[PatchResult | None]]:
    """:func:`run_units` spread over ``workers`` forked processes, each with its own reader."""
    import concurrent.futures
    import multiprocessing

    shares = [units[i::workers] for i in range(workers)]
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [
            pool.submit(_worker, str(store.path), groups, changes, share, base_ref)
            for share in shares
        ]
        parts = [f.result() for f in futures]
    done: list[list[PatchResult | None]] = [[] for _ in units]
    for w, part in enumerate(parts):
        for k, res in enumerate(part):
            done[w + k * workers] = res
    return done


def _worker(
    store_path: str,
    groups: Sequence[Group],
    changes: Sequence[Change],
    units: Sequence[Unit],
    base_ref: tuple[str, str] | None,
) -> list[list[PatchResult | None]]:
    """Run some units in a worker process, with its own `git cat-file --batch`."""
    with Store(Path(store_path)).blob_reader() as reader:
        return run_units(reader, groups, changes, units, base_ref)
