"""Writing git objects: `git fast-import` sessions and packs written directly (the import's hot path)."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from patchkit.core.objects import MODE_TREE, TreeEntry, git_blob_id, git_object_id, tree_body
from patchkit.errors import StoreError
from patchkit.git.packfile import (
    F_ABORT,
    F_BEGIN,
    F_CHUNK,
    F_END,
    F_FINISH,
    F_KNOWN,
    F_OBJECT,
    F_SEAL,
    F_SYNC,
    FRAME,
    OBJ_BLOB,
    OBJ_COMMIT,
    OBJ_TREE,
    R_DONE,
    R_ERROR,
    R_ID,
    R_SYNC,
    TYPE_NAMES,
)
from patchkit.git.packtmp import TMP_PREFIX, clear_stale_packs
from patchkit.git.runner import _IDENT
from patchkit.workers import Worker, pipe

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

    @property
    def worker(self) -> Worker | None:
        """The helper process the pack is written in (layer streams may share it), or
        None for a plain `git fast-import` session."""
        return self._pack.worker if self._pack is not None else None

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
        return self._pack.add_object(OBJ_COMMIT, body)

    def close(self) -> None:
        self._out.write(b"done\n")
        self._out.close()


_HEX40 = re.compile(r"\A[0-9a-f]{40}\Z")
_PACK_WHOLE = 1 << 20  # blobs up to this size are sent in one frame, bigger ones in pieces
_PACK_BATCH = 1 << 18  # frames of small objects are written to the pipe this many bytes at a time
_SERVICE = "patchkit.git.packfile:pack_service"


class _Later:
    """The id of an object sent without one: filled in when the writer's reply is read."""

    __slots__ = ("oid",)

    def __init__(self) -> None:
        self.oid: bytes | None = None


