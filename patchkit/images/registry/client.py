"""Pull one image: tag -> digest (HEAD), indexes -> the platform's manifest, config -> :class:`ImagePlan`.

Everything after the tag is fetched by digest and verified (see ``docs/registry.md`` for why each
wire rule is here). The platform is chosen by :func:`patchkit.images._manifest.choose_manifest`,
the rule every image source shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from patchkit.errors import RegistryError, SourceError
from patchkit.images._manifest import (
    DEFAULT_PLATFORM,
    INDEX_TYPES,
    MANIFEST_ACCEPT,
    MANIFEST_TYPES,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Platform,
    choose_manifest,
    config_created,
    offered_platforms,
)
from patchkit.images.base import ImagePlan, LayerBlob
from patchkit.images.registry.blobs import ProgressCallback, Repository
from patchkit.images.registry.reference import DIGEST_RE, DOCKER_HUB, RegistryRef, parse_reference
from patchkit.images.registry.transport import RetryPolicy, Transport, is_loopback
from patchkit.images.source import Source

__all__ = ["TagDigest", "head_tag", "open_registry_image", "open_transport"]

_ACCEPT = MANIFEST_ACCEPT
_MAX_MANIFEST = 4 * 1024 * 1024  # manifests and indexes are small; a bigger one is hostile
_MAX_CONFIG = 16 * 1024 * 1024
_MAX_INDEX_DEPTH = 4


def _descriptor_digest(repo: Repository, desc: Any, what: str) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise RegistryError(
            f"{repo.transport.ref}: {what} digest is not sha256:<64 hex>: {digest!r}"
        )
    return digest


@dataclass(frozen=True, slots=True, kw_only=True)
class TagDigest:
    """What a tag points to now: a manifest or an index (``media_type`` as the registry says)."""

    digest: str
    media_type: str = ""


def head_tag(transport: Transport, tag: str, *, missing_ok: bool = False) -> TagDigest | None:
    """Tag -> digest with ``HEAD`` (Docker Hub rate-limits manifest GETs, not HEADs).

    Every manifest and index type is in ``Accept``; the digest is ``Docker-Content-Digest``,
    or, from a registry that leaves it out, the sha256 of the manifest a ``GET`` returns.
    ``missing_ok``: None for a tag the registry does not have (404) instead of an error.
    """
    path = f"/v2/{transport.ref.repository}/manifests/{tag}"
    resp = transport.request("HEAD", path, {"Accept": _ACCEPT}, missing_ok=missing_ok)
    resp.read()
    resp.close()
    if resp.status == 404:
        return None
    media = (resp.getheader("Content-Type") or "").split(";")[0].strip()
    digest = resp.getheader("Docker-Content-Digest")
    if digest is not None and DIGEST_RE.fullmatch(digest):
        return TagDigest(digest=digest, media_type=media)
    resp = transport.request("GET", path, {"Accept": _ACCEPT}, missing_ok=missing_ok)
    with contextlib.closing(resp):
        data = resp.read(_MAX_MANIFEST + 1)
        media = (resp.getheader("Content-Type") or "").split(";")[0].strip()
    if resp.status == 404:
        return None
    if len(data) > _MAX_MANIFEST:
        raise transport.fail(f"manifest larger than {_MAX_MANIFEST} bytes", "GET", path)
    return TagDigest(digest="sha256:" + hashlib.sha256(data).hexdigest(), media_type=media)


def _resolve_tag(repo: Repository) -> str:
    tag = head_tag(repo.transport, repo.transport.ref.tag or "latest")
    assert tag is not None  # without missing_ok a 404 raises
    return tag.digest


def _load_manifest(repo: Repository, digest: str) -> tuple[dict[str, Any], str]:
    transport = repo.transport
    path = f"/v2/{transport.ref.repository}/manifests/{digest}"
    data, ctype = repo.get_verified("manifest", path, digest, _MAX_MANIFEST, _ACCEPT)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise transport.fail("manifest is not JSON", "GET", path, str(e)) from e
    if not isinstance(doc, dict):
        raise transport.fail("manifest is not a JSON object", "GET", path)
    media = doc.get("mediaType") or ctype
    if media not in INDEX_TYPES and media not in MANIFEST_TYPES:
        # OCI manifests may omit mediaType; recognise them by shape
        media = (
            MEDIA_OCI_INDEX
            if "manifests" in doc
            else MEDIA_OCI_MANIFEST
            if "layers" in doc
            else media
        )
    if media not in INDEX_TYPES and media not in MANIFEST_TYPES:
        raise transport.fail(
            f"unsupported manifest type {media!r} (schema 1 images are not supported)", "GET", path
        )
    return doc, media


def _index_entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc.get("manifests") or [] if isinstance(e, dict)]


def _build_plan(
    repo: Repository, manifest_digest: str, platform: str | None, progress: ProgressCallback | None
) -> ImagePlan:
    ref = repo.transport.ref
    wanted = platform or DEFAULT_PLATFORM
    digest = manifest_digest
    for _ in range(_MAX_INDEX_DEPTH):
        doc, media = _load_manifest(repo, digest)
        if media in MANIFEST_TYPES:
            break
        entries = _index_entries(doc)
        entry = choose_manifest(entries, wanted)
        if entry is None:
            offered = ", ".join(offered_platforms(entries)) or "none"
            raise RegistryError(
                f"{ref}: no manifest for platform {wanted} in index {digest} (offers: {offered})"
            )
        digest = _descriptor_digest(repo, entry, "index entry")
    else:
        raise RegistryError(f"{ref}: indexes nested deeper than {_MAX_INDEX_DEPTH}")

    config_digest = _descriptor_digest(repo, doc.get("config"), "config")
    config_path = f"/v2/{ref.repository}/blobs/{config_digest}"
    config_bytes, _ = repo.get_verified("config", config_path, config_digest, _MAX_CONFIG)
    try:
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
        if not isinstance(diff_ids, list):
            raise TypeError("diff_ids is not a list")
    except (ValueError, KeyError, TypeError) as e:
        raise repo.transport.fail(
            "image config has no rootfs.diff_ids", "GET", config_path, str(e)
        ) from e
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise RegistryError(f"{ref}: manifest {digest} has no layers list")
    if len(diff_ids) != len(layers_doc):
        raise RegistryError(
            f"{ref}: manifest {digest} lists {len(layers_doc)} layers but its config has {len(diff_ids)} diff_ids"
        )

    layers: list[LayerBlob] = []
    for desc, diff_id in zip(layers_doc, diff_ids, strict=True):
        blob_digest = _descriptor_digest(repo, desc, "layer")
        if not isinstance(diff_id, str) or not DIGEST_RE.fullmatch(diff_id):
            raise RegistryError(
                f"{ref}: layer {blob_digest}: diff_id is not sha256:<64 hex>: {diff_id!r}"
            )
        size = desc.get("size")
        size = size if isinstance(size, int) and size >= 0 else None

        def opener(d: str = blob_digest, s: int | None = size) -> BinaryIO:
            return repo.open_blob(d, s, progress)

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
        source=ref.pinned(digest),
        digest=digest,
        layers=tuple(layers),
        config_digest=config_digest,
        platform=plat,
        created=config_created(config),
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
        Platform.parse(platform)
    repo = Repository(open_transport(ref, mirror=mirror, insecure=insecure, retry=retry))
    try:
        digest = ref.digest if ref.digest is not None else _resolve_tag(repo)
        plan = _build_plan(repo, digest, platform, progress)
        yield dataclasses.replace(plan, tag_digest=digest)
    finally:
        repo.close()


def open_transport(
    ref: RegistryRef,
    *,
    mirror: str | None = None,
    insecure: bool | None = None,
    retry: RetryPolicy | None = None,
) -> Transport:
    """The transport to ``ref``'s repository, as pulls make it: ``mirror`` (default
    ``$PATCHKIT_REGISTRY_MIRROR``) for Docker Hub, ``PATCHKIT_OFFLINE``, the retry policy."""
    mirror = mirror if mirror is not None else os.environ.get("PATCHKIT_REGISTRY_MIRROR") or None
    return Transport(
        ref=ref,
        base=_base_url(ref, mirror, insecure),
        retry=retry or RetryPolicy(),
        offline=os.environ.get("PATCHKIT_OFFLINE", "") not in ("", "0"),
    )
