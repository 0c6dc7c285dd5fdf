"""Writing git objects: `git fast-import` sessions and packs written directly (the import's hot path)."""

from __future__ import annotations

import array
import contextlib
import functools
import hashlib
import io
import mmap
import os
import queue
import re
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from patchkit.compress import ZLIB
from patchkit.core.objects import MODE_TREE, TreeEntry, git_blob_id, git_object_id, tree_body
from patchkit.errors import StoreError
from patchkit.git.packtmp import TMP_PREFIX, clear_stale_packs
from patchkit.git.runner import _IDENT

__all__ = ["FastImport", "PackWriter", "clear_stale_packs"]


def _quote_path(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    if not (b'"' in raw or b"\n" in raw or b"\\" in raw or raw.startswith(b'"')):
        return raw
    out = bytearray(b'"')
    for byte in raw:
        ch = bytes([byte])
        if ch in (b'"', b"\\"):
            out += b"\\" + ch
        elif ch == b"\n":
            out += b"\\n"
        else:
            out += ch
    out += b'"'
    return bytes(out)


class FastImport:
    """A `git fast-import` session: blobs are streamed in, trees assembled from ids.

    The `ObjectSink` of `patchkit.images.sink` (blob, blob_stream, commit), which the
    flattener and the layer cache write through.

    Blob ids are computed here while streaming, so callers never wait for git.
    With a `PackWriter` (`Store.fast_import(pack=True)`), objects go to that pack
    instead and `refs` lists the refs to set once the pack is in the store.
    """

    def __init__(self, out: IO[bytes], pack: PackWriter | None = None) -> None:
        self._out = out
        self._pack = pack
        self._sent: set[str] = set()
        self._trees: dict[bytes, bytes] = {}  # a plain session's tree objects (`tree`)
        self._mark = 0
        self.refs: list[tuple[str, str]] = []  # with a pack: (ref, commit id) to set at the end

    def blob(self, data: bytes | bytearray) -> str:
        """Store a small blob given whole; return its id."""
        if self._pack is not None:
            return self._pack.add(data)
        oid = git_blob_id(data)
        if oid not in self._sent:
            self._out.write(b"blob\ndata %d\n" % len(data))
            self._out.write(data)
            self._out.write(b"\n")
            self._sent.add(oid)
        return oid

    def blob_stream(self, size: int, chunks: Iterable[bytes]) -> str:
        """Store a blob of a known size from a stream of chunks; return its id.

        The content is written to git as it arrives; the id is computed on the way.
        Raises StoreError if the chunks do not add up to ``size``.
        """
        if self._pack is not None:
            return self._pack.add_stream(size, chunks)
        h = hashlib.sha1(b"blob %d\0" % size)
        self._out.write(b"blob\ndata %d\n" % size)
        seen = 0
        for chunk in chunks:
            seen += len(chunk)
            if seen > size:
                raise StoreError(f"blob stream longer than its declared size {size}")
            h.update(chunk)
            self._out.write(chunk)
        if seen != size:
            raise StoreError(f"blob stream ended after {seen} of {size} bytes")
        self._out.write(b"\n")
        oid = h.hexdigest()
        self._sent.add(oid)
        return oid

    def blob_stream_later(self, size: int, chunks: Iterable[bytes]) -> Callable[[], bytes]:
        """Like `blob_stream`; the returned function gives the id, as 20 bytes. With a
        pack, the hashing happens on its writer thread meanwhile (call it when the id is
        needed)."""
        if self._pack is not None:
            return self._pack.add_stream_later(size, chunks)
        oid = bytes.fromhex(self.blob_stream(size, chunks))
        return lambda: oid

    def checkpoint(self) -> None:
        """Everything written so far may be completed now: with a pack, its writer thread
        seals it (checksum, index) while the caller builds the trees, which go to a
        second pack. Nothing is visible to git before `close`/`finish` either way."""
        if self._pack is not None:
            self._pack.seal()

    def tree(self, body: bytes) -> bytes:
        """Store a tree object with this body (`core.objects.tree_body`); its id, 20 bytes.

        `git fast-import` takes no tree objects: a plain session keeps the body, and
        `commit_tree` gives fast-import the files the tree holds, so git builds the tree
        itself (the reference the pack's trees are tested against)."""
        if self._pack is not None:
            return self._pack.add_tree_object(body)
        oid = git_object_id(b"tree", body)
        self._trees[oid] = body
        return oid

    def commit_tree(self, ref: str, tree: str, message: str, *, parent: str | None = None) -> None:
        """Write a commit at ``ref`` of the tree ``tree`` (an id `tree` returned, hex)."""
        if self._pack is None:
            self.commit(ref, self._files_of(tree), message, parent=parent)
            return
        self._mark += 1
        self.refs.append((ref, self._pack_commit(message, self._parent(ref, parent), tree)))

    def _files_of(self, tree: str) -> dict[str, TreeEntry]:
        """The files of a tree given to `tree` in this plain session (path -> entry)."""
        files: dict[str, TreeEntry] = {}
        todo = [("", bytes.fromhex(tree))]
        while todo:
            prefix, oid = todo.pop()
            body = self._trees.get(oid)
            if body is None:
                raise StoreError(f"tree {oid.hex()} was not written in this session")
            at = 0
            while at < len(body):
                space = body.index(b" ", at)
                nul = body.index(b"\0", space)
                mode = int(body[at:space], 8)
                name = body[space + 1 : nul].decode("utf-8", "surrogateescape")
                entry_id = body[nul + 1 : nul + 21]
                at = nul + 21
                path = f"{prefix}{name}"
                if mode == MODE_TREE:
                    todo.append((path + "/", entry_id))
                else:
                    files[path] = TreeEntry(mode=mode, blob=entry_id.hex())
        return files

    def _parent(self, ref: str, parent: str | None) -> str | None:
        # As fast-import does: a branch committed to earlier in the session continues.
        earlier = [oid for name, oid in self.refs if name == ref]
        return parent or (earlier[-1] if earlier else None)

    def commit(
        self,
        ref: str,
        files: Mapping[str, TreeEntry],
        message: str,
        *,
        parent: str | None = None,
    ) -> None:
        """Write a commit at ``ref`` whose tree is exactly ``files`` (path -> entry)."""
        self._commit(ref, message, parent=parent, changes=files, replace_all=True)

    def commit_changes(
        self,
        ref: str,
        changes: Mapping[str, TreeEntry | None],
        message: str,
        *,
        parent: str,
    ) -> int:
        """Write a commit on top of ``parent`` changing only ``changes`` (None deletes).

        Returns the commit's mark; `Store.fast_import(marks=...)` maps marks to ids.
        """
        return self._commit(ref, message, parent=parent, changes=changes, replace_all=False)

    def _commit(
        self,
        ref: str,
        message: str,
        *,
        parent: str | None,
        changes: Mapping[str, TreeEntry | None] | Mapping[str, TreeEntry],
        replace_all: bool,
    ) -> int:
        self._mark += 1
        if self._pack is not None:
            if not replace_all:
                raise StoreError("commit_changes needs a plain fast-import session")
            tree = self._pack.add_tree({p: e for p, e in changes.items() if e is not None})
            self.refs.append((ref, self._pack_commit(message, self._parent(ref, parent), tree)))
            return self._mark
        msg = message.encode("utf-8")
        w = self._out.write
        w(b"commit %s\n" % ref.encode())
        w(b"mark :%d\n" % self._mark)
        w(b"committer %s 0 +0000\n" % _IDENT.encode())
        w(b"data %d\n" % len(msg))
        w(msg + b"\n")
        if parent:
            w(b"from %s\n" % parent.encode())
        if replace_all:
            w(b"deleteall\n")
        for path in sorted(changes):
            entry = changes[path]
            if entry is None:
                w(b"D %s\n" % _quote_path(path))
            else:
                w(b"M %o %s %s\n" % (entry.mode, entry.blob.encode(), _quote_path(path)))
        w(b"\n")
        return self._mark

    def _pack_commit(self, message: str, parent: str | None, tree: str) -> str:
        """The commit `git fast-import` writes for ``commit``, written to the pack."""
        assert self._pack is not None
        if not _HEX40.match(tree):
            raise StoreError(f"tree {tree!r} is not a tree id")
        ident = _IDENT.encode() + b" 0 +0000"
        body = b"tree %s\n" % tree.encode()
        if parent:
            if not _HEX40.match(parent):
                raise StoreError(f"parent {parent!r} is not a commit id")
            body += b"parent %s\n" % parent.encode()
        body += b"author %s\ncommitter %s\n\n%s" % (ident, ident, message.encode("utf-8"))
        return self._pack.add_object(_OBJ_COMMIT, body)

    def close(self) -> None:
        self._out.write(b"done\n")
        self._out.close()


_OBJ_COMMIT = 1


_OBJ_TREE = 2


_OBJ_BLOB = 3


_TYPE_NAMES = {_OBJ_COMMIT: b"commit", _OBJ_TREE: b"tree", _OBJ_BLOB: b"blob"}


_PACK_WHOLE = 1 << 20  # blobs up to this size are compressed in one call, bigger ones in chunks


_PACK_BATCH = 1 << 18  # small blobs are handed to the compressing thread in batches this big


_PACK_QUEUE = 3  # batches/chunks in flight between the reading and the compressing thread


_DEFLATE: Any = ZLIB  # isal where installed, else zlib (patchkit/compress.py)
_HEX40 = re.compile(r"\A[0-9a-f]{40}\Z")
_DEFLATE_LEVEL = 1
# Objects smaller than this are deflated at `_SMALL_LEVEL`: isal's level 0 takes less than
# half the CPU of its level 1 on small files (per-call setup), for objects ~25% bigger; on
# the benchmark image: about 0.3 CPU s less, a pack 2.7% bigger (docs/import-benchmark.md).
# The standard library's level 0 stores without compressing: level 1 there.
_SMALL = 1 << 14
_SMALL_LEVEL = 0 if ZLIB is not zlib else _DEFLATE_LEVEL


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


class _Later:
    """The id of an object queued without one: set by the writer thread once hashed."""

    __slots__ = ("oid",)

    def __init__(self) -> None:
        self.oid: bytes | None = None


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


class PackWriter:
    """Writes blobs straight into a new pack of the store (pack v2, index v2).

    Compressing and writing happen on one background thread (zlib/isal and hashlib
    release the GIL), fed in order through a small bounded queue, so memory stays
    flat. `add_stream_later` also leaves the SHA-1 to that thread: the caller gets a
    function that gives the id once the thread has hashed the blob (`sync` waits for
    it), so the parsing thread goes on with the next tar entry meanwhile. Blobs the
    store already has, or that this pack already holds, are not written again (the
    writer thread decides, so the check and the write never race).

    Until `finish`, the pack is a `tmp_pack_*` file that git ignores (and `git gc`
    removes if a crash leaves it behind). `finish` fixes the object count, appends
    the checksum, writes the index, fsyncs both and renames the pack and then the
    index, so git never sees a pack without its index. `abort` removes the
    temporary file.
    """

    def __init__(self, git_dir: Path) -> None:
        self._pack_dir = git_dir / "objects" / "pack"
        self._pack_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._existing = _PackedIds(git_dir / "objects")
        self._sealed: list[tuple[Path, Path, bytes]] = []  # (tmp pack, tmp idx, checksum)
        self._ids = _IdSet()  # written, to any pack of this writer (writer thread)
        self._new_pack()
        self._batch: list[tuple[bytes | None, int, bytes | bytearray, _Later | None]] = []
        self._batch_bytes = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_PACK_QUEUE)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="patchkit-pack", daemon=True)
        self._thread.start()

    def _lock(self) -> None:
        """Take this writer's token and hold its lock file's flock until `_unlock`: what a
        SIGKILL leaves is then told from a live writer's files (`clear_stale_packs`)."""
        import fcntl
        import secrets

        while True:
            token = secrets.token_hex(6)
            path = self._pack_dir / f"{TMP_PREFIX}{token}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                mine = os.fstat(fd).st_ino == os.stat(path).st_ino
            except OSError:
                mine = False  # cleared between its creation and the flock: take another
            if mine:
                self._token, self._lock_path = token, path
                self._lock_fd: int | None = fd
                return
            os.close(fd)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self._lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _new_pack(self) -> None:
        import tempfile  # only an import writes packs

        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{self._token}_", dir=self._pack_dir)
        self._tmp = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._file.write(b"PACK\0\0\0\2\0\0\0\0")  # the count is fixed when sealed
        self._offset = 12
        self._entries = _Objects(self._ids)  # what the pack holds (writer thread)

    def _seal_current(self) -> None:
        """Complete the pack being written (count, checksum, index: temporary files still,
        fsynced) and start a new one. On the writer thread, or after it stopped."""
        if not self._entries:
            return
        f = self._file
        count = len(self._entries)
        if count >= 1 << 32:
            raise StoreError("too many objects for one pack")
        f.seek(8)
        f.write(count.to_bytes(4, "big"))
        f.flush()
        # Read back for the checksum: the count it covers is only known now. On the
        # writer thread this overlaps the trees being built (hashlib and read release
        # the GIL).
        h = hashlib.sha1()
        with open(self._tmp, "rb") as r:
            while block := r.read(1 << 20):
                h.update(block)
        checksum = h.digest()
        f.seek(0, os.SEEK_END)
        f.write(checksum)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        idx_tmp = self._tmp.with_suffix(".idx")
        self._sealed.append((self._tmp, idx_tmp, checksum))
        with open(idx_tmp, "wb") as out:
            self._entries.write_index(out, checksum)
            out.flush()
            os.fsync(out.fileno())
        self._new_pack()

    # -- the calling thread ----------------------------------------------------------

    def _put(self, item: Any) -> None:
        if self._error is not None:
            raise StoreError(f"cannot write the pack: {self._error}") from self._error
        self._queue.put(item)

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self._put(batch)

    def _queue_object(
        self, oid: bytes | None, type_: int, data: bytes | bytearray, later: _Later | None
    ) -> None:
        self._batch.append((oid, type_, data, later))
        self._batch_bytes += len(data) + 64
        if self._batch_bytes >= _PACK_BATCH:
            self._flush_batch()

    def add(self, data: bytes | bytearray) -> str:
        """Store a blob given whole; return its id."""
        return self.add_object(_OBJ_BLOB, data)

    def add_object(self, type_: int, data: bytes | bytearray) -> str:
        """Store an object (blob, tree or commit) given whole; return its id."""
        h = hashlib.sha1(b"%s %d\0" % (_TYPE_NAMES[type_], len(data)))
        h.update(data)
        oid = h.digest()
        self._queue_object(oid, type_, data, None)
        return oid.hex()

    def add_tree_object(self, body: bytes) -> bytes:
        """Store a tree object with this body; its id as 20 bytes."""
        oid = git_object_id(b"tree", body)
        self._queue_object(oid, _OBJ_TREE, body, None)
        return oid

    def add_tree(self, files: Mapping[str, TreeEntry]) -> str:
        """Store the tree holding exactly ``files`` (path -> entry) and its subtrees, as
        `git fast-import` would write them; return the root tree's id."""
        root: dict[bytes, Any] = {}
        for path, entry in files.items():
            *dirs, name = path.encode("utf-8", "surrogateescape").split(b"/")
            d = root
            for part in dirs:
                d = d.setdefault(part, {})
                if not isinstance(d, dict):
                    raise StoreError(f"{path}: a parent directory is also a file")
            if isinstance(d.get(name), dict):
                raise StoreError(f"{path}: both a file and a directory")
            d[name] = entry

        def tree(d: dict[bytes, Any]) -> bytes:
            return self.add_tree_object(
                tree_body(
                    (MODE_TREE, name, tree(value))
                    if isinstance(value, dict)
                    else (value.mode, name, bytes.fromhex(value.blob))
                    for name, value in d.items()
                )
            )

        return tree(root).hex()

    def add_stream(self, size: int, chunks: Iterable[bytes]) -> str:
        """Store a blob of a known size from a stream of chunks; return its id.

        Raises StoreError if the chunks do not add up to ``size``.
        """
        if size <= _PACK_WHOLE:
            data = b"".join(chunks)
            if len(data) != size:
                raise StoreError(_size_error(size, len(data)))
            return self.add(data)
        return self.add_stream_later(size, chunks)().hex()

    def add_stream_later(self, size: int, chunks: Iterable[bytes]) -> Callable[[], bytes]:
        """Like `add_stream`, but the SHA-1 is computed on the writer thread: returns a
        function giving the id as 20 bytes (it waits for the writer thread if need be).

        The bytes object is the one the writer keeps in its set of ids written: a tree
        holding it for every file costs no extra 89-byte hex string per file."""
        later = _Later()
        if size <= _PACK_WHOLE:
            data = b"".join(chunks)
            if len(data) != size:
                raise StoreError(_size_error(size, len(data)))
            self._queue_object(None, _OBJ_BLOB, data, later)
            return functools.partial(self._resolve, later)
        self._flush_batch()
        self._put(("begin", size, later))
        seen = 0
        try:
            for chunk in chunks:
                seen += len(chunk)
                if seen > size:
                    break
                self._put(chunk)
            if seen != size:
                raise StoreError(_size_error(size, seen))
        except BaseException:
            self._put(("end", False))  # cut the partial entry off the pack
            raise
        self._put(("end", True))  # the writer cuts a blob it finds known off the pack again
        return functools.partial(self._resolve, later)

    def _resolve(self, later: _Later) -> bytes:
        if later.oid is None:
            self.sync()
        if later.oid is None:  # pragma: no cover - the writer thread failed without saying
            raise StoreError("cannot write the pack: an object was lost")
        return later.oid

    def seal(self) -> None:
        """Let the writer thread complete the pack holding everything queued so far, while
        the caller goes on (later objects go to a new pack; `finish` installs them all)."""
        self._flush_batch()
        self._put(("seal",))

    def sync(self) -> None:
        """Wait until the writer thread has handled everything queued so far."""
        self._flush_batch()
        done = threading.Event()
        self._put(("sync", done))
        done.wait()
        if self._error is not None:
            raise StoreError(f"cannot write the pack: {self._error}") from self._error

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
            self._existing.close()

    def finish(self) -> None:
        """Complete the pack and its index and make them visible to git (nothing if empty)."""
        self._flush_batch()
        self._stop()
        try:
            if self._error is not None:
                raise StoreError(f"cannot write the pack: {self._error}") from self._error
            self._seal_current()
            self._file.close()
            self._tmp.unlink()  # the empty pack `_seal_current` started
            self._install()
        except BaseException:
            self._discard()
            raise
        finally:
            self._unlock()

    def abort(self) -> None:
        """Drop everything written; the store is as it was."""
        # With an error set the thread only drains the queue, so there is soon room for None.
        self._error = self._error or StoreError("aborted")
        while not self._closed and self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=0.1)
                self._closed = True
        self._closed = True
        self._thread.join()
        self._existing.close()
        self._discard()
        self._unlock()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        for tmp in [self._tmp, *(pack for pack, _, _ in self._sealed)]:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                tmp.with_suffix(".idx").unlink()
        self._sealed = []

    def _install(self) -> None:
        """Rename every sealed pack, then its index, into place (git never sees a pack
        without its index), and fsync the directory."""
        sealed, self._sealed = self._sealed, []
        for n, (tmp, idx_tmp, checksum) in enumerate(sealed):
            name = "pack-" + checksum.hex()
            pack, idx = self._pack_dir / (name + ".pack"), self._pack_dir / (name + ".idx")
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
                self._sealed = sealed[n + 1 :]  # for `_discard`; installed ones stay
                with contextlib.suppress(OSError):
                    idx_tmp.unlink()
                raise
        if sealed:
            dir_fd = os.open(self._pack_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        write = self._file.write
        entries = self._entries
        ids = self._ids
        known = self._existing.__contains__  # in the store already
        deflate = _DEFLATE.compress
        # isal's crc32 (the same CRC-32) is about 5x faster than the standard library's
        crc32 = getattr(_DEFLATE, "crc32", zlib.crc32)
        small, small_level, level = _SMALL, _SMALL_LEVEL, _DEFLATE_LEVEL
        sha1 = hashlib.sha1
        stream: Any = None
        streamed: Any = None  # the SHA-1 of the blob being streamed
        later: _Later | None = None
        start = crc = 0
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:  # drain until told to stop; never leave a waiter
                if isinstance(item, tuple) and item[0] == "sync":
                    item[1].set()
                continue
            try:
                if isinstance(item, list):
                    for oid, type_, data, slot in item:
                        if oid is None:
                            h = sha1(b"%s %d\0" % (_TYPE_NAMES[type_], len(data)))
                            h.update(data)
                            oid = h.digest()
                        if slot is not None:
                            slot.oid = oid
                        if not ids.add_new(oid, known):
                            continue
                        head = _pack_header(type_, len(data))
                        body = deflate(data, small_level if len(data) < small else level)
                        entries.append(self._offset, crc32(body, crc32(head)))
                        write(head)
                        write(body)
                        self._offset += len(head) + len(body)
                elif isinstance(item, bytes):
                    streamed.update(item)
                    out = stream.compress(item)
                    crc = crc32(out, crc)
                    write(out)
                elif item[0] == "begin":
                    head = _pack_header(_OBJ_BLOB, item[1])
                    streamed = sha1(b"blob %d\0" % item[1])
                    later = item[2]
                    stream = _DEFLATE.compressobj(_DEFLATE_LEVEL)
                    start, crc = self._offset, crc32(head)
                    write(head)
                elif item[0] == "sync":
                    item[1].set()
                elif item[0] == "seal":
                    self._seal_current()
                    write, entries = self._file.write, self._entries
                else:  # ("end", complete)
                    out = stream.flush()
                    stream = None
                    oid = streamed.digest() if item[1] else None
                    if oid is not None and later is not None:
                        later.oid = oid
                    if oid is None or not ids.add_new(oid, known):
                        self._file.seek(start)
                        self._file.truncate()
                    else:
                        write(out)
                        end = self._file.tell()
                        entries.append(start, crc32(out, crc))
                        self._offset = end
            except BaseException as e:  # reported to the calling thread
                self._error = e
                if isinstance(item, tuple) and item[0] == "sync":
                    item[1].set()


def _size_error(size: int, seen: int) -> str:
    if seen > size:
        return f"blob stream longer than its declared size {size}"
    return f"blob stream ended after {seen} of {size} bytes"


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
