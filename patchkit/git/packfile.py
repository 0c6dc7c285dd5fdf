"""The pack files of the store: their format, and the writer that runs in the helper process.

`PackWriter` (`git/pack.py`) is what the import calls; the objects it is given are
written here, by `pack_service`, on a thread of the helper process (`patchkit/workers.py`):
hashing (SHA-1, the object ids), compressing (zlib/isal) and writing never wait for the
calling process's GIL. The two talk over two pipes:

* **objects** (calling process -> writer): frames of `FRAME` (kind, object type, length)
  and their payload: an object to hash and write (its id is sent back), one whose id the
  caller computed, the start, pieces and end of a streamed blob, and `F_SEAL`, `F_SYNC`,
  `F_FINISH`, `F_ABORT`.
* **replies** (writer -> calling process): the id of every object it hashed, in order
  (`R_ID` + 20 bytes), `R_SYNC`, `R_DONE` once the packs are installed, or `R_ERROR` and a
  message (the writer then reads and drops the frames that follow, and answers `F_SYNC`
  and `F_FINISH` with the error again).

Replies are written whenever the pipe takes them, never blocking while frames wait to be
read, and the calling process never waits for a reply before its frames are sent: neither
side can wait for the other forever. At the end of the objects pipe without `F_FINISH`
(the calling process aborted, or died however), the writer removes its temporary files.

The temporary packs are `tmp_pack_pk_<token>_*`; the calling process holds the flock of
`tmp_pack_pk_<token>.lock` while it lives (`git/packtmp.py`'s `clear_stale_packs` tells a killed import's
files from a live one's by it). A pack is sealed (count, checksum, index, fsync) on
`F_SEAL` and at the end; `F_FINISH` renames every sealed pack, then its index, into place.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import io
import mmap
import os
import select
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from patchkit.compress import ZLIB
from patchkit.errors import StoreError
from patchkit.git.packtmp import TMP_PREFIX

__all__ = ["pack_service"]

OBJ_COMMIT, OBJ_TREE, OBJ_BLOB = 1, 2, 3
TYPE_NAMES = {OBJ_COMMIT: b"commit", OBJ_TREE: b"tree", OBJ_BLOB: b"blob"}

# -- the objects pipe: frames (kind, object type, payload length) ---------------------------
FRAME = struct.Struct("<BBQ")
F_OBJECT = 1  # an object (type, data): hashed here, its id sent back (R_ID)
F_KNOWN = 2  # an object whose id the caller computed: 20 bytes of id, then the data
F_BEGIN = 3  # a streamed blob of `length` bytes begins; F_CHUNK frames follow
F_CHUNK = 4  # the next bytes of the streamed blob
F_END = 5  # the streamed blob ends: type 1 complete (its id is sent back), 0 cut off
F_SEAL = 6  # complete the pack written so far; later objects go to a new one
F_SYNC = 7  # answered with R_SYNC once everything before it is handled
F_FINISH = 8  # seal, install every pack, answer R_DONE; the writer ends
F_ABORT = 9  # remove every temporary file; the writer ends
# -- the replies pipe: a tag, then its payload ------------------------------------------
R_ID = 0x69  # "i" + 20 bytes
R_SYNC = 0x73  # "s"
R_DONE = 0x66  # "f"
R_ERROR = 0x65  # "e" + 4-byte little-endian length + the message (UTF-8)

_DEFLATE: Any = ZLIB  # isal where installed, else zlib (patchkit/compress.py)
_DEFLATE_LEVEL = 1
# Objects smaller than this are compressed at level 0 instead: isal's level 1 costs about
# 10 us a call more whatever the size (a larger table to set up) and twice the time up to
# some 100 KB, for 10-25% smaller objects (docs/import-benchmark.md: 0.9 s less CPU on
# the benchmark's full image, a 3% bigger pack).
_SMALL = int(os.environ.get("PATCHKIT_PACK_SMALL", 1 << 16))
_READ = 1 << 20  # bytes of frames read from the pipe at a time
_WRITE_BUFFER = 1 << 18  # the pack file's write buffer
_REPLY_BATCH = 1 << 12  # replies queued before they are written without being asked for


class _IdSet:
    """The ids of every object a writer wrote, in the order written (20 bytes each, one
    bytearray), with an open-addressing hash table of their positions (4 bytes a slot,
    at most half full): ~32 bytes an id and no Python object per id, where a set of
    bytes costs ~120. SHA-1 ids are uniform, so their first bytes are the hash."""

    def __init__(self) -> None:
        self.ids = bytearray()
        self._table = array.array("I", bytes(4 << 12))  # position + 1; 0: a free slot
        self._mask = (1 << 12) - 1

    def __len__(self) -> int:
        return len(self.ids) // 20

    def _slot(self, oid: bytes) -> tuple[int, bool]:
        """The slot holding ``oid`` (True), or the free one it would go to (False)."""
        table, ids, mask = self._table, self.ids, self._mask
        i = int.from_bytes(oid[:4], "little") & mask
        while True:
            held = table[i]
            if not held:
                return i, False
            at = (held - 1) * 20
            if ids.startswith(oid, at, at + 20):
                return i, True
            i = (i + 1) & mask

    def __contains__(self, oid: bytes) -> bool:
        return self._slot(oid)[1]

    def add(self, oid: bytes) -> None:
        """Add ``oid`` (not in the set yet: the writer asks first)."""
        self._insert(self._slot(oid)[0], oid)

    def add_new(self, oid: bytes, unless: Callable[[bytes], bool]) -> bool:
        """Add ``oid`` unless it is here already or ``unless(oid)``; whether it was added.
        One probe of the table for both (the writer's per-object question)."""
        i, found = self._slot(oid)
        if found or unless(oid):
            return False
        self._insert(i, oid)
        return True

    def _insert(self, i: int, oid: bytes) -> None:
        self.ids += oid
        self._table[i] = len(self.ids) // 20
        if len(self.ids) // 20 * 2 > self._mask + 1:
            self._mask = self._mask * 2 + 1
            self._table = array.array("I", bytes(4 * (self._mask + 1)))
            for n in range(len(self.ids) // 20):
                self._table[self._slot(bytes(self.ids[20 * n : 20 * n + 20]))[0]] = n + 1


class _Objects:
    """The objects of one pack as written: their ids are positions ``first``... of the
    writer's `_IdSet` (every object written is added there, in order), offsets and CRCs
    flat arrays: 12 bytes an object of its own."""

    def __init__(self, written: _IdSet) -> None:
        self._written = written
        self._first = len(written)
        self._offsets = array.array("Q")
        self._crcs = array.array("I")

    def append(self, offset: int, crc: int) -> None:
        """The object just added to the writer's `_IdSet` is at ``offset``."""
        self._offsets.append(offset)
        self._crcs.append(crc)

    def __len__(self) -> int:
        return len(self._offsets)

    def write_index(self, out: IO[bytes], checksum: bytes) -> None:
        """Write the .idx (version 2) of the pack holding these objects to ``out``."""
        ids = memoryview(self._written.ids)[20 * self._first : 20 * (self._first + len(self))]
        try:
            _write_index(out, ids, self._offsets, self._crcs, checksum)
        finally:
            ids.release()


def _pack_header(type_: int, size: int) -> bytes:
    """A pack entry's header: 3-bit type and the size in a little-endian base-128 varint."""
    out = bytearray()
    byte = (type_ << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


class _PackedIds:
    """Which object ids the store already holds (packed or loose), read from the .idx files."""

    def __init__(self, objects: Path) -> None:
        self._loose: set[bytes] = set()
        with contextlib.suppress(OSError), os.scandir(objects) as top:
            for d in top:
                if len(d.name) == 2 and d.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        for name in os.listdir(d.path):
                            with contextlib.suppress(ValueError):
                                self._loose.add(bytes.fromhex(d.name + name))
        self._indexes: list[tuple[mmap.mmap, int]] = []
        for idx in sorted((objects / "pack").glob("pack-*.idx")):
            try:
                with open(idx, "rb") as f:
                    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                continue
            # v2 only (git writes nothing else since 1.5.2); anything else just means duplicates
            if len(m) >= 8 + 1024 and m[:8] == b"\377tOc\0\0\0\2":
                count = int.from_bytes(m[8 + 1020 : 8 + 1024], "big")
                if len(m) >= 8 + 1024 + 20 * count:
                    self._indexes.append((m, count))
                    continue
            m.close()

    def __contains__(self, oid: bytes) -> bool:
        if oid in self._loose:
            return True
        first = oid[0]
        for m, _ in self._indexes:
            lo = int.from_bytes(m[4 + 4 * first : 8 + 4 * first], "big") if first else 0
            hi = int.from_bytes(m[8 + 4 * first : 12 + 4 * first], "big")
            while lo < hi:
                mid = (lo + hi) // 2
                at = 8 + 1024 + 20 * mid
                probe = m[at : at + 20]
                if probe == oid:
                    return True
                if probe < oid:
                    lo = mid + 1
                else:
                    hi = mid
        return False

    def close(self) -> None:
        for m, _ in self._indexes:
            m.close()
        self._indexes = []


def _pack_index(entries: list[tuple[bytes, int, int]], checksum: bytes) -> bytes:
    """The .idx (version 2) of a pack holding ``entries`` (id, offset, crc32)."""
    out = io.BytesIO()
    _write_index(
        out,
        b"".join(oid for oid, _, _ in entries),
        array.array("Q", [offset for _, offset, _ in entries]),
        array.array("I", [crc for _, _, crc in entries]),
        checksum,
    )
    return out.getvalue()


def _write_index(
    out: IO[bytes],
    ids: bytes | bytearray | memoryview,
    offsets: array.array[int],
    crcs: array.array[int],
    checksum: bytes,
) -> None:
    """Write that .idx to ``out`` column by column, hashing on the way: besides the
    columns (4 bytes an object each), nothing the size of the whole index is held.
    Sorted a first byte at a time: only one bucket's ids are ever Python objects."""
    count = len(offsets)
    buckets = [array.array("I") for _ in range(256)]
    for n in range(count):
        buckets[ids[20 * n]].append(n)
    order = array.array("I")
    fanout = []
    for bucket in buckets:
        order.extend(sorted(bucket, key=lambda n: bytes(ids[20 * n : 20 * n + 20])))
        fanout.append(len(order))
    del buckets
    h = hashlib.sha1()

    def emit(data: bytes | bytearray | array.array[int]) -> None:
        h.update(data)
        out.write(data)

    emit(b"\377tOc\0\0\0\2" + struct.pack(">256I", *fanout))
    block = bytearray()
    for i in order:
        block += ids[20 * i : 20 * i + 20]
        if len(block) >= 1 << 16:
            emit(block)
            block.clear()
    emit(block)
    crc_col = array.array("I", (crcs[i] for i in order))
    small = array.array("I", [0]) * count
    large = array.array("Q")
    for n, i in enumerate(order):
        offset = offsets[i]
        if offset < 1 << 31:
            small[n] = offset
        else:
            small[n] = (1 << 31) | len(large)
            large.append(offset)
    if sys.byteorder == "little":  # the index is big-endian
        for column in (crc_col, small, large):
            column.byteswap()
    for column in (crc_col, small, large):
        emit(column)
    emit(checksum)
    out.write(h.digest())


# -- the writer (a thread of the helper process) -------------------------------------------


class _Frames:
    """The objects pipe, read a large piece at a time, and the replies pipe, written
    whenever it takes them: never blocking while frames are awaited (the calling process
    may be waiting to send more before it reads replies)."""

    def __init__(self, objects: int, replies: int) -> None:
        self._in, self._out = objects, replies
        os.set_blocking(replies, False)
        self.buf = b""
        self.at = 0  # offset in buf of the next unread byte
        self.outbox = bytearray()

    def reply(self, tag: int, payload: bytes = b"") -> None:
        self.outbox.append(tag)
        self.outbox += payload
        if len(self.outbox) >= _REPLY_BATCH:
            self._write_some()

    def _write_some(self) -> None:
        with contextlib.suppress(BlockingIOError):
            del self.outbox[: os.write(self._out, self.outbox)]

    def flush(self) -> None:
        """Write every reply queued, waiting for the calling process to read them."""
        while self.outbox:
            select.select([], [self._out], [])
            self._write_some()

    def need(self, n: int) -> bool:
        """At least ``n`` unread bytes in ``buf`` from ``at``; False at the end of the pipe
        (the calling process closed it: it aborted or is gone) before any of them."""
        have = len(self.buf) - self.at
        if have >= n:
            return True
        parts = [self.buf[self.at :]] if have else []
        while have < n:
            if self.outbox:  # replies first, unless frames are there to be read
                readable, writable, _ = select.select([self._in], [self._out], [])
                if writable:
                    self._write_some()
                if not readable:
                    continue
            data = os.read(self._in, max(_READ, n - have))
            if not data:
                if have:
                    raise StoreError("the object stream ended inside a frame")
                self.buf, self.at = b"", 0
                return False
            parts.append(data)
            have += len(data)
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self.at = 0
        return True


class _Packs:
    """The temporary packs of one writer: the one being written and those sealed."""

    def __init__(self, pack_dir: Path, token: str) -> None:
        self.pack_dir = pack_dir
        self.token = token
        self.existing = _PackedIds(pack_dir.parent)  # in the store already
        self.ids = _IdSet()  # written, to any pack of this writer
        self.sealed: list[tuple[Path, Path, bytes]] = []  # (tmp pack, tmp idx, checksum)
        self.new_pack()

    def new_pack(self) -> None:
        import tempfile

        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{self.token}_", dir=self.pack_dir)
        self.tmp = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=_WRITE_BUFFER)
        self.file.write(b"PACK\0\0\0\2\0\0\0\0")  # the count is fixed when sealed
        self.offset = 12
        self.entries = _Objects(self.ids)  # what the pack holds

    def seal_current(self) -> None:
        """Complete the pack being written (count, checksum, index: temporary files still,
        fsynced) and start a new one."""
        if not self.entries:
            return
        f = self.file
        count = len(self.entries)
        if count >= 1 << 32:
            raise StoreError("too many objects for one pack")
        f.seek(8)
        f.write(count.to_bytes(4, "big"))
        f.flush()
        # Read back for the checksum: the count it covers is only known now. This
        # overlaps the trees being built in the calling process.
        h = hashlib.sha1()
        with open(self.tmp, "rb") as r:
            while block := r.read(1 << 20):
                h.update(block)
        checksum = h.digest()
        f.seek(0, os.SEEK_END)
        f.write(checksum)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        idx_tmp = self.tmp.with_suffix(".idx")
        self.sealed.append((self.tmp, idx_tmp, checksum))
        with open(idx_tmp, "wb") as out:
            self.entries.write_index(out, checksum)
            out.flush()
            os.fsync(out.fileno())
        self.new_pack()

    def finish(self) -> None:
        """Seal the last pack and rename every sealed pack, then its index, into place
        (git never sees a pack without its index); fsync the directory."""
        self.seal_current()
        self.file.close()
        self.tmp.unlink()  # the empty pack `seal_current` started
        sealed, self.sealed = self.sealed, []
        for n, (tmp, idx_tmp, checksum) in enumerate(sealed):
            name = "pack-" + checksum.hex()
            pack, idx = self.pack_dir / (name + ".pack"), self.pack_dir / (name + ".idx")
            try:
                if idx.exists():  # the very same pack is there already
                    for path in (tmp, idx_tmp):
                        with contextlib.suppress(OSError):
                            path.unlink()
                    continue
                os.chmod(tmp, 0o444)
                os.chmod(idx_tmp, 0o444)
                os.replace(tmp, pack)
                try:
                    os.replace(idx_tmp, idx)
                except BaseException:
                    with contextlib.suppress(OSError):
                        pack.unlink()
                    raise
            except BaseException:
                self.sealed = sealed[n + 1 :]  # for `discard`; installed ones stay
                with contextlib.suppress(OSError):
                    idx_tmp.unlink()
                raise
        if sealed:
            dir_fd = os.open(self.pack_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def discard(self) -> None:
        """Remove every temporary file of this writer."""
        with contextlib.suppress(OSError):
            self.file.close()
        for tmp in [self.tmp, *(pack for pack, _, _ in self.sealed)]:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                tmp.with_suffix(".idx").unlink()
        self.sealed = []
        self.existing.close()


def pack_service(args: dict[str, Any], fds: list[int]) -> None:
    """The pack writer (`PackWriter`'s other half), on a thread of the helper process:
    ``fds`` are the objects pipe (read) and the replies pipe (write); ``args`` name the
    store's pack directory and the writer's token."""
    objects, replies = fds
    packs: _Packs | None = None
    installed = False
    frames = _Frames(objects, replies)
    try:
        try:
            packs = _Packs(Path(args["pack_dir"]), str(args["token"]))
        except BaseException as e:
            _fail(frames, e)
            _drain(frames, str(e))
            return
        installed = _write(packs, frames)
    except BrokenPipeError:
        pass  # the calling process is gone
    finally:
        if packs is not None and not installed:
            packs.discard()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f" ({e.filename})" if e.filename else ""
        return f"{e.strerror}{where}"
    return str(e) or type(e).__name__


def _fail(frames: _Frames, e: BaseException) -> None:
    """Queue the error's reply (written while the frames that follow are drained)."""
    message = _message(e).encode("utf-8", "replace")
    frames.reply(R_ERROR, len(message).to_bytes(4, "little") + message)


def _drain(frames: _Frames, why: str) -> None:
    """After an error: drop the frames that follow, answering F_SYNC and F_FINISH with
    the error again, until F_ABORT or the end of the pipe."""
    message = why.encode("utf-8", "replace")
    error = len(message).to_bytes(4, "little") + message
    size = FRAME.size
    while frames.need(size):
        kind, _, length = FRAME.unpack_from(frames.buf, frames.at)
        frames.at += size
        if kind in (F_OBJECT, F_KNOWN, F_CHUNK):
            if not frames.need(length):
                return
            frames.at += length
        elif kind in (F_SYNC, F_FINISH):
            frames.reply(R_ERROR, error)
            frames.flush()
        elif kind == F_ABORT:
            return


def _write(packs: _Packs, frames: _Frames) -> bool:
    """Handle the frames until F_FINISH (True: the packs are installed), F_ABORT or the
    end of the pipe (False)."""
    ids = packs.ids
    known = packs.existing.__contains__
    deflate = _DEFLATE.compress
    crc32 = zlib.crc32
    sha1 = hashlib.sha1
    reply = frames.reply
    unpack = FRAME.unpack_from
    size = FRAME.size
    write, entries = packs.file.write, packs.entries
    stream: Any = None  # the compressor of the blob being streamed
    streamed: Any = None  # its SHA-1
    start = crc = 0
    while frames.need(size):
        kind, type_, length = unpack(frames.buf, frames.at)
        frames.at += size
        try:
            if kind in (F_OBJECT, F_KNOWN, F_CHUNK):
                if not frames.need(length):
                    raise StoreError("the object stream ended inside a frame")
                at = frames.at
                data = memoryview(frames.buf)[at : at + length]
                frames.at = at + length
                if kind == F_CHUNK:
                    streamed.update(data)
                    out = stream.compress(data)
                    crc = crc32(out, crc)
                    write(out)
                    continue
                if kind == F_OBJECT:
                    h = sha1(b"%s %d\0" % (TYPE_NAMES[type_], length))
                    h.update(data)
                    oid = h.digest()
                    reply(R_ID, oid)
                else:
                    oid = bytes(data[:20])
                    data = data[20:]
                if not ids.add_new(oid, known):
                    continue
                head = _pack_header(type_, len(data))
                body = deflate(data, 0 if len(data) < _SMALL else _DEFLATE_LEVEL)
                entries.append(packs.offset, crc32(body, crc32(head)))
                write(head)
                write(body)
                packs.offset += len(head) + len(body)
            elif kind == F_BEGIN:
                head = _pack_header(OBJ_BLOB, length)
                streamed = sha1(b"blob %d\0" % length)
                stream = _DEFLATE.compressobj(_DEFLATE_LEVEL)
                start, crc = packs.offset, crc32(head)
                write(head)
            elif kind == F_END:
                out = stream.flush()
                stream = None
                whole: bytes | None = streamed.digest() if type_ else None
                if whole is not None:
                    reply(R_ID, whole)
                if whole is None or not ids.add_new(whole, known):
                    packs.file.seek(start)
                    packs.file.truncate()
                else:
                    write(out)
                    entries.append(start, crc32(out, crc))
                    packs.offset = packs.file.tell()
            elif kind == F_SEAL:
                packs.seal_current()
                write, entries = packs.file.write, packs.entries
            elif kind == F_SYNC:
                reply(R_SYNC)
                frames.flush()
            elif kind == F_FINISH:
                packs.finish()
                reply(R_DONE)
                frames.flush()
                return True
            elif kind == F_ABORT:
                return False
            else:
                raise StoreError(f"unknown frame {kind}")
        except BrokenPipeError:
            raise
        except Exception as e:  # reported to the calling process; then only drained
            _fail(frames, e)
            _drain(frames, _message(e))
            return False
    return False
