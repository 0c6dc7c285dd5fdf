"""Diffs: a unified diff with a free-text header (``name.patch``), the first kind of change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from patchkit.core.apply import apply_patch
from patchkit.core.patchfile import Patch, parse_patch, patch_applies_to, render_patch
from patchkit.kinds.base import (
    NO_CONTEXT,
    ApplyContext,
    ChangeKind,
    ChangeOutcome,
    PathLister,
    skipped_result,
)

__all__ = ["DiffChange", "load_diff"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffChange:
    """A :class:`~patchkit.core.patchfile.Patch` seen through the :class:`Change` protocol."""

    patch: Patch
    data: bytes = b""  # the file's bytes as read (render() returns them unchanged)

    @property
    def name(self) -> str:
        return self.patch.name

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind.DIFF

    @property
    def strip(self) -> int:
        return self.patch.strip

    @property
    def upstream_versions(self) -> str | None:
        return self.patch.upstream_versions

    @property
    def paths(self) -> tuple[str, ...]:
        paths: dict[str, None] = {}
        for fp in self.patch.files:
            paths[fp.path] = None
            if fp.old_path:
                paths[fp.old_path] = None
        return tuple(paths)

    @property
    def patch_header(self) -> str:
        return self.patch.header

    def applies_to(self, version: str) -> bool:
        return patch_applies_to(self.patch, version)

    def targets(self, lister: PathLister) -> tuple[str, ...]:
        return self.patch.paths

    def apply(
        self,
        files: Mapping[str, bytes | None],
        *,
        version: str,
        context: ApplyContext = NO_CONTEXT,
    ) -> ChangeOutcome:
        if not self.applies_to(version):
            return ChangeOutcome(
                result=skipped_result(self.name, self.patch.paths, self.upstream_versions, version)
            )
        applied = apply_patch(files, self.patch)
        modes = {f.path: f.mode for f in applied.files if f.mode} if applied.contents else {}
        return ChangeOutcome(
            result=applied.to_patch_result(), contents=dict(applied.contents), modes=modes
        )

    def render(self) -> bytes:
        return self.data or render_patch(self.patch)


def load_diff(data: bytes, *, name: str, strip: int = 1) -> DiffChange:
    """Parse a diff file (``PatchParseError`` names the file and line)."""
    return DiffChange(patch=parse_patch(data, name=name, strip=strip), data=data)
