"""Raw tar archives built block by block, for what `tarfile`'s writer cannot write:
repeated meta headers, malformed pax records, old GNU sparse files, pax sparse maps of
each version, huge names. Every helper returns bytes (whole 512-byte blocks).

>>> tar = gnu_long_name("a" * 200) + header("x", size=1) + pad(b"1") + END
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from patchkit.images.tar import FileSource
from tests.helpers.imagebuilder import Layer

__all__ = [
    "END",
    "BytesSource",
    "RawLayer",
    "gnu_long_link",
    "gnu_long_name",
    "header",
    "old_gnu_sparse",
    "pad",
    "pax",
    "pax_record",
    "pax_sparse",
    "sparse_content",
]

END = bytes(1024)


def BytesSource(data: bytes) -> FileSource:
    """The tar reader's source over bytes in memory."""
    return FileSource(io.BytesIO(data))


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def header(
    name: str | bytes,
    *,
    type_: bytes = b"0",
    size: int = 0,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    link: str | bytes = b"",
    fmt: str = "ustar",
    prefix: bytes = b"",
    extra: dict[int, bytes] | None = None,
) -> bytes:
    """One header block; ``fmt`` is "ustar" (also pax), "gnu" or "v7". ``extra`` puts
    bytes at offsets (old GNU sparse fields) before the checksum is computed."""
    raw_name = name.encode() if isinstance(name, str) else name
    raw_link = link.encode() if isinstance(link, str) else link
    b = bytearray(512)
    b[0:100] = raw_name[:100].ljust(100, b"\0")
    b[100:108] = _octal(mode, 8)
    b[108:116] = _octal(uid, 8)
    b[116:124] = _octal(gid, 8)
    b[124:136] = _octal(size, 12)
    b[136:148] = _octal(0, 12)
    b[156:157] = type_
    b[157:257] = raw_link[:100].ljust(100, b"\0")
    if fmt == "ustar":
        b[257:265] = b"ustar\x0000"
        b[345:500] = prefix.ljust(155, b"\0")
    elif fmt == "gnu":
        b[257:265] = b"ustar  \0"
    if fmt != "v7":
        b[329:337] = _octal(0, 8)
        b[337:345] = _octal(0, 8)
    for at, data in (extra or {}).items():
        b[at : at + len(data)] = data
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)


def pax_record(key: str | bytes, value: str | bytes) -> bytes:
    """``"%d %s=%s\\n"`` with its own length counted."""
    k = key.encode() if isinstance(key, str) else key
    v = value.encode() if isinstance(value, str) else value
    body = b" " + k + b"=" + v + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n += 1
    return b"%d" % n + body


def pax(
    records: Iterable[tuple[str | bytes, str | bytes]] | bytes, *, global_: bool = False
) -> bytes:
    """A pax extended header (``x``, or ``g``) with its records (or raw bytes)."""
    data = records if isinstance(records, bytes) else b"".join(pax_record(k, v) for k, v in records)
    kind = b"g" if global_ else b"x"
    return header("././@PaxHeader", type_=kind, size=len(data)) + pad(data)


def _gnu_long(kind: bytes, text: str | bytes) -> bytes:
    data = (text.encode() if isinstance(text, str) else text) + b"\0"
    return header("././@LongLink", type_=kind, size=len(data), fmt="gnu") + pad(data)


def gnu_long_name(name: str | bytes) -> bytes:
    return _gnu_long(b"L", name)


def gnu_long_link(target: str | bytes) -> bytes:
    return _gnu_long(b"K", target)


Fragments = Sequence[tuple[int, bytes]]  # (offset in the file, the bytes stored there)


def sparse_content(size: int, frags: Fragments) -> bytes:
    """The file a sparse map describes (zeros but for the fragments)."""
    out = bytearray(size)
    for offset, data in frags:
        out[offset : offset + len(data)] = data
    return bytes(out)


def old_gnu_sparse(name: str, size: int, frags: Fragments, *, fmt: str = "gnu") -> bytes:
    """An old GNU sparse entry (type S): 4 map slots in the header, 21 in each extension."""
    data = b"".join(d for _, d in frags)
    slots = [b"%011o\0%011o\0" % (o, len(d)) for o, d in frags]
    head, rest = slots[:4], slots[4:]
    extra = {386: b"".join(head), 483: _octal(size, 12)}
    if rest:
        extra[482] = b"\1"
    out = header(name, type_=b"S", size=len(data), fmt=fmt, extra=extra)
    while rest:
        chunk, rest = rest[:21], rest[21:]
        ext = bytearray(512)
        ext[: 24 * len(chunk)] = b"".join(chunk)
        ext[504] = 1 if rest else 0
        out += bytes(ext)
    return out + pad(data)


def pax_sparse(
    name: str,
    size: int,
    frags: Fragments,
    *,
    version: str,
    size_record: str = "GNU.sparse.size",
    sparse_map: bytes | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A pax sparse entry of GNU format ``version`` ("0.0", "0.1" or "1.0"); ``extra``
    records end its pax header (where Go's writer puts `size`: sorted after the GNU ones),
    ``sparse_map`` replaces a 1.0 map's text."""
    data = b"".join(d for _, d in frags)
    recs: list[tuple[str, str]] = []
    if version == "0.0":
        recs += [(size_record, str(size)), ("GNU.sparse.numblocks", str(len(frags)))]
        for o, d in frags:
            recs += [("GNU.sparse.offset", str(o)), ("GNU.sparse.numbytes", str(len(d)))]
        return pax([*recs, *extra]) + header(name, size=len(data)) + pad(data)
    if version == "0.1":
        flat = ",".join(f"{o},{len(d)}" for o, d in frags)
        recs += [
            (size_record, str(size)),
            ("GNU.sparse.numblocks", str(len(frags))),
            ("GNU.sparse.map", flat),
        ]
        return pax([*recs, *extra]) + header(name, size=len(data)) + pad(data)
    if sparse_map is None:
        lines = [str(len(frags))] + [str(x) for o, d in frags for x in (o, len(d))]
        sparse_map = ("\n".join(lines) + "\n").encode()
    recs += [
        ("GNU.sparse.major", "1"),
        ("GNU.sparse.minor", "0"),
        ("GNU.sparse.name", name),
        ("GNU.sparse.realsize", str(size)),
    ]
    stored = pad(sparse_map) + data
    return (
        pax([*recs, *extra])
        + header("GNUSparseFile.0/" + name.rsplit("/", 1)[-1], size=len(stored))
        + pad(stored)
    )


class RawLayer(Layer):
    """A layer given as the bytes of its tar (and, with ``blob``, of its stored blob)."""

    def __init__(self, data: bytes, blob: bytes | None = None) -> None:
        super().__init__()
        self.data = data
        self.blob = blob

    def tar(self) -> bytes:
        return self.data

    def stored(self, compression: str | None) -> bytes:
        return self.blob if self.blob is not None else super().stored(compression)
