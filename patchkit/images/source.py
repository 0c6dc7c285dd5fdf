"""Parse the one source syntax used everywhere (TOML `source`, CLI, Python API).

Forms (see docs/sources.md)::

    docker://[REGISTRY/]NAME[:TAG][@DIGEST]
    docker-archive:PATH
    oci:PATH[:REF]
    docker-daemon:NAME[:TAG][@DIGEST]
    dir:PATH
    tar:PATH

>>> str(parse_source("docker://analogic/poste.io:2.5.24"))
'docker://docker.io/analogic/poste.io:2.5.24'
>>> parse_source("oci:./layout:2.5.24").ref
'2.5.24'
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from patchkit.errors import SourceError

__all__ = ["Source", "SourceKind", "parse_source"]

DOCKER_HUB = "docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"\A{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_REF_DIGEST = re.compile(r"\A[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}\Z")
_REGISTRY = re.compile(
    r"\A(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?\Z"
)
_OCI_DIGEST_REF = re.compile(r"\A(.*):(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z", re.S)


class SourceKind(enum.StrEnum):
    """Where an upstream release comes from (the prefix of its source string)."""

    DOCKER = "docker"
    DOCKER_ARCHIVE = "docker-archive"
    OCI = "oci"
    DOCKER_DAEMON = "docker-daemon"
    DIR = "dir"
    TAR = "tar"


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A parsed source. ``str(source)`` is its canonical spelling.

    ``path`` is used by docker-archive/oci/dir/tar; ``ref`` by oci; ``registry``,
    ``name``, ``tag`` and ``digest`` by docker (registry None for docker-daemon).
    """

    kind: SourceKind
    path: str = ""
    ref: str | None = None
    registry: str | None = None
    name: str = ""
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        k = self.kind
        if k is SourceKind.DOCKER:
            return f"docker://{self.registry}/{self._reference()}"
        if k is SourceKind.DOCKER_DAEMON:
            return f"docker-daemon:{self._reference()}"
        if k is SourceKind.OCI:
            if self.ref:
                return f"oci:{self.path}:{self.ref}"
            # A trailing ':' keeps a path that contains ':' from reading as PATH:REF.
            return f"oci:{self.path}:" if ":" in self.path else f"oci:{self.path}"
        return f"{k.value}:{self.path}"

    def _reference(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _fail(text: str, why: str) -> SourceError:
    return SourceError(f"source {text!r}: {why}")


def _parse_reference(text: str, ref: str, *, registry: bool) -> Source:
    """NAME[:TAG][@DIGEST] with an optional leading REGISTRY/ (docker rules)."""
    name, _, digest = ref.partition("@")
    if digest and not _REF_DIGEST.match(digest):
        raise _fail(text, f"invalid digest {digest!r}")
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise _fail(text, f"invalid tag {tag!r}")
    host: str | None = None
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _REGISTRY.match(first):
            raise _fail(text, f"invalid registry {first!r}")
        host, name = first, rest
    elif registry:
        host = DOCKER_HUB
    if registry and host in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
        if "/" not in name:
            name = f"library/{name}"
    if not _NAME.match(name):
        raise _fail(text, f"invalid image name {name!r} (lowercase letters, digits, '._-', '/')")
    if not registry and host is not None:
        name, host = f"{host}/{name}", None  # the daemon resolves registries itself
    if tag is None and not digest:
        tag = "latest"
    kind = SourceKind.DOCKER if registry else SourceKind.DOCKER_DAEMON
    return Source(kind=kind, registry=host, name=name, tag=tag, digest=digest or None)


def parse_source(text: str) -> Source:
    """Parse a source string; SourceError (one line) on bad syntax. Touches no disk.

    ``oci:PATH[:REF]``: REF is what follows the LAST ':' when that is a digest
    (`sha256:<hex>`) or a non-empty text without '/'; otherwise the whole rest is
    PATH. A PATH that itself contains ':' is written with a trailing ':'
    (`oci:/data/a:b:` is the layout `/data/a:b`, no REF).
    """
    if not isinstance(text, str) or not text.strip():
        raise SourceError("empty source")
    if any(c in text for c in "\n\r\0"):
        raise _fail(text, "control characters are not allowed")
    text = text.strip()
    if text.startswith("docker://"):
        return _parse_reference(text, text[len("docker://") :], registry=True)
    scheme, sep, rest = text.partition(":")
    if not sep:
        raise _fail(
            text,
            "missing form prefix; use docker://NAME:TAG, docker-archive:PATH, oci:PATH[:REF], "
            "docker-daemon:NAME[:TAG], dir:PATH or tar:PATH",
        )
    try:
        kind = SourceKind(scheme)
    except ValueError:
        raise _fail(text, f"unknown form {scheme!r}") from None
    if kind is SourceKind.DOCKER:
        raise _fail(text, "write docker://NAME")
    if not rest:
        raise _fail(text, "missing path or name")
    if kind is SourceKind.DOCKER_DAEMON:
        return _parse_reference(text, rest, registry=False)
    if kind is SourceKind.OCI:
        m = _OCI_DIGEST_REF.match(rest)
        if m:
            path, ref = m.group(1), m.group(2)
        else:
            head, colon, tail = rest.rpartition(":")
            if colon and "/" not in tail:
                path, ref = head, tail
            else:
                path, ref = rest, ""
        if not path:
            raise _fail(text, "missing layout path")
        return Source(kind=kind, path=path, ref=ref or None)
    return Source(kind=kind, path=rest)
