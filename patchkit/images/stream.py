"""The uncompressed bytes of one stored layer blob, inflated on a helper thread.

A helper thread reads the stored blob, hashes it (the blob digest), inflates it
(`images/decoders.py`), hashes the result (the diff_id) and queues it in pieces; the
calling thread parses the tar (`images/tar.py`) from those pieces while the next ones
are inflated on the other core. Errors of the helper (a corrupt stream, a read error,
the size limit) are raised by the read that reaches them.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from patchkit.errors import CorruptLayerError
from patchkit.images.decoders import DECODE_ERRORS, MAGIC_BYTES, DecodeError, Decoder, detect
from patchkit.images.digests import hasher

__all__ = ["LayerStream"]

_CHUNK = 1 << 18  # bytes of the stored blob read at a time
_AHEAD = 3  # inflated pieces queued ahead of the parser (at most _MAX_OUT bytes each)
# Most uncompressed bytes per step: big enough that the helper thread does a fraction of a
# millisecond of GIL-free work per hand-over, small enough that the bytes in flight stay
# about 1 MB whatever the image (1 MB pieces measured as fast, with a 5-7 MB bigger and
# less steady peak RSS).
_MAX_OUT = 1 << 18


_DONE = object()  # the inflating thread's last item: the stream ended cleanly


class LayerStream:
    """The uncompressed bytes of one stored layer blob, hashed on both sides.

    A helper thread reads the stored blob, hashes it (blob digest), inflates it,
    hashes the result (diff_id) and queues it in pieces of up to `_MAX_OUT` bytes,
    `_AHEAD` pieces ahead: zlib/isal, zstd, bz2, lzma and hashlib all release the
    GIL, so the next piece is inflated on the other core while the calling thread
    parses the tar and stores the current one. Memory stays bounded by the queue.

    The tar reader reads it front to back: ``read``, ``pos`` and ``skip`` (skipped bytes
    are still inflated and hashed). Errors of the helper
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
        max_bytes: int,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._raw = raw
        self._where = where
        self._max_bytes = max_bytes
        self._on_read = on_read
        self._raw_hash = hasher(f"{algorithm}:")
        self._algorithm = algorithm
        self._diff_hash = hasher("sha256:")
        self.raw_bytes = 0  # of the stored blob, as far as the calling thread has seen
        self.bytes = 0  # uncompressed bytes inflated (helper thread)
        self._raw_total = 0  # stored bytes read (helper thread)
        self.format = "tar"
        self._dec: Decoder | None = None
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
        pending = self._read_raw_at_least(MAGIC_BYTES)
        self.format, self._dec = detect(pending)
        limit = self._max_bytes
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
        dec = self._dec
        while True:
            if pending:
                data, pending = pending, b""
            elif dec is None or dec.needs_input:
                data = self._read_raw()
            else:
                data = b""
            if dec is None:
                return data
            if not data and dec.needs_input:
                if dec.at_end:
                    return b""
                raise self._corrupt(f"truncated {self.format} stream")
            try:
                out = dec.decompress(data, _MAX_OUT)
            except DecodeError as e:
                raise self._corrupt(str(e)) from e
            except DECODE_ERRORS as e:
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
        """Read to the very end (hashed for the diff_id, counted against the size limit)
        and ignore what follows the tar's end marker, as containerd and moby do (both
        copy the rest of the stream to io.Discard after the last entry); padding is
        zeros, but a second archive appended after the first is not unpacked by them
        either."""
        while self.skip(_MAX_OUT):
            pass

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
