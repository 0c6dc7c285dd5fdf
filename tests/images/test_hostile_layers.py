"""Hostile images: every one is refused with the right error, naming layer and entry,
and leaves nothing behind (no ref, no file outside the store)."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from patchkit.errors import CorruptLayerError, DigestMismatchError, SourceError, UnsafeLayerError
from patchkit.git.objects import MODE_FILE
from patchkit.git.store import Store
from patchkit.images import parse_source
from patchkit.images.layers import Limits
from patchkit.ops.importing import import_release
from tests.helpers.imagebuilder import Built, Layer, build_oci_layout, sha256
from tests.helpers.packing import tree_packing  # noqa: F401 - an autouse fixture
from tests.helpers.tarstreams import RawLayer


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        for name in dirnames + filenames:
            st = os.lstat(Path(dirpath) / name)
            out[str(Path(dirpath, name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def refuse(
    tmp_path: Path,
    built: Built,
    exc: type[Exception],
    *,
    match: str,
    layer: int | None = None,
    entry: str | None = None,
    limits: Limits | None = None,
) -> str:
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    before = snapshot(tmp_path, store_dir)
    kw: dict[str, Any] = {"limits": limits} if limits else {}
    with pytest.raises(SourceError) as info:
        import_release(store, "1", parse_source(built.source), **kw)
    msg = str(info.value)
    assert type(info.value) is exc, msg
    assert "\n" not in msg
    assert match in msg, msg
    if layer is not None:
        assert f"layer {layer} (sha256:{built.layers[layer - 1][7:19]}…)" in msg, msg
    if entry is not None:
        assert f"entry {entry!r}" in msg, msg
    assert snapshot(tmp_path, store_dir) == before
    assert store.git("for-each-ref").stdout == b""
    assert store.release("1") is None
    return msg


def image(tmp_path: Path, *layers: Layer, compression: str | None = "gzip") -> Built:
    return build_oci_layout(tmp_path / "img", list(layers), compression=compression)


def ok(tmp_path: Path, *layers: Layer) -> tuple[Store, dict[str, Any]]:
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(image(tmp_path, *layers).source))
    return store, store.ls_tree(Store.release_ref("1"))


def raw(name: str, type_: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.linkname = linkname
    ti.mtime = 0
    return ti


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../etc/passwd", "'..' component"),
        ("a/../../x", "'..' component"),
        ("ok/../x", "'..' component"),
        ("/etc/passwd", "absolute name"),
        ("//etc/shadow", "absolute name"),
    ],
)
def test_escaping_names_are_refused(tmp_path: Path, name: str, why: str) -> None:
    built = image(tmp_path, Layer().file("fine", b"1"), Layer().raw(raw(name), b"x"))
    refuse(tmp_path, built, UnsafeLayerError, match=why, layer=2, entry=name)


def test_nul_in_a_pax_name_is_refused(tmp_path: Path) -> None:
    ti = raw("placeholder")
    ti.pax_headers = {"path": "evil\0name"}
    built = image(tmp_path, Layer().raw(ti, b"x"))
    refuse(tmp_path, built, UnsafeLayerError, match="NUL in name", layer=1)


def test_symlink_parent_climbing_out_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().symlink("evil", "../../.."), Layer().file("evil/x", b"pwn"))
    refuse(
        tmp_path, built, UnsafeLayerError, match="climbs above the root", layer=2, entry="evil/x"
    )


def test_absolute_symlink_parent_climbing_out_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().symlink("evil", "/../etc"), Layer().file("evil/passwd", b"pwn"))
    refuse(
        tmp_path,
        built,
        UnsafeLayerError,
        match="climbs above the root",
        layer=2,
        entry="evil/passwd",
    )


def test_symlink_planted_and_written_through_in_the_same_layer(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().symlink("s", "..").file("s/x", b"pwn"))
    refuse(tmp_path, built, UnsafeLayerError, match="climbs above the root", layer=1, entry="s/x")


def test_chain_of_symlinked_parents_climbing_out_is_refused(tmp_path: Path) -> None:
    l1 = Layer().dir("b").symlink("a", "b").symlink("b/c", "../../x")
    built = image(tmp_path, l1, Layer().file("a/c/f", b"pwn"))
    refuse(tmp_path, built, UnsafeLayerError, match="climbs above the root", layer=2, entry="a/c/f")


def test_symlink_loop_in_parent_chain_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().symlink("a", "b").symlink("b", "a"), Layer().file("a/x", b"1"))
    refuse(tmp_path, built, UnsafeLayerError, match="too many levels", layer=2, entry="a/x")


def test_whiteout_through_climbing_symlink_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().symlink("up", "../.."), Layer().whiteout("up/etc"))
    refuse(
        tmp_path,
        built,
        UnsafeLayerError,
        match="climbs above the root",
        layer=2,
        entry="up/.wh.etc",
    )


def test_parent_that_is_a_regular_file_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("f", b"1"), Layer().file("f/x", b"2"))
    refuse(tmp_path, built, UnsafeLayerError, match="'f' on its path is not a directory", layer=2)


def test_symlink_with_empty_target_used_as_parent_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().symlink("e", ""), Layer().file("e/x", b"2"))
    refuse(tmp_path, built, UnsafeLayerError, match="empty target", layer=2, entry="e/x")


# -- hard links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "link", "why"),
    [
        (Layer().file("a", b"1"), "../etc/passwd", "outside the root"),
        (Layer().file("a", b"1"), "/etc/passwd", "outside the root"),
        (Layer().file("a", b"1"), "missing", "does not exist"),
        (Layer().dir("d"), "d", "is a dir, not a file"),
        (Layer().file("a", b"1").symlink("s", "a"), "s", "is a symlink, not a file"),
        (Layer().symlink("up", ".."), "up/etc/passwd", "climbs above the root"),
        (Layer().fifo("p"), "p", "is a fifo, not a file"),
    ],
)
def test_bad_hard_links_are_refused(tmp_path: Path, setup: Layer, link: str, why: str) -> None:
    built = image(tmp_path, setup, Layer().hardlink("h", link))
    refuse(tmp_path, built, UnsafeLayerError, match=why, layer=2, entry="h")


def test_hard_link_cannot_change_its_targets_mode_or_owner(tmp_path: Path) -> None:
    l1 = Layer().file("bin/su", b"su", mode=0o644)
    _, tree = ok(tmp_path, l1, Layer().hardlink("bin/su2", "bin/su", mode=0o4755, uid=0))
    assert tree["bin/su"].mode == tree["bin/su2"].mode == MODE_FILE


# -- whiteouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".wh.", ".wh..", ".wh...", "d/.wh..."])
def test_malformed_whiteout_names_are_refused(tmp_path: Path, name: str) -> None:
    built = image(tmp_path, Layer().dir("d").file("d/x", b"1"), Layer().raw(raw(name), b""))
    refuse(tmp_path, built, UnsafeLayerError, match="malformed whiteout", layer=2, entry=name)


def test_whiteout_used_as_a_directory_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"), Layer().file(".wh.x/y", b""))
    refuse(tmp_path, built, UnsafeLayerError, match="whiteout name used as a directory", layer=2)


def test_whiteout_of_a_path_added_in_the_same_layer_keeps_it(tmp_path: Path) -> None:
    _, tree = ok(tmp_path, Layer().file("x", b"old"), Layer().file("x", b"new").whiteout("x"))
    assert set(tree) == {"x"}


def test_aufs_metadata_entries_are_ignored(tmp_path: Path) -> None:
    layer = (
        Layer()
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/1.2", b"")
        .file(".wh..wh.aufs", b"")
        .file("x", b"1")
    )
    _, tree = ok(tmp_path, layer)
    assert set(tree) == {"x"}


def test_devices_and_fifos_stay_out_of_git(tmp_path: Path) -> None:
    _, tree = ok(tmp_path, Layer().device("dev/kmem", 1, 2).fifo("p").file("f", b""))
    assert set(tree) == {"f"}


def test_duplicate_entries_last_one_wins(tmp_path: Path) -> None:
    store, tree = ok(
        tmp_path,
        Layer().file("x", b"first").file("x", b"second", mode=0o755).dir("d").file("d", b"file"),
    )
    with store.blob_reader() as r:
        assert r.read(tree["x"].blob) == b"second"
    assert tree["d"].mode == MODE_FILE


# -- digests and blobs ---------------------------------------------------------------------------


def _rewrite(built: Built, fn: Callable[[dict[str, Any]], None], *, config: bool = False) -> None:
    """Edit the manifest (or its config) and re-point index.json at the edited blobs."""
    blobs = built.path / "blobs" / "sha256"
    manifest = json.loads((blobs / built.digest[7:]).read_bytes())
    if config:
        cfg = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
        fn(cfg)
        data = json.dumps(cfg).encode()
        (blobs / sha256(data)[7:]).write_bytes(data)
        manifest["config"] = {**manifest["config"], "digest": sha256(data), "size": len(data)}
    else:
        fn(manifest)
    data = json.dumps(manifest).encode()
    (blobs / sha256(data)[7:]).write_bytes(data)
    index = json.loads((built.path / "index.json").read_bytes())
    index["manifests"][0].update(digest=sha256(data), size=len(data))
    (built.path / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    "digest", ["sha256:../../../etc/passwd", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:ABC"]
)
def test_layer_digest_that_is_not_sha256_hex_is_refused(tmp_path: Path, digest: str) -> None:
    built = image(tmp_path, Layer().file("x", b"1"))
    _rewrite(built, lambda m: m["layers"][0].update(digest=digest))
    refuse(tmp_path, built, SourceError, match="invalid digest")


def test_blob_symlinked_outside_the_layout_is_refused(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"))
    blob = built.path / "blobs" / "sha256" / built.layers[0][7:]
    outside = tmp_path / "outside.bin"
    outside.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(outside)
    refuse(tmp_path, built, SourceError, match="resolves outside the layout")


def test_tampered_layer_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"), Layer().file("y", b"2"), compression=None)
    blob = built.path / "blobs" / "sha256" / built.layers[1][7:]
    blob.write_bytes(Layer().file("y", b"3").tar())
    refuse(tmp_path, built, DigestMismatchError, match="blob has digest", layer=2)


def test_wrong_diff_id_is_a_digest_mismatch(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"))
    _rewrite(built, lambda c: c["rootfs"].update(diff_ids=["sha256:" + "0" * 64]), config=True)
    refuse(tmp_path, built, DigestMismatchError, match="diff_id", layer=1)


def test_truncated_gzip_is_corrupt(tmp_path: Path) -> None:
    data = gzip.compress(Layer().file("x", b"y" * 50000).file("z", os.urandom(50000)).tar())
    built = image(tmp_path, Layer().file("x", b"1"))
    blob_dir = built.path / "blobs" / "sha256"
    cut = data[: len(data) // 2]
    (blob_dir / sha256(cut)[7:]).write_bytes(cut)
    _rewrite(built, lambda m: m["layers"][0].update(digest=sha256(cut), size=len(cut)))
    built = Built(path=built.path, source=built.source, digest="", layers=(sha256(cut),))
    refuse(tmp_path, built, CorruptLayerError, match="truncated", layer=1)


def test_garbage_after_gzip_stream_is_corrupt(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"))
    blob = built.path / "blobs" / "sha256" / built.layers[0][7:]
    data = blob.read_bytes() + b"garbage!"
    (blob.parent / sha256(data)[7:]).write_bytes(data)
    _rewrite(built, lambda m: m["layers"][0].update(digest=sha256(data), size=len(data)))
    built = Built(path=built.path, source=built.source, digest="", layers=(sha256(data),))
    refuse(
        tmp_path, built, CorruptLayerError, match="data after the end of the gzip stream", layer=1
    )


@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_decompression_bomb_over_the_limit_is_corrupt(
    tmp_path: Path, compression: str | None
) -> None:
    built = image(tmp_path, Layer().file("zeros", bytes(4 << 20)), compression=compression)
    refuse(
        tmp_path,
        built,
        CorruptLayerError,
        match="exceeds the limit of 1048576 bytes",
        layer=1,
        limits=Limits(max_layer_bytes=1 << 20),
    )


def test_too_many_entries_is_corrupt(tmp_path: Path) -> None:
    layer = Layer()
    for i in range(20):
        layer.file(f"f{i}", b"")
    built = image(tmp_path, layer)
    refuse(
        tmp_path,
        built,
        CorruptLayerError,
        match="more than 10 entries",
        layer=1,
        limits=Limits(max_entries=10),
    )


def test_a_layer_that_is_not_a_tar_is_corrupt(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"), compression=None)
    blob = built.path / "blobs" / "sha256" / built.layers[0][7:]
    data = b"this is not a tar archive at all" * 100
    (blob.parent / sha256(data)[7:]).write_bytes(data)
    _rewrite(built, lambda m: m["layers"][0].update(digest=sha256(data), size=len(data)))
    built = Built(path=built.path, source=built.source, digest="", layers=(sha256(data),))
    refuse(tmp_path, built, CorruptLayerError, match="layer 1", layer=1)


def test_layer_count_must_match_diff_ids(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("x", b"1"), Layer().file("y", b"1"))
    _rewrite(built, lambda m: m["layers"].pop())
    refuse(tmp_path, built, SourceError, match="lists 1 layers but the config 2 diff_ids")


# -- tar headers (images/tar.py: Go's archive/tar rules) ----------------------------------


_RawTar = RawLayer


def _set_checksum(block: bytearray, value: int) -> None:
    block[148:156] = b"%06o\0 " % value


def _ustar(name: str, data: bytes) -> bytearray:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    return header + data + bytes(-len(data) % 512)


def test_a_header_with_a_bad_checksum_is_corrupt(tmp_path: Path) -> None:
    first, second = _ustar("a", b"1"), _ustar("b", b"2")
    _set_checksum(second, 1234)  # refused as Go refuses it (tarfile took it for the end)
    built = image(tmp_path, _RawTar(bytes(first + second + bytes(1024))))
    refuse(tmp_path, built, CorruptLayerError, match="bad checksum", layer=1, entry="b")
    _set_checksum(first, 1234)
    built = image(tmp_path / "2", _RawTar(bytes(first + bytes(1024))))
    refuse(tmp_path / "2", built, CorruptLayerError, match="bad checksum", layer=1)


def test_a_header_with_the_signed_checksum_of_old_tars_is_read(tmp_path: Path) -> None:
    """Sun and NeXT tar summed signed chars: Go and tarfile accept either sum, so do we."""
    header = _ustar("caf\xe9", b"1")  # a byte with the high bit set in the name
    signed = 256 + sum(b - 256 if b > 127 else b for b in header[:148] + header[156:512])
    assert signed != 256 + sum(header[:148]) + sum(header[156:512])
    _set_checksum(header, signed)
    _, tree = ok(tmp_path, _RawTar(bytes(header + bytes(1024))))
    assert list(tree) == ["caf\xe9"]


@pytest.mark.parametrize(
    "info",
    [
        tarfile.TarInfo("plain"),
        tarfile.TarInfo("dir/"),
        tarfile.TarInfo("p" * 90 + "/" + "q" * 90),  # ustar prefix
    ],
)
@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT])
def test_headers_parse_as_tarfile_parses_them(info: tarfile.TarInfo, fmt: Literal[0, 1]) -> None:
    from patchkit.images.tar import TarReader
    from tests.helpers.tarstreams import BytesSource

    info.mode, info.uid, info.gid, info.mtime, info.uname = 0o4755, 1000, 42, 7, "u"
    if info.name.endswith("/"):
        info.type = tarfile.DIRTYPE
    block = info.tobuf(format=fmt)[-512:]
    mine = TarReader(BytesSource(block + bytes(1024))).next()
    assert mine is not None
    theirs = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    name = mine.name.rstrip("/") if mine.type == tarfile.DIRTYPE else mine.name
    assert (name, mine.mode, mine.uid, mine.gid, mine.size, mine.type, mine.link) == (
        theirs.name,
        theirs.mode,
        theirs.uid,
        theirs.gid,
        theirs.size,
        theirs.type,
        theirs.linkname,
    )
