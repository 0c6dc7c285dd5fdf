"""The whole matrix, kept under a key of everything it depends on: a warm run reads one file.

A matrix is a function of the series' files, ``upstream-versions.toml`` (each release's
``platforms`` and ``tag-digest`` included), the releases in the store (their references, a
multi-platform release's ``<version>@<platform>`` ones too: a release's commit never changes),
the requested releases and the code that computes and renders it. :func:`inputs_key` hashes
those *as bytes*, before any of them is parsed, and :func:`lookup` reads the one snapshot file
made under that key, so that a run in which nothing changed costs the interpreter, this module
and one file: no git process, no store, no series parse (docs/matrix.md, "Cache").
:mod:`.cache` (cells per release) stays the cache of a run in which something did change.

Imports ``os`` and ``hashlib`` only (and :mod:`patchkit.git.refs`, which imports ``os``): the
command line's warm path (:mod:`patchkit.cli.quick`) loads it before anything else of patchkit.

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
from stat import S_ISDIR, S_ISLNK

from patchkit._version import __version__
from patchkit.git.refs import UPSTREAM_PREFIX, read_refs

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from patchkit.core.model import Matrix

__all__ = [
    "FORMAT",
    "Inputs",
    "Snapshot",
    "cached",
    "inputs_key",
    "lookup",
    "read_inputs",
    "remember",
]

FORMAT = 1
_MAGIC = b"patchkit-matrix-snapshot"
VERSIONS_FILE = "upstream-versions.toml"  # patchkit.project's names of the project's files
PATCHES_DIR = "patches"

# The code a matrix document depends on besides the cells' engine (keys.engine_fingerprint):
# the records and their JSON, drift, reading it back, the series reader, tree walking, which
# platforms of a release get a column (ops/platforms.matrix_labels), this.
_SOURCES = (
    "core/model.py",
    "git/refs.py",
    "ops/matrix/codec.py",
    "ops/matrix/drift.py",
    "ops/matrix/snapshot.py",
    "ops/platforms.py",
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


# A file as a key read it: path, inode, size, modification and change times.
_Seen = tuple[str, int, int, int, int]


def _seen(path: str, st: os.stat_result) -> _Seen:
    return (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Reading:
    """A key being made: the digest so far, and every file and directory of the project it
    read as it was then (to tell, after a computation, whether any of them changed)."""

    def __init__(self, head: str) -> None:
        self.h = hashlib.sha256(head.encode())
        self.seen: list[_Seen] = []

    def file(self, path: str, *, record: bool = True) -> None:
        with open(path, "rb") as f:
            data = f.read()
            if record:
                self.seen.append(_seen(path, os.fstat(f.fileno())))
        self.h.update(b"%d\0" % len(data))
        self.h.update(data)

    def sources(self) -> None:
        from patchkit.ops.matrix.keys import engine_fingerprint

        self.h.update(engine_fingerprint().encode())
        package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for name in _SOURCES:
            self.h.update(name.encode() + b"\0")
            try:
                self.file(os.path.join(package, name), record=False)
            except OSError:  # an installed package without sources: its version stands for them
                self.h.update(b"-\0")

    def tree(self, top: str) -> bool:
        """Every entry below ``top``: relative path, mode, bytes. False: a symlink (where its
        target lies is not this function's to follow), so no key."""
        self.seen.append(_seen(top, os.lstat(top)))
        for directory, dirs, files in os.walk(top):
            dirs.sort()
            rel_dir = os.path.relpath(directory, top)
            for name in sorted(dirs + files):
                path = os.path.join(directory, name)
                st = os.lstat(path)
                if S_ISLNK(st.st_mode):
                    return False
                self.h.update(
                    f"{rel_dir}/{name}\0{st.st_mode:o}\0".encode("utf-8", "surrogateescape")
                )
                if S_ISDIR(st.st_mode):
                    self.seen.append(_seen(path, st))  # an entry added or removed below
                else:
                    self.file(path)
        return True


class Inputs:
    """The key of a matrix's inputs, and a cheap way to tell that they did not change since."""

    __slots__ = ("_refs", "_seen", "_store_dir", "key")

    def __init__(self, key: str, *, store_dir: str, refs: dict[str, str], seen: list[_Seen]):
        self.key = key
        self._store_dir = store_dir
        self._refs = refs
        self._seen = seen

    def unchanged(self) -> bool:
        """Whether every file and directory the key read is as it was then (same inode, size,
        times: a file rewritten or replaced, an entry added or removed are changes), and the
        releases too."""
        try:
            if any(_seen(p[0], os.lstat(p[0])) != p for p in self._seen):
                return False
        except OSError:
            return False
        return read_refs(self._store_dir, UPSTREAM_PREFIX) == self._refs


# The last inputs read in this process, by (root, store, versions): the command line's
# quick path reads them, then the library's Project.matrix needs the same key.
_last: dict[tuple[str, str, tuple[str, ...]], Inputs] = {}


def read_inputs(
    *, root: str, store_dir: str, versions: Sequence[str] | None, sources: bool = True
) -> Inputs | None:
    """The key of everything the matrix of ``versions`` (None: every tracked, imported
    release) in the project at ``root`` depends on, read as bytes: the code, the requested
    releases, ``upstream-versions.toml``, every file below ``patches/``, the releases'
    references in the store. None when the inputs are in a form this does not key (a symlink
    below ``patches/``, a store whose references git keeps otherwise than in files): then
    there is no snapshot. ``sources=False`` leaves out the code (tests of what it covers)."""
    which = (root, store_dir, tuple(versions or ()))
    last = _last.get(which)
    if last is not None and sources and last.unchanged():
        return last
    refs = read_refs(store_dir, UPSTREAM_PREFIX)
    if refs is None:
        return None
    reading = _Reading(f"patchkit matrix snapshot {FORMAT} {__version__}\0")
    if sources:
        reading.sources()
    reading.h.update("\0".join(["releases", *(versions or ["(all)"])]).encode() + b"\0\0")
    try:
        reading.file(os.path.join(root, VERSIONS_FILE))
        if not reading.tree(os.path.join(root, PATCHES_DIR)):
            return None
    except OSError:
        return None
    for name in sorted(refs):
        reading.h.update(f"{name} {refs[name]}\n".encode("utf-8", "surrogateescape"))
    inputs = Inputs(reading.h.hexdigest(), store_dir=store_dir, refs=refs, seen=reading.seen)
    if sources:
        _last[which] = inputs
    return inputs


def inputs_key(
    *, root: str, store_dir: str, versions: Sequence[str] | None, sources: bool = True
) -> str | None:
    """:func:`read_inputs`' key (None: no key for these inputs)."""
    inputs = read_inputs(root=root, store_dir=store_dir, versions=versions, sources=sources)
    return None if inputs is None else inputs.key


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

    Remembered only if the inputs are unchanged after the computation (no series file or
    release changed meanwhile): a snapshot holds the matrix of its key's inputs."""
    wanted = list(versions) if versions else None
    inputs = read_inputs(root=root, store_dir=store_dir, versions=wanted)
    if inputs is not None:
        found = lookup(state_dir, wanted, inputs.key)
        if found is not None:
            try:
                return found.matrix()
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # a damaged snapshot: computed anew, and replaced
    matrix = compute()
    if inputs is not None and inputs.unchanged():
        remember(state_dir, wanted, inputs.key, matrix, render=render)
    return matrix
