"""OCI image layouts (`oci:PATH[:REF]`): index.json, nested indexes, multi-arch.

Every index, manifest and config blob is verified against its digest as soon as it
is read; layer blobs are verified by the flattener while they stream. Blob paths
are only ever built from validated `sha256:<64 hex>` digests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from patchkit.errors import SourceError
from patchkit.images._manifest import (
    DEFAULT_PLATFORM,
    INDEX_TYPES,
    MANIFEST_TYPES,
    Platform,
    choose_manifest,
    config_created,
    offered_platforms,
)
from patchkit.images.base import ImagePlan, LayerBlob
from patchkit.images.digests import blob_path, check_digest, short, verify
from patchkit.images.source import Source

__all__ = ["choose_platform", "layout_tags", "open_oci"]

MAX_JSON_BYTES = 16 << 20  # manifests, indexes and configs are small; refuse anything huge
MAX_NESTING = 8
REF_NAME = "org.opencontainers.image.ref.name"


def choose_platform(
    descriptors: list[Mapping[str, Any]], platform: str | None, *, what: str
) -> Mapping[str, Any]:
    """The descriptor for ``platform`` (default linux/amd64), by the rule of `_manifest`."""
    desc = choose_manifest(descriptors, platform)
    if desc is None:
        have = ", ".join(offered_platforms(descriptors)) or "none"
        raise SourceError(
            f"{what}: no image for platform {platform or DEFAULT_PLATFORM} (available: {have}); "
            "choose one with --platform"
        )
    return desc


class Layout:
    """Verified reads from one OCI image layout directory."""

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label
        if not root.is_dir():
            raise SourceError(f"{label}: no such directory")
        marker = root / "oci-layout"
        try:
            doc = json.loads(marker.read_bytes())
            version = doc["imageLayoutVersion"]
        except FileNotFoundError:
            raise SourceError(f"{label}: not an OCI image layout (no oci-layout file)") from None
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise SourceError(f"{label}: unreadable oci-layout file: {e}") from e
        if not isinstance(version, str) or not version.startswith("1."):
            raise SourceError(f"{label}: unsupported imageLayoutVersion {version!r}")

    def index(self) -> dict[str, Any]:
        try:
            data = (self.root / "index.json").read_bytes()
        except OSError as e:
            raise SourceError(f"{self.label}: cannot read index.json: {e}") from e
        return self._parse(data, "index.json")

    def _parse(self, data: bytes, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise SourceError(f"{self.label}: {what} is not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise SourceError(f"{self.label}: {what} is not a JSON object")
        return doc

    def blob_json(self, desc: Mapping[str, Any], what: str) -> dict[str, Any]:
        digest = check_digest(desc.get("digest"), what=f"{self.label}: {what}")
        size = desc.get("size")
        if isinstance(size, int) and size > MAX_JSON_BYTES:
            raise SourceError(f"{self.label}: {what} {short(digest)} is too large ({size} bytes)")
        path = blob_path(self.root, digest, what=f"{self.label}: {what}")
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise SourceError(f"{self.label}: {what} {short(digest)} is too large")
        verify(data, digest, what=f"{self.label}: {what} {short(digest)}")
        return self._parse(data, f"{what} {short(digest)}")

    def opener(self, digest: str, what: str) -> Callable[[], BinaryIO]:
        """Opens the blob when the layer is read (a reused import never touches it)."""
        check_digest(digest, what=f"{self.label}: {what}")

        def open_blob() -> BinaryIO:
            return open(blob_path(self.root, digest, what=f"{self.label}: {what}"), "rb")

        return open_blob


def _descriptors(doc: Mapping[str, Any], what: str) -> list[Mapping[str, Any]]:
    items = doc.get("manifests")
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise SourceError(f"{what}: 'manifests' is not a list of descriptors")
    return items


def _select_top(
    layout: Layout, index: dict[str, Any], ref: str | None, platform: str | None
) -> Mapping[str, Any] | None:
    """The index.json entry ``ref`` names (None: choose by platform among all of them)."""
    descs = _descriptors(index, f"{layout.label}: index.json")
    if ref is None:
        return None
    if ":" in ref and ref.partition(":")[0] in ("sha256", "sha512"):
        hits = [d for d in descs if d.get("digest") == ref]
    else:
        hits = [d for d in descs if (d.get("annotations") or {}).get(REF_NAME) == ref]
    if not hits:
        names = sorted({str((d.get("annotations") or {}).get(REF_NAME)) for d in descs} - {"None"})
        raise SourceError(
            f"{layout.label}: no image {ref!r} in index.json (tags: {', '.join(names) or 'none'})"
        )
    if len(hits) > 1:  # one tag on several platform manifests: the platform rule picks
        return choose_platform(hits, platform, what=f"{layout.label}: index.json {ref!r}")
    return hits[0]


def layout_tags(path: str, platform: str | None = None) -> dict[str, str]:
    """An OCI layout's tags: each ``org.opencontainers.image.ref.name`` of index.json and the
    digest it names (one name on several platform manifests: the ``platform``'s, as imports
    choose it), in index.json's order."""
    layout = Layout(Path(path), f"oci:{path}")
    descs = _descriptors(layout.index(), f"{layout.label}: index.json")
    names = dict.fromkeys(
        name
        for d in descs
        if isinstance(name := (d.get("annotations") or {}).get(REF_NAME), str) and name
    )
    out: dict[str, str] = {}
    for name in names:
        desc = _select_top(layout, {"manifests": descs}, name, platform)
        assert desc is not None  # a name given always selects an entry or raises
        out[name] = check_digest(desc.get("digest"), what=f"{layout.label}: {name}")
    return out


