"""What every image source hands to the layer flattener."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["ImagePlan", "LayerBlob"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerBlob:
    """One layer as the source stores it (maybe compressed)."""

    digest: str  # "sha256:<64 hex>" of the stored blob; verified while it is read
    diff_id: str | None  # "sha256:..." of the uncompressed tar, from the config; None if unknown
    media_type: str
    size: int | None
    open: Callable[[], BinaryIO]  # a fresh stream of the stored bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ImagePlan:
    """A resolved image: which manifest, which layers, in order (lowest first)."""

    source: str  # canonical source string, as written in commit trailers
    digest: str  # manifest digest ("sha256:...") or, for tar:/dir:, the content digest
    layers: tuple[LayerBlob, ...]
    config_digest: str | None = None
    platform: str | None = None
    created: str | None = None  # the image config's creation date (RFC 3339), if it has one
    # What the tag (or OCI ref name) pointed to: an index for multi-arch images, else ``digest``.
    # None where the source has no tags (archives, tarballs, directories).
    tag_digest: str | None = None
