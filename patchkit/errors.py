"""The one exception tree of patchkit.

Every error a user can cause derives from :class:`PatchkitError` and carries the
process exit code the CLI uses for it. Messages are one line and name the file,
line, layer or source at fault.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import ClassVar

__all__ = [
    "BuildNotReadyError",
    "ConfigError",
    "CorruptLayerError",
    "DigestMismatchError",
    "EditFileError",
    "EditStateError",
    "InvalidReferenceError",
    "LockedError",
    "MatrixError",
    "NotFoundError",
    "NotImportedError",
    "OverlayError",
    "PatchParseError",
    "PatchkitError",
    "RebaseStateError",
    "RebaseStateFileError",
    "RegistryError",
    "SeriesError",
    "SourceError",
    "StoreError",
    "UnknownVersionError",
    "UnsafeLayerError",
    "UsageError",
]


class PatchkitError(Exception):
    """Root of every error patchkit raises on bad input or environment (exit 3)."""

    exit_code: ClassVar[int] = 3


class UsageError(PatchkitError):
    """The command line or API call itself is wrong (exit 2)."""

    exit_code: ClassVar[int] = 2


class ConfigError(PatchkitError):
    """`upstream-versions.toml` is malformed or misses a field."""


class SeriesError(PatchkitError):
    """`patches/series` is malformed or names a patch file that does not exist."""


class PatchParseError(PatchkitError):
    """A patch file cannot be parsed as a unified diff."""


class EditFileError(PatchkitError):
    """An edit file (``NAME.edit.toml``) is malformed: TOML, keys, operations, counts, regexes."""


class OverlayError(PatchkitError):
    """An overlay directory holds a path that would escape the image root, or a symlink."""


class UnknownVersionError(PatchkitError):
    """A version label is not tracked in `upstream-versions.toml`."""


class NotFoundError(PatchkitError):
    """A path asked for is not in the release (or the series deletes it)."""


class NotImportedError(PatchkitError):
    """A tracked release has not been imported into the store yet."""


class SourceError(PatchkitError):
    """A source does not exist, is not an image, or cannot be read."""


class UnsafeLayerError(SourceError):
    """A layer entry would escape the root filesystem or is otherwise hostile."""


class DigestMismatchError(SourceError):
    """A blob, diff_id or recorded release digest does not match."""


class CorruptLayerError(SourceError):
    """A layer is truncated, not a tar stream, or exceeds a documented limit."""


class RegistryError(SourceError):
    """A registry refused or failed a request."""


class InvalidReferenceError(SourceError, ValueError):
    """A ``docker://`` reference does not follow the reference grammar (exit 3)."""


class StoreError(PatchkitError):
    """The git store is unusable or a git command failed."""


class RebaseStateError(PatchkitError):
    """A rebase is (or is not) in progress, or its worktree is not ready to go on."""


class RebaseStateFileError(RebaseStateError):
    """`.patchkit/rebase/state.json` is corrupt, of an unknown schema, or written by an older
    patchkit in a form this one cannot migrate (the message says how to abort it)."""


class BuildNotReadyError(PatchkitError):
    """The series does not apply cleanly to the release: no build context is written (exit 1)."""

    exit_code: ClassVar[int] = 1


class LockedError(PatchkitError):
    """Another patchkit process holds the project lock."""


class MatrixError(PatchkitError):
    """Bad matrix input: result files that do not join, a ref that does not exist, ..."""


class EditStateError(PatchkitError):
    """An edit worktree is (or is not) open, or refuses what was asked (``patchkit edit``)."""
