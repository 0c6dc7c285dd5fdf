"""`docker save` archives (`docker-archive:PATH`) and plain tarballs (`tar:PATH`).

A docker-archive is read in place: members are read by seeking into the outer
tar, never extracted. Both layouts are understood: the legacy one
(`<id>/layer.tar`, `<id>.json`) and Docker 25+ (`blobs/sha256/<hex>` plus an OCI
index.json). Layer members that are symlinks or hard links inside the archive
(skopeo writes those) are resolved to the member they point at.

The digest recorded for a docker-archive is the image's manifest digest when the
archive carries one (Docker 25+: index.json -> manifest whose config matches),
otherwise `sha256:<config digest>`, which is Docker's image ID.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from patchkit.errors import DigestMismatchError, SourceError
from patchkit.images._manifest import INDEX_TYPES, MANIFEST_TYPES, config_created, is_attestation
from patchkit.images.base import ImagePlan, LayerBlob
from patchkit.images.decoders import detect
from patchkit.images.digests import check_digest, verify
from patchkit.images.layers import TarballLayer
from patchkit.images.oci import MAX_JSON_BYTES, MAX_NESTING
from patchkit.images.source import Source
from patchkit.images.tar import FileSource, TarError, TarReader

__all__ = ["open_docker_archive", "open_tarball"]

_HEX_NAME = re.compile(r"(?:\A|/)(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json|\.tar)?\Z")
_MAX_LINKS = 40


@dataclass(frozen=True, slots=True)
class _Member:
    """One member of the outer tar: where its content is in the file."""

    name: str
    type: bytes  # normalised type flag (images/tar.py)
    link: str
    size: int
    offset: int

    def isreg(self) -> bool:
        return self.type in (b"0", b"7")

    def issym(self) -> bool:
        return self.type == b"2"

    def islnk(self) -> bool:
        return self.type == b"1"


class _Slice(io.RawIOBase):
    """A member's content: ``size`` bytes of the archive from ``offset``."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


class _Archive:
    """Members of an outer tar, looked up by normalised name (read with `images/tar.py`)."""

    def __init__(self, path: Path, label: str) -> None:
        self.label = label
        self.path = path
        self.members: dict[str, _Member] = {}
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise SourceError(f"{label}: no such file") from None
        except OSError as e:
            raise SourceError(f"{label}: not a tar archive: {e.strerror or e}") from e
        with f:
            try:
                size = os.fstat(f.fileno()).st_size
                reader = TarReader(FileSource(f, size))
                while (ent := reader.next()) is not None:
                    if ent.sparse is not None:
                        raise TarError("a sparse member", ent.name)
                    member = _Member(ent.name, ent.type, ent.link, ent.size, f.tell())
                    self.members[self._norm(ent.name)] = member
            except TarError as e:
                where = f" at member {e.entry!r}" if e.entry else ""
                raise SourceError(f"{label}: not a valid tar archive{where}: {e.why}") from e
            except OSError as e:
                raise SourceError(f"{label}: cannot read: {e.strerror or e}") from e
        if not self.members:
            raise SourceError(f"{label}: not a tar archive (no member)")

    @staticmethod
    def _norm(name: str) -> str:
        return posixpath.normpath("/" + name).lstrip("/")

    def close(self) -> None:
        pass  # every member is opened on its own

    def member(self, name: str) -> _Member:
        """The regular member ``name`` leads to, following links inside the archive only."""
        current = name
        for _ in range(_MAX_LINKS):
            key = self._norm(current)
            m = self.members.get(key)
            if m is None:
                raise SourceError(f"{self.label}: member {name!r} is missing")
            if m.isreg():
                return m
            if m.issym():
                if m.link.startswith("/"):
                    raise SourceError(f"{self.label}: member {name!r} links outside the archive")
                target = posixpath.join(posixpath.dirname(key), m.link)
            elif m.islnk():
                target = m.link
            else:
                raise SourceError(f"{self.label}: member {name!r} is not a file")
            if (
                posixpath.normpath(target).startswith(("../", "/"))
                or posixpath.normpath(target) == ".."
            ):
                raise SourceError(f"{self.label}: member {name!r} links outside the archive")
            current = target
        raise SourceError(f"{self.label}: member {name!r}: too many levels of links")

    def read(self, name: str, *, limit: int = MAX_JSON_BYTES) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise SourceError(f"{self.label}: member {name!r} is too large ({m.size} bytes)")
        with self.open(m) as f:
            return f.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as e:
            raise SourceError(f"{self.label}: {name} is not JSON: {e}") from e

    def open(self, m: _Member) -> BinaryIO:
        return cast(BinaryIO, io.BufferedReader(_Slice(self.path, m.offset, m.size), 1 << 16))

    def opener(self, m: _Member) -> Any:
        def open_member() -> BinaryIO:
            return self.open(m)

        return open_member


def _hex_in_name(name: str) -> str | None:
    match = _HEX_NAME.search(posixpath.normpath(name))
    return match.group(1) if match else None


