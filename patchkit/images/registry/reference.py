"""``docker://`` references: parse, normalise (Docker Hub's aliases and ``library/``), print.

>>> parse_reference("docker://ubuntu")
RegistryRef(registry='registry-1.docker.io', repository='library/ubuntu', tag='latest', digest=None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from patchkit.errors import InvalidReferenceError

__all__ = ["DIGEST_RE", "DOCKER_HUB", "RegistryRef", "parse_reference"]

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?"
)


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
        if not DIGEST_RE.fullmatch(digest):
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
