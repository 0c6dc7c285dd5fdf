"""Pull images from a registry (HTTP API v2) as an :class:`ImagePlan`, standard library only.

The wire rules (why each one is here) are in ``docs/registry.md``. In short: resolve a tag with
``HEAD`` (Docker Hub counts manifest GETs), fetch everything by digest and verify it, answer
Bearer challenges anonymously, retry 429/5xx/resets with bounded backoff, never send the
token to another host, and never leave loopback when ``PATCHKIT_OFFLINE=1``.

>>> parse_reference("docker://ubuntu")
RegistryRef(registry='registry-1.docker.io', repository='library/ubuntu', tag='latest', digest=None)
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import ipaddress
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from patchkit.errors import DigestMismatchError, RegistryError, SourceError
from patchkit.images.base import ImagePlan, LayerBlob
from patchkit.images.source import Source

__all__ = [
    "DOCKER_HUB",
    "InvalidReferenceError",
    "ProgressCallback",
    "RegistryRef",
    "open_registry_image",
    "parse_reference",
]

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
_MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
_ACCEPT = ", ".join([MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST])

_MAX_MANIFEST = 4 * 1024 * 1024  # manifests and indexes are small; a bigger one is hostile
_MAX_CONFIG = 16 * 1024 * 1024
_MAX_REDIRECTS = 5
_MAX_INDEX_DEPTH = 4
_CHUNK = 1024 * 1024

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?"
)
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')

ProgressCallback = Callable[[str, int], None]
"""Called as ``progress(blob_digest, nbytes)`` each time a layer stream delivers bytes."""


class InvalidReferenceError(SourceError, ValueError):
    """A ``docker://`` reference does not follow the reference grammar."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryRef:
    """A parsed, normalised ``docker://`` reference."""

    registry: str  # host[:port]; Docker Hub is "registry-1.docker.io"
    repository: str  # "library/ubuntu"
    tag: str | None  # None only when a digest is given without a tag
    digest: str | None

    @property
    def display_registry(self) -> str:
        """The registry as people write it ("docker.io" for Docker Hub)."""
        return "docker.io" if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        out = f"docker://{self.display_registry}/{self.repository}"
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def pinned(self, digest: str) -> str:
        """Canonical source string for ``digest`` in this repository (no tag)."""
        return f"docker://{self.display_registry}/{self.repository}@{digest}"


def parse_reference(text: str) -> RegistryRef:
    """Parse ``docker://[REGISTRY/]NAME[:TAG][@DIGEST]`` (the ``docker://`` prefix is optional).

    >>> parse_reference("docker://127.0.0.1:5000/app:1.2").registry
    '127.0.0.1:5000'
    """
    rest = text.removeprefix("docker://")
    if not rest:
        raise InvalidReferenceError(f"{text!r}: empty image reference")
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReferenceError(
                f"{text}: digest must be sha256:<64 lowercase hex>, got {digest!r}"
            )
    parts = rest.split("/")
    registry = DOCKER_HUB
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not _HOST_RE.fullmatch(first):
            raise InvalidReferenceError(f"{text}: bad registry host {first!r}")
        registry = DOCKER_HUB if first.lower() in _HUB_ALIASES else first
        parts = parts[1:]
    tag: str | None = None
    if ":" in parts[-1]:
        parts[-1], tag = parts[-1].split(":", 1)
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"{text}: bad tag {tag!r}")
    for component in parts:
        if not _COMPONENT_RE.fullmatch(component):
            raise InvalidReferenceError(
                f"{text}: bad repository name component {component!r} (lowercase letters, digits, '.', '_', '-')"
            )
    if registry == DOCKER_HUB and len(parts) == 1:
        parts.insert(0, "library")
    if tag is None and digest is None:
        tag = "latest"
    return RegistryRef(registry=registry, repository="/".join(parts), tag=tag, digest=digest)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (no DNS lookup: names other than localhost are not)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- transport ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Bounded exponential backoff for 429, 5xx and dropped connections."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0  # also caps Retry-After, so a hostile server cannot park us
    timeout: float = 60.0  # socket timeout per connect/read


