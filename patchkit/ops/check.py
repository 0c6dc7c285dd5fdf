"""Apply a series to an imported release in memory (no checkout), change by change."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from patchkit.core.globs import glob_to_regex
from patchkit.core.model import CheckResult, PatchResult
from patchkit.core.patchfile import Patch
from patchkit.git.objects import BlobReader
from patchkit.kinds import Change, ChangeOutcome, DiffChange
from patchkit.kinds.base import ApplyContext
from patchkit.kinds.base import skipped_result as _skipped

__all__ = [
    "SeriesOnTree",
    "apply_series",
    "as_changes",
    "check_tree",
    "skipped_result",
    "tree_lister",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesOnTree:
    """A series applied in memory to one tree: the report, and the files it leaves."""

    check: CheckResult
    original: dict[str, bytes | None]  # every path the series read, as the release has it
    files: dict[str, bytes | None]  # the same paths after the changes that applied (None: absent)
    modes: dict[str, str]  # git modes the changes set, by path
    outcomes: tuple[ChangeOutcome, ...] = ()


def skipped_result(patch: Patch | Change, version: str) -> PatchResult:
    """The cell of a change whose release range excludes ``version``."""
    paths = patch.paths if isinstance(patch, Patch) else patch.targets(lambda _: ())
    return _skipped(patch.name, paths, patch.upstream_versions, version)


def as_changes(patches: Sequence[Patch | Change]) -> list[Change]:
    """Diffs given as parsed :class:`Patch` records, seen as changes (the API still takes both)."""
    return [DiffChange(patch=p) if isinstance(p, Patch) else p for p in patches]


class _LazyFiles(Mapping[str, "bytes | None"]):
    """Files of a tree, read on first use: only the kinds that compare with base ask."""

    def __init__(self, reader: BlobReader, tree: str, paths: Sequence[str]) -> None:
        self._reader, self._tree, self._paths = reader, tree, tuple(paths)
        self._files: dict[str, bytes | None] | None = None

    def _load(self) -> dict[str, bytes | None]:
        if self._files is None:
            self._files = self._reader.read_many(self._tree, self._paths)
        return self._files

    def __getitem__(self, path: str) -> bytes | None:
        return self._load()[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._paths)


def tree_lister(
    reader: BlobReader, tree: str, files: Mapping[str, bytes | None]
) -> Callable[[Sequence[str]], list[str]]:
    """Lists the paths matching globs on ``tree`` as earlier changes left it: the release's
    files, plus the ones ``files`` created, minus the ones it deleted."""

    def lister(patterns: Sequence[str]) -> list[str]:
        regexes = [glob_to_regex(p) for p in patterns]
        found = set(reader.list_paths(tree, patterns))
        for path, data in files.items():
            if data is None:
                found.discard(path)
            elif any(r.match(path) for r in regexes):
                found.add(path)
        return sorted(found)

    return lister


def check_tree(
    reader: BlobReader,
    *,
    version: str,
    tree: str,
    patches: Sequence[Patch | Change],
) -> CheckResult:
    """The report of :func:`apply_series`."""
    return apply_series(reader, version=version, tree=tree, patches=patches).check


def apply_series(
    reader: BlobReader,
    *,
    version: str,
    tree: str,
    patches: Sequence[Patch | Change],
    base_tree: str | None = None,
) -> SeriesOnTree:
    """Apply ``patches`` cumulatively, in order, to ``tree`` and classify each.

    A change that conflicts or misses its target changes nothing; the next changes are
    applied to the files as they were (as `quilt push` would leave them had it been able to
    go on). Changes outside their release range are `skipped`. ``base_tree`` (the series'
    base release) lets a change say that upstream changed a file since then.
    """
    original: dict[str, bytes | None] = {}
    overlay: dict[str, bytes | None] = {}
    modes: dict[str, str] = {}

    def content(path: str) -> bytes | None:
        if path not in overlay:
            original[path] = overlay[path] = reader.read(f"{tree}:{path}")
        return overlay[path]

    lister = tree_lister(reader, tree, overlay)

    outcomes: list[ChangeOutcome] = []
    for change in as_changes(patches):
        if not change.applies_to(version):
            outcomes.append(ChangeOutcome(result=skipped_result(change, version)))
            continue
        targets = change.targets(lister)
        current = {path: content(path) for path in targets}
        context = ApplyContext(
            base=_LazyFiles(reader, base_tree, targets) if base_tree else None,
            symlinked=reader.symlinked(tree, targets),
        )
        outcome = change.apply(current, version=version, context=context)
        overlay.update(outcome.contents)
        modes.update(outcome.modes)
        outcomes.append(outcome)
    check = CheckResult(version=version, patches=tuple(o.result for o in outcomes), tree=tree)
    return SeriesOnTree(
        check=check, original=original, files=overlay, modes=modes, outcomes=tuple(outcomes)
    )
