"""The root filesystem being assembled from layers, and what it becomes in git.

`RootFS` is an in-memory tree of nodes (no file content: regular files hold only
the git blob id of content already streamed into the store). It applies the OCI
layer rules; `RootFS.flatten` turns it into a `FlatTree`: the git entries plus a
`Manifest` of everything git cannot hold (owners, exact modes, devices, FIFOs,
empty directories, xattrs, hard-link groups).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from patchkit.core.globs import Selector
from patchkit.core.objects import MODE_EXEC, MODE_FILE, MODE_LINK, TreeEntry
from patchkit.errors import StoreError, UnsafeLayerError

__all__ = [
    "MANIFEST_SCHEMA",
    "MAX_SYMLINKS",
    "FlatTree",
    "Kind",
    "Manifest",
    "ManifestEntry",
    "Meta",
    "Node",
    "RootFS",
    "entry_error",
    "git_tree_id",
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
    """What an inode carries; hard links share one Meta."""

    mode: int  # permission bits including setuid/setgid/sticky (0o7777)
    uid: int = 0
    gid: int = 0
    # regular files: the id of the content already in the store (None: not selected), as
    # 20 bytes (layers: the pack writer's own object, shared) or 40 hex digits
    blob: bytes | str | None = None
    size: int = 0
    major: int = 0
    minor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True, eq=False)
class Node:
    kind: Kind
    layer: int  # index of the layer that put this path in place (for whiteout rules)
    meta: Meta
    target: str = ""  # symlinks
    children: dict[str, Node] | None = None  # directories


class RootFS:
    """A root filesystem built layer by layer; nothing ever resolves outside it."""

    def __init__(self) -> None:
        self.root = Node(kind=Kind.DIR, layer=-1, meta=Meta(mode=0o755), children={})
        self.layer = 0
        self.where = "layer 0"
        self._shared: dict[tuple[int, int, int], Meta] = {}

    def shared_meta(self, mode: int, uid: int, gid: int) -> Meta:
        """One `Meta` for every directory and symlink with these values and no xattrs.

        Nothing changes the Meta of a node that is not a regular file once it is made
        (`put` replaces a directory's, it never edits it), so they can be shared: one
        object for thousands of paths instead of ~130 bytes each.
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

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every path below the root (not the root itself), parents before children."""
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            path, node = stack.pop()
            assert node.children is not None
            for name in sorted(node.children, reverse=True):
                child = node.children[name]
                p = f"{path}/{name}" if path else name
                yield p, child
                if child.kind is Kind.DIR:
                    stack.append((p, child))

    def flatten(
        self,
        store_blob: Callable[[bytes], str],
        select: Selector | None = None,
        *,
        consume: bool = False,
    ) -> FlatTree:
        """The git entries (restricted to ``select``) and the manifest (every path).

        With ``consume`` the tree is emptied as it is turned into entries, so the two are
        never both whole in memory (the import's peak); the RootFS is empty afterwards.
        """
        select = select or Selector()
        files: dict[str, TreeEntry] = {}
        # Hard-link groups: files sharing one Meta. A list is made only for a Meta seen
        # twice (a list for every file was ~100 bytes a file at the import's peak).
        first: dict[int, str] = {}
        groups: dict[int, list[str]] = {}
        nodes: list[tuple[str, Node]] = []
        for path, node in self.walk():
            nodes.append((path, node))
            if node.kind is Kind.FILE:
                key = id(node.meta)
                seen = first.setdefault(key, path)
                if seen is not path:
                    groups.setdefault(key, [seen]).append(path)
        del first
        leaders = {k: min(v) for k, v in groups.items()}
        entries: list[ManifestEntry] = []
        if consume:
            assert self.root.children is not None
            self.root.children = {}  # from here on each node lives in `nodes` only
        nodes.reverse()
        while nodes:
            path, node = nodes.pop()  # parents come first: a directory goes before its files
            m = node.meta
            kind = node.kind
            if kind is Kind.FILE:
                blob = m.blob
                if blob is not None and select(path):
                    mode = MODE_EXEC if m.mode & 0o111 else MODE_FILE
                    hexid = blob if isinstance(blob, str) else blob.hex()
                    files[path] = TreeEntry(mode=mode, blob=hexid)
                link = leaders.get(id(m))
                needed = m.mode not in (0o644, 0o755) or link is not None
            elif kind is Kind.SYMLINK:
                link = None
                if select(path):
                    blob = store_blob(node.target.encode("utf-8", "surrogateescape"))
                    files[path] = TreeEntry(mode=MODE_LINK, blob=blob)
                needed = False
            elif kind is Kind.DIR:
                link = None
                needed = m.mode != 0o755 or not node.children
            else:
                link = None
                needed = True
            if needed or m.uid or m.gid or m.xattrs:
                entries.append(
                    ManifestEntry(
                        path=path,
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
        return FlatTree(files=files, manifest=Manifest(entries=tuple(entries)))


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
class FlatTree:
    """A flattened image: git entries (path -> entry) and the manifest of extras."""

    files: Mapping[str, TreeEntry]
    manifest: Manifest

    @property
    def extras(self) -> tuple[ManifestEntry, ...]:
        return self.manifest.entries


def git_tree_id(files: Mapping[str, TreeEntry]) -> str:
    """The id git gives the tree holding exactly ``files`` (as `FastImport.commit` writes it)."""
    root: dict[str, Any] = {}
    for path, entry in files.items():
        *dirs, name = path.split("/")
        d = root
        for part in dirs:
            d = d.setdefault(part, {})
        d[name] = entry

    def tree(d: dict[str, Any]) -> bytes:
        items = []
        for name, value in d.items():
            if isinstance(value, dict):
                raw = b"40000 %s\0" % name.encode("utf-8", "surrogateescape")
                items.append((name.encode("utf-8", "surrogateescape") + b"/", raw + tree(value)))
            else:
                raw = b"%o %s\0" % (value.mode, name.encode("utf-8", "surrogateescape"))
                items.append(
                    (name.encode("utf-8", "surrogateescape"), raw + bytes.fromhex(value.blob))
                )
        body = b"".join(raw for _, raw in sorted(items))
        h = hashlib.sha1(b"tree %d\0" % len(body))
        h.update(body)
        return h.digest()

    return tree(root).hex()
