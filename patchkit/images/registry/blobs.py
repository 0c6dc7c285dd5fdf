"""Content of one repository, fetched by digest and verified: small documents and layer streams.

Manifests and configs are read whole (size-capped) and checked before they are parsed; a layer
is streamed and checked at EOF (:class:`VerifyingReader`), so a corrupt or truncated blob raises
:class:`~patchkit.errors.DigestMismatchError` before the flattener trusts its last bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from patchkit.errors import DigestMismatchError, RegistryError
from patchkit.images.registry.transport import Transport

__all__ = ["ProgressCallback", "Repository", "VerifyingReader"]

_CHUNK = 1024 * 1024

ProgressCallback = Callable[[str, int], None]
"""Called as ``progress(blob_digest, nbytes)`` each time a layer stream delivers bytes."""


@dataclass(slots=True)
class Repository:
    """Verified reads from ``transport``'s repository; layer streams are closed by :meth:`close`."""

    transport: Transport
    _streams: list[BinaryIO] = field(default_factory=list)

    def get_verified(
        self, kind: str, path: str, digest: str, limit: int, accept: str | None = None
    ) -> tuple[bytes, str]:
        """GET a small document by digest, check its size cap and digest; return (bytes, content type)."""
        headers = {"Accept": accept} if accept else {}
        resp = self.transport.request("GET", path, headers)
        with contextlib.closing(resp):
            data = resp.read(limit + 1)
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip()
        if len(data) > limit:
            raise self.transport.fail(f"{kind} larger than {limit} bytes", "GET", path)
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatchError(
                f"{self.transport.ref}: {kind} digest mismatch (GET {path}): expected {digest}, got {actual}"
            )
        return data, ctype

    def open_blob(
        self, digest: str, size: int | None, progress: ProgressCallback | None
    ) -> BinaryIO:
        """A buffered stream of blob ``digest``, verified (digest and ``size``) at EOF."""
        ref = self.transport.ref
        path = f"/v2/{ref.repository}/blobs/{digest}"
        resp = self.transport.request("GET", path)
        raw = VerifyingReader(
            resp,
            digest=digest,
            size=size,
            where=f"{ref}: layer {digest} (GET {path})",
            progress=progress,
        )
        stream = io.BufferedReader(raw, buffer_size=_CHUNK)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        """Close every layer stream still open (their connections with them)."""
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.close()
        self._streams.clear()


class VerifyingReader(io.RawIOBase):
    """Pass bytes through, hashing them; at EOF the digest and size must match (else DigestMismatchError)."""

    def __init__(
        self,
        resp: http.client.HTTPResponse,
        *,
        digest: str,
        size: int | None,
        where: str,
        progress: ProgressCallback | None,
    ) -> None:
        super().__init__()
        self._resp = resp
        self._digest = digest
        self._size = size
        self._where = where
        self._progress = progress
        self._hash = hashlib.sha256()
        self._seen = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            n = self._resp.readinto(view)
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError(
                f"{self._where}: connection lost after {self._seen} bytes: {e}"
            ) from e
        if n:
            self._hash.update(view[:n])
            self._seen += n
            if self._size is not None and self._seen > self._size:
                raise DigestMismatchError(
                    f"{self._where}: blob longer than its descriptor size {self._size}"
                )
            if self._progress is not None:
                self._progress(self._digest, n)
            return n
        self._done = True
        if self._size is not None and self._seen != self._size:
            raise DigestMismatchError(
                f"{self._where}: got {self._seen} bytes, descriptor says {self._size}"
            )
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._digest:
            raise DigestMismatchError(f"{self._where}: blob digest mismatch, got {actual}")
        return 0

    def close(self) -> None:
        self._resp.close()
        super().close()
