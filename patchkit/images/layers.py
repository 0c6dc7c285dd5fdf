"""Flatten an image's layers into a RootFS, streaming, never extracting to disk.

Each layer is read once: the stored bytes are hashed (blob digest), decompressed
(gzip, zstd, bzip2, xz or plain, by magic bytes), hashed again (diff_id, both
hashes on a helper thread) and parsed as a tar stream; regular files go straight
into the store through an `ObjectSink` (`images/sink.py`; for imports, a pack
written by `patchkit.git`). Both digests are compared once the stream has been read
to its very end.

Limits (`Limits`) guard against decompression bombs: a layer that inflates past
``max_layer_bytes`` or holds more than ``max_entries`` entries is refused with
CorruptLayerError.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import queue
import tarfile
import threading
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import zstandard

from patchkit import heap
from patchkit.compress import ZLIB
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
from patchkit.images.digests import hasher, short
from patchkit.images.sink import ObjectSink
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

_CHUNK = 1 << 18  # bytes of the stored blob read at a time
_AHEAD = 3  # inflated pieces queued ahead of the parser (at most _MAX_OUT bytes each)
_FILE_CHUNK = 1 << 18  # file contents are read in pieces this big
# Most uncompressed bytes per step: big enough that the helper thread does a fraction of a
# millisecond of GIL-free work per hand-over, small enough that the bytes in flight stay
# about 1 MB whatever the image (1 MB pieces measured as fast, with a 5-7 MB bigger and
# less steady peak RSS).
_MAX_OUT = 1 << 18
_PENDING = 4096  # stored contents whose ids are filled in together (`_Applier.resolve`)
_PACK_EVERY = 4096  # regular files put between two `RootFS.pack` calls (the tree stays small)
_ZSTD_FEED = 2048  # zstd's ratio is bounded per input byte; small feeds bound memory

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-layer ceilings; exceeding one is a CorruptLayerError."""

    max_layer_bytes: int = 64 << 30  # uncompressed bytes of one layer (64 GiB)
    max_entries: int = 5_000_000  # tar entries in one layer


DEFAULT_LIMITS = Limits()


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


# -- decompression --------------------------------------------------------------------


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


GZIP_MODULE: Any = ZLIB  # isal where installed, else zlib (patchkit/compress.py)
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    zlib.error,
    GZIP_MODULE.error,
    OSError,
    EOFError,
    lzma.LZMAError,
    zstandard.ZstdError,
)


class _ZlibDecoder:
    def __init__(self) -> None:
        self._d = GZIP_MODULE.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data)

    @property
    def needs_input(self) -> bool:
        return not self._tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out: bytes = self._d.decompress(self._tail + data, max(max_length, 0))
        self._tail = self._d.unconsumed_tail
        return out


class _ZstdDecoder:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data) + self._pending

    @property
    def needs_input(self) -> bool:
        return not self._pending

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        self._pending += data
        out = bytearray()
        while self._pending and not self._d.eof and len(out) < max_length:
            feed, self._pending = self._pending[:_ZSTD_FEED], self._pending[_ZSTD_FEED:]
            out += self._d.decompress(feed)
        return bytes(out)


_FORMATS: tuple[tuple[str, bytes, Callable[[], _Decoder]], ...] = (
    ("gzip", GZIP_MAGIC, _ZlibDecoder),
    ("zstd", ZSTD_MAGIC, _ZstdDecoder),
    ("bzip2", BZIP2_MAGIC, bz2.BZ2Decompressor),
    ("xz", XZ_MAGIC, lzma.LZMADecompressor),
)


_DONE = object()  # the inflating thread's last item: the stream ended cleanly


