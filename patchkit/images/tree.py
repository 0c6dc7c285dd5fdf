"""The root filesystem being assembled from layers, and what it becomes in git.

`RootFS` is an in-memory tree of nodes (no file content: regular files hold only
the git blob id of content already streamed into the store). It applies the OCI
layer rules; `RootFS.write_tree` writes its git trees and gives a `WrittenTree`: the
root tree plus a `Manifest` of everything git cannot hold (owners, exact modes, devices, FIFOs,
empty directories, xattrs, hard-link groups).
"""

from __future__ import annotations

import array
import base64
import enum
import json
from collections.abc import Collection, Iterator, Mapping
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
    # directories: plain files lower layers left here, packed (`RootFS.start_layer`); an
    # entry of ``children`` with the same name hides the packed one
    packed: Packed | None = None


_NO_BLOB = bytes(20)  # a packed file with no content stored (not selected); no SHA-1 is 0


@dataclass(slots=True, kw_only=True)
class Packed:
    """Regular files of one directory with a shared Meta, as flat bytes: ~45 bytes a file
    where a Node, its name, its id and the dict entry cost ~240."""

    names: bytes  # b"\0" + b"\0".join(names) + b"\0" (names hold no NUL)
    blobs: bytes  # 20 bytes a file: its blob id, or _NO_BLOB
    metas: array.array[int]  # a file's index into `RootFS._metas`
    layers: array.array[int]  # the layer that put it there (the whiteout rules need it)

    def find(self, raw: bytes) -> int:
        """The position of the file named ``raw``, or -1."""
        at = self.names.find(b"\0" + raw + b"\0")
        return -1 if at < 0 else self.names.count(b"\0", 0, at)

    def entries(self) -> Iterator[tuple[bytes, bytes, int, int]]:
        """(name, blob id or _NO_BLOB, meta index, layer) of every file."""
        blobs, metas, layers = self.blobs, self.metas, self.layers
        for n, raw in enumerate(self.names[1:-1].split(b"\0")):
            yield raw, blobs[20 * n : 20 * n + 20], metas[n], layers[n]

    @classmethod
    def of(cls, rows: list[tuple[bytes, bytes, int, int]]) -> Packed | None:
        """Packed files from (name, blob id or _NO_BLOB, meta index, layer) rows."""
        if not rows:
            return None
        return cls(
            names=b"\0" + b"\0".join([raw for raw, _, _, _ in rows]) + b"\0",
            blobs=b"".join([blob for _, blob, _, _ in rows]),
            metas=array.array("H", [number for _, _, number, _ in rows]),
            layers=array.array("H", [layer for _, _, _, layer in rows]),
        )


def _encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _file_needs_entry(m: Meta, link: str | None) -> bool:
    """Whether a regular file's metadata is more than git holds (a mode git has no bit
    for, an owner, xattrs, a hard link)."""
    return m.mode not in (0o644, 0o755) or link is not None or bool(m.uid or m.gid or m.xattrs)


def _manifest_entry(path: str, kind: Kind, m: Meta, link: str | None) -> ManifestEntry:
    device = kind in (Kind.CHAR, Kind.BLOCK)
    return ManifestEntry(
        path=path,
        type=kind,
        mode=m.mode & 0o7777 if kind is not Kind.SYMLINK else 0o777,
        uid=m.uid,
        gid=m.gid,
        major=m.major if device else None,
        minor=m.minor if device else None,
        xattrs=tuple(sorted(m.xattrs.items())),
        hardlink=link,
    )


