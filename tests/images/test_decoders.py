"""Compressed layers as the runtimes read them (images/decoders.py): several gzip members,
several zstd frames, zstd skippable frames (zstd:chunked), blobs made by the `zstd` tool and
zstd:chunked layers made by buildah (containers/storage's writer)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest
import zstandard

from patchkit.errors import CorruptLayerError
from patchkit.git.store import Store
from patchkit.images import parse_source
from patchkit.images.decoders import detect
from patchkit.images.stream import LayerStream
from patchkit.ops.importing import import_release
from tests.conftest import require_tool
from tests.helpers.imagebuilder import Layer, build_oci_layout
from tests.helpers.tarstreams import RawLayer
from tests.images.test_hostile_layers import refuse


def _layer() -> Layer:
    layer = Layer().dir("etc")
    for i in range(40):
        layer.file(f"etc/f{i:02}", (b"line %d\n" % i) * (i * 50 + 1))
    return layer


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    return struct.pack("<II", 0x184D2A50 + nibble, len(payload)) + payload


def chunked(tar: bytes, pieces: int = 5) -> bytes:
    """A zstd:chunked-like blob: the tar in several frames, a skippable frame of metadata
    at the start, between frames and at the end (where containers/storage puts its TOC)."""
    cut = len(tar) // pieces
    parts = [tar[i * cut : (i + 1) * cut if i < pieces - 1 else len(tar)] for i in range(pieces)]
    cctx = zstandard.ZstdCompressor(level=3)
    out = skippable(b"lead")
    for i, part in enumerate(parts):
        out += cctx.compress(part)
        if i % 2:
            out += skippable(b'{"toc":%d}' % i, nibble=i)
    return out + skippable(b'{"version":1,"entries":[]}' * 20, nibble=15)


def imported(tmp_path: Path, layer: RawLayer) -> dict[str, str]:
    built = build_oci_layout(tmp_path / "img", [layer], compression="zstd")
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(built.source))
    return {p: e.blob for p, e in store.ls_tree(Store.release_ref("1")).items()}


def reference(tmp_path: Path) -> dict[str, str]:
    built = build_oci_layout(tmp_path / "ref", [_layer()], compression="gzip")
    store = Store.open(tmp_path / "refstore")
    import_release(store, "1", parse_source(built.source))
    return {p: e.blob for p, e in store.ls_tree(Store.release_ref("1")).items()}


def test_regression_zstd_skippable_frames_chunked_writer(tmp_path: Path) -> None:
    """zstd:chunked layers carry skippable frames: such images would not import."""
    tar = _layer().tar()
    assert imported(tmp_path, RawLayer(tar, chunked(tar))) == reference(tmp_path)


def test_zstd_layers_made_by_the_zstd_tool(tmp_path: Path) -> None:
    zstd = require_tool("zstd")
    tar = _layer().tar()
    whole = subprocess.run([zstd, "-q", "-c", "-19"], input=tar, capture_output=True, check=True)
    half = len(tar) // 2
    first, second = (
        subprocess.run([zstd, "-q", "-c"], input=part, capture_output=True, check=True).stdout
        for part in (tar[:half], tar[half:])
    )
    for sub, blob in (("one", whole.stdout), ("two", first + second)):
        subprocess.run([zstd, "-q", "-t"], input=blob, check=True)  # the tool's own check
        assert imported(tmp_path / sub, RawLayer(tar, blob)) == reference(tmp_path / sub)


def test_several_gzip_members_read_as_one_stream(tmp_path: Path) -> None:
    tar = _layer().tar()
    blob = gzip.compress(tar[:7000], mtime=0) + gzip.compress(tar[7000:], mtime=0)
    built = build_oci_layout(tmp_path / "img", [RawLayer(tar, blob)], compression="gzip")
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(built.source))
    got = {p: e.blob for p, e in store.ls_tree(Store.release_ref("1")).items()}
    assert got == reference(tmp_path)


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (b"garbage!", "data after the end of the zstd stream"),
        (skippable(b"cut short")[:-3], "truncated zstd stream"),
    ],
)
def test_bad_zstd_tails_are_refused(tmp_path: Path, tail: bytes, why: str) -> None:
    tar = _layer().tar()
    blob = zstandard.ZstdCompressor().compress(tar) + tail
    built = build_oci_layout(tmp_path / "img", [RawLayer(tar, blob)], compression="zstd")
    refuse(tmp_path, built, CorruptLayerError, match=why, layer=1)


def test_a_blob_starting_with_a_skippable_frame_is_zstd() -> None:
    assert detect(skippable(b"x"))[0] == "zstd"
    assert detect(b"\x1f\x8b\x08")[0] == "gzip"
    assert detect(b"plain tar")[0] == "tar"


_COMPRESSORS = {
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "zstd": zstandard.ZstdCompressor().compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("name", sorted(_COMPRESSORS))
def test_every_format_reads_several_streams_and_refuses_a_cut_one(name: str) -> None:
    data = os.urandom(300_000) + bytes(3_000_000) + b"tail" * 1000  # > one output piece
    comp = _COMPRESSORS[name]
    cut = len(data) // 3
    blob = comp(data[:cut]) + comp(data[cut:])
    stream = LayerStream(io.BytesIO(blob), algorithm="sha256", where="t", max_bytes=1 << 40)
    try:
        out = b"".join(iter(lambda: stream.read(1 << 16), b""))
    finally:
        stream.close()
    assert (stream.format, out) == (name, data)
    stream = LayerStream(io.BytesIO(blob[:-10]), algorithm="sha256", where="t", max_bytes=1 << 40)
    try:
        with pytest.raises(CorruptLayerError, match=f"truncated {name} stream"):
            while stream.read(1 << 16):
                pass
    finally:
        stream.close()


def test_zstd_chunked_layers_written_by_buildah(tmp_path: Path) -> None:
    """A real zstd:chunked writer: containers/storage, as `buildah push --compression-format
    zstd:chunked` runs it (its table of contents in skippable frames, the files in frames
    of their own). Storage of its own in tmp_path, vfs: nothing shared with other tests."""
    buildah = require_tool("buildah")
    if os.geteuid() != 0:
        pytest.skip("buildah needs root here")
    root = tmp_path / "rootfs"
    files = {f"etc/f{i:02}": (b"line %d\n" % i) * (i * 500 + 1) for i in range(12)}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    storage = [f"--root={tmp_path / 'storage'}", f"--runroot={tmp_path / 'run'}"]
    base = [buildah, *storage, "--storage-driver=vfs"]

    home = tmp_path / "home"  # the tests' HOME is not a directory; buildah reads its config
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}

    def run(*args: str) -> str:
        done = subprocess.run([*base, *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"buildah {args[0]}: {done.stderr.strip()}"
        return done.stdout

    container = run("from", "scratch").strip()
    run("copy", container, str(root), "/")
    run("commit", "-q", container, "localhost/chunked:1")
    layout = tmp_path / "oci"
    run("push", "--compression-format", "zstd:chunked", "localhost/chunked:1", f"oci:{layout}:1")

    index = json.loads((layout / "index.json").read_text())
    manifest_blob = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs/sha256" / manifest_blob).read_text())
    (layer,) = manifest["layers"]
    assert layer["mediaType"].endswith("+zstd")
    assert any("zstd-chunked" in key for key in layer.get("annotations", {}))
    blob = (layout / "blobs/sha256" / layer["digest"].split(":")[1]).read_bytes()
    assert re.search(rb"[\x50-\x5f]\x2a\x4d\x18", blob), "a skippable frame"

    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(f"oci:{layout}:1"))
    tree = store.ls_tree(Store.release_ref("1"))
    got = {
        p: store.git("cat-file", "blob", e.blob).stdout
        for p, e in tree.items()
        if p.startswith("etc/")
    }
    assert got == files
