"""The one protocol every kind of change implements (diff today; edit and overlay next).

Operations (check, matrix, rebase, bisect, build, audit) see a series as a sequence of
:class:`Change` and never ask which kind one is: they ask for its targets, apply it to the
files it targets, and render it back to the bytes of its file in ``patches/``. A new kind is
one module in this package plus one line in :func:`patchkit.kinds.kind_of`.

Pure: a kind reads files through the mapping it is given and returns values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from patchkit.core.model import ChangeKind, PatchResult, PatchStatus

__all__ = [
    "NO_CONTEXT",
    "ApplyContext",
    "Change",
    "ChangeKind",
    "ChangeOutcome",
    "PathLister",
    "skipped_result",
]


# Lists the paths of the tree a change is applied to that match image-root-relative globs.
# Diffs never call it (their targets are exact paths); edits resolve their `files` globs with it.
PathLister = Callable[[Sequence[str]], Sequence[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyContext:
    """What an operation knows of the tree beyond the targets' contents (all optional).

    ``base`` holds the targets' contents on the series' base release, so that a kind can say
    that upstream changed a file it replaces since then (overlays flag ``upstream-changed``).
    ``symlinked`` names the targets that are, or lie below, a symlink on this release: a kind
    that writes whole files refuses to write through one.
    """

    base: Mapping[str, bytes | None] | None = None
    symlinked: frozenset[str] = frozenset()


NO_CONTEXT = ApplyContext()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeOutcome:
    """One change applied to the files it targets.

    ``contents`` holds the new content of every file it changed (``None``: deleted) and is
    empty when the change changed nothing (conflict, missing target, skipped): the next change
    of the series then sees the files unchanged. ``modes`` gives the git mode of files whose
    mode it sets (``"100755"``, ``"100644"``, ``"120000"``).
    """

    result: PatchResult
    contents: dict[str, bytes | None] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> PatchStatus:
        return self.result.status


@runtime_checkable
class Change(Protocol):
    """One entry of the series, of any kind."""

    @property
    def name(self) -> str:
        """The series line's name (``x.patch``, ``x.edit.toml``, ``dir/``)."""
        ...

    @property
    def kind(self) -> ChangeKind: ...

    @property
    def upstream_versions(self) -> str | None:
        """The release range it is meant for (``Upstream-Versions:`` / ``upstream-versions``)."""
        ...

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path (or glob, for kinds that take globs) it may read or write, in order."""
        ...

    @property
    def patch_header(self) -> str:
        """The free-text header a diff of this change carries (DEP-3 fields for the kinds
        whose header is TOML): what ``materialize --replace`` writes above the diff."""
        ...

    def applies_to(self, version: str) -> bool:
        """Whether ``version`` lies in its release range (outside it: ``skipped``)."""
        ...

    def targets(self, lister: PathLister) -> tuple[str, ...]:
        """The paths it reads or writes on one tree (globs resolved through ``lister``)."""
        ...

    def apply(
        self,
        files: Mapping[str, bytes | None],
        *,
        version: str,
        context: ApplyContext = NO_CONTEXT,
    ) -> ChangeOutcome:
        """Apply to ``files`` (each of :meth:`targets`; ``None``: absent) and classify."""
        ...

    def render(self) -> bytes:
        """The bytes of its file in ``patches/`` (a directory kind: its listing)."""
        ...


def skipped_result(
    change_name: str, paths: tuple[str, ...], range_: str | None, version: str
) -> PatchResult:
    """The result of a change whose release range excludes ``version``."""
    return PatchResult(
        name=change_name,
        status=PatchStatus.SKIPPED,
        files=paths,
        message=f"Upstream-Versions: {range_} excludes {version}",
    )
