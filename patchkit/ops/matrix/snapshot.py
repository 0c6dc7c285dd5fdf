"""The whole matrix, kept under a key of everything it depends on: a warm run reads one file.

A matrix is a function of the series' files, ``upstream-versions.toml``, the releases in the
store (their references: a release's commit never changes), the requested releases and the
code that computes and renders it. :func:`inputs_key` hashes those *as bytes*, before any of
them is parsed, and :func:`lookup` reads the one snapshot file made under that key, so that a
run in which nothing changed costs the interpreter, this module and one file: no git process,
no store, no series parse (docs/matrix.md, "Cache"). :mod:`.cache` (cells per release) stays
the cache of a run in which something did change.

Imports ``os`` and ``hashlib`` only (and :mod:`patchkit.git.refs`, which imports ``os``): the
command line's warm path (:mod:`patchkit.cli.warm`) loads it before anything else of patchkit.

The file, ``.patchkit/cache/matrix/whole-<requested releases>.txt``, is lines of text::

    patchkit-matrix-snapshot <FORMAT> <key>
    statuses <the cells' statuses, comma-separated>
    failed <the statuses of FAILED>
    known <every status>
    <JSON: release -> tree id (what the JSON document leaves out of a column)>
    <the matrix as ``patchkit matrix --format json`` prints it into a pipe: one line>
"""

from __future__ import annotations

import hashlib
import os

from patchkit._version import __version__
from patchkit.git.refs import UPSTREAM_PREFIX, read_refs

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from patchkit.core.model import Matrix

__all__ = ["FORMAT", "Snapshot", "cached", "inputs_key", "lookup", "remember"]

FORMAT = 1
_MAGIC = b"patchkit-matrix-snapshot"
VERSIONS_FILE = "upstream-versions.toml"  # patchkit.project's names of the project's files
PATCHES_DIR = "patches"

# The code a matrix document depends on besides the cells' engine (keys.engine_fingerprint):
# the records and their JSON, drift, reading it back, the series reader, tree walking, this.
_SOURCES = (
    "core/model.py",
    "git/refs.py",
    "ops/matrix/codec.py",
    "ops/matrix/drift.py",
    "ops/matrix/snapshot.py",
    "output/formats.py",
    "project.py",
)


class Snapshot:
    """One snapshot file, read: what :func:`lookup` found under the key."""

    __slots__ = ("document", "failed", "known", "statuses", "trees")

    def __init__(
        self,
        *,
        statuses: frozenset[str],
        failed: frozenset[str],
        known: frozenset[str],
        trees: bytes,
        document: bytes,
    ) -> None:
        self.statuses = statuses  # of the cells
        self.failed = failed  # FAILED: what `--fail-on` defaults to
        self.known = known  # every status word
        self.trees = trees  # JSON: release -> tree id
        self.document = document  # the one-line JSON document, without its newline

    def matrix(self) -> Matrix:
        """The :class:`~patchkit.core.model.Matrix` the document describes, trees included."""
        import dataclasses
        import json

        from patchkit.ops.matrix.codec import matrix_from_dict

        matrix = matrix_from_dict(json.loads(self.document))
        trees = json.loads(self.trees)
        checks = tuple(dataclasses.replace(c, tree=trees[c.version]) for c in matrix.checks)
        return dataclasses.replace(matrix, checks=checks)


