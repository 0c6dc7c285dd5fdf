"""`dir:PATH` sources: a plain directory tree, walked without following symlinks.

Symlinks are stored as links (their target is just text, wherever it points).
Owners are not recorded (a checkout is owned by whoever made it); exact modes,
empty directories, FIFOs and device nodes go to the manifest; sockets are skipped.
The digest is `git-tree:<id>` of the full tree, computed before anything is stored.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from patchkit.core.globs import Selector
from patchkit.errors import SourceError
from patchkit.images.sink import ObjectSink
from patchkit.images.tree import Kind, Meta, Node, RootFS, TreeHasher, WrittenTree

__all__ = ["DirectoryScan", "scan_directory"]


def _hash_file(path: str) -> tuple[str, int]:
    size = os.lstat(path).st_size
    h = hashlib.sha1(b"blob %d\0" % size)
    seen = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            seen += len(chunk)
    if seen != size:
        raise SourceError(f"{path}: changed while it was read")
    return h.hexdigest(), size


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryScan:
    """A directory as a RootFS whose file blobs are known by id but not yet stored."""

    root: Path
    label: str
    fs: RootFS
    files: dict[str, tuple[str, int]]  # relative path -> (path on disk, size); regular files

    @property
    def digest(self) -> str:
        return "git-tree:" + self.fs.write_tree(TreeHasher()).tree

    def store(self, fi: ObjectSink, select: Selector | None = None) -> WrittenTree:
        """Stream the selected files into ``fi``; the tree they form."""
        select = select or Selector()
        stored: set[str] = set()
        for rel, (path, size) in self.files.items():
            if not select(rel):
                continue
            found = self.fs.lookup(rel.split("/"), rel)
            assert found is not None
            blob = found[0].blob
            if blob in stored:
                continue
            oid = fi.blob_stream(size, _read(path))
            if oid != blob:
                raise SourceError(f"{self.label}: {rel} changed during the import")
            stored.add(oid)
        return self.fs.write_tree(fi, select)


def _read(path: str) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            yield chunk


def scan_directory(path: Path, label: str) -> DirectoryScan:
    """Walk ``path`` (symlinks not followed) hashing every file; nothing is stored yet."""
    if not path.is_dir():
        raise SourceError(f"{label}: no such directory")
    fs = RootFS()
    fs.start_layer(1, label)
    files: dict[str, tuple[str, int]] = {}
    stack: list[tuple[str, Node]] = [(str(path), fs.root)]
    rel_of: dict[int, str] = {id(fs.root): ""}
    while stack:
        dirpath, node = stack.pop()
        prefix = rel_of[id(node)]
        try:
            entries = sorted(os.scandir(dirpath), key=lambda e: e.name)
        except OSError as e:
            raise SourceError(f"{label}: cannot read {dirpath}: {e.strerror or e}") from e
        assert node.children is not None
        for entry in entries:
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
                perm = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    child = Node(kind=Kind.DIR, layer=1, meta=Meta(mode=perm), children={})
                    rel_of[id(child)] = rel
                    stack.append((entry.path, child))
                elif stat.S_ISREG(st.st_mode):
                    oid, size = _hash_file(entry.path)
                    child = Node(kind=Kind.FILE, layer=1, meta=Meta(mode=perm), blob=oid)
                    files[rel] = (entry.path, size)
                elif stat.S_ISLNK(st.st_mode):
                    target = os.readlink(entry.path)
                    child = Node(kind=Kind.SYMLINK, layer=1, meta=Meta(mode=0o777), target=target)
                elif stat.S_ISFIFO(st.st_mode):
                    child = Node(kind=Kind.FIFO, layer=1, meta=Meta(mode=perm))
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    kind = Kind.CHAR if stat.S_ISCHR(st.st_mode) else Kind.BLOCK
                    meta = Meta(mode=perm, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev))
                    child = Node(kind=kind, layer=1, meta=meta)
                else:
                    continue  # sockets and the like have no place in a tree
            except OSError as e:
                raise SourceError(f"{label}: cannot read {rel}: {e.strerror or e}") from e
            node.children[entry.name] = child
    return DirectoryScan(root=path, label=label, fs=fs, files=files)
