"""The compatibility matrix: every release x every change, fast, cached, in parallel, mergeable.

How a matrix is computed (see docs/matrix.md), one module per job:

* :mod:`.compute` -- each release is one *column*: the series applied cumulatively, in
  memory, to the release's blobs read through one long-lived ``git cat-file --batch`` (no
  checkout); cached columns are taken from the cache, the rest planned as units.
* :mod:`.units` -- changes that share paths form a *group*; a group's cells depend only on
  its files. Each (group, blob ids, admitted changes) is a *unit*, computed once through the
  :class:`~patchkit.kinds.Change` protocol and shared by every release with the same blobs;
  units run in this process or, when there are many, across forked processes (``jobs``).
* :mod:`.keys` -- a cell's cache key chains the release label and tree id, the base tree id,
  the engine fingerprint (patchkit version and the deciding source) and the digest of this
  change *and every earlier one* (application is cumulative).
* :mod:`.cache` -- ``.patchkit/cache/matrix/``, one file per release, written atomically.
* :mod:`.risk` -- a cell that applies only with fuzz, or with a hunk moved by at least
  ``LARGE_OFFSET`` lines, is compared with the 3-way line merge of the same change.
* :mod:`.drift` -- a failing patch names the first release where it fails after the last one
  where it applied, and the files whose upstream blobs differ between the two.
* :mod:`.fanout` -- CI: the GitHub job list, per-job results read and merged, ``limit``;
  :mod:`.changed` -- what ``--only-changed REF`` keeps.
"""

from __future__ import annotations

from patchkit.lazy import lazy_names

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    # LARGE_OFFSET and RISK_FLAGS: one copy, in core.model; re-exported while output/ still
    # imports them from here.
    from patchkit.core.model import LARGE_OFFSET, RISK_FLAGS
    from patchkit.errors import MatrixError
    from patchkit.ops.matrix.changed import changed_since
    from patchkit.ops.matrix.codec import matrix_from_dict
    from patchkit.ops.matrix.compute import MatrixStats, compute_matrix
    from patchkit.ops.matrix.drift import attribute_drift
    from patchkit.ops.matrix.fanout import github_matrix, limit, load_results, merge_matrices
    from patchkit.ops.matrix.keys import series_fingerprint

__all__ = [
    "LARGE_OFFSET",
    "RISK_FLAGS",
    "MatrixError",
    "MatrixStats",
    "attribute_drift",
    "changed_since",
    "compute_matrix",
    "github_matrix",
    "limit",
    "load_results",
    "matrix_from_dict",
    "merge_matrices",
    "series_fingerprint",
]

# Where each public name lives: loaded on first use, so that the warm path's
# `patchkit.ops.matrix.snapshot` does not load the engine with its package.
_HOME = {
    "LARGE_OFFSET": "patchkit.core.model",
    "RISK_FLAGS": "patchkit.core.model",
    "MatrixError": "patchkit.errors",
    "changed_since": "patchkit.ops.matrix.changed",
    "matrix_from_dict": "patchkit.ops.matrix.codec",
    "MatrixStats": "patchkit.ops.matrix.compute",
    "compute_matrix": "patchkit.ops.matrix.compute",
    "attribute_drift": "patchkit.ops.matrix.drift",
    "github_matrix": "patchkit.ops.matrix.fanout",
    "limit": "patchkit.ops.matrix.fanout",
    "load_results": "patchkit.ops.matrix.fanout",
    "merge_matrices": "patchkit.ops.matrix.fanout",
    "series_fingerprint": "patchkit.ops.matrix.keys",
}


__getattr__ = lazy_names(__name__, _HOME)