def _update_file(h: hashlib._Hash, path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    h.update(b"%d\0" % len(data))
    h.update(data)


def _sources(h: hashlib._Hash) -> None:
    from patchkit.ops.matrix.keys import engine_fingerprint

    h.update(engine_fingerprint().encode())
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name in _SOURCES:
        h.update(name.encode() + b"\0")
        try:
            _update_file(h, os.path.join(package, name))
        except OSError:  # an installed package without sources: its version stands for them
            h.update(b"-\0")


def _tree(h: hashlib._Hash, top: str) -> bool:
    """Every entry below ``top``: relative path, kind, mode, bytes. False: a symlink (where
    its target lies is not this function's to follow), so no key."""
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        rel_dir = os.path.relpath(directory, top)
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if os.path.islink(path):
                return False
            h.update(f"{rel_dir}/{name}\0{st.st_mode:o}\0".encode("utf-8", "surrogateescape"))
            if name in files:
                _update_file(h, path)
    return True


def inputs_key(
    *, root: str, store_dir: str, versions: Sequence[str] | None, sources: bool = True
) -> str | None:
    """The digest of everything the matrix of ``versions`` (None: every tracked, imported
    release) in the project at ``root`` depends on, read as bytes; None when the inputs are in
    a form this does not key (a symlink below ``patches/``, a store whose references git keeps
    otherwise than in files): then there is no snapshot. ``sources=False`` leaves out the
    code (for tests that check what the key covers)."""
    refs = read_refs(store_dir, UPSTREAM_PREFIX)
    if refs is None:
        return None
    h = hashlib.sha256(f"patchkit matrix snapshot {FORMAT} {__version__}\0".encode())
    if sources:
        _sources(h)
    h.update("\0".join(["releases", *(versions or ["(all)"])]).encode() + b"\0\0")
    try:
        _update_file(h, os.path.join(root, VERSIONS_FILE))
        if not _tree(h, os.path.join(root, PATCHES_DIR)):
            return None
    except OSError:
        return None
    for name in sorted(refs):
        h.update(f"{name} {refs[name]}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _path(state_dir: str, versions: Sequence[str] | None) -> str:
    which = hashlib.sha256("\0".join(versions or ["(all)"]).encode()).hexdigest()[:16]
    return os.path.join(state_dir, "cache", "matrix", f"whole-{which}.txt")


def lookup(state_dir: str, versions: Sequence[str] | None, key: str) -> Snapshot | None:
    """The snapshot made under ``key``, or None (none yet, another key, unreadable)."""
    try:
        with open(_path(state_dir, versions), "rb") as f:
            data = f.read()
    except OSError:
        return None
    parts = data.split(b"\n", 5)
    if len(parts) != 6 or parts[0] != b"%s %d %s" % (_MAGIC, FORMAT, key.encode()):
        return None
    fields = {}
    for line in parts[1:4]:
        name, _, value = line.partition(b" ")
        fields[name] = frozenset(value.decode("ascii", "replace").split(",")) - {""}
    if set(fields) != {b"statuses", b"failed", b"known"} or not parts[5].endswith(b"\n"):
        return None
    return Snapshot(
        statuses=fields[b"statuses"],
        failed=fields[b"failed"],
        known=fields[b"known"],
        trees=parts[4],
        document=parts[5][:-1],
    )


def remember(
    state_dir: str,
    versions: Sequence[str] | None,
    key: str,
    matrix: Matrix,
    *,
    render: Callable[[Matrix], str],
) -> None:
    """Write the snapshot of ``matrix`` under ``key`` (atomically; a failure costs only speed).

    ``render``: the one-line JSON document of the matrix, as the command line prints it.
    """
    import json
    from pathlib import Path

    from patchkit.core.model import FAILED, PatchStatus
    from patchkit.errors import PatchkitError
    from patchkit.files import atomic_write

    document = render(matrix)
    if "\n" in document:
        return  # not one line: nothing the command line could print as is
    statuses = sorted({cell.status.value for cell in matrix.cells})
    trees = {c.version: c.tree for c in matrix.checks}
    text = "\n".join(
        [
            f"{_MAGIC.decode()} {FORMAT} {key}",
            "statuses " + ",".join(statuses),
            "failed " + ",".join(sorted(s.value for s in FAILED)),
            "known " + ",".join(s.value for s in PatchStatus),
            json.dumps(trees, sort_keys=True, ensure_ascii=False),
            document,
            "",
        ]
    )
    path = Path(_path(state_dir, versions))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not durable: a snapshot a power loss emptied is one that is not found.
        atomic_write(path, text.encode("utf-8", "surrogatepass"), durable=False)
    except (OSError, PatchkitError):
        return  # a snapshot that cannot be written costs the next run its speed, nothing else


def cached(
    *,
    root: str,
    state_dir: str,
    store_dir: str,
    versions: Sequence[str] | None,
    compute: Callable[[], Matrix],
    render: Callable[[Matrix], str],
) -> Matrix:
    """The matrix from its snapshot when nothing changed, else ``compute()``, then remembered.

    Remembered only if the inputs' key is the same after the computation as before it (no
    series file, release or code changed meanwhile): a snapshot never holds a matrix of other
    inputs than its key's."""
    wanted = list(versions) if versions else None
    key = inputs_key(root=root, store_dir=store_dir, versions=wanted)
    if key is not None:
        found = lookup(state_dir, wanted, key)
        if found is not None:
            try:
                return found.matrix()
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # a damaged snapshot: computed anew, and replaced
    matrix = compute()
    if key is not None and inputs_key(root=root, store_dir=store_dir, versions=wanted) == key:
        remember(state_dir, wanted, key, matrix, render=render)
    return matrix
