"""The root filesystem being assembled from layers, and what it becomes in git.

`RootFS` is an in-memory tree of nodes (no file content: regular files hold only
the git blob id of content already streamed into the store). It applies the OCI
layer rules; `RootFS.write_tree` writes its git trees and gives a `WrittenTree`: the
root tree plus a `Manifest` of everything git cannot hold (owners, exact modes, devices, FIFOs,
empty directories, xattrs, hard-link groups).
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from patchkit.core.globs import Selector
from patchkit.core.objects import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    git_blob_id,
    git_object_id,
    tree_body,
)
from patchkit.errors import StoreError, UnsafeLayerError
from patchkit.images.sink import TreeSink

__all__ = [
    "MANIFEST_SCHEMA",
    "MAX_SYMLINKS",
    "Kind",
    "Manifest",
    "ManifestEntry",
    "Meta",
    "Node",
    "RootFS",
    "TreeHasher",
    "WrittenTree",
    "entry_error",
    "load_manifest",
    "show_name",
]

MANIFEST_SCHEMA = 1
MAX_SYMLINKS = 40  # as Linux's path resolution (ELOOP)


class Kind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


def show_name(name: str, limit: int = 160) -> str:
    """``name`` quoted for a one-line message: control characters escaped, long names cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def entry_error(cls: type[Exception], where: str, entry: str, why: str) -> Exception:
    """`<where>: entry '<NAME>': <why>`, e.g. `layer 2 (sha256:ab…): entry 'etc/x': ...`."""
    return cls(f"{where}: entry {show_name(entry)}: {why}")


@dataclass(slots=True, kw_only=True)
class Meta:
    """An inode's mode, owner and the like. Hard links share one Meta (``linked``); every
    other path with the same plain values shares one too (`RootFS.shared_meta`)."""

    mode: int  # permission bits including setuid/setgid/sticky (0o7777)
    uid: int = 0
    gid: int = 0
    major: int = 0
    minor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    linked: bool = False  # the inode of a hard-link group (`write_tree` groups by it)


@dataclass(slots=True, kw_only=True, eq=False)
class Node:
    kind: Kind
    layer: int  # index of the layer that put this path in place (for whiteout rules)
    meta: Meta
    target: str = ""  # symlinks
    children: dict[str, Node] | None = None  # directories
    # regular files: the id of the content already in the store (None: not selected), as
    # 20 bytes (layers) or 40 hex digits (directory sources)
    blob: bytes | str | None = None


