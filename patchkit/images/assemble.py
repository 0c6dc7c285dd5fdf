"""Publishing's last local step: one OCI layout, one tag, the images of every platform.

A multi-platform release is built one context a platform (`patchkit build` writes them), each
into an OCI layout of its own (buildah, or `docker buildx --output type=oci`, which adds its
SBOM and provenance attestation manifests). :func:`assemble_layout` copies the blobs of all of
them into one layout and tags one index listing every image manifest (with its platform) and
every attestation manifest (BuildKit's ``vnd.docker.reference.digest`` keeps naming its image).
One image and no attestation stays that image's manifest: a single-platform release is
published exactly as it was built. The index is deterministic (sources' order, sorted JSON),
so the same builds give the same digest. Every blob is verified against its digest as it is
copied.

>>> assemble_layout(Path("out"), "2.5.24", ["oci:amd64", "oci:arm64"])  # doctest: +SKIP
Assembled(digest='sha256:...', platforms=('linux/amd64', 'linux/arm64'), ...)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchkit.core.model import SCHEMA
from patchkit.errors import SourceError
from patchkit.images._manifest import (
    INDEX_TYPES,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    descriptor_platform,
    is_attestation,
)
from patchkit.images.digests import blob_path, check_digest, hasher, short
from patchkit.images.oci import REF_NAME, Layout
from patchkit.images.source import SourceKind, parse_source

__all__ = ["Assembled", "assemble_layout"]

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Assembled:
    """The layout written: ``tag`` names ``digest`` (an index, or the one image manifest)."""

    out: str
    tag: str
    digest: str
    media_type: str
    platforms: tuple[str, ...]
    attestations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "assemble",
            "out": self.out,
            "tag": self.tag,
            "digest": self.digest,
            "media_type": self.media_type,
            "platforms": list(self.platforms),
            "attestations": self.attestations,
        }


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class _Writer:
    """Blobs into ``out/blobs/<alg>/``: linked where the file system allows, else copied;
    each one verified against its digest, once."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.done: set[str] = set()

    def put(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.out / "blobs" / "sha256" / digest.partition(":")[2]
        path.parent.mkdir(parents=True, exist_ok=True)
        if digest not in self.done:
            path.write_bytes(data)
            self.done.add(digest)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def copy(self, layout: Layout, digest: str, what: str) -> None:
        if digest in self.done:
            return
        src = blob_path(layout.root, digest, what=f"{layout.label}: {what}")
        alg, _, hexpart = digest.partition(":")
        dest = self.out / "blobs" / alg / hexpart
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hasher(digest)
        with open(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        if f"{alg}:{h.hexdigest()}" != digest:
            raise SourceError(f"{layout.label}: {what} {short(digest)} does not match its digest")
        if not dest.exists():
            try:
                os.link(src, dest)
            except OSError:
                shutil.copyfile(src, dest)
        self.done.add(digest)


def _top(layout: Layout, ref: str | None) -> Mapping[str, Any]:
    """The entry of index.json the source names (its only entry when it names none)."""
    entries = layout.index().get("manifests")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SourceError(f"{layout.label}: index.json has no list of manifests")
    if ref is not None:
        entries = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == ref]
    if len(entries) != 1:
        raise SourceError(
            f"{layout.label}: index.json has {len(entries)} entries"
            + (f" named {ref!r}" if ref else "")
            + "; name the one to publish (oci:PATH:REF)"
        )
    top: Mapping[str, Any] = entries[0]
    return top


def _platform(layout: Layout, desc: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """The descriptor's platform, else the one its image config states."""
    if isinstance(desc.get("platform"), dict):
        return descriptor_platform(desc)
    config = layout.blob_json(manifest["config"], "config")
    if not config.get("os") or not config.get("architecture"):
        raise SourceError(f"{layout.label}: image {short(str(desc['digest']))} names no platform")
    return descriptor_platform({"platform": config})


def _entries(
    layout: Layout, desc: Mapping[str, Any], writer: _Writer, depth: int = 0
) -> list[dict[str, Any]]:
    """The manifests under ``desc`` (indexes flattened), each with its blobs copied."""
    if depth > 4:
        raise SourceError(f"{layout.label}: indexes nested deeper than 4 levels")
    digest = check_digest(desc.get("digest"), what=f"{layout.label}: descriptor")
    doc = layout.blob_json(desc, "manifest")
    if desc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        out = []
        for entry in doc.get("manifests") or []:
            if isinstance(entry, dict):
                out += _entries(layout, entry, writer, depth + 1)
        return out
    writer.copy(layout, digest, "manifest")
    for blob in [doc.get("config"), *(doc.get("layers") or [])]:
        if isinstance(blob, dict):
            writer.copy(layout, check_digest(blob.get("digest"), what=layout.label), "blob")
    entry = {k: v for k, v in desc.items() if k in ("mediaType", "digest", "size")}
    # a ref name belongs to the layout it came from, not to an entry of the index
    notes = {k: v for k, v in (desc.get("annotations") or {}).items() if k != REF_NAME}
    if notes:
        entry["annotations"] = notes
    entry.setdefault("mediaType", doc.get("mediaType") or MEDIA_OCI_MANIFEST)
    if is_attestation(desc):
        entry["platform"] = {"architecture": "unknown", "os": "unknown"}
    else:
        plat = _platform(layout, desc, doc).split("/")
        entry["platform"] = {"os": plat[0], "architecture": plat[1]} | (
            {"variant": plat[2]} if len(plat) > 2 else {}
        )
    return [entry]


def assemble_layout(out: Path, tag: str, sources: Sequence[str]) -> Assembled:
    """Write the OCI layout ``out`` (replaced when it is one) whose ``tag`` names every image
    of ``sources`` (``oci:PATH[:REF]``): one index, or the one image manifest as it is.

    SourceError when a source is not a layout, a blob is missing or corrupt, or two images
    claim the same platform (one release, one image a platform)."""
    if not sources:
        raise SourceError("assemble: no image layouts given")
    if out.exists():
        if not (out / "oci-layout").is_file():
            raise SourceError(f"{out}: exists and is not an OCI layout; choose another")
        shutil.rmtree(out)
    writer = _Writer(out)
    entries: list[dict[str, Any]] = []
    for text in sources:
        src = parse_source(text if ":" in text else f"oci:{text}")
        if src.kind is not SourceKind.OCI:
            raise SourceError(f"{text}: assemble reads OCI layouts (oci:PATH[:REF])")
        layout = Layout(Path(src.path), str(src))
        entries += _entries(layout, _top(layout, src.ref), writer)
    images = [e for e in entries if not is_attestation(e)]
    platforms = [descriptor_platform(e) for e in images]
    twice = sorted({p for p in platforms if platforms.count(p) > 1})
    if twice:
        raise SourceError(f"assemble: more than one image for {', '.join(twice)}")
    attestations = len(entries) - len(images)
    if len(images) == 1 and not attestations:
        top = {k: v for k, v in images[0].items() if k != "platform"}
    else:
        index = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": entries}
        top = writer.put(_dumps(index), MEDIA_OCI_INDEX)
    top = {**top, "annotations": {**(top.get("annotations") or {}), REF_NAME: tag}}
    (out / "oci-layout").write_bytes(_dumps({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(
        _dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [top]})
    )
    return Assembled(
        out=str(out),
        tag=tag,
        digest=str(top["digest"]),
        media_type=str(top["mediaType"]),
        platforms=tuple(platforms),
        attestations=attestations,
    )
