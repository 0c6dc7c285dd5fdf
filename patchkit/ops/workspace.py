"""The small workspace every operation takes (never :class:`~patchkit.project.Project`).

:class:`~patchkit.project.Project` implements it for build scripts and the CLI; a test or
another front end may implement it with anything that has these members.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from patchkit.core.series import Series
from patchkit.core.versions import VersionsFile
from patchkit.git.store import Store
from patchkit.kinds import Change

__all__ = ["Workspace"]


class Workspace(Protocol):
    """Versions, series, release trees, the store and the lock of one project."""

    @property
    def root(self) -> Path:
        """The project directory (``upstream-versions.toml`` and ``patches/``)."""
        ...

    @property
    def state_dir(self) -> Path:
        """``.patchkit/``: the store, worktrees, caches, operation state."""
        ...

    @property
    def versions_path(self) -> Path: ...

    @property
    def patches_dir(self) -> Path: ...

    @property
    def series_path(self) -> Path: ...

    @property
    def versions(self) -> VersionsFile:
        """``upstream-versions.toml``, parsed (read anew on each access)."""
        ...

    @property
    def series(self) -> Series:
        """``patches/series``, parsed (read anew on each access)."""
        ...

    def changes(self, series: Series | None = None) -> Sequence[Change]:
        """Every entry of ``series`` (default: the project's), parsed into its kind, in order."""
        ...

    @property
    def store(self) -> Store: ...

    def release_tree(self, version: str) -> str:
        """The git tree id of an imported release (``NotImportedError`` if it is not)."""
        ...

    def imported(self) -> set[str]: ...

    def touched_paths(self) -> set[str]:
        """Every path any change of the series reads or writes (always imported)."""
        ...

    def write_versions_text(self, text: str) -> None:
        """Replace ``upstream-versions.toml`` atomically (refuses text it cannot parse)."""
        ...

    def lock(self) -> AbstractContextManager[object]:
        """The project lock: one writing operation at a time."""
        ...
