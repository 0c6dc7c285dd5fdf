"""The compressions a layer blob may use, recognised by their magic bytes.

Each `Decoder` turns the stored bytes into the tar stream, piece by piece, and reads a
stream of several members or frames as the container runtimes do (Go's readers, which
moby and containerd use):

* gzip: any number of members one after another (pigz, `cat a.gz b.gz`); anything else
  after a member is refused.
* zstd: any number of frames, and **skippable frames** (magic ``0x184D2A50`` to
  ``0x184D2A5F``, a 4-byte little-endian length, then that many bytes, ignored) before,
  between and after them: zstd:chunked layers (containers/storage) carry their table of
  contents in skippable frames.
* bzip2 and xz: several streams one after another.

`detect` picks the format from the first bytes (no compression: a plain tar).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any, Protocol

import zstandard

from patchkit.compress import ZLIB

__all__ = [
    "DECODE_ERRORS",
    "FORMATS",
    "DecodeError",
    "Decoder",
    "detect",
]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
# zstd skippable frames: 0x184D2A5? little-endian, i.e. b"\x5?\x2a\x4d\x18"
_SKIPPABLE_TAIL = b"\x2a\x4d\x18"
_ZSTD_FEED = 2048  # zstd's ratio is bounded per input byte; small feeds bound memory
MAGIC_BYTES = 8  # enough of a blob's start to recognise every format

GZIP_MODULE: Any = ZLIB  # isal where installed, else zlib (patchkit/compress.py)


class DecodeError(Exception):
    """The stored bytes are not a valid stream of the format (the message says why)."""


DECODE_ERRORS: tuple[type[Exception], ...] = (
    zlib.error,
    GZIP_MODULE.error,
    OSError,
    EOFError,
    lzma.LZMAError,
    zstandard.ZstdError,
)


class Decoder(Protocol):
    """Stored bytes in, tar bytes out (at most ``max_length`` a call)."""

    @property
    def needs_input(self) -> bool:
        """Whether `decompress` can make no more output without more input."""

    @property
    def at_end(self) -> bool:
        """Whether the input may end here (the last member or frame is complete)."""

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class _Members:
    """Several members (gzip), streams (bzip2, xz) one after another, as one stream."""

    def __init__(self, name: str, magic: bytes, factory: Callable[[], Any]) -> None:
        self._name, self._magic, self._factory = name, magic, factory
        self._d: Any = factory()
        self._tail = b""  # input not consumed yet

    @property
    def needs_input(self) -> bool:
        if self._tail:
            return len(self._tail) < len(self._magic) and bool(self._d.eof)
        return bool(self._d.eof) or getattr(self._d, "needs_input", True)

    @property
    def at_end(self) -> bool:
        return bool(self._d.eof) and not self._tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._tail:
            data, self._tail = self._tail + data, b""
        while True:
            d = self._d
            if d.eof:
                if len(data) < len(self._magic):
                    if not self._magic.startswith(data):
                        raise DecodeError(f"data after the end of the {self._name} stream")
                    self._tail = data  # the next member's magic, not all here yet
                    return b""
                if not data.startswith(self._magic):
                    raise DecodeError(f"data after the end of the {self._name} stream")
                d = self._d = self._factory()
            elif not data and getattr(d, "needs_input", True):
                return b""
            out = d.decompress(data, max_length)
            # what this member did not consume: the next member's (at its end) or its own
            data = bytes(d.unused_data) if d.eof else bytes(getattr(d, "unconsumed_tail", b""))
            if out:
                self._tail = data
                return bytes(out)


def _gzip() -> _Members:
    return _Members("gzip", GZIP_MAGIC, lambda: GZIP_MODULE.decompressobj(16 + zlib.MAX_WBITS))


def _bzip2() -> _Members:
    return _Members("bzip2", BZIP2_MAGIC, bz2.BZ2Decompressor)


def _xz() -> _Members:
    return _Members("xz", XZ_MAGIC, lzma.LZMADecompressor)


class _Zstd:
    """zstd frames and skippable frames, one after another."""

    def __init__(self) -> None:
        self._d: Any = None  # the frame being decoded; None between frames
        self._pending = b""
        self._skip = 0  # bytes of a skippable frame still to skip

    @property
    def needs_input(self) -> bool:
        return not self._pending or (self._d is None and not self._skip and len(self._pending) < 8)

    @property
    def at_end(self) -> bool:
        return self._d is None and not self._skip and not self._pending

    def decompress(self, data: bytes, max_length: int) -> bytes:
        pending = self._pending + data if self._pending else data
        out = bytearray()
        while pending and len(out) < max_length:
            if self._skip:
                n = min(self._skip, len(pending))
                self._skip -= n
                pending = pending[n:]
                continue
            if self._d is None:
                if _is_skippable(pending):
                    if len(pending) < 8:
                        break  # its length is not all here yet
                    self._skip = int.from_bytes(pending[4:8], "little")
                    pending = pending[8:]
                    continue
                if not ZSTD_MAGIC.startswith(pending[:4]):
                    raise DecodeError("data after the end of the zstd stream")
                if len(pending) < 4:
                    break
                self._d = zstandard.ZstdDecompressor().decompressobj()
            feed, pending = pending[:_ZSTD_FEED], pending[_ZSTD_FEED:]
            out += self._d.decompress(feed)
            if self._d.eof:
                pending = bytes(self._d.unused_data) + pending
                self._d = None
        self._pending = pending
        return bytes(out)


def _is_skippable(head: bytes) -> bool:
    """Whether ``head`` starts a skippable frame (or could: fewer than 4 bytes given)."""
    return bool(head) and head[0] & 0xF0 == 0x50 and _SKIPPABLE_TAIL.startswith(head[1:4])


FORMATS: tuple[tuple[str, Callable[[bytes], bool], Callable[[], Decoder]], ...] = (
    ("gzip", lambda head: head.startswith(GZIP_MAGIC), _gzip),
    (
        "zstd",
        lambda head: head.startswith(ZSTD_MAGIC) or (len(head) >= 4 and _is_skippable(head)),
        _Zstd,
    ),
    ("bzip2", lambda head: head.startswith(BZIP2_MAGIC), _bzip2),
    ("xz", lambda head: head.startswith(XZ_MAGIC), _xz),
)


def detect(head: bytes) -> tuple[str, Decoder | None]:
    """The format of a blob starting with ``head`` and a decoder for it (None: plain tar)."""
    for name, matches, factory in FORMATS:
        if matches(head):
            return name, factory()
    return "tar", None