class RootFS:
    """A root filesystem built layer by layer; nothing ever resolves outside it."""

    def __init__(self) -> None:
        self.root = Node(kind=Kind.DIR, layer=-1, meta=Meta(mode=0o755), children={})
        self.layer = 0
        self.where = "layer 0"
        self._shared: dict[tuple[int, int, int], Meta] = {}

    def shared_meta(self, mode: int, uid: int, gid: int) -> Meta:
        """One `Meta` for every path with these values, no xattrs and no hard link.

        Nothing edits a Meta once it is made (`put` replaces a directory's; a hard link
        gives its target a Meta of its own, `Meta.linked`), so they can be shared: one
        object for thousands of paths instead of ~100 bytes each.
        """
        key = (mode, uid, gid)
        meta = self._shared.get(key)
        if meta is None:
            meta = self._shared[key] = Meta(mode=mode, uid=uid, gid=gid)
        return meta

    def start_layer(self, index: int, where: str) -> None:
        self.layer = index
        self.where = where

    def _unsafe(self, entry: str, why: str) -> Exception:
        return entry_error(UnsafeLayerError, self.where, entry, why)

    # -- resolution ------------------------------------------------------------

    def resolve_dir(self, parts: list[str], entry: str, *, create: bool) -> tuple[Node, str] | None:
        """The directory ``parts`` names, following symlinks inside the root.

        Missing directories are created (as tar extraction does) when ``create``;
        otherwise None is returned. A symlink that climbs above the root, a loop
        or a non-directory on the way is refused.
        """
        # The common case first: every component an existing directory (no symlink to
        # follow, nothing to create), the path being the components joined.
        node = self.root
        for comp in parts:
            assert node.children is not None
            child = node.children.get(comp)
            if child is None or child.kind is not Kind.DIR:
                return self._resolve_dir(parts, entry, create=create)
            node = child
        return node, "/".join(parts)

    def _resolve_dir(
        self, parts: list[str], entry: str, *, create: bool
    ) -> tuple[Node, str] | None:
        stack: list[tuple[Node, str]] = [(self.root, "")]
        todo = list(reversed(parts))
        links = 0
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) == 1:
                    raise self._unsafe(entry, "a symlink on its path climbs above the root")
                stack.pop()
                continue
            cur, cur_path = stack[-1]
            assert cur.children is not None
            child = cur.children.get(comp)
            child_path = f"{cur_path}/{comp}" if cur_path else comp
            if child is None:
                if not create:
                    return None
                child = Node(
                    kind=Kind.DIR, layer=self.layer, meta=self.shared_meta(0o755, 0, 0), children={}
                )
                cur.children[comp] = child
            if child.kind is Kind.SYMLINK:
                links += 1
                if links > MAX_SYMLINKS:
                    raise self._unsafe(entry, "too many levels of symbolic links on its path")
                if not child.target:
                    raise self._unsafe(
                        entry, f"symlink {show_name(child_path)} has an empty target"
                    )
                if child.target.startswith("/"):
                    del stack[1:]
                todo.extend(reversed(child.target.split("/")))
                continue
            if child.kind is not Kind.DIR:
                raise self._unsafe(entry, f"{show_name(child_path)} on its path is not a directory")
            stack.append((child, child_path))
        return stack[-1]

    def lookup(self, parts: list[str], entry: str) -> tuple[Node, str] | None:
        """The node at ``parts`` (its last component not followed) and its real path."""
        if not parts:
            return self.root, ""
        found = self.resolve_dir(parts[:-1], entry, create=False)
        if found is None:
            return None
        parent, ppath = found
        assert parent.children is not None
        node = parent.children.get(parts[-1])
        if node is None:
            return None
        return node, f"{ppath}/{parts[-1]}" if ppath else parts[-1]

    # -- changes ---------------------------------------------------------------

    def put(self, parent: Node, name: str, node: Node) -> None:
        """Place ``node`` at ``parent/name``; a directory over a directory keeps its children."""
        assert parent.children is not None
        old = parent.children.get(name)
        if old is not None and old.kind is Kind.DIR and node.kind is Kind.DIR:
            old.meta = node.meta
            old.layer = node.layer
            return
        parent.children[name] = node

    def _prune_lower(self, d: Node) -> None:
        """Remove everything below ``d`` that lower layers put there (opaque semantics)."""
        assert d.children is not None
        for name, child in list(d.children.items()):
            if child.kind is Kind.DIR:
                self._prune_lower(child)
                assert child.children is not None
                if child.layer < self.layer and not child.children:
                    del d.children[name]
            elif child.layer < self.layer:
                del d.children[name]

    def opaque(self, d: Node) -> None:
        """`.wh..wh..opq`: hide all lower-layer children of ``d``, keep this layer's own."""
        self._prune_lower(d)

    def whiteout(self, parent: Node, name: str) -> None:
        """`.wh.NAME`: delete NAME as lower layers left it; this layer's own NAME stays."""
        assert parent.children is not None
        child = parent.children.get(name)
        if child is None:
            return
        if child.kind is Kind.DIR:
            self._prune_lower(child)
            assert child.children is not None
            if child.layer < self.layer and not child.children:
                del parent.children[name]
        elif child.layer < self.layer:
            del parent.children[name]

    # -- output ------------------------------------------------------------------

    def write_tree(self, sink: TreeSink, select: Selector | None = None) -> WrittenTree:
        """Write the git trees of the selected files and symlinks through ``sink``, deepest
        first, straight from the nodes (no path -> entry map of the whole image is ever
        built), and gather the manifest of every path. The RootFS is left as it is.

        The trees are the ones `git fast-import` makes of the same files: a directory
        holding nothing selected has no tree (git has no empty directories; the manifest
        records it), the root always has one.
        """
        select = select or Selector()
        everything = select.keeps_everything
        dirs: list[tuple[Node, str]] = []  # every directory, parents before children
        stack: list[tuple[Node, str]] = [(self.root, "")]
        linked: dict[int, list[str]] = {}  # hard-link groups: id(Meta) -> member paths
        while stack:
            node, path = stack.pop()
            dirs.append((node, path))
            assert node.children is not None
            for name, child in node.children.items():
                if child.kind is Kind.DIR:
                    stack.append((child, f"{path}/{name}" if path else name))
                elif child.kind is Kind.FILE and child.meta.linked:
                    linked.setdefault(id(child.meta), []).append(f"{path}/{name}" if path else name)
        leaders = {key: min(paths) for key, paths in linked.items() if len(paths) > 1}
        del linked
        trees: dict[int, bytes] = {}  # id(directory node) -> its tree, until its parent's
        entries: list[ManifestEntry] = []
        files = 0
        for node, dpath in reversed(dirs):
            rows: list[tuple[int, bytes, bytes]] = []
            assert node.children is not None
            for name, child in node.children.items():
                kind = child.kind
                m = child.meta
                raw = name.encode("utf-8", "surrogateescape")
                path = ""
                if kind is Kind.FILE:
                    blob = child.blob
                    if blob is not None:
                        path = f"{dpath}/{name}" if dpath else name
                        if everything or select(path):
                            mode = MODE_EXEC if m.mode & 0o111 else MODE_FILE
                            rows.append(
                                (
                                    mode,
                                    raw,
                                    blob if isinstance(blob, bytes) else bytes.fromhex(blob),
                                )
                            )
                            files += 1
                    link = leaders.get(id(m)) if leaders else None
                    needed = m.mode not in (0o644, 0o755) or link is not None
                elif kind is Kind.SYMLINK:
                    link = None
                    path = f"{dpath}/{name}" if dpath else name
                    if everything or select(path):
                        target = child.target.encode("utf-8", "surrogateescape")
                        rows.append((MODE_LINK, raw, bytes.fromhex(sink.blob(target))))
                        files += 1
                    needed = False
                elif kind is Kind.DIR:
                    link = None
                    sub = trees.pop(id(child), None)
                    if sub is not None:
                        rows.append((MODE_TREE, raw, sub))
                    needed = m.mode != 0o755 or not child.children
                else:
                    link = None
                    needed = True
                if needed or m.uid or m.gid or m.xattrs:
                    entries.append(
                        ManifestEntry(
                            path=path or (f"{dpath}/{name}" if dpath else name),
                            type=kind,
                            mode=m.mode & 0o7777 if kind is not Kind.SYMLINK else 0o777,
                            uid=m.uid,
                            gid=m.gid,
                            major=m.major if kind in (Kind.CHAR, Kind.BLOCK) else None,
                            minor=m.minor if kind in (Kind.CHAR, Kind.BLOCK) else None,
                            xattrs=tuple(sorted(m.xattrs.items())),
                            hardlink=link,
                        )
                    )
            if rows or node is self.root:
                trees[id(node)] = sink.tree(tree_body(rows))
        entries.sort(key=lambda e: e.path)
        return WrittenTree(
            tree=trees[id(self.root)].hex(), files=files, manifest=Manifest(entries=tuple(entries))
        )


