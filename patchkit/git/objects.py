"""Reading git objects: blob ids, tree entries and the long-lived `cat-file --batch` reader."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from patchkit.core.objects import MODE_EXEC, MODE_FILE, MODE_LINK, TreeEntry, git_blob_id
from patchkit.errors import StoreError

__all__ = ["MODE_EXEC", "MODE_FILE", "MODE_LINK", "BlobReader", "TreeEntry", "git_blob_id"]


class BlobReader:
    """Reads many blobs through one long-lived `git cat-file --batch`."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._in = proc.stdin
        self._outp = proc.stdout
        self._trees: dict[str, dict[str, tuple[bytes, str]] | None] = {}  # tree id -> entries
        self._paths: dict[tuple[str, str], list[str]] = {}  # (tree, dir) -> blob paths below
        self._matches: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # list_paths answers

    def read(self, spec: str) -> bytes | None:
        """Content of ``spec`` (`<rev>:<path>` or an object id), or None if absent.

        Directories and submodules count as absent: only blobs are content.
        """
        if "\n" in spec:
            return None
        return self._read_specs([spec])[0]

    def read_many(self, tree: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        """Blobs of ``paths`` in ``tree``, pipelined: many requests per round trip, not one."""
        out: dict[str, bytes | None] = {p: None for p in paths if "\n" in p}
        wanted = [p for p in paths if "\n" not in p]
        out.update(zip(wanted, self._read_specs([f"{tree}:{p}" for p in wanted]), strict=True))
        return out

    def read_objects(self, oids: Sequence[str]) -> dict[str, bytes | None]:
        """Blobs by object id, pipelined like ``read_many``; None for a missing one."""
        return dict(zip(oids, self._read_specs(list(oids)), strict=True))

    def blob_ids(self, specs: Sequence[tuple[str, str]]) -> list[str | None]:
        """Object ids of (tree, path) pairs; None where absent or not a blob (a directory, a submodule).

        Trees are read and parsed here, each once per reader: releases share most subtrees,
        and git's own `tree:path` lookup re-reads every tree on the way for every path.
        """
        return [
            entry[1] if entry is not None and entry[0] in _BLOB_MODES else None
            for entry, _ in self._resolve(specs)
        ]

    def modes(self, tree: str, paths: Sequence[str]) -> dict[str, str | None]:
        """The git mode of each of ``paths`` in ``tree`` (``"100644"``, ``"100755"``,
        ``"120000"``), None where absent or not a blob."""
        found = self._resolve([(tree, p) for p in paths])
        return {
            p: entry[0].decode() if entry is not None and entry[0] in _BLOB_MODES else None
            for p, (entry, _) in zip(paths, found, strict=True)
        }

    def symlinked(self, tree: str, paths: Sequence[str]) -> frozenset[str]:
        """Those of ``paths`` that are, or lie below, a symlink in ``tree`` (a file written
        there would go through the link)."""
        found = self._resolve([(tree, p) for p in paths])
        return frozenset(p for p, (_, link) in zip(paths, found, strict=True) if link)

    def _resolve(
        self, specs: Sequence[tuple[str, str]]
    ) -> list[tuple[tuple[bytes, str] | None, bool]]:
        """For each (tree, path): its tree entry (mode, object id) or None, and whether a
        symlink stands on the way (the path itself or a directory above it)."""
        out: list[tuple[tuple[bytes, str] | None, bool]] = [(None, False)] * len(specs)
        pending = [
            (k, tree, path.split("/"))
            for k, (tree, path) in enumerate(specs)
            if path and "\n" not in path
        ]
        while pending:
            self._load_trees({tree for _, tree, _ in pending})
            deeper = []
            for k, tree, parts in pending:
                entry = (self._trees.get(tree) or {}).get(parts[0])
                if entry is None:
                    continue
                mode, oid = entry
                if len(parts) == 1:
                    out[k] = (entry, mode == b"120000")
                elif mode == b"40000":
                    deeper.append((k, oid, parts[1:]))
                elif mode == b"120000":
                    out[k] = (None, True)
            pending = deeper
        return out

    def list_paths(self, tree: str, patterns: Sequence[str]) -> list[str]:
        """Paths of the blobs (files and symlinks) in ``tree`` that match any of ``patterns``
        (globs, image-root relative), sorted. Only the directories a glob can reach are
        walked (``opt/haraka-{smtp,submission}/config/*``: two), each tree object read once
        per reader."""
        from patchkit.core.globs import glob_dirs, glob_to_regex

        key = (tree, tuple(patterns))
        cached = self._matches.get(key)
        if cached is not None:
            return cached
        found: set[str] = set()
        for pattern in patterns:
            regex = glob_to_regex(pattern)
            for directory in glob_dirs(pattern):
                found.update(p for p in self._paths_below(tree, directory) if regex.match(p))
        out = sorted(found)
        self._matches[key] = out
        return out

    def _paths_below(self, tree: str, directory: str) -> list[str]:
        """Every blob path under ``directory`` (``""``: the root; else ending in ``/``)."""
        cached = self._paths.get((tree, directory))
        if cached is not None:
            return cached
        start = tree
        if directory:
            entry, _ = self._resolve([(tree, directory.rstrip("/"))])[0]
            if entry is None or entry[0] != b"40000":
                self._paths[(tree, directory)] = []
                return []
            start = entry[1]
        out: list[str] = []
        pending = [(start, directory)]
        while pending:
            self._load_trees({t for t, _ in pending})
            deeper = []
            for t, prefix in pending:
                for name, (mode, oid) in (self._trees.get(t) or {}).items():
                    if mode == b"40000":
                        deeper.append((oid, f"{prefix}{name}/"))
                    elif mode in _BLOB_MODES:
                        out.append(prefix + name)
            pending = deeper
        out.sort()
        self._paths[(tree, directory)] = out
        return out

    def trees_of(self, commits: Sequence[str]) -> list[str | None]:
        """The root tree id of each of ``commits`` (None: not a commit), pipelined."""
        return [
            _commit_tree(raw[1]) if raw is not None and raw[0] == b"commit" else None
            for raw in self._read_raw(list(commits))
        ]

    def _load_trees(self, ids: set[str]) -> None:
        wanted = sorted(t for t in ids if t not in self._trees)
        for tree, raw in zip(wanted, self._read_raw(wanted), strict=True):
            if raw is not None and raw[0] == b"commit":  # a commit stands for its tree
                root = _commit_tree(raw[1])
                self._load_trees({root})
                self._trees[tree] = self._trees[root]
                continue
            self._trees[tree] = (
                _parse_tree(raw[1]) if raw is not None and raw[0] == b"tree" else None
            )

    def _read_specs(self, specs: Sequence[str]) -> list[bytes | None]:
        return [
            raw[1] if raw is not None and raw[0] == b"blob" else None
            for raw in self._read_raw(specs)
        ]

    def _read_raw(self, specs: Sequence[str]) -> list[tuple[bytes, bytes] | None]:
        """(type, content) of each spec, pipelined; None for a missing one."""
        out: list[tuple[bytes, bytes] | None] = []
        step = 256  # requests in flight stay far below the pipe buffer: no deadlock
        for i in range(0, len(specs), step):
            chunk = specs[i : i + step]
            self._in.write(b"".join(s.encode("utf-8", "surrogateescape") + b"\n" for s in chunk))
            self._in.flush()
            for _ in chunk:
                line = self._outp.readline()
                if not line:
                    raise StoreError("git cat-file ended unexpectedly")
                if line.endswith((b" missing\n", b" ambiguous\n")):  # the spec may hold spaces
                    out.append(None)
                    continue
                header = line.split()
                if len(header) != 3:
                    raise StoreError(f"unexpected git cat-file answer: {line!r}")
                data = self._outp.read(int(header[2]))
                self._outp.read(1)
                out.append((header[1], data))
        return out


_BLOB_MODES = frozenset({b"100644", b"100755", b"120000"})


def _commit_tree(data: bytes) -> str:
    """The tree id of a raw commit object (its first line: ``tree <id>``)."""
    return data.split(b"\n", 1)[0].split()[1].decode()


# One entry of a raw tree object: "<mode> <name>\0" and the 20 bytes of the object id.
_TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)


def _parse_tree(data: bytes) -> dict[str, tuple[bytes, str]]:
    """A raw git tree object: name -> (mode, object id)."""
    return {
        name.decode("utf-8", "surrogateescape"): (mode, oid.hex())
        for mode, name, oid in _TREE_ENTRY.findall(data)
    }
