"""A streaming tar reader that reads a layer as the container runtimes read it.

moby and containerd unpack layers with Go's ``archive/tar``; this reader follows its
rules (docs/architecture.md says why not `tarfile` or libarchive):

* Formats: v7, ustar (with its name prefix), star, GNU (``L``/``K`` long names and
  links, old ``S`` sparse files with their extension blocks), pax (``x`` records:
  ``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``uname``, ``gname``, the three
  times (checked, not kept), ``SCHILY.xattr.*``, ``LIBARCHIVE.xattr.*`` and the
  ``GNU.sparse.*`` records of the 0.0, 0.1 and 1.0 sparse formats). ``g`` (global)
  headers are read and checked, then ignored, as moby and containerd ignore them.
* When a meta header repeats before an entry, the **last** one wins (a second ``x``
  replaces the first one's records; a second ``L`` the first name). A pax record that
  is malformed (its length, its newline, its ``=``, a NUL in a key or in a path value)
  refuses the layer, as Go refuses the archive. An empty pax value keeps the header's.
* A sparse file is rebuilt from its map (holes are zeros). Its map must be in order,
  inside the file and not overlapping, and cover exactly the bytes stored.
* Numbers: octal (NUL/space padded) or GNU base-256; anything else refuses the layer,
  as do a bad checksum (the unsigned or the old signed sum), a zero block followed by
  anything but another, and a meta header over 1 MiB (Go's limit).

`Limits` bounds what a layer may declare, checked at each header **before** a byte of
its content is read: the names' length and depth, the entries, and every declared size
(a sparse file's holes included).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from urllib.parse import unquote_to_bytes

__all__ = [
    "BLOCK",
    "DEFAULT_LIMITS",
    "FileSource",
    "Limits",
    "TarEntry",
    "TarError",
    "TarReader",
]

BLOCK = 512
_ZERO = bytes(BLOCK)
_FILE_CHUNK = 1 << 18  # contents are handed on in pieces this big
_ZEROS = bytes(_FILE_CHUNK)
_MAX_SPECIAL = 1 << 20  # bytes of a pax header or GNU long name/link (Go's maxSpecialFileSize)

# The v7/ustar header: name, mode, uid, gid, size, mtime, chksum, typeflag, linkname,
# magic, version, uname, gname, devmajor, devminor, prefix (155: ustar/pax; star and
# GNU use its bytes otherwise)
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_HEADER_ONLY = frozenset(b"123456")  # link, symlink, char, block, dir, fifo: no content
_OCTAL_DIGITS = b"01234567"
_DECIMAL = re.compile(rb"[+-]?[0-9]+\Z")  # strconv.ParseInt(s, 10, 64)
_INT64 = 1 << 63
# The usual spelling of mode, uid, gid, size and mtime (octal digits, each field ended by a
# NUL or a space), and of the checksum: read with int() directly; anything else takes the
# general path (`_number`), which accepts and refuses exactly the same numbers.
_PLAIN_NUMBERS = re.compile(rb"[0-7]{7}[\0 ][0-7]{7}[\0 ][0-7]{7}[\0 ][0-7]{11}[\0 ][0-7]{11}[\0 ]")
_PLAIN_SUM = re.compile(rb"[0-7]{6}\0 ")
_ZERO_DEV = b"0000000\0"


def _byte_sum(blk: bytes) -> int:
    """``sum(blk)`` of a 512-byte header, from two Adler-32s (C, about 5x faster than
    `sum`, which makes an int of every byte): an Adler-32's low half is 1 + the sum of the
    bytes modulo 65,521, exact for 256 bytes (at most 65,280)."""
    adler = zlib.adler32
    return (adler(blk[:256]) & 0xFFFF) + (adler(blk[256:]) & 0xFFFF) - 2


_PAX_PATH, _PAX_LINK = b"path", b"linkpath"
_PAX_STRINGS = frozenset((b"path", b"linkpath", b"uname", b"gname"))
_PAX_INTS = frozenset((b"uid", b"gid", b"size"))
_PAX_TIMES = frozenset((b"mtime", b"atime", b"ctime"))
_SCHILY = b"SCHILY.xattr."
_LIBARCHIVE = b"LIBARCHIVE.xattr."
_SPARSE_OFFSET, _SPARSE_NUMBYTES = b"GNU.sparse.offset", b"GNU.sparse.numbytes"
_SPARSE_MAP = b"GNU.sparse.map"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-layer ceilings; exceeding one refuses the layer (CorruptLayerError, exit 3)."""

    # uncompressed bytes of one layer: the stream, and every size its headers declare
    # (a sparse file's holes included), checked at each header before its content is read
    max_layer_bytes: int = 64 << 30
    max_entries: int = 5_000_000  # tar entries in one layer
    # zero bytes a layer's sparse files may declare beyond the bytes they store: a few
    # KiB of layer must not become a 60 GB blob
    max_sparse_bytes: int = 1 << 30
    max_name_bytes: int = 4096  # a path or link target, in bytes (Linux's PATH_MAX)
    max_depth: int = 1024  # components of a path