# -- manifest -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """One path whose metadata git cannot hold.

    ``hardlink`` names the first path (sorted) of the hard-link group this file
    belongs to; every member of a group, the first included, carries it.
    """

    path: str
    type: Kind
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int = 0
    gid: int = 0
    major: int | None = None
    minor: int | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    hardlink: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "type": self.type.value,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
        }
        if self.major is not None:
            d["major"] = self.major
            d["minor"] = self.minor
        if self.xattrs:
            d["xattrs"] = {k: base64.b64encode(v).decode() for k, v in self.xattrs}
        if self.hardlink is not None:
            d["hardlink"] = self.hardlink
        return d

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> ManifestEntry:
        return cls(
            path=str(d["path"]),
            type=Kind(d["type"]),
            mode=int(str(d["mode"]), 8),
            uid=int(d.get("uid", 0)),
            gid=int(d.get("gid", 0)),
            major=None if d.get("major") is None else int(d["major"]),
            minor=None if d.get("minor") is None else int(d["minor"]),
            xattrs=tuple(
                sorted((str(k), base64.b64decode(v)) for k, v in d.get("xattrs", {}).items())
            ),
            hardlink=None if d.get("hardlink") is None else str(d["hardlink"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """Everything about a release's root filesystem that git cannot hold."""

    entries: tuple[ManifestEntry, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> ManifestEntry | None:
        for e in self.entries:
            if e.path == path:
                return e
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": MANIFEST_SCHEMA,
            "entries": [e.to_dict() for e in sorted(self.entries, key=lambda e: e.path)],
        }

    def to_json(self) -> bytes:
        """Deterministic JSON (sorted keys and paths, no whitespace), as stored in git."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return text.encode("ascii") + b"\n"


def load_manifest(data: bytes) -> Manifest:
    """Read a manifest blob back (the build step uses it for modes and owners).

    >>> load_manifest(b'{"schema":1,"entries":[]}').entries
    ()
    """
    try:
        doc = json.loads(data)
        if doc.get("schema") != MANIFEST_SCHEMA:
            raise ValueError(f"unknown schema {doc.get('schema')!r}")
        return Manifest(entries=tuple(ManifestEntry._from_dict(e) for e in doc["entries"]))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise StoreError(f"release manifest blob is unreadable: {e}") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class WrittenTree:
    """A root filesystem written to git: its root tree, how many files and symlinks that
    tree holds, and the manifest of what git cannot hold."""

    tree: str  # the root tree's id (hex)
    files: int
    manifest: Manifest

    @property
    def extras(self) -> tuple[ManifestEntry, ...]:
        return self.manifest.entries


class TreeHasher:
    """A `TreeSink` that stores nothing: `RootFS.write_tree` through it gives the ids
    git would give (a directory source's digest)."""

    def blob(self, data: bytes | bytearray) -> str:
        return git_blob_id(data)

    def tree(self, body: bytes) -> bytes:
        return git_object_id(b"tree", body)
