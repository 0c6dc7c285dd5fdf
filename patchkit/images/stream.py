"""The uncompressed bytes of one stored layer blob, inflated in the helper process.

`inflate_service` runs on a thread of the helper process (`patchkit/workers.py`): it
reads the stored blob, hashes it (the blob digest), inflates it (`images/decoders.py`),
hashes the result (the diff_id) and writes it to a pipe in frames; `LayerStream`, in the
calling process, reads those frames while the tar reader (`images/tar.py`) parses them,
so inflating and hashing run on the other core without ever waiting for the parser's
GIL. Errors of the inflater (a corrupt stream, a read error, the size limit) are raised
by the read that reaches them.

The stored bytes: a regular file is read by the helper itself (its descriptor is sent
along, read from the stream's position with ``pread``); any other stream (a registry's
response, a member of an outer tar) is copied into a pipe to the helper by a thread of
the calling process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import struct
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from patchkit.errors import CorruptLayerError, HelperError
from patchkit.workers import Worker, pipe

__all__ = ["LayerStream", "inflate_service"]

_CHUNK = 1 << 18  # bytes of the stored blob read at a time
# Most uncompressed bytes a frame: big enough that a frame costs the reader little, small
# enough that the bytes in flight stay about 1 MB (the pipe) whatever the image.
_MAX_OUT = 1 << 18
# Frames from the inflater: kind, payload length, stored bytes read so far; then the payload
_FRAME = struct.Struct("<BIQ")
_DATA, _END, _ERROR = 0, 1, 2  # payload: tar bytes; the digests (JSON); a message (UTF-8)
_SERVICE = "patchkit.images.stream:inflate_service"


class LayerStream:
    """The uncompressed bytes of one stored layer blob, hashed on both sides.

    The helper process (``worker``; by default one of its own, ended with the stream)
    reads the stored blob, hashes it (blob digest), inflates it, hashes the result
    (diff_id) and sends it in frames of up to `_MAX_OUT` bytes through a pipe, which
    bounds the bytes in flight.

    The tar reader reads it front to back: ``read``, ``pos`` and ``skip`` (skipped bytes
    are still inflated and hashed). Errors of the inflater (a corrupt stream, a read
    error, the size limit) are raised by the read that reaches them. `drain` reads to
    the very end; after it `blob_digest`/`diff_id` are final. `close` stops the
    inflater and must be called when the stream is abandoned.
    """

    def __init__(
        self,
        raw: BinaryIO,
        *,
        algorithm: str,
        where: str,
        max_bytes: int,
        on_read: Callable[[int], None] | None = None,
        worker: Worker | None = None,
    ) -> None:
        self._where = where
        self._on_read = on_read
        self._own_worker = worker is None
        self._worker = worker if worker is not None else Worker()
        self.raw_bytes = 0  # of the stored blob, as far as the inflater has reported
        self.bytes = 0  # uncompressed bytes received
        self.format = "tar"
        self._result: dict[str, Any] | None = None
        self._pos = 0  # offset in the uncompressed stream of the next byte `read` returns
        self._piece = b""
        self._at = 0  # offset of the next byte in self._piece
        self._eof = False
        self._pump: threading.Thread | None = None
        self._pump_error: BaseException | None = None
        self._in: int | None = None
        args: dict[str, Any] = {"algorithm": algorithm, "where": where, "max_bytes": max_bytes}
        fds: list[int] = []
        try:
            tar_r, tar_w = pipe()
            fds += [tar_r, tar_w]
            source = _regular_file(raw)
            if source is not None:
                fd, args["offset"] = source
                self._worker.start(_SERVICE, args, [fd, tar_w])
            else:  # copied into a pipe by a thread of ours
                raw_r, raw_w = pipe()
                fds += [raw_r, raw_w]
                self._worker.start(_SERVICE, args, [raw_r, tar_w])
                os.close(raw_r)
                fds.remove(raw_r)
                self._pump = threading.Thread(
                    target=self._copy, args=(raw, raw_w), name="patchkit-blob", daemon=True
                )
                fds.remove(raw_w)  # the thread's now
                self._pump.start()
            os.close(tar_w)
            fds.remove(tar_w)
        except BaseException:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._own_worker:
                self._worker.kill()
            raise
        self._in = tar_r

    def _corrupt(self, why: str) -> CorruptLayerError:
        return CorruptLayerError(f"{self._where}: {why}")

    # -- the copying thread (streams that are not regular files) -------------------------

    def _copy(self, raw: BinaryIO, fd: int) -> None:
        try:
            while chunk := raw.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        except BrokenPipeError:
            pass  # the inflater stopped reading (an error, or the stream was closed)
        except BaseException as e:  # raised by the read that finds the stream cut short
            self._pump_error = e
        finally:
            os.close(fd)

    def _raise_pump_error(self) -> None:
        if self._pump is not None:
            self._pump.join()
        e = self._pump_error
        if e is None:
            return
        if isinstance(e, OSError):
            raise self._corrupt(f"cannot read the blob: {e}") from e
        raise e

    # -- the calling thread --------------------------------------------------------------

    def _read_exactly(self, n: int) -> bytes:
        assert self._in is not None
        data = os.read(self._in, n)
        if len(data) == n or not data:
            return data
        parts = [data]
        got = len(data)
        while got < n:
            more = os.read(self._in, n - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _next_piece(self) -> bool:
        """Make the next inflated piece current; False at the end of the stream."""
        if self._eof:
            return False
        head = self._read_exactly(_FRAME.size)
        if len(head) == _FRAME.size:
            kind, length, raw_total = _FRAME.unpack(head)
            payload = self._read_exactly(length)
        else:
            kind, length, raw_total, payload = -1, 0, 0, b""
        if kind == _DATA and len(payload) == length and length:
            self._piece, self._at = payload, 0
            self.bytes += length
            self.raw_bytes = raw_total
            if self._on_read is not None:
                self._on_read(raw_total)
            return True
        self._eof = True
        self._piece, self._at = b"", 0
        if kind == _END and len(payload) == length:
            self.raw_bytes = raw_total
            self._result = json.loads(payload)
            self.format = str(self._result["format"])
            return False
        self._raise_pump_error()
        if kind == _ERROR and len(payload) == length:
            raise CorruptLayerError(payload.decode("utf-8", "replace"))
        raise HelperError(
            f"{self._where}: the helper process stopped inflating the layer "
            f"({self._worker.describe()})"
        )

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

    @property
    def pos(self) -> int:
        """Offset in the uncompressed stream of the next byte `read` returns."""
        return self._pos

    def skip(self, n: int) -> int:
        """Pass over the next ``n`` bytes (still inflated and hashed); how many there were."""
        left = n
        while left:
            avail = len(self._piece) - self._at
            if avail <= 0:
                if not self._next_piece():
                    break
                continue
            step = min(avail, left)
            self._at += step
            left -= step
        self._pos += n - left
        return n - left

    def drain(self) -> None:
        """Read to the very end; what follows the tar's end marker must be zeros."""
        while chunk := self.read(_MAX_OUT):
            if chunk.count(0) != len(chunk):
                raise self._corrupt("data after the end of the tar archive")

    def close(self) -> None:
        """Stop the inflater (at once if the stream is abandoned: it finds its pipe
        closed) and the copying thread, if any."""
        if self._in is not None:
            os.close(self._in)
            self._in = None
            if self._pump is not None:
                self._pump.join()
            if self._own_worker:
                self._worker.close()

    def _final(self) -> dict[str, Any]:
        self.close()
        if self._result is None:
            raise self._corrupt("the layer was not read to its end")
        return self._result

    @property
    def blob_digest(self) -> str:
        return str(self._final()["blob_digest"])

    @property
    def diff_id(self) -> str:
        return str(self._final()["diff_id"])