_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(slots=True)
class _Client:
    """One repository on one registry: base URL, token, retries. Not thread-safe."""

    ref: RegistryRef
    base: urllib.parse.SplitResult  # scheme://host[:port][/prefix]
    retry: RetryPolicy
    offline: bool
    token: str | None = None
    sleep: Callable[[float], None] = time.sleep
    _streams: list[BinaryIO] = field(default_factory=list)

    # one-line error prefix: the reference, never the token
    def fail(self, what: str, method: str, path: str, detail: str = "") -> RegistryError:
        tail = f": {detail}" if detail else ""
        return RegistryError(f"{self.ref}: {what} ({method} {path}{tail})")

    def url(self, path: str) -> urllib.parse.SplitResult:
        return self.base._replace(path=self.base.path.rstrip("/") + path)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        """Send with auth, redirects and retries; return a response with status < 300 (body unread)."""
        url = self.url(path)
        headers = dict(headers or {})
        authed_retry = False
        attempt = 0
        redirects = 0
        while True:
            send = dict(headers)
            same_host = url.netloc == self.base.netloc and url.scheme == self.base.scheme
            if self.token is not None and same_host:
                send["Authorization"] = f"Bearer {self.token}"
            try:
                resp = self._send(method, url, send)
            except RegistryError:
                raise
            except OSError as e:  # resets, refusals, timeouts: retried, then reported
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise self.fail(
                        "registry unreachable", method, path, f"{type(e).__name__}: {e}"
                    ) from e
                self.sleep(self._backoff(attempt, None))
                continue
            status = resp.status
            if status < 300:
                return resp
            body = _read_small(resp)
            if status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                redirects += 1
                if not location or redirects > _MAX_REDIRECTS:
                    raise self.fail("bad or endless redirect", method, path, f"HTTP {status}")
                url = urllib.parse.urlsplit(urllib.parse.urljoin(url.geturl(), location))
                if url.scheme not in ("http", "https"):
                    raise self.fail("redirect to a non-HTTP URL", method, path, url.scheme)
                if status == 303:
                    method = "GET"
                continue
            if status == 401 and same_host:
                challenge = resp.getheader("WWW-Authenticate") or ""
                scheme, params = _parse_challenge(challenge)
                if scheme == "bearer" and not authed_retry:
                    self.token = self._fetch_token(params, method, path)
                    authed_retry = True
                    continue
                if scheme == "basic":
                    raise self.fail(
                        "registry needs credentials (Basic auth); patchkit pulls anonymously only",
                        method,
                        path,
                        "HTTP 401",
                    )
                raise self.fail("access denied", method, path, f"HTTP 401{_error_detail(body)}")
            if status in _RETRY_STATUSES:
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise self.fail(
                        f"registry kept failing after {attempt} tries",
                        method,
                        path,
                        f"HTTP {status}{_error_detail(body)}",
                    )
                self.sleep(self._backoff(attempt, resp.getheader("Retry-After")))
                continue
            if status == 404:
                raise self.fail("not found", method, path, f"HTTP 404{_error_detail(body)}")
            if status == 403:
                raise self.fail("access denied", method, path, f"HTTP 403{_error_detail(body)}")
            raise self.fail(
                "registry refused the request", method, path, f"HTTP {status}{_error_detail(body)}"
            )

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        delay = self.retry.base_delay * 2.0 ** (attempt - 1)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))  # HTTP-date form: fall back to backoff
        return min(delay, self.retry.max_delay)

    def _send(
        self, method: str, url: urllib.parse.SplitResult, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        host = url.hostname or ""
        if self.offline and not is_loopback(host):
            raise RegistryError(
                f"{self.ref}: refusing to contact {host} ({method} {url.path}): PATCHKIT_OFFLINE=1 allows loopback only"
            )
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(host, url.port, timeout=self.retry.timeout)
        else:
            conn = http.client.HTTPConnection(host, url.port, timeout=self.retry.timeout)
        target = url.path + (f"?{url.query}" if url.query else "")
        headers.setdefault("User-Agent", "patchkit")
        try:
            conn.request(method, target, headers=headers)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        # the response keeps the socket; closing the response releases it
        return resp

    def _fetch_token(self, params: dict[str, str], method: str, path: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise self.fail("Bearer challenge without a realm", method, path, "HTTP 401")
        query = {"scope": params.get("scope") or f"repository:{self.ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        realm_url = urllib.parse.urlsplit(realm)
        if realm_url.scheme not in ("http", "https") or not realm_url.hostname:
            raise self.fail("Bearer realm is not an HTTP URL", method, path)
        sep = "&" if realm_url.query else ""
        token_url = realm_url._replace(query=realm_url.query + sep + urllib.parse.urlencode(query))
        attempt = 0
        while True:
            try:
                resp = self._send("GET", token_url, {"Accept": "application/json"})
                status, body = resp.status, _read_small(resp, 1024 * 1024)
            except RegistryError:
                raise
            except OSError as e:
                status, body = 0, b""
                err: str = f"{type(e).__name__}: {e}"
            else:
                err = f"HTTP {status}"
            if 200 <= status < 300:
                break
            attempt += 1
            if status not in (0, *_RETRY_STATUSES) or attempt >= self.retry.attempts:
                raise self.fail(
                    "token server refused an anonymous pull token", "GET", realm_url.path, err
                )
            self.sleep(self._backoff(attempt, None))
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise self.fail("token server answered without a token", "GET", realm_url.path)
        return token

    def get_verified(
        self, kind: str, path: str, digest: str, limit: int, accept: str | None = None
    ) -> tuple[bytes, str]:
        """GET a small document by digest, check its size cap and digest; return (bytes, content type)."""
        headers = {"Accept": accept} if accept else {}
        resp = self.request("GET", path, headers)
        with contextlib.closing(resp):
            data = resp.read(limit + 1)
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip()
        if len(data) > limit:
            raise self.fail(f"{kind} larger than {limit} bytes", "GET", path)
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatchError(
                f"{self.ref}: {kind} digest mismatch (GET {path}): expected {digest}, got {actual}"
            )
        return data, ctype

    def open_blob(
        self, digest: str, size: int | None, progress: ProgressCallback | None
    ) -> BinaryIO:
        path = f"/v2/{self.ref.repository}/blobs/{digest}"
        resp = self.request("GET", path)
        raw = _VerifyingReader(
            resp,
            digest=digest,
            size=size,
            where=f"{self.ref}: layer {digest} (GET {path})",
            progress=progress,
        )
        stream = io.BufferedReader(raw, buffer_size=_CHUNK)
        self._streams.append(stream)
        return stream

    def close_streams(self) -> None:
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.close()
        self._streams.clear()


class _VerifyingReader(io.RawIOBase):
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


def _read_small(resp: http.client.HTTPResponse, limit: int = 64 * 1024) -> bytes:
    try:
        return resp.read(limit)
    except (OSError, http.client.HTTPException):
        return b""
    finally:
        resp.close()


def _error_detail(body: bytes) -> str:
    """The first registry error (``{"errors": [{"code", "message"}]}``), for one-line messages."""
    try:
        first = json.loads(body)["errors"][0]
        return f" {first.get('code', '')}: {first.get('message', '')}".rstrip(": ")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace(
            '\\"', '"'
        )
        for m in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


# --- manifests ---------------------------------------------------------------------------------


def _platform_parts(platform: str) -> tuple[str, str, str | None]:
    bits = platform.split("/")
    if len(bits) not in (2, 3) or not all(bits):
        raise SourceError(f"--platform {platform!r}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")
    return bits[0], bits[1], bits[2] if len(bits) == 3 else None


def _norm_variant(arch: str, variant: str | None) -> str | None:
    # arm64 without a variant means v8, as containerd's platform matcher treats it
    if arch == "arm64" and variant in (None, "v8"):
        return None
    return variant


def _is_attestation(entry: dict[str, Any]) -> bool:
    annotations = entry.get("annotations") or {}
    if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    plat = entry.get("platform") or {}
    return plat.get("os") == "unknown" or plat.get("architecture") == "unknown"


def _entry_platform(entry: dict[str, Any]) -> str:
    plat = entry.get("platform") or {}
    out = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
    return out + (f"/{plat['variant']}" if plat.get("variant") else "")


def select_platform(index: dict[str, Any], platform: str) -> dict[str, Any] | None:
    """The first non-attestation entry of ``index`` matching ``platform`` (OS/ARCH[/VARIANT])."""
    want_os, want_arch, want_variant = _platform_parts(platform)
    want_variant = _norm_variant(want_arch, want_variant)
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict) or _is_attestation(entry):
            continue
        plat = entry.get("platform") or {}
        if plat.get("os") != want_os or plat.get("architecture") != want_arch:
            continue
        have_variant = _norm_variant(want_arch, plat.get("variant"))
        if want_variant is None or have_variant == want_variant:
            return entry
    return None


def _descriptor_digest(client: _Client, desc: Any, what: str) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise RegistryError(f"{client.ref}: {what} digest is not sha256:<64 hex>: {digest!r}")
    return digest


def _resolve_tag(client: _Client) -> str:
    """Tag → digest with HEAD only (Docker Hub rate-limits manifest GETs, not HEADs)."""
    path = f"/v2/{client.ref.repository}/manifests/{client.ref.tag}"
    resp = client.request("HEAD", path, {"Accept": _ACCEPT})
    resp.read()
    resp.close()
    digest = resp.getheader("Docker-Content-Digest")
    if digest is None or not _DIGEST_RE.fullmatch(digest):
        raise client.fail(
            "registry did not give a sha256 Docker-Content-Digest for the tag; pin the image with @sha256:...",
            "HEAD",
            path,
        )
    return digest


def _load_manifest(client: _Client, digest: str) -> tuple[dict[str, Any], str]:
    path = f"/v2/{client.ref.repository}/manifests/{digest}"
    data, ctype = client.get_verified("manifest", path, digest, _MAX_MANIFEST, _ACCEPT)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise client.fail("manifest is not JSON", "GET", path, str(e)) from e
    if not isinstance(doc, dict):
        raise client.fail("manifest is not a JSON object", "GET", path)
    media = doc.get("mediaType") or ctype
    if media not in _INDEX_TYPES and media not in _MANIFEST_TYPES:
        # OCI manifests may omit mediaType; recognise them by shape
        media = (
            MEDIA_OCI_INDEX
            if "manifests" in doc
            else MEDIA_OCI_MANIFEST
            if "layers" in doc
            else media
        )
    if media not in _INDEX_TYPES and media not in _MANIFEST_TYPES:
        raise client.fail(
            f"unsupported manifest type {media!r} (schema 1 images are not supported)", "GET", path
        )
    return doc, media


def _build_plan(
    client: _Client, manifest_digest: str, platform: str | None, progress: ProgressCallback | None
) -> ImagePlan:
    wanted = platform or "linux/amd64"
    digest = manifest_digest
    for _ in range(_MAX_INDEX_DEPTH):
        doc, media = _load_manifest(client, digest)
        if media in _MANIFEST_TYPES:
            break
        entry = select_platform(doc, wanted)
        if entry is None:
            offered = sorted(
                {
                    _entry_platform(e)
                    for e in doc.get("manifests") or []
                    if isinstance(e, dict) and not _is_attestation(e)
                }
            )
            raise RegistryError(
                f"{client.ref}: no manifest for platform {wanted} in index {digest} (offers: {', '.join(offered) or 'none'})"
            )
        digest = _descriptor_digest(client, entry, "index entry")
    else:
        raise RegistryError(f"{client.ref}: indexes nested deeper than {_MAX_INDEX_DEPTH}")

    config_digest = _descriptor_digest(client, doc.get("config"), "config")
    config_path = f"/v2/{client.ref.repository}/blobs/{config_digest}"
    config_bytes, _ = client.get_verified("config", config_path, config_digest, _MAX_CONFIG)
    try:
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
        if not isinstance(diff_ids, list):
            raise TypeError("diff_ids is not a list")
    except (ValueError, KeyError, TypeError) as e:
        raise client.fail("image config has no rootfs.diff_ids", "GET", config_path, str(e)) from e
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise RegistryError(f"{client.ref}: manifest {digest} has no layers list")
    if len(diff_ids) != len(layers_doc):
        raise RegistryError(
            f"{client.ref}: manifest {digest} lists {len(layers_doc)} layers but its config has {len(diff_ids)} diff_ids"
        )

    layers: list[LayerBlob] = []
    for desc, diff_id in zip(layers_doc, diff_ids, strict=True):
        blob_digest = _descriptor_digest(client, desc, "layer")
        if not isinstance(diff_id, str) or not _DIGEST_RE.fullmatch(diff_id):
            raise RegistryError(
                f"{client.ref}: layer {blob_digest}: diff_id is not sha256:<64 hex>: {diff_id!r}"
            )
        size = desc.get("size")
        size = size if isinstance(size, int) and size >= 0 else None

        def opener(d: str = blob_digest, s: int | None = size) -> BinaryIO:
            return client.open_blob(d, s, progress)

        layers.append(
            LayerBlob(
                digest=blob_digest,
                diff_id=diff_id,
                media_type=str(desc.get("mediaType", "")),
                size=size,
                open=opener,
            )
        )
    os_name, arch, variant = config.get("os"), config.get("architecture"), config.get("variant")
    plat = f"{os_name}/{arch}" + (f"/{variant}" if variant else "") if os_name and arch else None
    return ImagePlan(
        source=client.ref.pinned(digest),
        digest=digest,
        layers=tuple(layers),
        config_digest=config_digest,
        platform=plat,
    )


def _base_url(
    ref: RegistryRef, mirror: str | None, insecure: bool | None
) -> urllib.parse.SplitResult:
    if ref.registry == DOCKER_HUB and mirror:
        if "://" not in mirror:
            bare = urllib.parse.urlsplit(f"//{mirror}").hostname or ""
            plain = insecure if insecure is not None else is_loopback(bare)
            mirror = f"{'http' if plain else 'https'}://{mirror}"
        url = urllib.parse.urlsplit(mirror)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SourceError(f"registry mirror {mirror!r}: expected http(s)://HOST[:PORT]")
        if insecure is False:
            url = url._replace(scheme="https")
        return url._replace(query="", fragment="")
    host = urllib.parse.urlsplit(f"//{ref.registry}").hostname or ref.registry
    plain = insecure if insecure is not None else is_loopback(host)
    return urllib.parse.SplitResult("http" if plain else "https", ref.registry, "", "", "")


@contextlib.contextmanager
def open_registry_image(
    ref: RegistryRef | Source | str,
    *,
    platform: str | None = None,
    mirror: str | None = None,
    insecure: bool | None = None,
    progress: ProgressCallback | None = None,
    retry: RetryPolicy | None = None,
) -> Iterator[ImagePlan]:
    """Resolve ``ref`` (a RegistryRef, a ``docker://`` Source or string) to a streaming :class:`ImagePlan`.

    ``mirror`` (default: ``$PATCHKIT_REGISTRY_MIRROR``) replaces Docker Hub. ``insecure``: None
    means plain HTTP for loopback hosts only, True forces HTTP, False forces HTTPS. Layer streams
    are valid inside the ``with`` block only.

    >>> with open_registry_image("docker://127.0.0.1:5000/app:1") as plan:  # doctest: +SKIP
    ...     [layer.digest for layer in plan.layers]
    """
    if not isinstance(ref, RegistryRef):
        ref = parse_reference(str(ref))  # a Source prints as its canonical docker:// string
    if platform is not None:
        _platform_parts(platform)
    mirror = mirror if mirror is not None else os.environ.get("PATCHKIT_REGISTRY_MIRROR") or None
    client = _Client(
        ref=ref,
        base=_base_url(ref, mirror, insecure),
        retry=retry or RetryPolicy(),
        offline=os.environ.get("PATCHKIT_OFFLINE", "") not in ("", "0"),
    )
    try:
        digest = ref.digest if ref.digest is not None else _resolve_tag(client)
        yield _build_plan(client, digest, platform, progress)
    finally:
        client.close_streams()