class PackWriter:
    """Writes objects straight into a new pack of the store (pack v2, index v2).

    Hashing, compressing and writing happen in the helper process (`patchkit.workers`;
    the writer itself is `git/packfile.py`'s `pack_service`), fed through a pipe in
    order, so the calling thread only frames the objects: its GIL is never waited for.
    `add_stream_later` leaves the SHA-1 to the writer too: the caller gets a function
    that gives the id once the writer's reply is read (`sync` waits for every reply),
    and goes on with the next tar entry meanwhile. Objects the store already has, or that
    this pack already holds, are not written again (the writer decides).

    Until `finish`, the pack is a `tmp_pack_pk_*` file that git ignores; this process
    holds the flock of the writer's lock file meanwhile, so what a killed import leaves
    is removed by the next `Store.open` (`clear_stale_packs`). `finish` has the writer
    fix the object count, append the checksum, write the index, fsync both and rename
    the pack and then the index, so git never sees a pack without its index. `abort`
    removes the temporary files.

    ``worker``: the helper process to write in (an import shares one with its layer
    streams); by default the writer starts one of its own and ends it with itself.
    """

    def __init__(self, git_dir: Path, *, worker: Worker | None = None) -> None:
        self._pack_dir = git_dir / "objects" / "pack"
        self._pack_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._own_worker = worker is None
        fds: list[int] = []
        try:
            self.worker = worker if worker is not None else Worker()
            objects_r, objects_w = pipe()
            fds += [objects_r, objects_w]
            replies_r, replies_w = pipe()
            fds += [replies_r, replies_w]
            args = {"pack_dir": str(self._pack_dir), "token": self._token}
            self.worker.start(_SERVICE, args, [objects_r, replies_w])
            os.close(objects_r)
            os.close(replies_w)
        except BaseException:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._own_worker and hasattr(self, "worker"):
                self.worker.kill()
            self._unlock()
            raise
        self._out: int | None = objects_w
        self._in = replies_r
        self._batch = bytearray()
        self._waiting: collections.deque[_Later] = collections.deque()  # sent, id not read yet
        self._replies = b""  # read, not parsed yet
        self._error: str | None = None
        self._syncs = 0  # R_SYNC replies read
        self._done = False

    def _lock(self) -> None:
        """Take this writer's token and hold its lock file's flock until `_unlock`: what a
        SIGKILL leaves is then told from a live writer's files (`clear_stale_packs`). The
        calling process holds it, not the helper: it is free the moment this process
        ends, however."""
        import secrets

        while True:
            token = secrets.token_hex(6)
            path = self._pack_dir / f"{TMP_PREFIX}{token}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
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

    # -- talking to the writer -------------------------------------------------------

    def _failed(self, why: str | None = None) -> StoreError:
        return StoreError(f"cannot write the pack: {why or self._error}")

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._failed()
        if self._out is None:
            raise self._failed("the writer is closed")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._out, view) :]
        except BrokenPipeError:
            self._read_replies(until_end=True)  # its error, if it said one
            raise self._failed(self._error or self._gone()) from None

    def _gone(self) -> str:
        return f"the helper process ended unexpectedly ({self.worker.describe()})"

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, bytearray()
            self._send(batch)

    def _frame(self, kind: int, type_: int = 0, length: int = 0) -> None:
        self._batch += FRAME.pack(kind, type_, length)

    def _read_replies(self, *, until_end: bool = False) -> bool:
        """Read what the writer has replied (blocking for at least one read); False at the
        end of the pipe (the writer ended). Ids fill the waiting objects in order."""
        data = os.read(self._in, 1 << 16)
        if not data:
            return False
        buf = self._replies + data if self._replies else data
        at, n = 0, len(buf)
        waiting = self._waiting
        while at < n:
            tag = buf[at]
            if tag == R_ID:
                if n - at < 21:
                    break
                waiting.popleft().oid = buf[at + 1 : at + 21]
                at += 21
            elif tag == R_SYNC:
                self._syncs += 1
                at += 1
            elif tag == R_DONE:
                self._done = True
                at += 1
            elif tag == R_ERROR:
                if n - at < 5:
                    break
                length = int.from_bytes(buf[at + 1 : at + 5], "little")
                if n - at < 5 + length:
                    break
                if self._error is None:
                    self._error = buf[at + 5 : at + 5 + length].decode("utf-8", "replace")
                at += 5 + length
            else:
                self._error = self._error or f"unexpected reply {tag} from the writer"
                at = n
        self._replies = buf[at:]
        if until_end:
            while self._read_replies():
                pass
        return True

    def _wait(self, done: Callable[[], bool]) -> None:
        """Send what is batched, then read replies until ``done()`` (or an error)."""
        self._flush_batch()
        while not done() and self._error is None:
            if not self._read_replies():
                self._error = self._error or self._gone()
        if self._error is not None:
            raise self._failed()

    # -- objects ---------------------------------------------------------------------

    def add(self, data: bytes | bytearray) -> str:
        """Store a blob given whole; return its id."""
        return self.add_object(OBJ_BLOB, data)

    def add_object(self, type_: int, data: bytes | bytearray) -> str:
        """Store an object (blob, tree or commit) given whole; return its id."""
        h = hashlib.sha1(b"%s %d\0" % (TYPE_NAMES[type_], len(data)))
        h.update(data)
        oid = h.digest()
        self._known(oid, type_, data)
        return oid.hex()

    def _known(self, oid: bytes, type_: int, data: bytes | bytearray) -> None:
        self._frame(F_KNOWN, type_, 20 + len(data))
        self._batch += oid
        self._batch += data
        if len(self._batch) >= _PACK_BATCH:
            self._flush_batch()

    def add_tree_object(self, body: bytes) -> bytes:
        """Store a tree object with this body; its id as 20 bytes."""
        oid = git_object_id(b"tree", body)
        self._known(oid, OBJ_TREE, body)
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
        return self.add_stream_later(size, chunks)().hex()

    def add_stream_later(self, size: int, chunks: Iterable[bytes]) -> Callable[[], bytes]:
        """Like `add_stream`, but the SHA-1 is computed by the writer: returns a function
        giving the id as 20 bytes (it waits for the writer's reply if need be).

        The chunks are consumed before this returns."""
        later = _Later()
        batch = self._batch
        if size <= _PACK_WHOLE:
            mark = len(batch)
            batch += FRAME.pack(F_OBJECT, OBJ_BLOB, size)
            for chunk in chunks:
                batch += chunk
            if len(batch) - mark - FRAME.size != size:
                seen = len(batch) - mark - FRAME.size
                del batch[mark:]
                raise StoreError(_size_error(size, seen))
            self._waiting.append(later)
            if len(batch) >= _PACK_BATCH:
                self._flush_batch()
            return functools.partial(self._resolve, later)
        self._frame(F_BEGIN, OBJ_BLOB, size)
        self._flush_batch()
        seen = 0
        try:
            for chunk in chunks:
                seen += len(chunk)
                if seen > size:
                    break
                self._send(FRAME.pack(F_CHUNK, 0, len(chunk)))
                self._send(chunk)
            if seen != size:
                raise StoreError(_size_error(size, seen))
        except BaseException:
            with contextlib.suppress(StoreError):
                self._frame(F_END, 0)  # cut the partial entry off the pack
            raise
        self._frame(F_END, 1)  # the writer cuts a blob it finds known off the pack again
        self._waiting.append(later)
        return functools.partial(self._resolve, later)

    def _resolve(self, later: _Later) -> bytes:
        if later.oid is None:
            self._wait(lambda: later.oid is not None)
        assert later.oid is not None
        return later.oid

    def seal(self) -> None:
        """Let the writer complete the pack holding everything sent so far, while the
        caller goes on (later objects go to a new pack; `finish` installs them all)."""
        self._frame(F_SEAL)
        self._flush_batch()

    def sync(self) -> None:
        """Wait until the writer has handled everything sent so far."""
        self._frame(F_SYNC)
        target = self._syncs + 1
        self._wait(lambda: self._syncs >= target)

    def finish(self) -> None:
        """Complete the pack and its index and make them visible to git (nothing if empty)."""
        try:
            self._frame(F_FINISH)
            self._wait(lambda: self._done)
        except BaseException:
            self.abort()
            raise
        self._close()

    def abort(self) -> None:
        """Drop everything written; the store is as it was."""
        self._batch = bytearray()
        if self._out is not None and self._error is None:
            with contextlib.suppress(OSError):
                os.write(self._out, FRAME.pack(F_ABORT, 0, 0))
        self._close()

    def _close(self) -> None:
        """Close the pipes once the writer has ended (it removes its temporary files
        unless it installed them), remove what a helper gone wrong left, unlock."""
        if self._out is not None:
            with contextlib.suppress(OSError):
                os.close(self._out)
            self._out = None
            with contextlib.suppress(OSError):
                while os.read(self._in, 1 << 16):  # the writer's end: it is done
                    pass
            os.close(self._in)
            if self._own_worker:
                self.worker.close()
        if not self._done:
            for path in self._pack_dir.glob(f"{TMP_PREFIX}{self._token}_*"):
                with contextlib.suppress(OSError):
                    path.unlink()
        self._unlock()


def _size_error(size: int, seen: int) -> str:
    if seen > size:
        return f"blob stream longer than its declared size {size}"
    return f"blob stream ended after {seen} of {size} bytes"
