"""patchkit: keep a patch series against upstream Docker image releases healthy.

The CLI is a thin shell over this API:

>>> from patchkit import Project                         # doctest: +SKIP
>>> result = Project.open("my-image").check("2.5.24")    # doctest: +SKIP
>>> result.to_dict()["summary"]                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patchkit._version import __version__  # the one place it is written
from patchkit.core.model import (
    CheckResult,
    HunkResult,
    ImportResult,
    Matrix,
    MatrixCell,
    PatchResult,
    PatchStatus,
    RebasePatchResult,
    RebaseResult,
    RebaseState,
)
from patchkit.errors import PatchkitError

if TYPE_CHECKING:
    from patchkit.project import Project


__all__ = [
    "CheckResult",
    "HunkResult",
    "ImportResult",
    "Matrix",
    "MatrixCell",
    "PatchResult",
    "PatchStatus",
    "PatchkitError",
    "Project",
    "RebasePatchResult",
    "RebaseResult",
    "RebaseState",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Project pulls in git and the patch parser: load it on first use, not on import.
    if name == "Project":
        from patchkit.project import Project

        return Project
    raise AttributeError(f"module 'patchkit' has no attribute {name!r}")