DEFAULT_LIMITS = Limits()


class TarError(Exception):
    """The layer is refused: ``why``, at entry ``entry`` when its name is known."""

    def __init__(self, why: str, entry: bytes | str | None = None, *, unsafe: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.entry = _text(entry) if isinstance(entry, bytes) else entry
        self.unsafe = unsafe  # hostile rather than corrupt (UnsafeLayerError)


class _UnsafeRecord(ValueError):
    """A pax record that would smuggle a NUL into a name."""


class Source(Protocol):
    """What the reader reads: the uncompressed layer, front to back (`LayerStream`)."""

    @property
    def pos(self) -> int: ...
    def read(self, n: int) -> bytes: ...
    def skip(self, n: int) -> int: ...


class FileSource:
    """A `Source` over a seekable binary file (skipping is a seek): an outer archive,
    or bytes in memory (`io.BytesIO`)."""

    def __init__(self, f: BinaryIO, size: int | None = None) -> None:
        self._f = f
        if size is None:  # from where the file is to its end
            at = f.tell()
            size = f.seek(0, 2)
            f.seek(at)
        self._size = size

    @property
    def pos(self) -> int:
        return self._f.tell()

    def read(self, n: int) -> bytes:
        return self._f.read(n)

    def skip(self, n: int) -> int:
        at = self._f.tell()
        to = min(at + n, self._size)
        self._f.seek(to)
        return to - at


@dataclass(slots=True, kw_only=True)
class TarEntry:
    """One entry as a runtime unpacks it. ``type`` is the normalised type flag (one
    byte: ``0`` regular, ``1`` hard link, ... ``S`` an old GNU sparse file)."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int  # the content's size (a sparse file's full size); 0 for header-only types
    link: str
    major: int
    minor: int
    xattrs: dict[str, bytes] | None
    sparse: list[tuple[int, int]] | None  # data fragments (offset, length); None: dense

    @property
    def is_file(self) -> bool:
        return self.type in (b"0", b"S")


def _cstr(b: bytes) -> bytes:
    """Up to the first NUL (Go's parseString)."""
    i = b.find(0)
    return b if i < 0 else b[:i]


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _number(b: bytes) -> int:
    """A numeric header field: base-256 (high bit set) or octal (Go's parseNumeric)."""
    if b and b[0] & 0x80:
        inv = 0xFF if b[0] & 0x40 else 0
        x = (b[0] ^ inv) & 0x7F
        for c in b[1:]:
            if x >> 56:
                raise ValueError("base-256 number overflows")
            x = x << 8 | (c ^ inv)
        if x >> 63:
            raise ValueError("base-256 number overflows")
        return ~x if inv else x
    b = b.strip(b" \0")
    if not b:
        return 0
    if 0 in b:
        b = b[: b.find(0)]
    if not b or b.translate(None, _OCTAL_DIGITS):
        raise ValueError(f"invalid octal number {b!r}")
    x = int(b, 8)
    if x >> 64:
        raise ValueError("octal number overflows")
    return x - (1 << 64) if x >> 63 else x  # Go's int64(uint64)


def _decimal(b: bytes) -> int:
    """A pax number (Go's strconv.ParseInt(s, 10, 64))."""
    if not _DECIMAL.match(b):
        raise ValueError(f"invalid number {b[:40]!r}")
    x = int(b)
    if not -_INT64 <= x < _INT64:
        raise ValueError(f"number out of range {b[:40]!r}")
    return x


def _check_time(b: bytes) -> None:
    """A pax time: seconds, optionally a fraction of digits (Go's parsePAXTime)."""
    secs, _, frac = b.partition(b".")
    _decimal(secs)
    if frac and frac.translate(None, b"0123456789"):
        raise ValueError(f"invalid time {b[:40]!r}")


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """The records of a pax header (Go's parsePAX): the last of a key wins; the
    GNU.sparse.offset/numbytes pairs of format 0.0 become a GNU.sparse.map."""
    out: dict[bytes, bytes] = {}
    sparse: list[bytes] = []
    s = data
    while s:
        sp = s.find(b" ")
        if sp < 0:
            raise ValueError("pax record without a length")
        try:
            n = _decimal(s[:sp])
        except ValueError:
            raise ValueError(f"pax record with an invalid length {s[:sp][:20]!r}") from None
        if n < 5 or n > len(s) or n <= sp + 1:
            raise ValueError(f"pax record length {n} does not fit")
        rec, nl, s = s[sp + 1 : n - 1], s[n - 1 : n], s[n:]
        if nl != b"\n":
            raise ValueError("pax record not ending in a newline")
        key, eq, value = rec.partition(b"=")
        if not eq or not key:
            raise ValueError(f"pax record without a key {rec[:40]!r}")
        if key in _PAX_STRINGS:
            if 0 in value:
                what = {b"path": "name", b"linkpath": "link target"}.get(key, key.decode())
                raise _UnsafeRecord(f"NUL in {what} (the pax {key.decode()} record)")
        elif 0 in key:
            raise ValueError(f"NUL in the pax record key {key[:60]!r}")
        if key in (_SPARSE_OFFSET, _SPARSE_NUMBYTES):
            if (key == _SPARSE_OFFSET) != (len(sparse) % 2 == 0) or b"," in value:
                raise ValueError("GNU.sparse.offset/numbytes records out of order")
            sparse.append(value)
        else:
            out[key] = value
    if sparse:
        out[_SPARSE_MAP] = b",".join(sparse)
    return out


def _xattr_name(name: bytes) -> str:
    if not name:
        raise ValueError("an xattr record without a name")
    return _text(name)


def _xattr_value(value: bytes) -> bytes:
    """A LIBARCHIVE.xattr value: base64, its padding optional."""
    try:
        return base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"invalid base64 in a LIBARCHIVE.xattr record {value[:40]!r}") from None


class TarReader:
    """The entries of one layer's tar, read front to back from ``source``.

    `next` returns each entry (None at the end); a regular file's content is
    `content` (before the following `next`), otherwise it is skipped. Every error is
    a `TarError`.
    """

    def __init__(self, source: Source, limits: Limits = DEFAULT_LIMITS) -> None:
        self._src = source
        self._limits = limits
        self._left = 0  # stored bytes of the current entry not read yet
        self._pad = 0  # padding after them
        self._entries = 0
        self._holes = 0  # zeros declared by the sparse files so far
        self._current: TarEntry | None = None
        self._unpack = _HEADER.unpack

    # -- reading -----------------------------------------------------------------------

    def _read(self, n: int, what: str, entry: bytes | str | None) -> bytes:
        data = self._src.read(n)
        if len(data) != n:
            raise TarError(f"unexpected end of the tar stream in {what}", entry)
        return data

    def _skip_rest(self) -> None:
        left, pad = self._left, self._pad
        self._left = self._pad = 0
        if left and self._src.skip(left) != left:
            name = self._current.name if self._current is not None else None
            raise TarError("truncated content", name)
        if pad:
            self._src.skip(pad)  # the end of the stream may fall in the padding

    # -- entries ---------------------------------------------------------------------

    def next(self) -> TarEntry | None:
        """The next entry, or None after the end marker (or at the end of the stream)."""
        self._skip_rest()
        self._current = None
        pax: dict[bytes, bytes] | None = None
        long_name = long_link = b""
        src = self._src
        while True:
            start = src.pos
            blk = src.read(BLOCK)
            if not blk:
                return None
            if len(blk) != BLOCK:
                raise TarError(f"truncated header at byte {start}")
            if blk == _ZERO:
                blk = src.read(BLOCK)
                if not blk or blk == _ZERO:
                    return None
                if len(blk) != BLOCK:
                    raise TarError(f"truncated header at byte {start + BLOCK}")
                raise TarError(f"a zero block followed by a header at byte {start + BLOCK}")
            fields = self._unpack(blk)
            name = _cstr(fields[0])
            shown: bytes | str = name or f"<header at byte {start}>"  # for messages
            type_ = fields[7]
            try:
                self._check_sum(blk, fields[6])
                if _PLAIN_NUMBERS.match(blk, 100):
                    numbers = (
                        int(blk[100:107], 8),
                        int(blk[108:115], 8),
                        int(blk[116:123], 8),
                        int(blk[124:135], 8),
                    )
                else:
                    numbers = (
                        _number(fields[1]),
                        _number(fields[2]),
                        _number(fields[3]),
                        _number(fields[4]),
                    )
                    _number(fields[5])  # mtime: checked, not kept
            except ValueError as e:
                raise TarError(f"invalid header: {e}", shown) from None
            if type_ in (b"x", b"g", b"L", b"K"):
                size = numbers[3]
                if size < 0:
                    raise TarError("invalid header: negative size", shown)
                if size > _MAX_SPECIAL:
                    raise TarError(
                        f"a {type_.decode()} header of {size} bytes (the limit is "
                        f"{_MAX_SPECIAL}, as Go's archive/tar)",
                        shown,
                    )
                data = self._read(size, f"a {type_.decode()} header", shown)
                src.skip(-size % BLOCK)
                if type_ == b"L":
                    long_name = _cstr(data)
                elif type_ == b"K":
                    long_link = _cstr(data)
                else:
                    try:
                        records = _pax_records(data)
                    except ValueError as e:
                        unsafe = isinstance(e, _UnsafeRecord)
                        raise TarError(str(e), shown, unsafe=unsafe) from None
                    if type_ == b"x":
                        pax = records
                    else:  # global: returned by Go, ignored by moby and containerd
                        pax, long_name, long_link = None, b"", b""
                continue
            return self._entry(blk, fields, numbers, name, pax, long_name, long_link, shown)

    @staticmethod
    def _check_sum(blk: bytes, field: bytes) -> None:
        stored = int(field[:6], 8) if _PLAIN_SUM.match(field) else _number(field)
        unsigned = 256 + _byte_sum(blk) - sum(field)
        if stored != unsigned:
            signed = unsigned - 256 * sum(1 for c in blk[:148] + blk[156:] if c > 127)
            if stored != signed:
                raise ValueError("bad checksum")

    def _entry(
        self,
        blk: bytes,
        fields: tuple[bytes, ...],
        numbers: tuple[int, int, int, int],
        name: bytes,
        pax: dict[bytes, bytes] | None,
        long_name: bytes,
        long_link: bytes,
        shown: bytes | str,
    ) -> TarEntry:
        type_, f_link, magic, version = fields[7:11]
        f_major, f_minor, f_prefix = fields[13:16]
        mode, uid, gid, size = numbers
        link = _cstr(f_link)
        major = minor = 0
        gnu = magic == b"ustar " and version == b" \0"
        try:
            if magic == b"ustar\0" and version == b"00":  # ustar, pax or star
                if f_major != _ZERO_DEV or f_minor != _ZERO_DEV:
                    major, minor = _number(f_major), _number(f_minor)
                if blk[508:512] == b"tar\0":  # star: a shorter prefix, then two times
                    prefix = _cstr(f_prefix[:131])
                    _number(blk[476:488])
                    _number(blk[488:500])
                else:
                    prefix = _cstr(f_prefix)
                if prefix:
                    name = prefix + b"/" + name
            elif gnu:
                major, minor = _number(f_major), _number(f_minor)
                try:  # atime and ctime; Go < 1.8 wrote a ustar prefix there instead
                    if blk[345]:
                        _number(blk[345:357])
                    if blk[357]:
                        _number(blk[357:369])
                except ValueError:
                    prefix = _cstr(f_prefix)
                    if prefix and prefix.isascii():
                        name = prefix + b"/" + name
        except ValueError as e:
            raise TarError(f"invalid header: {e}", shown) from None
        xattrs: dict[str, bytes] | None = None
        if pax:
            try:
                for key, value in pax.items():
                    if not value:
                        if key.startswith(_SCHILY):  # an empty xattr is still set
                            xattrs = xattrs or {}
                            xattrs[_xattr_name(key[len(_SCHILY) :])] = b""
                        continue  # otherwise: keep the header's value
                    if key == _PAX_PATH:
                        name = value
                    elif key == _PAX_LINK:
                        link = value
                    elif key in _PAX_INTS:
                        n = _decimal(value)
                        if key == b"size":
                            size = n
                        elif key == b"uid":
                            uid = n
                        else:
                            gid = n
                    elif key in _PAX_TIMES:
                        _check_time(value)
                    elif key.startswith(_SCHILY):
                        xattrs = xattrs or {}
                        xattrs[_xattr_name(key[len(_SCHILY) :])] = value
                    elif key.startswith(_LIBARCHIVE):
                        xname = unquote_to_bytes(key[len(_LIBARCHIVE) :])
                        if 0 in xname:
                            raise ValueError(f"NUL in the xattr name {xname[:60]!r}")
                        xattrs = xattrs or {}
                        xattrs[_xattr_name(xname)] = _xattr_value(value)
            except ValueError as e:
                raise TarError(f"invalid pax header: {e}", shown) from None
        if long_name:
            name = long_name
        if long_link:
            link = long_link
        if type_ == b"\0":  # v7's regular file; a directory if its name ends in "/"
            type_ = b"5" if name.endswith(b"/") else b"0"
        shown = name or shown
        stored = 0 if type_[0] in _HEADER_ONLY else size
        if stored < 0:
            raise TarError("invalid header: negative size", shown)
        self._left, self._pad = stored, -stored % BLOCK
        sparse = None
        if type_ == b"S":
            if not gnu:
                raise TarError("an old GNU sparse header in a non-GNU header", shown)
            sparse, size = self._old_sparse(blk, shown)
        elif pax and (
            b"GNU.sparse.major" in pax or b"GNU.sparse.minor" in pax or _SPARSE_MAP in pax
        ):
            found = self._pax_sparse(pax, stored, shown)
            if found is not None:
                sparse, size, sparse_name = found
                if sparse_name:
                    name = sparse_name
                    shown = name
        if sparse is not None:
            if type_[0] in _HEADER_ONLY:
                raise TarError("a sparse map on an entry that has no content", shown)
            _check_fragments(sparse, size, shown)
        entry = TarEntry(
            name=_text(name),
            type=type_,
            mode=mode,
            uid=uid,
            gid=gid,
            size=size if type_[0] not in _HEADER_ONLY else 0,
            link=_text(link),
            major=major,
            minor=minor,
            xattrs=xattrs,
            sparse=sparse,
        )
        self._check_limits(entry, len(name), len(link))
        self._current = entry
        return entry

    def _old_sparse(self, blk: bytes, shown: bytes | str) -> tuple[list[tuple[int, int]], int]:
        """The map of an old GNU sparse file: 4 slots in the header, 21 in each
        extension block after it (not part of its size), and its real size."""
        try:
            real = _number(blk[483:495])
            frags: list[tuple[int, int]] = []
            slots, more = blk[386:482], blk[482]
            while True:
                for i in range(0, len(slots), 24):
                    if not slots[i]:
                        break
                    frags.append((_number(slots[i : i + 12]), _number(slots[i + 12 : i + 24])))
                if not more:
                    return frags, real
                if len(frags) > _MAX_SPECIAL // 24:
                    raise ValueError(f"more than {_MAX_SPECIAL // 24} sparse extension slots")
                ext = self._read(BLOCK, "a sparse extension header", shown)
                slots, more = ext[:504], ext[504]
        except ValueError as e:
            raise TarError(f"invalid sparse header: {e}", shown) from None

    def _pax_sparse(
        self, pax: dict[bytes, bytes], stored: int, shown: bytes | str
    ) -> tuple[list[tuple[int, int]], int, bytes] | None:
        """A pax sparse file's map, real size and real name (None: not one Go knows)."""
        major, minor = pax.get(b"GNU.sparse.major", b""), pax.get(b"GNU.sparse.minor", b"")
        if major == b"0" and minor in (b"0", b"1"):
            v1 = False
        elif major == b"1" and minor == b"0":
            v1 = True
        elif major or minor:
            return None  # an unknown version: Go reads the entry as a plain file
        elif pax.get(_SPARSE_MAP):
            v1 = False
        else:
            return None
        real = pax.get(b"GNU.sparse.size") or pax.get(b"GNU.sparse.realsize") or b""
        try:
            size = _decimal(real) if real else None
            if v1:
                frags = self._sparse_map_v1(shown)
            else:
                count = _decimal(pax.get(b"GNU.sparse.numblocks", b""))
                values = pax.get(_SPARSE_MAP, b"").split(b",") if pax.get(_SPARSE_MAP) else []
                if count < 0 or len(values) != 2 * count:
                    raise ValueError("GNU.sparse.map does not hold GNU.sparse.numblocks pairs")
                nums = [_decimal(v) for v in values]
                frags = list(zip(nums[::2], nums[1::2], strict=True))
        except ValueError as e:
            raise TarError(f"invalid sparse map: {e}", shown) from None
        if size is None:
            size = stored  # the header's (or pax record's) size, as Go leaves it
        return frags, size, pax.get(b"GNU.sparse.name", b"")

    def _sparse_map_v1(self, shown: bytes | str) -> list[tuple[int, int]]:
        """The map that starts a 1.0 sparse file's content: decimal numbers, one a line
        (count, then offset/length pairs), padded to a block."""
        buf = b""
        start = self._src.pos
        lines: list[bytes] = []
        want = 1
        count = -1
        while len(lines) < want:
            if self._left < BLOCK:
                raise ValueError("the map runs past the entry's content")
            if self._src.pos - start > _MAX_SPECIAL:
                raise ValueError(f"a sparse map over {_MAX_SPECIAL} bytes")
            block = self._read(BLOCK, "a sparse map", shown)
            self._left -= BLOCK
            buf += block
            *done, buf = buf.split(b"\n")
            lines += done
            if count < 0 and lines:
                count = _decimal(lines[0])
                if count < 0:
                    raise ValueError("negative count of sparse entries")
                want = 1 + 2 * count
                if want * 2 > self._left + len(buf) + BLOCK:
                    raise ValueError(f"{count} sparse entries do not fit in the entry")
        nums = [_decimal(x) for x in lines[1:want]]
        return list(zip(nums[::2], nums[1::2], strict=True))

    def _check_limits(self, e: TarEntry, name_bytes: int, link_bytes: int) -> None:
        lim = self._limits
        self._entries += 1
        if self._entries > lim.max_entries:
            raise TarError(f"more than {lim.max_entries} entries", e.name)
        if name_bytes > lim.max_name_bytes:
            raise TarError(
                f"a name of {name_bytes} bytes (the limit is {lim.max_name_bytes})", e.name
            )
        if link_bytes > lim.max_name_bytes:
            raise TarError(
                f"a link target of {link_bytes} bytes (the limit is {lim.max_name_bytes})",
                e.name,
            )
        if e.name.count("/") >= lim.max_depth:
            depth = sum(1 for p in e.name.split("/") if p not in ("", "."))
            if depth > lim.max_depth:
                raise TarError(
                    f"a path {depth} components deep (the limit is {lim.max_depth})", e.name
                )
        if e.sparse is not None:
            self._holes += e.size - sum(n for _, n in e.sparse)
            if self._holes > lim.max_sparse_bytes:
                raise TarError(
                    f"sparse files declaring {self._holes} bytes of holes (the limit is "
                    f"{lim.max_sparse_bytes})",
                    e.name,
                )
        declared = self._src.pos + self._left + self._holes
        if declared > lim.max_layer_bytes:
            raise TarError(
                f"declared size {declared} exceeds the limit of {lim.max_layer_bytes} bytes",
                e.name,
            )

    # -- contents --------------------------------------------------------------------

    def content(self, entry: TarEntry) -> Iterator[bytes]:
        """The content of ``entry`` (the current one), holes of a sparse file as zeros."""
        if entry is not self._current:
            raise TarError("content read out of order", entry.name)
        if entry.sparse is None:
            yield from self._stored(entry.size, entry)
            return
        pos = 0
        for offset, length in entry.sparse:
            yield from _zeros(offset - pos)
            yield from self._stored(length, entry)
            pos = offset + length
        yield from _zeros(entry.size - pos)
        if self._left:
            raise TarError("sparse file contains unreferenced data", entry.name)

    def _stored(self, n: int, entry: TarEntry) -> Iterator[bytes]:
        if n > self._left:
            raise TarError("sparse file references non-existent data", entry.name)
        read = self._src.read
        while n:
            data = read(min(_FILE_CHUNK, n))
            if not data:
                raise TarError("truncated content", entry.name)
            n -= len(data)
            self._left -= len(data)
            yield data


def _zeros(n: int) -> Iterator[bytes]:
    while n > 0:
        yield _ZEROS if n >= _FILE_CHUNK else _ZEROS[:n]
        n -= _FILE_CHUNK


def _check_fragments(frags: list[tuple[int, int]], size: int, shown: bytes | str) -> None:
    """In order, inside the file, not overlapping (Go's validateSparseEntries)."""
    if size < 0:
        raise TarError("invalid sparse header: negative size", shown)
    end = 0
    for offset, length in frags:
        if offset < 0 or length < 0 or offset + length > size or offset < end:
            raise TarError(
                f"invalid sparse map: fragment ({offset}, {length}) of a {size}-byte file", shown
            )
        end = offset + length
