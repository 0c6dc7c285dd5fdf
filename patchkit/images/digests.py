"""Content digests (`sha256:<hex>`) and blob paths inside an OCI layout."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from patchkit.errors import DigestMismatchError, SourceError

__all__ = ["blob_path", "check_digest", "hasher", "short", "verify"]

# Only algorithms the OCI spec registers; the hex is checked so a digest can never
# smuggle a path ("sha256:../../x") into blob_path.
_DIGEST = re.compile(r"\A(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z")


def check_digest(digest: object, *, what: str) -> str:
    """``digest`` if it is `sha256:<64 hex>` (or sha512); SourceError naming ``what`` otherwise."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise SourceError(f"{what}: invalid digest {str(digest)[:80]!r} (want sha256:<64 hex>)")
    return digest


def hasher(digest: str) -> hashlib._Hash:
    """A fresh hash object for the algorithm of ``digest``."""
    return hashlib.new(digest.partition(":")[0])


def short(digest: str) -> str:
    """`sha256:0123456789ab…`: enough to recognise a digest in a one-line message."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}:{hexpart[:12]}…" if len(hexpart) > 12 else digest


def verify(data: bytes, digest: str, *, what: str) -> bytes:
    """``data`` if it hashes to ``digest``; DigestMismatchError otherwise."""
    h = hasher(digest)
    h.update(data)
    got = f"{digest.partition(':')[0]}:{h.hexdigest()}"
    if got != digest:
        raise DigestMismatchError(f"{what}: content has digest {got}, expected {digest}")
    return data


def blob_path(layout: Path, digest: str, *, what: str) -> Path:
    """`<layout>/blobs/<alg>/<hex>`, refusing anything that resolves outside the layout."""
    alg, _, hexpart = check_digest(digest, what=what).partition(":")
    path = layout / "blobs" / alg / hexpart
    real = os.path.realpath(path)
    root = os.path.realpath(layout)
    if os.path.commonpath([real, root]) != root:
        raise SourceError(f"{what}: blob {short(digest)} resolves outside the layout {layout}")
    if not os.path.isfile(real):
        raise SourceError(f"{what}: blob {short(digest)} is missing from {layout}")
    return path