def _manifest_digest(archive: _Archive, config_digest: str) -> str | None:
    """Docker 25+ archives carry the image manifest; find the one whose config is ours."""
    if "index.json" not in archive.members:
        return None
    todo: list[tuple[Mapping[str, Any], int]] = [(archive.json("index.json"), 0)]
    while todo:
        doc, depth = todo.pop()
        for desc in doc.get("manifests") or []:
            # an attestation's config is never the image's: no need to read it
            if not isinstance(desc, dict) or depth > MAX_NESTING or is_attestation(desc):
                continue
            digest = check_digest(desc.get("digest"), what=f"{archive.label}: index.json")
            name = f"blobs/{digest.replace(':', '/')}"
            if archive.members.get(name) is None:
                continue
            data = verify(archive.read(name), digest, what=f"{archive.label}: {name}")
            try:
                sub = json.loads(data)
            except ValueError:
                continue
            media = desc.get("mediaType") or sub.get("mediaType")
            if media in INDEX_TYPES or "manifests" in sub:
                todo.append((sub, depth + 1))
            elif (media in MANIFEST_TYPES or "config" in sub) and (
                (sub.get("config") or {}).get("digest") == config_digest
            ):
                return digest
    return None


@contextlib.contextmanager
def open_docker_archive(
    source: Source, *, platform: str | None = None, strip: int = 0
) -> Iterator[ImagePlan]:
    """A `docker save` tarball holding exactly one image."""
    label = str(source)
    if strip:
        raise SourceError(f"{label}: --strip only applies to tar: sources")
    archive = _Archive(Path(source.path), label)
    try:
        manifest = archive.json("manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise SourceError(f"{label}: manifest.json lists no image")
        if len(manifest) > 1:
            tags = [", ".join(m.get("RepoTags") or ["<untagged>"]) for m in manifest]
            raise SourceError(
                f"{label}: holds {len(manifest)} images ({'; '.join(tags)}); save one per archive"
            )
        entry = manifest[0]
        config_name = entry.get("Config")
        layer_names = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise SourceError(f"{label}: manifest.json entry lacks Config or Layers")
        config_data = archive.read(config_name)
        config_digest = "sha256:" + hashlib.sha256(config_data).hexdigest()
        named = _hex_in_name(config_name)
        if named is not None and f"sha256:{named}" != config_digest:
            raise DigestMismatchError(
                f"{label}: config {config_name} has digest {config_digest}, its name says sha256:{named}"
            )
        try:
            config = json.loads(config_data)
            diff_ids = config["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError) as e:
            raise SourceError(f"{label}: config {config_name} lacks rootfs.diff_ids") from e
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
            raise SourceError(
                f"{label}: manifest.json lists {len(layer_names)} layers but the config "
                f"{len(diff_ids) if isinstance(diff_ids, list) else 0} diff_ids"
            )
        layers = []
        for i, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True), start=1):
            diff_id = check_digest(diff_id, what=f"{label}: layer {i} diff_id")
            if not isinstance(name, str):
                raise SourceError(f"{label}: layer {i} is not a member name")
            m = archive.member(name)
            named = _hex_in_name(name) or _hex_in_name(m.name)
            if named is not None and posixpath.normpath(m.name).startswith("blobs/"):
                digest = f"sha256:{named}"
            else:
                digest = _legacy_layer_digest(archive, m, diff_id)
            layers.append(
                LayerBlob(
                    digest=digest,
                    diff_id=diff_id,
                    media_type="application/vnd.docker.image.rootfs.diff.tar",
                    size=m.size,
                    open=archive.opener(m),
                )
            )
        plat = None
        if isinstance(config, dict) and config.get("os") and config.get("architecture"):
            plat = f"{config['os']}/{config['architecture']}"
        digest = _manifest_digest(archive, config_digest) or config_digest
        yield ImagePlan(
            source=label,
            digest=digest,
            layers=tuple(layers),
            config_digest=config_digest,
            platform=plat,
            created=config_created(config),
        )
    finally:
        archive.close()


def _legacy_layer_digest(archive: _Archive, m: _Member, diff_id: str) -> str:
    """`<id>/layer.tar` is normally the plain tar (digest = diff_id); hash it if compressed."""
    with archive.open(m) as f:
        head = f.read(8)
        if detect(head)[1] is None:  # a plain tar
            return diff_id
        h = hashlib.sha256(head)
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


@contextlib.contextmanager
def open_tarball(
    source: Source, *, platform: str | None = None, strip: int = 0
) -> Iterator[ImagePlan]:
    """A plain (or compressed) tarball as a one-layer image; digest = sha256 of the file."""
    label = str(source)
    if strip < 0:
        raise SourceError(f"{label}: --strip must be 0 or more, not {strip}")
    path = Path(source.path)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            size = 0
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise SourceError(f"{label}: cannot read: {e.strerror or e}") from e
    digest = f"sha256:{h.hexdigest()}"

    def open_file() -> BinaryIO:
        return open(path, "rb")

    layer = TarballLayer(
        digest=digest,
        diff_id=None,
        media_type="application/x-tar",
        size=size,
        open=open_file,
        strip=strip,
    )
    yield ImagePlan(source=label, digest=digest, layers=(layer,))
