"""Manifest media types and the one rule choosing an image manifest from an index.

Every reader that meets an image index (``oci:`` layouts, ``docker://`` registries,
``docker-archive:`` of Docker 25+) uses :func:`choose_manifest`, so a platform is
chosen the same way whatever the source:

* Entries BuildKit marks with the ``vnd.docker.reference.type`` annotation are skipped
  (``attestation-manifest`` is the only value in use; BuildKit's attestation-storage
  document says a manifest with any other value must be ignored too). The annotation, not
  the platform, is what marks them: BuildKit also sets their platform to ``unknown/unknown``
  so that runtimes never pick them, and an unannotated entry with that platform is simply
  one that never matches a real ``--platform`` (it is listed among what the index offers).
* The first remaining entry whose ``platform.os`` and ``platform.architecture`` equal the
  requested ones wins; a requested variant must match too, ``arm64`` and ``arm64/v8``
  being the same (containerd's rule). No variant requested: any variant matches.
* An index whose only image entry has no ``platform`` (the OCI spec makes it optional)
  resolves to that entry whatever the platform asked.

>>> choose_manifest([{"platform": {"os": "linux", "architecture": "arm64"}}], "linux/arm64/v8")
{'platform': {'os': 'linux', 'architecture': 'arm64'}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchkit.errors import SourceError

__all__ = [
    "DEFAULT_PLATFORM",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_MANIFEST",
    "REFERENCE_TYPE",
    "Platform",
    "choose_manifest",
    "config_created",
    "descriptor_platform",
    "is_attestation",
    "offered_platforms",
]

DEFAULT_PLATFORM = "linux/amd64"

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
# `Accept` of every manifest request: each index and manifest type we read (indexes first)
MANIFEST_ACCEPT = ", ".join(
    [MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST]
)

REFERENCE_TYPE = "vnd.docker.reference.type"  # BuildKit: "attestation-manifest"


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """A requested ``OS/ARCH[/VARIANT]``.

    >>> str(Platform.parse("linux/arm/v7"))
    'linux/arm/v7'
    """

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Platform:
        """``text`` (None: linux/amd64); SourceError when it is not ``OS/ARCH[/VARIANT]``."""
        bits = (text or DEFAULT_PLATFORM).split("/")
        if len(bits) not in (2, 3) or not all(bits):
            raise SourceError(
                f"platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8"
            )
        return cls(os=bits[0], architecture=bits[1], variant=bits[2] if len(bits) == 3 else None)

    def __str__(self) -> str:
        tail = f"/{self.variant}" if self.variant else ""
        return f"{self.os}/{self.architecture}{tail}"

    def matches(self, platform: Mapping[str, Any]) -> bool:
        """Whether a descriptor's ``platform`` object satisfies this request."""
        if platform.get("os") != self.os or platform.get("architecture") != self.architecture:
            return False
        want = _norm_variant(self.architecture, self.variant)
        return want is None or _norm_variant(self.architecture, platform.get("variant")) == want


def _norm_variant(arch: str, variant: object) -> object:
    # arm64 without a variant means v8, as containerd's platform matcher treats it
    if arch == "arm64" and variant in (None, "v8"):
        return None
    return variant


def is_attestation(desc: Mapping[str, Any]) -> bool:
    """A BuildKit reference manifest (an attestation): never an image to import."""
    annotations = desc.get("annotations")
    return isinstance(annotations, Mapping) and REFERENCE_TYPE in annotations


def _platform_of(desc: Mapping[str, Any]) -> Mapping[str, Any]:
    plat = desc.get("platform")
    return plat if isinstance(plat, Mapping) else {}


def descriptor_platform(desc: Mapping[str, Any]) -> str:
    """``os/arch[/variant]`` of an index entry, ``?`` for what it leaves out."""
    plat = _platform_of(desc)
    text = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
    return text + (f"/{plat['variant']}" if plat.get("variant") else "")


def choose_manifest(
    descriptors: Sequence[Mapping[str, Any]], platform: str | Platform | None
) -> Mapping[str, Any] | None:
    """The index entry for ``platform`` (None: linux/amd64), or None when there is none."""
    want = platform if isinstance(platform, Platform) else Platform.parse(platform)
    images = [d for d in descriptors if not is_attestation(d)]
    if len(images) == 1 and not images[0].get("platform"):
        return images[0]
    for desc in images:
        if want.matches(_platform_of(desc)):
            return desc
    return None


def offered_platforms(descriptors: Sequence[Mapping[str, Any]]) -> list[str]:
    """The platforms an index offers (attestations left out), sorted, for error messages."""
    return sorted({descriptor_platform(d) for d in descriptors if not is_attestation(d)})


def config_created(config: object) -> str | None:
    """The image config's ``created`` date (RFC 3339, as the image says it), if it has one."""
    created = config.get("created") if isinstance(config, Mapping) else None
    return created if isinstance(created, str) and created else None
