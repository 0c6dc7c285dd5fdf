"""Groups and units: the matrix's work, each piece done once, here or in worker processes.

A *group* is the changes of one release linked through the paths they target there
(``Change.targets``: a diff's paths, an edit's globs resolved on the release, an overlay's
files). A cell depends only on its group's files in the release (a change applies whole or
not at all, so a failure on one file keeps its other files unchanged). A *unit* is one group
on one set of blob ids, with the changes the release's range admits and the paths that are
symlinks there (the apply context): releases with the same unit share its cells. Cells are computed through the
:class:`~patchkit.kinds.Change` protocol only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from patchkit.core.globs import glob_to_regex
from patchkit.core.model import FAILED, PRESENT, PatchResult, PatchStatus
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.kinds import Change, PathLister
from patchkit.kinds.base import ApplyContext
from patchkit.ops.matrix.risk import BaseFiles, risk_flags

__all__ = ["Group", "Unit", "UnitKey", "groups_of", "run_units", "run_units_in_processes"]


@dataclass(frozen=True, slots=True)
class Group:
    """Changes linked through the paths they target on a release, and those paths."""

    paths: tuple[str, ...]
    indexes: tuple[int, ...]  # the changes, in series order


# What a unit computes: (group, blob id of each of its paths, which changes the release admits,
# which of its paths are or lie below a symlink there). Releases with equal keys share the
# unit's cells. The apply context's base files are the same for every release (on the base
# release itself they are its own files, which is what comparing with them finds there).
UnitKey = tuple[Group, tuple[str | None, ...], tuple[bool, ...], frozenset[str]]


@dataclass(frozen=True, slots=True)
class Unit:
    key: UnitKey
    version: str  # the first release that needs it: the version its changes are applied for


def groups_of(paths: Sequence[tuple[str, ...]]) -> list[Group]:
    """The groups of changes whose targets (by series index) are ``paths``."""
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


class _Lazy(Mapping[str, "bytes | None"]):
    """Files read on first use: only the kinds that compare with the base release ask."""

    def __init__(
        self, paths: Sequence[str], load: Callable[[Sequence[str]], dict[str, bytes | None]]
    ) -> None:
        self._paths, self._load = paths, load
        self._files: dict[str, bytes | None] | None = None

    def _get(self) -> dict[str, bytes | None]:
        if self._files is None:
            self._files = self._load(self._paths)
        return self._files

    def __getitem__(self, path: str) -> bytes | None:
        return self._get()[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._paths)


class _Blobs:
    """Blobs by id, read through one reader and kept: units and the base release share them."""

    def __init__(self, reader: BlobReader, oids: Sequence[str]) -> None:
        self.reader = reader
        self.blobs = reader.read_objects(sorted(set(oids)))  # one pipelined request

    def on_tree(self, tree: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        """``paths`` as ``tree`` has them (None: absent); one `cat-file` round trip at most."""
        oids = self.reader.blob_ids([(tree, p) for p in paths])
        missing = sorted({oid for oid in oids if oid and oid not in self.blobs})
        if missing:
            self.blobs.update(self.reader.read_objects(missing))
        return {p: (self.blobs[oid] if oid else None) for p, oid in zip(paths, oids, strict=True)}


def base_files(
    blobs: _Blobs, label: str, tree: str, changes: Sequence[Change], group: Group
) -> BaseFiles:
    """One group on the base release (the others cannot change its files), for the 3-way flag."""
    overlay = blobs.on_tree(tree, group.paths)
    lister = _lister(overlay)
    out = BaseFiles()
    for i in group.indexes:
        change = changes[i]
        current = {p: overlay.get(p) for p in change.targets(lister)}
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
    unit: Unit,
    changes: Sequence[Change],
    files: Mapping[str, bytes | None],
    on_base: Callable[[Sequence[str]], dict[str, bytes | None]] | None,
    base: Callable[[], BaseFiles | None],
) -> list[PatchResult | None]:
    """The group's cells (None: excluded by its release range), applied cumulatively.

    ``on_base``: reads paths on the base release, for the apply context (None: the base
    release is not imported); ``base``: the 3-way inputs, made on demand.
    """
    group, _, applies, symlinked = unit.key
    overlay = dict(files)
    lister = _lister(overlay)
    out: list[PatchResult | None] = []
    for i, wanted in zip(group.indexes, applies, strict=True):
        if not wanted:
            out.append(None)
            continue
        change = changes[i]
        targets = change.targets(lister)
        current = {path: overlay.get(path) for path in targets}
        context = ApplyContext(
            base=None if on_base is None else _Lazy(targets, on_base),
            symlinked=symlinked.intersection(targets) if symlinked else symlinked,
        )
        applied = change.apply(current, version=unit.version, context=context)
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
    changes: Sequence[Change],
    units: Sequence[Unit],
    base_ref: tuple[str, str] | None,
) -> list[list[PatchResult | None]]:
    """Every unit's cells, in this process, blobs read through ``reader``."""
    blobs = _Blobs(reader, [oid for u in units for oid in u.key[1] if oid])
    memo: dict[Group, BaseFiles] = {}  # per group, made the first time a flag needs it

    def base_of(group: Group) -> Callable[[], BaseFiles | None]:
        def base() -> BaseFiles | None:
            if base_ref is None:
                return None
            if group not in memo:
                memo[group] = base_files(blobs, *base_ref, changes, group)
            return memo[group]

        return base

    on_base = None if base_ref is None else partial(blobs.on_tree, base_ref[1])
    out = []
    for unit in units:
        group, oids, _, _ = unit.key
        files = {
            p: (blobs.blobs[oid] if oid else None) for p, oid in zip(group.paths, oids, strict=True)
        }
        out.append(run_unit(unit, changes, files, on_base, base_of(group)))
    return out


def run_units_in_processes(
    store: Store,
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
            pool.submit(_worker, str(store.path), changes, share, base_ref) for share in shares
        ]
        parts = [f.result() for f in futures]
    done: list[list[PatchResult | None]] = [[] for _ in units]
    for w, part in enumerate(parts):
        for k, res in enumerate(part):
            done[w + k * workers] = res
    return done


def _worker(
    store_path: str,
    changes: Sequence[Change],
    units: Sequence[Unit],
    base_ref: tuple[str, str] | None,
) -> list[list[PatchResult | None]]:
    """Run some units in a worker process, with its own `git cat-file --batch`."""
    with Store(Path(store_path)).blob_reader() as reader:
        return run_units(reader, changes, units, base_ref)
