"""Check a series against imported releases, in memory (no checkout)."""

from __future__ import annotations

from collections.abc import Sequence

from .diff import apply_patch
from .model import CheckResult, HunkResult, PatchResult, PatchStatus
from .patchfile import Patch, patch_applies_to
from .store import BlobReader

__all__ = ["check_tree"]


def check_tree(
    reader: BlobReader,
    *,
    version: str,
    tree: str,
    patches: Sequence[Patch],
) -> CheckResult:
    """Apply ``patches`` cumulatively, in order, to ``tree`` and classify each.

    A patch that conflicts or misses its target changes nothing; the next patches
    are applied to the files as they were (as `quilt push` would leave them had it
    been able to go on). Patches outside their `Upstream-Versions` range are `skipped`.
    """
    overlay: dict[str, bytes | None] = {}

    def content(path: str) -> bytes | None:
        if path not in overlay:
            overlay[path] = reader.read(f"{tree}:{path}")
        return overlay[path]

    results: list[PatchResult] = []
    for patch in patches:
        files = tuple(dict.fromkeys(fp.path for fp in patch.files))
        if not patch_applies_to(patch, version):
            results.append(
                PatchResult(
                    name=patch.name,
                    status=PatchStatus.SKIPPED,
                    files=files,
                    message=f"Upstream-Versions: {patch.upstream_versions} excludes {version}",
                )
            )
            continue
        current = {path: content(path) for path in files}
        applied = apply_patch(current, patch)
        if applied.status not in (PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET):
            overlay.update(applied.contents)
        hunks: tuple[HunkResult, ...] = tuple(applied.hunks)
        results.append(
            PatchResult(
                name=patch.name,
                status=applied.status,
                files=files,
                hunks=hunks,
                message=applied.message,
            )
        )
    return CheckResult(version=version, patches=tuple(results), tree=tree)