def resolve_manifest(
    layout: Layout, desc: Mapping[str, Any] | None, platform: str | None
) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """Follow indexes down to one image manifest: (its descriptor, its document)."""
    doc: dict[str, Any] = layout.index()
    what = "index.json"
    for _ in range(MAX_NESTING):
        if desc is None:
            descs = _descriptors(doc, f"{layout.label}: {what}")
            desc = choose_platform(descs, platform, what=f"{layout.label}: {what}")
        media = desc.get("mediaType")
        blob_what = f"index {short(str(desc.get('digest')))}"
        if media in INDEX_TYPES:
            doc = layout.blob_json(desc, "index")
            what = blob_what
            desc = None
            continue
        if media not in MANIFEST_TYPES and media is not None:
            raise SourceError(f"{layout.label}: unsupported manifest media type {media!r}")
        manifest = layout.blob_json(desc, "manifest")
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            doc = manifest
            what = blob_what
            desc = None
            continue
        return desc, manifest
    raise SourceError(f"{layout.label}: indexes nested deeper than {MAX_NESTING} levels")


def plan_from_manifest(
    *,
    label: str,
    source: str,
    digest: str,
    manifest: Mapping[str, Any],
    read_config: Any,
    layer_opener: Any,
) -> ImagePlan:
    """An ImagePlan from a verified image manifest (shared with other readers)."""
    config_desc = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config_desc, dict) or not isinstance(layers, list):
        raise SourceError(f"{label}: manifest {short(digest)} lacks config or layers")
    config = read_config(config_desc)
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise SourceError(f"{label}: config has no rootfs.diff_ids")
    if len(diff_ids) != len(layers):
        raise SourceError(
            f"{label}: manifest lists {len(layers)} layers but the config {len(diff_ids)} diff_ids"
        )
    blobs = []
    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True), start=1):
        if not isinstance(layer, dict):
            raise SourceError(f"{label}: layer {i} descriptor is not an object")
        ldigest = check_digest(layer.get("digest"), what=f"{label}: layer {i}")
        check_digest(diff_id, what=f"{label}: layer {i} diff_id")
        size = layer.get("size")
        blobs.append(
            LayerBlob(
                digest=ldigest,
                diff_id=diff_id,
                media_type=str(layer.get("mediaType", "")),
                size=size if isinstance(size, int) else None,
                open=layer_opener(ldigest, f"layer {i}"),
            )
        )
    plat = None
    if config.get("os") and config.get("architecture"):
        plat = f"{config['os']}/{config['architecture']}"
        if config.get("variant"):
            plat += f"/{config['variant']}"
    return ImagePlan(
        source=source,
        digest=digest,
        layers=tuple(blobs),
        config_digest=str(config_desc.get("digest")),
        platform=plat,
        created=config_created(config),
    )


@contextlib.contextmanager
def open_oci(source: Source, *, platform: str | None = None, strip: int = 0) -> Iterator[ImagePlan]:
    """Resolve an OCI layout to one image manifest. The plan's digest is that manifest's."""
    if strip:
        raise SourceError(f"{source}: --strip only applies to tar: sources")
    if platform is not None:
        Platform.parse(platform)
    label = str(source)
    layout = Layout(Path(source.path), label)
    top = _select_top(layout, layout.index(), source.ref, platform)
    desc, manifest = resolve_manifest(layout, top, platform)
    digest = check_digest(desc.get("digest"), what=f"{label}: manifest")
    plan = plan_from_manifest(
        label=label,
        source=label,
        digest=digest,
        manifest=manifest,
        read_config=lambda d: layout.blob_json(d, "config"),
        layer_opener=layout.opener,
    )
    # what the ref name points to (an index for a multi-arch image), as `watch` reads it
    tag_digest = str(top.get("digest")) if top is not None and source.ref else None
    yield dataclasses.replace(plan, tag_digest=tag_digest)