class LayerStream:
    """The uncompressed bytes of one stored layer blob, hashed on both sides.

    A helper thread reads the stored blob, hashes it (blob digest), inflates it,
    hashes the result (diff_id) and queues it in pieces of up to `_MAX_OUT` bytes,
    `_AHEAD` pieces ahead: zlib/isal, zstd, bz2, lzma and hashlib all release the
    GIL, so the next piece is inflated on the other core while the calling thread
    parses the tar and stores the current one. Memory stays bounded by the queue.

    For tarfile it is a file read front to back: ``read``, ``tell`` and forward-only
    ``seek`` (skipping bytes still inflates and hashes them). Errors of the helper
    (a corrupt stream, a read error, the size limit) are raised by the read that
    reaches them. `drain` reads to the very end; after it `blob_digest`/`diff_id`
    are final. `close` stops the helper and must be called when the stream is
    abandoned.
    """

    def __init__(
        self,
        raw: BinaryIO,
        *,
        algorithm: str,
        where: str,
        limits: Limits,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._raw = raw
        self._where = where
        self._limits = limits
        self._on_read = on_read
        self._raw_hash = hasher(f"{algorithm}:")
        self._algorithm = algorithm
        self._diff_hash = hasher("sha256:")
        self.raw_bytes = 0  # of the stored blob, as far as the calling thread has seen
        self.bytes = 0  # uncompressed bytes inflated (helper thread)
        self._raw_total = 0  # stored bytes read (helper thread)
        self.format = "tar"
        self._dec: _Decoder | None = None
        self._pos = 0  # offset in the uncompressed stream of the next byte `read` returns
        self._piece = b""
        self._at = 0  # offset of the next byte in self._piece
        self._eof = False
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="patchkit-inflate", daemon=True)
        self._thread.start()

    def _corrupt(self, why: str) -> CorruptLayerError:
        return CorruptLayerError(f"{self._where}: {why}")

    # -- the helper thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._inflate_all()
            self._put(_DONE)
        except BaseException as e:  # raised on the calling thread by the read reaching it
            self._put(e)

    def _put(self, item: Any) -> None:
        while not self._stop:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read_raw(self) -> bytes:
        try:
            data = self._raw.read(_CHUNK)
        except OSError as e:
            raise self._corrupt(f"cannot read the blob: {e}") from e
        if data:
            self._raw_hash.update(data)
            self._raw_total += len(data)
        return data

    def _read_raw_at_least(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            data = self._read_raw()
            if not data:
                break
            out += data
        return out

    def _inflate_all(self) -> None:
        self._raw_total = 0
        pending = self._read_raw_at_least(len(XZ_MAGIC))
        for name, magic, factory in _FORMATS:
            if pending.startswith(magic):
                self.format, self._dec = name, factory()
                break
        limit = self._limits.max_layer_bytes
        while not self._stop:
            out = self._produce(pending)
            pending = b""
            if not out:
                return
            self.bytes += len(out)
            if self.bytes > limit:
                raise self._corrupt(f"uncompressed size exceeds the limit of {limit} bytes")
            self._diff_hash.update(out)
            self._put((out, self._raw_total))

    def _produce(self, pending: bytes) -> bytes:
        """Some more uncompressed bytes; b"" only at the true end of the stream."""
        while True:
            if pending:
                data, pending = pending, b""
            elif self._dec is None or self._dec.needs_input:
                data = self._read_raw()
            else:
                data = b""
            if self._dec is None:
                return data
            if self._dec.eof:
                # Another member/frame may follow (pigz, zstd multi-frame); nothing else may.
                rest = self._dec.unused_data + data
                if len(rest) < 8:
                    rest += self._read_raw_at_least(8 - len(rest))
                if not rest:
                    return b""
                _, magic, factory = next(f for f in _FORMATS if f[0] == self.format)
                if not rest.startswith(magic):
                    raise self._corrupt(f"data after the end of the {self.format} stream")
                self._dec = factory()
                data = rest
            elif not data and self._dec.needs_input:
                raise self._corrupt(f"truncated {self.format} stream")
            try:
                out = self._dec.decompress(data, _MAX_OUT)
            except _DECODE_ERRORS as e:
                raise self._corrupt(f"corrupt {self.format} stream: {e}") from e
            if out:
                return out

    # -- the calling thread --------------------------------------------------------------

    def _next_piece(self) -> bool:
        """Make the next inflated piece current; False at the end of the stream."""
        if self._eof:
            return False
        item = self._queue.get()
        if item is _DONE:
            self._eof = True
            self._piece, self._at = b"", 0
            return False
        if isinstance(item, BaseException):
            self._eof = True
            self._piece, self._at = b"", 0
            raise item
        self._piece, self._at = item[0], 0
        self.raw_bytes = item[1]
        if self._on_read is not None:
            self._on_read(self.raw_bytes)
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = _MAX_OUT
        piece, at = self._piece, self._at
        if at + n <= len(piece):  # the common case: within the current piece
            self._at = at + n
            self._pos += n
            return piece[at : at + n]
        parts = [piece[at:]]
        have = len(piece) - at
        self._at = len(piece)
        while have < n and self._next_piece():
            take = min(n - have, len(self._piece))
            parts.append(self._piece[:take])
            self._at = take
            have += take
        self._pos += have
        return b"".join(parts)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Forward only (tarfile skips the contents it is not asked for)."""
        if whence == 1:
            offset += self._pos
        elif whence != 0:
            raise OSError("a layer stream can only seek from its start or position")
        if offset < self._pos:
            raise OSError("a layer stream cannot seek backwards")
        left = offset - self._pos
        while left:
            avail = len(self._piece) - self._at
            if avail <= 0:
                if not self._next_piece():
                    break  # past the end: the next read returns b"", as with a file
                continue
            step = min(avail, left)
            self._at += step
            self._pos += step
            left -= step
        return self._pos

    def chunks(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes, in pieces of up to `_FILE_CHUNK` (a file's content).

        Raises tarfile.ReadError at the end of the stream, as tarfile does.
        """
        left = size
        while left > 0:
            data = self.read(min(_FILE_CHUNK, left))
            if not data:
                raise tarfile.ReadError("unexpected end of data")
            left -= len(data)
            yield data

    def drain(self) -> None:
        """Read to the very end; what follows the tar's end marker must be zeros."""
        while chunk := self.read(_MAX_OUT):
            if chunk.count(0) != len(chunk):
                raise self._corrupt("data after the end of the tar archive")

    def close(self) -> None:
        """Stop the helper thread (at once if the stream is abandoned) and wait for it."""
        if self._thread.is_alive():
            if not self._eof:
                self._stop = True
                with contextlib.suppress(queue.Empty):
                    while True:
                        self._queue.get_nowait()
            self._thread.join()

    @property
    def blob_digest(self) -> str:
        self.close()
        return f"{self._algorithm}:{self._raw_hash.hexdigest()}"

    @property
    def diff_id(self) -> str:
        self.close()
        return f"sha256:{self._diff_hash.hexdigest()}"


# -- tar entries ------------------------------------------------------------------------


class _TarInfo(tarfile.TarInfo):
    """`tarfile.TarInfo` with a cheaper header checksum (the same headers accepted).

    The standard `frombuf` computes both the unsigned and the signed checksum of every
    512-byte header by unpacking it into a tuple of 504 ints, twice: about a sixth of
    the parsing thread's time on a layer of small files. Here the unsigned sum is
    ``sum(buf)`` (C, no tuple) and the signed one is only computed when that does not
    match (old Sun/NeXT tars). The rest is `TarInfo.frombuf` of Python 3.11-3.13, line
    for line.
    """

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _TarInfo:
        nti, nts = tarfile.nti, tarfile.nts  # type: ignore[attr-defined]
        if len(buf) == 0:
            raise tarfile.EmptyHeaderError("empty header")  # type: ignore[attr-defined]
        if len(buf) != tarfile.BLOCKSIZE:
            raise tarfile.TruncatedHeaderError("truncated header")  # type: ignore[attr-defined]
        if buf.count(tarfile.NUL) == tarfile.BLOCKSIZE:
            raise tarfile.EOFHeaderError("end of file header")  # type: ignore[attr-defined]

        chksum = nti(buf[148:156])
        # 256: the checksum field itself counts as eight spaces
        if chksum != 256 + sum(buf) - sum(buf[148:156]) and chksum not in (
            tarfile.calc_chksums(buf)  # type: ignore[attr-defined]
        ):
            raise tarfile.InvalidHeaderError("bad checksum")  # type: ignore[attr-defined]

        obj = cls()
        obj.name = nts(buf[0:100], encoding, errors)
        obj.mode = nti(buf[100:108])
        obj.uid = nti(buf[108:116])
        obj.gid = nti(buf[116:124])
        obj.size = nti(buf[124:136])
        obj.mtime = nti(buf[136:148])
        obj.chksum = chksum
        obj.type = bytes(buf[156:157])
        obj.linkname = nts(buf[157:257], encoding, errors)
        obj.uname = nts(buf[265:297], encoding, errors)
        obj.gname = nts(buf[297:329], encoding, errors)
        obj.devmajor = nti(buf[329:337])
        obj.devminor = nti(buf[337:345])
        prefix = nts(buf[345:500], encoding, errors)

        # Old V7 tar format represents a directory as a regular file with a trailing slash.
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE

        # The old GNU sparse format keeps up to 4 sparse structures in the header, for
        # _proc_sparse().
        if obj.type == tarfile.GNUTYPE_SPARSE:
            pos = 386
            structs = []
            for _ in range(4):
                try:
                    offset = nti(buf[pos : pos + 12])
                    numbytes = nti(buf[pos + 12 : pos + 24])
                except ValueError:
                    break
                structs.append((offset, numbytes))
                pos += 24
            isextended = bool(buf[482])
            origsize = nti(buf[483:495])
            obj._sparse_structs = (structs, isextended, origsize)  # type: ignore[attr-defined]

        # Remove redundant slashes from directories.
        if obj.isdir():
            obj.name = obj.name.rstrip("/")

        # Reconstruct a ustar longname.
        if prefix and obj.type not in tarfile.GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj


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


def _chunks(f: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        data = f.read(min(_FILE_CHUNK, left))
        if not data:
            return
        left -= len(data)
        yield data


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
            limits=limits,
            on_read=report if progress else None,
        )
        try:
            try:
                # "r:" on our forward-only stream: tarfile reads headers and seeks past
                # contents itself, with no buffer of its own copying every byte ("r|").
                tf = tarfile.TarFile.open(
                    fileobj=stream,  # type: ignore[call-overload]
                    mode="r:",
                    tarinfo=_TarInfo,
                    encoding="utf-8",
                    errors="surrogateescape",
                )
            except tarfile.TarError as e:
                raise CorruptLayerError(f"{where}: not a tar stream: {e}") from e
            entries = 0
            try:
                while True:
                    member = tf.next()
                    if member is None:
                        break
                    tf.members.clear()  # stream mode keeps every header otherwise
                    entries += 1
                    if entries > limits.max_entries:
                        raise CorruptLayerError(f"{where}: more than {limits.max_entries} entries")
                    entry = entry_from_tar(member)

                    def content(
                        member: tarfile.TarInfo = member, name: str = entry.name
                    ) -> Callable[[], bytes]:
                        try:
                            if member.issparse():  # GNU sparse: tarfile fills the holes
                                f = tf.extractfile(member)
                                assert f is not None
                                chunks = _chunks(f, member.size)
                            else:
                                stream.seek(member.offset_data)
                                chunks = stream.chunks(member.size)
                            return fi.blob_stream_later(member.size, chunks)
                        except tarfile.TarError as e:
                            raise CorruptLayerError(
                                f"{where}: entry {show_name(name)}: truncated content: {e}"
                            ) from e

                    applier.apply(entry, content)
                    if record is not None:
                        record.add(entry)
                        if record.backlog >= _PENDING:
                            record.flush(applier.oldest_pending())
            except tarfile.TarError as e:
                raise CorruptLayerError(f"{where}: corrupt tar stream: {e}") from e
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
