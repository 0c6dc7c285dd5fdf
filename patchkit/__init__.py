"""patchkit: keep a patch series against upstream Docker image releases healthy.

The CLI is a thin shell over this API:

>>> from patchkit import Project                         # doctest: +SKIP
>>> result = Project.open("my-image").check("2.5.24")    # doctest: +SKIP
>>> result.to_dict()["summary"]                          # doctest: +SKIP
"""

from __future__ import annotations

from patchkit._version import __version__  # the one place it is written

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

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
    # Loaded on first use, not on import: every `patchkit.x` module imports this package
    # first, and a warm `patchkit matrix` must not pay for the records or git (docs/matrix.md).
    if name == "Project":
        from patchkit.project import Project

        return Project
    if name == "PatchkitError":
        from patchkit.errors import PatchkitError

        return PatchkitError
    if name in __all__:
        from patchkit.core import model

        return getattr(model, name)
    raise AttributeError(f"module 'patchkit' has no attribute {name!r}")