def _regular_file(raw: BinaryIO) -> tuple[int, int] | None:
    """(descriptor, position) of ``raw`` when it is a regular file, which the helper can
    read itself; None for any other stream."""
    try:
        fd = raw.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fd, raw.tell()
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return None


# -- the inflater (a thread of the helper process) -----------------------------------------


class _Inflater:
    """Reads the stored blob from ``fd`` (from ``offset`` with pread, or a pipe to its
    end), hashes and inflates it, piece by piece."""

    def __init__(self, fd: int, offset: int | None, args: dict[str, Any]) -> None:
        from patchkit.images.digests import hasher

        self.fd = fd
        self.offset = offset
        self.where = str(args["where"])
        self.algorithm = str(args["algorithm"])
        self.max_bytes = int(args["max_bytes"])
        self.raw_hash = hasher(f"{self.algorithm}:")
        self.diff_hash = hasher("sha256:")
        self.raw_total = 0
        self.bytes = 0
        self.format = "tar"

    def corrupt(self, why: str) -> CorruptLayerError:
        return CorruptLayerError(f"{self.where}: {why}")

    def read_raw(self) -> bytes:
        try:
            if self.offset is None:
                data = os.read(self.fd, _CHUNK)
            else:
                data = os.pread(self.fd, _CHUNK, self.offset + self.raw_total)
        except OSError as e:
            raise self.corrupt(f"cannot read the blob: {e}") from e
        if data:
            self.raw_hash.update(data)
            self.raw_total += len(data)
        return data

    def run(self, send: Callable[[int, bytes], None]) -> None:
        """Send every inflated piece, then the digests."""
        from patchkit.images.decoders import DECODE_ERRORS, MAGIC_BYTES, DecodeError, detect

        pending = b""
        while len(pending) < MAGIC_BYTES and (data := self.read_raw()):
            pending += data
        self.format, dec = detect(pending)
        limit = self.max_bytes
        while True:
            # some more uncompressed bytes; b"" only at the true end of the stream
            out = b""
            while not out:
                if pending:
                    data, pending = pending, b""
                elif dec is None or dec.needs_input:
                    data = self.read_raw()
                else:
                    data = b""
                if dec is None:
                    out = data
                    break
                if not data and dec.needs_input:
                    if dec.at_end:
                        break
                    raise self.corrupt(f"truncated {self.format} stream")
                try:
                    out = dec.decompress(data, _MAX_OUT)
                except DecodeError as e:
                    raise self.corrupt(str(e)) from e
                except DECODE_ERRORS as e:
                    raise self.corrupt(f"corrupt {self.format} stream: {e}") from e
            if not out:
                break
            self.bytes += len(out)
            if self.bytes > limit:
                raise self.corrupt(f"uncompressed size exceeds the limit of {limit} bytes")
            self.diff_hash.update(out)
            send(_DATA, out)
        result = {
            "blob_digest": f"{self.algorithm}:{self.raw_hash.hexdigest()}",
            "diff_id": f"sha256:{self.diff_hash.hexdigest()}",
            "format": self.format,
        }
        send(_END, json.dumps(result).encode())


def inflate_service(args: dict[str, Any], fds: list[int]) -> None:
    """`LayerStream`'s other half, on a thread of the helper process: ``fds`` are the
    stored blob (a regular file read from ``args["offset"]``, or a pipe) and the pipe the
    frames go to."""
    src, out = fds
    offset = args.get("offset")
    inflater = _Inflater(src, None if offset is None else int(offset), args)

    def send(kind: int, payload: bytes) -> None:
        head = _FRAME.pack(kind, len(payload), inflater.raw_total)
        sent = os.writev(out, [head, payload])
        if sent < len(head) + len(payload):  # a pipe may take a large write in parts
            rest = memoryview(head + payload)[sent:]
            while rest:
                rest = rest[os.write(out, rest) :]

    try:
        try:
            inflater.run(send)
        except BrokenPipeError:
            return  # the calling process stopped reading (an error of its own, or gone)
        except Exception as e:
            why = str(e) if isinstance(e, CorruptLayerError) else f"{inflater.where}: {e}"
            with contextlib.suppress(OSError):
                send(_ERROR, why.encode("utf-8", "replace"))
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
