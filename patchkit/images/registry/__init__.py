"""Pull images from a registry (HTTP API v2) as an :class:`~patchkit.images.base.ImagePlan`, standard library only.

The wire rules (why each one is here) are in ``docs/registry.md``. In short: resolve a tag with
``HEAD`` (Docker Hub counts manifest GETs), fetch everything by digest and verify it, answer
Bearer challenges anonymously, retry 429/5xx/resets with bounded backoff, never send the
token to another host, and never leave loopback when ``PATCHKIT_OFFLINE=1``.

One job a module: ``reference`` (the ``docker://`` grammar), ``transport`` (HTTP, redirects,
retries, the offline rule), ``auth`` (Bearer challenges and token replies), ``blobs`` (verified
reads by digest), ``client`` (tag, indexes and platform, config -> ImagePlan).

>>> parse_reference("docker://ubuntu")
RegistryRef(registry='registry-1.docker.io', repository='library/ubuntu', tag='latest', digest=None)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from patchkit.errors import InvalidReferenceError
from patchkit.images.registry.reference import DOCKER_HUB, RegistryRef, parse_reference
from patchkit.images.registry.transport import RetryPolicy, is_loopback
from patchkit.lazy import lazy_names

if TYPE_CHECKING:
    from patchkit.images.registry.blobs import ProgressCallback
    from patchkit.images.registry.client import open_registry_image

# The pulling side (verified blob reads, which load the layer reader) loads when first named:
# `watch` reads tags and HEADs only.
_LAZY = {
    "ProgressCallback": "patchkit.images.registry.blobs",
    "open_registry_image": "patchkit.images.registry.client",
}

__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "DOCKER_HUB",
    "InvalidReferenceError",
    "ProgressCallback",
    "RegistryRef",
    "RetryPolicy",
    "is_loopback",
    "open_registry_image",
    "parse_reference",
]
