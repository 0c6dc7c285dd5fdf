"""Apply a series to an imported release in memory (no checkout), change by change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from patchkit.core.model import CheckResult, PatchResult
from patchkit.core.patchfile import Patch
from patchkit.git.objects import BlobReader
from patchkit.kinds import Change, ChangeOutcome, DiffChange
from patchkit.kinds.base import skipped_result as _skipped

__all__ = ["SeriesOnTree", "apply_series", "as_changes", "check_tree", "skipped_result"]


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
) -> SeriesOnTree:
    """Apply ``patches`` cumulatively, in order, to ``tree`` and classify each.

    A change that conflicts or misses its target changes nothing; the next changes are
    applied to the files as they were (as `quilt push` would leave them had it been able to
    go on). Changes outside their release range are `skipped`.
    """
    original: dict[str, bytes | None] = {}
    overlay: dict[str, bytes | None] = {}
    modes: dict[str, str] = {}

    def content(path: str) -> bytes | None:
        if path not in overlay:
            original[path] = overlay[path] = reader.read(f"{tree}:{path}")
        return overlay[path]

    def lister(patterns: Sequence[str]) -> Sequence[str]:
        return reader.list_paths(tree, patterns)

    outcomes: list[ChangeOutcome] = []
    for change in as_changes(patches):
        if not change.applies_to(version):
            outcomes.append(ChangeOutcome(result=skipped_result(change, version)))
            continue
        current = {path: content(path) for path in change.targets(lister)}
        outcome = change.apply(current, version=version)
        overlay.update(outcome.contents)
        modes.update(outcome.modes)
        outcomes.append(outcome)
    check = CheckResult(version=version, patches=tuple(o.result for o in outcomes), tree=tree)
    return SeriesOnTree(
        check=check, original=original, files=overlay, modes=modes, outcomes=tuple(outcomes)
    )
