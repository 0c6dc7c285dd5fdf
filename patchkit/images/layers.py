"""Flatten an image's layers into a RootFS, streaming, never extracting to disk.

Each layer is read once: `images/stream.py` hashes the stored bytes (blob digest),
inflates them (`images/decoders.py`) and hashes them again (diff_id) on a helper
thread; `images/tar.py` reads the tar as a container runtime does; the `_Applier` here
applies each entry to the `tree.RootFS` (whiteouts, opaque directories, links, the
hostile-entry rules), and regular files go straight into the store through an
`ObjectSink` (`images/sink.py`; for imports, a pack written by `patchkit.git`). Both
digests are compared once the stream has been read to its very end.

`Limits` (`images/tar.py`) bounds what one layer may declare and inflate to; a layer
over one is refused with CorruptLayerError.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from patchkit import heap
from patchkit.core.globs import Selector
from patchkit.errors import CorruptLayerError, DigestMismatchError, UnsafeLayerError
from patchkit.images.base import ImagePlan, LayerBlob
from patchkit.images.cache import (
    BLOCK,
    CHAR,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    LayerCache,
    LayerRecord,
    Selection,
    chain_ids,
    entry_from_tar,
)
from patchkit.images.digests import short
from patchkit.images.sink import ObjectSink
from patchkit.images.stream import LayerStream
from patchkit.images.tar import DEFAULT_LIMITS, Limits, TarEntry, TarError, TarReader
from patchkit.images.tree import Kind, Meta, Node, RootFS, WrittenTree, entry_error, show_name

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "ProgressEvent",
    "TarballLayer",
    "flatten",
    "read_layers",
]

OPAQUE = ".wh..wh..opq"
WHITEOUT = ".wh."
_AUFS_META = ".wh..wh."  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): ignored, as Docker does

_PENDING = 4096  # stored contents whose ids are filled in together (`_Applier.resolve`)
_PACK_EVERY = 4096  # regular files put between two `RootFS.pack` calls (the tree stays small)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressEvent:
    """How far the import of one layer has come (bytes of the stored blob)."""

    layer: int  # 1-based
    layers: int
    digest: str
    read: int
    total: int | None  # None when the source does not know the size
    done: bool = False
    cached: bool = False  # replayed from the layer cache: the blob was not read


@dataclass(frozen=True, slots=True, kw_only=True)
class TarballLayer(LayerBlob):
    """The single layer of a `tar:` source: entries lose ``strip`` leading components."""

    strip: int = 0


def split_name(name: str, where: str) -> list[str]:
    """Validated components of a tar entry name; [] is the root itself."""

    def unsafe(why: str) -> Exception:
        return entry_error(UnsafeLayerError, where, name, why)

    if not name:
        raise unsafe("empty name")
    if "\0" in name:
        raise unsafe("NUL in name")
    if name.startswith("/"):
        raise unsafe("absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise unsafe("'..' component in name")
    return parts


_KINDS = {CHAR: Kind.CHAR, BLOCK: Kind.BLOCK, FIFO: Kind.FIFO}
# One empty dict shared by every inode without xattrs (nothing mutates Meta.xattrs; an
# empty dict each is 64 bytes times every path of the image).
_NO_XATTRS: dict[str, bytes] = {}


class _Applier:
    """Applies one layer's entries (read from the tar, or replayed from the cache) to the RootFS."""

    def __init__(
        self,
        fs: RootFS,
        select: Selector,
        *,
        where: str,
        strip: int,
    ) -> None:
        self.fs = fs
        self.select = select
        self.where = where
        self.strip = strip
        # contents stored whose ids are still being computed (`resolve` fills them in)
        self.pending: list[tuple[Entry, Node, Callable[[], bytes]]] = []
        self.modes: dict[int, int] = {}

    def resolve(self, keep: int = 0) -> None:
        """Fill in the blob ids of the contents stored by this layer, all but the last
        ``keep`` (the writer thread hashes in order: the older ones are long done)."""
        pending = self.pending
        done = len(pending) - keep
        for e, node, blob_id in pending[:done]:
            oid = node.blob = blob_id()
            e.blob = oid.hex()  # the layer cache's row (written soon, then dropped)
        del pending[:done]

    def oldest_pending(self) -> Entry | None:
        """The first entry whose blob id is not filled in yet (`LayerRecord.flush` stops there)."""
        return self.pending[0][0] if self.pending else None

    def unsafe(self, entry: str, why: str) -> Exception:
        return entry_error(UnsafeLayerError, self.where, entry, why)

    def parts(self, name: str) -> list[str] | None:
        parts = split_name(name, self.where)
        if self.strip:
            if len(parts) <= self.strip:
                return None
            parts = parts[self.strip :]
        return parts

    def apply(self, e: Entry, content: Callable[[], Callable[[], bytes]] | None = None) -> None:
        """Apply ``e``. A selected regular file gets its blob from ``content()`` (reading
        the tar; its id is filled in by `resolve`) or, when replaying the cache
        (``content`` None), from ``e.blob``."""
        name = e.name
        parts = self.parts(name)
        if parts is None:
            return
        fs = self.fs
        if not parts:
            if e.type != DIR:
                raise self.unsafe(name, "the root must be a directory")
            fs.root.meta = Meta(mode=e.mode, uid=e.uid, gid=e.gid)
            return
        base = parts[-1]
        for comp in parts[:-1]:
            if comp.startswith(_AUFS_META):
                return
            if comp.startswith(WHITEOUT):
                raise self.unsafe(name, "a whiteout name used as a directory")
        if base == OPAQUE:
            found = fs.resolve_dir(parts[:-1], name, create=False)
            if found is not None:
                fs.opaque(found[0])
            return
        if base.startswith(_AUFS_META):
            return
        if base.startswith(WHITEOUT):
            target = base[len(WHITEOUT) :]
            if not target.strip("."):
                # `.wh.`, `.wh..`, `.wh...`: no sane layer writes these; refuse, do not guess.
                raise self.unsafe(name, "malformed whiteout name")
            found = fs.resolve_dir(parts[:-1], name, create=False)
            if found is not None:
                fs.whiteout(found[0], target)
            return
        found = fs.resolve_dir(parts[:-1], name, create=True)
        assert found is not None  # create=True always finds or makes the directory
        parent, ppath = found
        path = f"{ppath}/{base}" if ppath else base
        layer = fs.layer
        type_ = e.type
        if type_ in (FILE, DIR, SYMLINK) and not e.xattrs:
            meta = fs.shared_meta(e.mode, e.uid, e.gid)
        else:
            # the same int object for the same mode: one per path otherwise (28 bytes each)
            mode = self.modes.setdefault(e.mode, e.mode)
            meta = Meta(mode=mode, uid=e.uid, gid=e.gid, xattrs=e.xattrs or _NO_XATTRS)
        if type_ == FILE:
            node = Node(kind=Kind.FILE, layer=layer, meta=meta)
            if self.select(path):
                if content is not None:
                    self.pending.append((e, node, content()))
                    if len(self.pending) >= _PENDING:  # memory stays flat in long layers
                        self.resolve(keep=_PENDING // 2)
                elif e.blob is not None:
                    node.blob = bytes.fromhex(e.blob)  # 53 bytes a file instead of 89
            fs.put(parent, base, node)
            if fs.unpacked >= _PACK_EVERY:
                fs.pack(busy={id(node) for _, node, _ in self.pending})
                heap.trim()  # what the packing freed, back to the system (patchkit/heap.py)
        elif type_ == DIR:
            fs.put(parent, base, Node(kind=Kind.DIR, layer=layer, meta=meta, children={}))
        elif type_ == SYMLINK:
            if "\0" in e.link:
                raise self.unsafe(name, "NUL in symlink target")
            fs.put(parent, base, Node(kind=Kind.SYMLINK, layer=layer, meta=meta, target=e.link))
        elif type_ == HARDLINK:
            self.hardlink(e, parent, base, path)
        elif type_ in _KINDS:
            meta.major, meta.minor = e.major, e.minor
            fs.put(parent, base, Node(kind=_KINDS[type_], layer=layer, meta=meta))
        else:
            raise self.unsafe(name, f"unsupported tar entry type {e.raw_type!r}")

    def hardlink(self, e: Entry, parent: Node, base: str, path: str) -> None:
        name = e.name
        try:
            tparts = self.parts(e.link)
        except UnsafeLayerError:
            raise self.unsafe(
                name, f"hard link target {show_name(e.link)} is outside the root"
            ) from None
        if not tparts:
            raise self.unsafe(name, f"hard link target {show_name(e.link)} is not a file")
        found = self.fs.lookup(tparts, name)
        if found is None:
            raise self.unsafe(name, f"hard link target {show_name(e.link)} does not exist")
        target, tpath = found
        if target.kind is not Kind.FILE:
            raise self.unsafe(
                name, f"hard link target {show_name(e.link)} is a {target.kind.value}, not a file"
            )
        if tpath == path:
            return
        if target.blob is None and any(node is target for _, node, _ in self.pending):
            self.resolve()  # the link needs its target's id (rare: waits for the writer)
        # The link shares its target's inode: its own mode/owner in the tar are ignored.
        meta = target.meta
        if not meta.linked:  # the target's own Meta from now on, not a shared one
            m = meta
            meta = target.meta = Meta(
                mode=m.mode, uid=m.uid, gid=m.gid, xattrs=m.xattrs, linked=True
            )
        link = Node(kind=Kind.FILE, layer=self.fs.layer, meta=meta, blob=target.blob)
        self.fs.put(parent, base, link)


def _where(layer: LayerBlob, index: int) -> str:
    return f"layer {index} ({short(layer.digest)})"


def read_layer(
    fs: RootFS,
    fi: ObjectSink,
    layer: LayerBlob,
    *,
    index: int,
    count: int,
    select: Selector,
    limits: Limits,
    progress: Callable[[ProgressEvent], None] | None = None,
    record: LayerRecord | None = None,
) -> None:
    """Apply one layer (index is 1-based) to ``fs``, verifying its digest and diff_id.

    With ``record``, every entry applied is added to it (for the layer cache).
    """
    where = _where(layer, index)
    fs.start_layer(index, where)
    strip = layer.strip if isinstance(layer, TarballLayer) else 0
    applier = _Applier(fs, select, where=where, strip=strip)

    def report(read: int, done: bool = False) -> None:
        if progress is not None:
            progress(
                ProgressEvent(
                    layer=index,
                    layers=count,
                    digest=layer.digest,
                    read=read,
                    total=layer.size,
                    done=done,
                )
            )

    try:
        raw = layer.open()
    except OSError as e:
        raise CorruptLayerError(f"{where}: cannot open the blob: {e}") from e
    with raw:
        stream = LayerStream(
            raw,
            algorithm=layer.digest.partition(":")[0],
            where=where,
            max_bytes=limits.max_layer_bytes,
            on_read=report if progress else None,
        )
        try:
            tar = TarReader(stream, limits)
            try:
                while (member := tar.next()) is not None:
                    entry = entry_from_tar(member)

                    def content(member: TarEntry = member) -> Callable[[], bytes]:
                        return fi.blob_stream_later(member.size, tar.content(member))

                    applier.apply(entry, content)
                    if record is not None:
                        record.add(entry)
                        if record.backlog >= _PENDING:
                            record.flush(applier.oldest_pending())
            except TarError as e:
                cls = UnsafeLayerError if e.unsafe else CorruptLayerError
                if e.entry is None:
                    raise cls(f"{where}: corrupt tar stream: {e.why}") from e
                raise entry_error(cls, where, e.entry, e.why) from e
            stream.drain()
            applier.resolve()
        finally:
            stream.close()
    if layer.size is not None and stream.raw_bytes != layer.size:
        raise DigestMismatchError(
            f"{where}: blob is {stream.raw_bytes} bytes, the manifest says {layer.size}"
        )
    if stream.blob_digest != layer.digest:
        raise DigestMismatchError(
            f"{where}: blob has digest {stream.blob_digest}, expected {layer.digest}"
        )
    if layer.diff_id is not None and stream.diff_id != layer.diff_id:
        raise DigestMismatchError(
            f"{where}: uncompressed content has diff_id {stream.diff_id}, expected {layer.diff_id}"
        )
    report(stream.raw_bytes, done=True)


def replay_layer(
    fs: RootFS, entries: Sequence[Entry], *, index: int, where: str, select: Selector
) -> None:
    """Apply a cached layer: the same rules, no blob read (metadata only)."""
    fs.start_layer(index, where)
    applier = _Applier(fs, select, where=where, strip=0)
    for entry in entries:
        applier.apply(entry)


def read_layers(
    plan: ImagePlan,
    fi: ObjectSink,
    *,
    select: Selector | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: Callable[[ProgressEvent], None] | None = None,
    cache: LayerCache | None = None,
    selection: Selection | None = None,
) -> RootFS:
    """Every layer of ``plan`` applied in order (lowest first) to a fresh RootFS.

    With ``cache``, layers found there are replayed instead of read, and layers
    read are recorded there (``selection`` says which contents were stored).
    """
    fs = RootFS()
    select = select or Selector()
    selection = selection or Selection(fingerprint=None)
    count = len(plan.layers)
    chains = chain_ids([layer.diff_id for layer in plan.layers])
    for i, (layer, chain) in enumerate(zip(plan.layers, chains, strict=True), start=1):
        where = _where(layer, i)
        cached = None
        if cache is not None and not isinstance(layer, TarballLayer):
            cached = cache.load(layer.diff_id, chain=chain, selection=selection, where=where)
        if cached is not None:
            replay_layer(fs, cached, index=i, where=where, select=select)
            cached = None  # not held while the next layer's entry is read
            if progress is not None:
                size = layer.size or 0
                progress(
                    ProgressEvent(
                        layer=i,
                        layers=count,
                        digest=layer.digest,
                        read=size,
                        total=layer.size,
                        done=True,
                        cached=True,
                    )
                )
            continue
        record = None
        if cache is not None and layer.diff_id is not None:
            record = LayerRecord(layer.diff_id, chain=chain, selection=selection)
        read_layer(
            fs,
            fi,
            layer,
            index=i,
            count=count,
            select=select,
            limits=limits,
            progress=progress,
            record=record,
        )
        if cache is not None and record is not None:
            cache.save(fi, record)
    return fs


def flatten(
    plan: ImagePlan,
    fi: ObjectSink,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    always: Collection[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    progress: Callable[[ProgressEvent], None] | None = None,
    cache: LayerCache | None = None,
) -> WrittenTree:
    """Stream every layer of ``plan`` into ``fi`` and write the flattened tree's git trees.

    With ``include``/``exclude`` globs only the selected regular files are read
    into the store (the others are skipped in the stream); whiteouts, links and
    directories are still tracked for every path. With ``cache`` (a `LayerCache`
    of the store ``fi`` writes to), cached layers cost metadata only.
    """
    select = Selector(include, exclude, always)
    selection = Selection.of(include, exclude, sorted(always))
    fs = read_layers(
        plan,
        fi,
        select=select,
        limits=limits,
        progress=progress,
        cache=cache,
        selection=selection,
    )
    fi.checkpoint()  # the blob pack is completed on the writer thread meanwhile
    return fs.write_tree(fi, select)