class RootFS:
    """A root filesystem built layer by layer; nothing ever resolves outside it."""

    def __init__(self) -> None:
        self.root = Node(kind=Kind.DIR, layer=-1, meta=Meta(mode=0o755), children={})
        self.layer = 0
        self.where = "layer 0"
        self._shared: dict[tuple[int, int, int], Meta] = {}
        self._metas: list[Meta] = []  # the shared Metas, as `Packed.metas` numbers them
        self._meta_index: dict[int, int] = {}  # id(shared Meta) -> its number
        self._touched: dict[int, Node] = {}  # directories given files since the last `pack`
        self.unpacked = 0  # regular files put since then

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
            if len(self._metas) < 1 << 16:  # `Packed.metas` numbers them in 16 bits
                self._meta_index[id(meta)] = len(self._metas)
                self._metas.append(meta)
        return meta

    def start_layer(self, index: int, where: str) -> None:
        self.pack()
        self.layer = index
        self.where = where

    def pack(self, busy: Collection[int] = ()) -> None:
        """Pack the plain files put since the last call (`Packed`: ~45 bytes a file
        instead of ~240), all but the nodes whose ids are in ``busy`` (a blob id still
        to be filled in)."""
        index = self._meta_index
        touched, self._touched = self._touched, {}
        self.unpacked = 0
        for d in touched.values():
            assert d.children is not None
            moved: list[tuple[bytes, bytes, int, int]] = []
            for name, child in list(d.children.items()):
                if child.kind is Kind.FILE and not isinstance(child.blob, str):
                    number = index.get(id(child.meta))
                    if number is None or child.layer >= 1 << 16:
                        continue
                    if id(child) in busy:
                        self._touched[id(d)] = d  # packed next time
                        continue
                    moved.append((_encode(name), child.blob or _NO_BLOB, number, child.layer))
                    del d.children[name]
            if not moved:
                continue
            if d.packed is not None:
                hidden = {_encode(name) for name in d.children}
                hidden.update(raw for raw, _, _, _ in moved)
                moved.extend(row for row in d.packed.entries() if row[0] not in hidden)
            d.children = dict(d.children)  # a dict never shrinks its table otherwise
            d.packed = Packed.of(moved)

    def _unpacked(self, d: Node, name: str) -> Node | None:
        """The packed file ``name`` of ``d`` as a Node of its own (not placed), or None."""
        packed = d.packed
        if packed is None:
            return None
        n = packed.find(_encode(name))
        if n < 0:
            return None
        blob = packed.blobs[20 * n : 20 * n + 20]
        return Node(
            kind=Kind.FILE,
            layer=packed.layers[n],
            meta=self._metas[packed.metas[n]],
            blob=None if blob == _NO_BLOB else blob,
        )

    def _drop_packed(self, d: Node, name: str | None = None) -> None:
        """Drop ``d``'s packed file ``name`` (None: every one) that lower layers put there."""
        packed = d.packed
        if packed is None:
            return
        if name is not None:
            n = packed.find(_encode(name))
            if n < 0 or packed.layers[n] >= self.layer:
                return
        d.packed = Packed.of(
            [
                row
                for row in packed.entries()
                if row[3] >= self.layer or (name is not None and row[0] != _encode(name))
            ]
        )

    @staticmethod
    def _empty(d: Node) -> bool:
        return not d.children and d.packed is None

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
            child = cur.children.get(comp) or self._unpacked(cur, comp)
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
            node = self._unpacked(parent, parts[-1])
            if node is None:
                return None
            parent.children[parts[-1]] = node  # the caller may give it a Meta of its own
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
        if node.kind is Kind.FILE:
            self._touched[id(parent)] = parent
            self.unpacked += 1

    def _prune_lower(self, d: Node) -> None:
        """Remove everything below ``d`` that lower layers put there (opaque semantics)."""
        assert d.children is not None
        self._drop_packed(d)
        for name, child in list(d.children.items()):
            if child.kind is Kind.DIR:
                self._prune_lower(child)
                if child.layer < self.layer and self._empty(child):
                    del d.children[name]
            elif child.layer < self.layer:
                del d.children[name]

    def opaque(self, d: Node) -> None:
        """`.wh..wh..opq`: hide all lower-layer children of ``d``, keep this layer's own."""
        self._prune_lower(d)

    def whiteout(self, parent: Node, name: str) -> None:
        """`.wh.NAME`: delete NAME as lower layers left it; this layer's own NAME stays."""
        assert parent.children is not None
        self._drop_packed(parent, name)  # hidden anyway if `child` is set
        child = parent.children.get(name)
        if child is None:
            return
        if child.kind is Kind.DIR:
            self._prune_lower(child)
            if child.layer < self.layer and self._empty(child):
                del parent.children[name]
        elif child.layer < self.layer:
            del parent.children[name]

    # -- output ------------------------------------------------------------------

    def _packed_rows(
        self,
        d: Node,
        dpath: str,
        rows: list[tuple[int, bytes, bytes]],
        entries: list[ManifestEntry],
        select: Selector,
    ) -> int:
        """Add the tree rows and manifest entries of ``d``'s packed files (those no entry of
        its children hides); how many rows."""
        assert d.packed is not None and d.children is not None
        everything = select.keeps_everything
        hidden = {_encode(name) for name in d.children} if d.children else set()
        added = 0
        for raw, blob, number, _ in d.packed.entries():
            if raw in hidden:
                continue
            m = self._metas[number]
            path = ""
            if blob != _NO_BLOB:
                path = (
                    f"{dpath}/{raw.decode('utf-8', 'surrogateescape')}"
                    if dpath
                    else raw.decode("utf-8", "surrogateescape")
                )
                if everything or select(path):
                    rows.append((MODE_EXEC if m.mode & 0o111 else MODE_FILE, raw, blob))
                    added += 1
            if _file_needs_entry(m, None):
                name = raw.decode("utf-8", "surrogateescape")
                path = path or (f"{dpath}/{name}" if dpath else name)
                entries.append(_manifest_entry(path, Kind.FILE, m, None))
        return added

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
                    needed = _file_needs_entry(m, link)
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
                    needed = m.mode != 0o755 or self._empty(child)
                else:
                    link = None
                    needed = True
                if needed or m.uid or m.gid or m.xattrs:
                    path = path or (f"{dpath}/{name}" if dpath else name)
                    entries.append(_manifest_entry(path, kind, m, link))
            if node.packed is not None:
                files += self._packed_rows(node, dpath, rows, entries, select)
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
