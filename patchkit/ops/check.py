"""Check a series against imported releases, in memory (no checkout)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from patchkit.core.apply import apply_patch
from patchkit.core.model import CheckResult, PatchResult, PatchStatus
from patchkit.core.patchfile import Patch, patch_applies_to
from patchkit.git.store import BlobReader

__all__ = ["SeriesOnTree", "apply_series", "check_tree"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesOnTree:
    """A series applied in memory to one tree: the report, and the files it leaves."""

    check: CheckResult
    original: dict[str, bytes | None]  # every path the series read, as the release has it
    files: dict[str, bytes | None]  # the same paths after the patches that applied (None: absent)


def skipped_result(patch: Patch, version: str) -> PatchResult:
    """The cell of a patch whose ``Upstream-Versions:`` range excludes ``version``."""
    return PatchResult(
        name=patch.name,
        status=PatchStatus.SKIPPED,
        files=patch.paths,
        message=f"Upstream-Versions: {patch.upstream_versions} excludes {version}",
    )


def check_tree(
    reader: BlobReader,
    *,
    version: str,
    tree: str,
    patches: Sequence[Patch],
) -> CheckResult:
    """The report of :func:`apply_series`."""
    return apply_series(reader, version=version, tree=tree, patches=patches).check


def apply_series(
    reader: BlobReader,
    *,
    version: str,
    tree: str,
    patches: Sequence[Patch],
) -> SeriesOnTree:
    """Apply ``patches`` cumulatively, in order, to ``tree`` and classify each.

    A patch that conflicts or misses its target changes nothing; the next patches
    are applied to the files as they were (as `quilt push` would leave them had it
    been able to go on). Patches outside their `Upstream-Versions` range are `skipped`.
    """
    original: dict[str, bytes | None] = {}
    overlay: dict[str, bytes | None] = {}

    def content(path: str) -> bytes | None:
        if path not in overlay:
            original[path] = overlay[path] = reader.read(f"{tree}:{path}")
        return overlay[path]

    results: list[PatchResult] = []
    for patch in patches:
        files = patch.paths
        if not patch_applies_to(patch, version):
            results.append(skipped_result(patch, version))
            continue
        current = {path: content(path) for path in files}
        applied = apply_patch(current, patch)
        if applied.status not in (PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET):
            overlay.update(applied.contents)
        results.append(applied.to_patch_result())
    check = CheckResult(version=version, patches=tuple(results), tree=tree)
    return SeriesOnTree(check=check, original=original, files=overlay)
