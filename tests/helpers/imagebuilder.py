"""Build real images in temp dirs: layer tars, OCI layouts, `docker save` archives.

Everything is deterministic (mtime 0, sorted JSON) and every digest is computed
from the bytes written, so tests exercise the real verification paths.

>>> layer = Layer().dir("etc").file("etc/hostname", b"box\\n")
>>> built = build_oci_layout(tmp_path / "img", [layer], tag="1.0")   # doctest: +SKIP
>>> built.source                                                       # doctest: +SKIP
'oci:/tmp/.../img:1.0'
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

__all__ = [
    "Built",
    "Layer",
    "build_docker_archive",
    "build_oci_layout",
    "build_tarball",
    "compress",
    "sha256",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    None: "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress(data: bytes, compression: str | None) -> bytes:
    if compression is None:
        return data
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(compression)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layer:
    """One layer tar, built entry by entry (in the order the calls are made)."""

    def __init__(self) -> None:
        self.entries: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def _info(
        self, path: str, type_: bytes, *, mode: int, uid: int = 0, gid: int = 0
    ) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(path)
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = 0
        ti.uname = ti.gname = ""
        return ti

    def raw(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        """Any entry, exactly as given (hostile names, odd types)."""
        if data is not None:
            info.size = len(data)
        self.entries.append((info, data))
        return self

    def file(
        self,
        path: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: Mapping[str, str] | None = None,
    ) -> Layer:
        ti = self._info(path, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid)
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        return self.raw(ti, data)

    def dir(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Layer:
        return self.raw(self._info(path, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid))

    def symlink(self, path: str, target: str) -> Layer:
        ti = self._info(path, tarfile.SYMTYPE, mode=0o777)
        ti.linkname = target
        return self.raw(ti)

    def hardlink(self, path: str, target: str, *, mode: int = 0o644, uid: int = 0) -> Layer:
        ti = self._info(path, tarfile.LNKTYPE, mode=mode, uid=uid)
        ti.linkname = target
        return self.raw(ti)

    def whiteout(self, path: str) -> Layer:
        head, _, name = path.rpartition("/")
        return self.file(f"{head}/.wh.{name}" if head else f".wh.{name}")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq")

    def fifo(self, path: str, *, mode: int = 0o644) -> Layer:
        return self.raw(self._info(path, tarfile.FIFOTYPE, mode=mode))

    def device(
        self, path: str, major: int, minor: int, *, block: bool = False, mode: int = 0o666
    ) -> Layer:
        ti = self._info(path, tarfile.BLKTYPE if block else tarfile.CHRTYPE, mode=mode)
        ti.devmajor, ti.devminor = major, minor
        return self.raw(ti)

    def stored(self, compression: str | None) -> bytes:
        """The layer blob: its tar, compressed."""
        return compress(self.tar(), compression)

    def tar(self) -> bytes:
        """The uncompressed tar (PAX format), end marker and record padding included."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for info, data in self.entries:
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """What a builder wrote, with the digests a correct reader must find."""

    path: Path
    source: str
    digest: str  # the digest patchkit records for this image
    config_digest: str = ""
    layers: tuple[str, ...] = ()  # stored blob digests
    diff_ids: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _config(diff_ids: Sequence[str], platform: str, created: str | None = None) -> bytes:
    os_, arch, *variant = platform.split("/")
    doc: dict[str, Any] = {
        "architecture": arch,
        "os": os_,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if variant:
        doc["variant"] = variant[0]
    if created is not None:
        doc["created"] = created
    return _dumps(doc)


def _platform(platform: str) -> dict[str, str]:
    os_, arch, *variant = platform.split("/")
    out = {"os": os_, "architecture": arch}
    if variant:
        out["variant"] = variant[0]
    return out


class _Blobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _image(
    blobs: _Blobs,
    layers: Sequence[Layer],
    compression: str | None,
    platform: str,
    created: str | None = None,
) -> tuple[dict[str, Any], str, list[str], list[str]]:
    tars = [layer.tar() for layer in layers]
    diff_ids = [sha256(t) for t in tars]
    layer_descs = [
        blobs.put(layer.stored(compression), LAYER_TYPES[compression]) for layer in layers
    ]
    config = blobs.put(_config(diff_ids, platform, created), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layer_descs,
    }
    desc = blobs.put(_dumps(manifest), OCI_MANIFEST)
    return desc, config["digest"], [d["digest"] for d in layer_descs], diff_ids


def build_oci_layout(
    root: Path,
    layers: Sequence[Layer] | Mapping[str, Sequence[Layer]],
    *,
    compression: str | None = "gzip",
    nested: bool = False,
    tag: str | None = "latest",
    attestation: bool = False,
    leading: Sequence[tuple[Sequence[Layer], Mapping[str, Any]]] = (),
    created: str | None = None,
) -> Built:
    """An OCI image layout at ``root``.

    ``layers`` is one image, or a mapping platform ("os/arch[/variant]") -> layers
    for a multi-arch index. ``nested`` puts an index between index.json and the
    manifests; ``attestation`` adds a buildkit-style attestation manifest.
    ``leading`` puts more (real, importable) images first in the index: each is
    (layers, descriptor fields such as ``platform`` and ``annotations``); their
    manifest digests are in ``extra["leading"]``, so a test can prove none is chosen.
    ``created``: the images' config ``created`` date.
    The returned digest is the manifest linux/amd64 (or the only image) resolves to.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(_dumps({"imageLayoutVersion": "1.0.0"}))
    blobs = _Blobs(root)
    images = layers if isinstance(layers, Mapping) else {"linux/amd64": layers}
    descs: list[dict[str, Any]] = []
    chosen: dict[str, Any] = {}
    leading_digests: list[str] = []
    for image_layers, fields in leading:
        plat = fields.get("platform") or {}
        desc, *_ = _image(
            blobs,
            image_layers,
            compression,
            f"{plat.get('os', 'linux')}/{plat.get('architecture', 'amd64')}",
        )
        descs.append({**desc, **fields})
        leading_digests.append(desc["digest"])
    for platform, image_layers in images.items():
        desc, config_digest, digests, diff_ids = _image(
            blobs, image_layers, compression, platform, created
        )
        desc = {**desc, "platform": _platform(platform)}
        descs.append(desc)
        info = {
            "digest": desc["digest"],
            "config": config_digest,
            "layers": digests,
            "diff_ids": diff_ids,
        }
        chosen[platform] = info
    if attestation:
        att = blobs.put(
            _dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}), OCI_MANIFEST
        )
        descs.append(
            {
                **att,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": descs[len(leading)]["digest"],
                },
            }
        )
    multi = isinstance(layers, Mapping) or nested or attestation or bool(leading)
    if multi:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}
        top = blobs.put(_dumps(index), OCI_INDEX) if nested else None
        top_descs = [top] if top is not None else descs
    else:
        top_descs = [{k: v for k, v in descs[0].items() if k != "platform"}]
    if tag is not None:
        top_descs = [
            {
                **d,
                "annotations": {
                    **d.get("annotations", {}),
                    "org.opencontainers.image.ref.name": tag,
                },
            }
            for d in top_descs
        ]
    (root / "index.json").write_bytes(
        _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": top_descs})
    )
    main = chosen.get("linux/amd64") or next(iter(chosen.values()))
    return Built(
        path=root,
        source=f"oci:{root}:{tag}" if tag else f"oci:{root}",
        digest=main["digest"],
        config_digest=main["config"],
        layers=tuple(main["layers"]),
        diff_ids=tuple(main["diff_ids"]),
        extra={"platforms": chosen, "leading": leading_digests},
    )


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def build_docker_archive(
    path: Path,
    layers: Sequence[Layer],
    *,
    style: str = "legacy",
    compression: str | None = None,
    tags: Sequence[str] = ("example/test:latest",),
) -> Built:
    """A `docker save` tarball.

    ``style``: "legacy" (Docker < 25: `<id>/layer.tar`, `<id>/json`, `<config hex>.json`,
    `repositories`), "oci" (Docker 25+: `blobs/sha256/...` plus index.json, oci-layout,
    manifest.json naming the blobs), "containerd" (Docker with the containerd image
    store / `ctr export`: index.json -> an image index -> per-platform manifests, only
    the chosen platform's blobs present, gzip layers), "crane" (`crane save`:
    `<digest hex>.tar.gz` layers, config named `sha256:<hex>`) or "skopeo-symlinks"
    (`<hex>.tar` files and `<id>/layer.tar` symlinks to them, the manifest naming the
    symlinks). ``compression`` gzips/zstds the layer members.
    """
    if style in ("containerd", "crane") and compression is None:
        compression = "gzip"
    tars = [layer.tar() for layer in layers]
    diff_ids = [sha256(t) for t in tars]
    stored = [compress(t, compression) for t in tars]
    config = _config(diff_ids, "linux/amd64")
    config_digest = sha256(config)
    buf = io.BytesIO()
    layer_names: list[str] = []
    digest = config_digest
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        if style == "crane":
            config_name = config_digest  # literally "sha256:<hex>"
            _add(tf, config_name, config)
            for data in stored:
                name = f"{sha256(data)[7:]}.tar.gz"
                _add(tf, name, data)
                layer_names.append(name)
        elif style in ("oci", "containerd"):
            _add(tf, "oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))
            for data in stored:
                name = f"blobs/sha256/{sha256(data)[7:]}"
                _add(tf, name, data)
                layer_names.append(name)
            config_name = f"blobs/sha256/{config_digest[7:]}"
            _add(tf, config_name, config)
            manifest = _dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": config_digest,
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": LAYER_TYPES[compression], "digest": sha256(d), "size": len(d)}
                        for d in stored
                    ],
                }
            )
            digest = sha256(manifest)
            _add(tf, f"blobs/sha256/{digest[7:]}", manifest)
            desc = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}
            if style == "containerd":
                # The image index as pushed, listing a platform whose blobs were not exported.
                other = {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256(b"arm64 manifest"),
                    "size": 14,
                    "platform": _platform("linux/arm64"),
                }
                inner = _dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_INDEX,
                        "manifests": [{**desc, "platform": _platform("linux/amd64")}, other],
                    }
                )
                _add(tf, f"blobs/sha256/{sha256(inner)[7:]}", inner)
                desc = {
                    "mediaType": OCI_INDEX,
                    "digest": sha256(inner),
                    "size": len(inner),
                    "annotations": {
                        "io.containerd.image.name": f"docker.io/{tags[0]}",
                        "org.opencontainers.image.ref.name": tags[0].rpartition(":")[2],
                    },
                }
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}
            _add(tf, "index.json", _dumps(index))
        else:
            config_name = f"{config_digest[7:]}.json"
            _add(tf, config_name, config)
            for i, data in enumerate(stored):
                layer_id = hashlib.sha256(b"layer%d" % i + data).hexdigest()
                if style == "skopeo-symlinks":
                    _add(tf, f"{sha256(data)[7:]}.tar", data)
                    ti = tarfile.TarInfo(f"{layer_id}/layer.tar")
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = f"../{sha256(data)[7:]}.tar"
                    ti.mtime = 0
                    tf.addfile(ti)
                elif style == "legacy":
                    _add(tf, f"{layer_id}/layer.tar", data)
                else:
                    raise ValueError(style)
                _add(tf, f"{layer_id}/VERSION", b"1.0")
                _add(tf, f"{layer_id}/json", _dumps({"id": layer_id}))
                layer_names.append(f"{layer_id}/layer.tar")
        if style in ("legacy", "oci") and tags:
            repo, _, tag = tags[0].rpartition(":")
            last = layer_names[-1].split("/")[-2] if style == "legacy" else digest[7:]
            _add(tf, "repositories", _dumps({repo: {tag: last}}))
        _add(
            tf,
            "manifest.json",
            _dumps([{"Config": config_name, "RepoTags": list(tags), "Layers": layer_names}]),
        )
    path.write_bytes(buf.getvalue())
    return Built(
        path=path,
        source=f"docker-archive:{path}",
        digest=digest,
        config_digest=config_digest,
        layers=tuple(sha256(d) for d in stored),
        diff_ids=tuple(diff_ids),
    )


def build_tarball(path: Path, layer: Layer, *, compression: str | None = None) -> Built:
    """A plain (or compressed) tarball for `tar:` sources."""
    data = compress(layer.tar(), compression)
    path.write_bytes(data)
    return Built(path=path, source=f"tar:{path}", digest=sha256(data), layers=(sha256(data),))
