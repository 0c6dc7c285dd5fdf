"""The layer tar reader (images/tar.py): Go's archive/tar rules, checked on archives these
tests write themselves. The named regression tests are the defects of issue 23, each
failing on the `tarfile` reader it replaced."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.errors import CorruptLayerError, UnsafeLayerError
from patchkit.git.store import Store
from patchkit.images.layers import Limits
from patchkit.images.tar import TarError, TarReader, _byte_sum
from tests.helpers.imagebuilder import Layer
from tests.helpers.tarstreams import (
    END,
    BytesSource,
    RawLayer,
    gnu_long_link,
    gnu_long_name,
    header,
    old_gnu_sparse,
    pad,
    pax,
    pax_record,
    pax_sparse,
    sparse_content,
)
from tests.images.test_hostile_layers import image, ok, refuse


def blob(store: Store, tree: dict[str, Any], path: str) -> bytes:
    return store.git("cat-file", "blob", tree[path].blob).stdout


def entries(data: bytes) -> list[tuple[str, bytes, int, str, bytes]]:
    """(name, type, size, link, content) of every entry, read by our reader."""
    reader = TarReader(BytesSource(data))
    out = []
    while (e := reader.next()) is not None:
        content = b"".join(reader.content(e)) if e.is_file else b""
        out.append((e.name, e.type, e.size, e.link, content))
    return out


def tar_error(data: bytes) -> TarError:
    with pytest.raises(TarError) as info:
        entries(data)
    return info.value


FRAGS = [(1000, b"A" * 700), (5000, b"B" * 10), (9000, b"C" * 600)]
SPARSE = sparse_content(10_000, FRAGS)
MANY = [(i * 1024, bytes([65 + i % 26]) * 100) for i in range(30)]  # 2 extension blocks


# -- sparse files, every kind ---------------------------------------------------------------


@pytest.mark.parametrize(
    "archive",
    [
        pytest.param(old_gnu_sparse("f", 10_000, FRAGS), id="old-gnu"),
        pytest.param(pax_sparse("f", 10_000, FRAGS, version="0.0"), id="pax-0.0"),
        pytest.param(pax_sparse("f", 10_000, FRAGS, version="0.1"), id="pax-0.1"),
        pytest.param(pax_sparse("f", 10_000, FRAGS, version="1.0"), id="pax-1.0"),
    ],
)
def test_sparse_files_are_rebuilt_from_their_maps(archive: bytes) -> None:
    assert entries(archive + END) == [("f", entries(archive + END)[0][1], 10_000, "", SPARSE)]


def test_old_gnu_sparse_with_extension_blocks() -> None:
    size = 30 * 1024 + 200
    got = entries(old_gnu_sparse("f", size, MANY) + END)
    assert got == [("f", b"S", size, "", sparse_content(size, MANY))]


def test_sparse_file_imports_as_its_full_content(tmp_path: Path) -> None:
    store, tree = ok(tmp_path, RawLayer(pax_sparse("d/f", 10_000, FRAGS, version="1.0") + END))
    assert blob(store, tree, "d/f") == SPARSE


def test_regression_sparse_bomb_is_refused_before_a_byte_is_written(tmp_path: Path) -> None:
    """Go's gnu-sparse-big: a few KiB of layer declaring a 60 GB file (tarfile: a 60 GB blob
    after a minute; now refused at its header)."""
    frags = [(i * 10_000_000_000, b"x" * 512) for i in range(6)]
    built = image(tmp_path, RawLayer(old_gnu_sparse("big", 60_000_000_000, frags) + END))
    start = time.monotonic()
    msg = refuse(tmp_path, built, CorruptLayerError, match="holes", layer=1, entry="big")
    assert "the limit is 1073741824" in msg
    assert time.monotonic() - start < 30
    assert not list((tmp_path / "store" / "objects" / "pack").glob("tmp_pack_*"))


@pytest.mark.parametrize(
    ("archive", "entry", "limit"),
    [
        # a sparse file's holes count: 10,000 bytes declared, 1,310 stored
        (pax_sparse("f", 10_000, FRAGS, version="0.1") + END, "f", 8000),
        # the header says 1 MiB; the limit is 300 KiB: refused at the header, before its
        # content (the inflating thread is still below the limit then)
        (header("big", size=1 << 20) + bytes(1 << 20) + END, "big", 300 << 10),
    ],
    ids=["sparse-holes", "plain"],
)
def test_declared_sizes_count_against_the_layer_limit_before_the_content(
    tmp_path: Path, archive: bytes, entry: str, limit: int
) -> None:
    built = image(tmp_path, RawLayer(archive))
    refuse(
        tmp_path,
        built,
        CorruptLayerError,
        match="declared size",
        layer=1,
        entry=entry,
        limits=Limits(max_layer_bytes=limit),
    )


def test_regression_pax_size_is_the_stored_size_not_the_real_size(tmp_path: Path) -> None:
    """Go's pax-nil-sparse-data / pax-sparse-big: a pax `size` record is the stored size,
    GNU.sparse.realsize the file's (tarfile let `size` win: 612 bytes instead of 1000)."""
    frags = [(0, b"x" * 100)]
    stored = 512 + 100  # the 1.0 map's block, then the data
    for version in ("1.0", "0.1"):
        physical = stored if version == "1.0" else 100
        archive = pax_sparse(
            "f",
            1000,
            frags,
            version=version,
            size_record="GNU.sparse.realsize",
            extra=[("size", str(physical))],
        )
        assert entries(archive + END) == [("f", b"0", 1000, "", sparse_content(1000, frags))]
    store, tree = ok(tmp_path, RawLayer(archive + END))
    assert blob(store, tree, "f") == sparse_content(1000, frags)


def test_regression_unparseable_sparse_map_is_refused_in_one_line(tmp_path: Path) -> None:
    """libarchive's gtar_sparse_1_17_posix10_modified: a 1.0 map that does not start with a
    number (tarfile: `internal error (ValueError: ... b'#!gnu-sparse-format')`)."""
    archive = pax_sparse(
        "f", 10_000, FRAGS, version="1.0", sparse_map=b"#!gnu-sparse-format\n3\n1000\n700\n"
    )
    built = image(tmp_path, RawLayer(archive + END))
    refuse(tmp_path, built, CorruptLayerError, match="invalid sparse map", layer=1)


@pytest.mark.parametrize(
    ("frags", "why"),
    [
        ([(5000, b"x" * 10), (1000, b"y" * 10)], "invalid sparse map"),  # out of order
        ([(9990, b"x" * 100)], "invalid sparse map"),  # past the end
    ],
)
def test_bad_sparse_maps_are_refused(frags: list[tuple[int, bytes]], why: str) -> None:
    assert why in str(tar_error(old_gnu_sparse("f", 10_000, frags) + END))


def test_old_gnu_sparse_needs_a_gnu_header() -> None:
    assert "non-GNU" in str(tar_error(old_gnu_sparse("f", 10_000, FRAGS, fmt="ustar") + END))


# -- which header wins ----------------------------------------------------------------------


def test_regression_repeated_gnu_long_names_last_one_wins() -> None:
    """Go's gnu-multi-hdrs, libarchive's gtar_redundant_L (tarfile took the first)."""
    archive = (
        gnu_long_name("first/name")
        + gnu_long_name("second/name")
        + gnu_long_link("first-target")
        + gnu_long_link("second-target")
        + header("short", type_=b"2", link="short-target", fmt="gnu")
        + END
    )
    assert entries(archive) == [("second/name", b"2", 0, "second-target", b"")]


def test_regression_repeated_pax_headers_last_one_wins(tmp_path: Path) -> None:
    """Go's pax-multi-hdrs: a second `x` header replaces the first one's records."""
    archive = (
        pax([("path", "first"), ("uid", "7")])
        + pax([("path", "second")])
        + header("plain", size=1)
        + pad(b"1")
        + END
    )
    assert entries(archive) == [("second", b"0", 1, "", b"1")]
    _, tree = ok(tmp_path, RawLayer(archive))
    assert list(tree) == ["second"]


def test_an_empty_pax_value_keeps_the_header_value() -> None:
    archive = pax([("path", "")]) + header("kept", size=0) + END
    assert entries(archive)[0][0] == "kept"


def test_global_pax_headers_are_ignored() -> None:
    archive = pax([("path", "global")], global_=True) + header("mine") + END
    assert [e[0] for e in entries(archive)] == ["mine"]


# -- malformed pax records ------------------------------------------------------------------


def test_regression_pax_record_without_its_newline_is_refused(tmp_path: Path) -> None:
    """Go's pax-bad-hdr-file: tarfile kept the record; Go refuses the archive."""
    bad = pax_record("path", "name")[:-1] + b"X"
    built = image(tmp_path, RawLayer(pax(bad) + header("f") + END))
    refuse(tmp_path, built, CorruptLayerError, match="newline", layer=1)


@pytest.mark.parametrize(
    ("records", "why"),
    [
        (b"x path=a\n", "invalid length"),
        (b"99 path=a\n", "does not fit"),
        (b"8 patha\n", "without a key"),
        (b"-8 p=a\n", "does not fit"),
        (pax_record("uid", "seven"), "invalid number"),
        (pax_record("mtime", "1.5x"), "invalid time"),
        (pax_record("GNU.sparse.numbytes", "1"), "out of order"),
        (pax_record("LIBARCHIVE.xattr.user.a", "!!!"), "base64"),
    ],
)
def test_malformed_pax_records_are_refused(records: bytes, why: str) -> None:
    assert why in str(tar_error(pax(records) + header("f") + END))


def test_a_signed_record_length_is_read_as_go_reads_it() -> None:
    assert entries(pax(b"+14 path=name\n") + header("f") + END)[0][0] == "name"


def test_regression_nul_in_an_xattr_name_is_refused(tmp_path: Path) -> None:
    """tarfile kept the name with its NUL; Go refuses a pax key holding a NUL."""
    archive = pax([(b"SCHILY.xattr.user.a\0b", b"v")]) + header("f") + END
    built = image(tmp_path, RawLayer(archive))
    refuse(tmp_path, built, CorruptLayerError, match="NUL in the pax record key", layer=1)


def test_xattrs_of_both_spellings_are_read() -> None:
    archive = (
        pax(
            [
                ("SCHILY.xattr.user.plain", "v1"),
                ("SCHILY.xattr.user.empty", ""),
                ("LIBARCHIVE.xattr.user.sp%20ace", "AAEC"),
            ]
        )
        + header("f")
        + END
    )
    reader = TarReader(BytesSource(archive))
    e = reader.next()
    assert e is not None
    assert e.xattrs == {"user.plain": b"v1", "user.empty": b"", "user.sp ace": b"\0\1\2"}


# -- names ----------------------------------------------------------------------------------


def test_regression_a_one_mib_name_is_refused(tmp_path: Path) -> None:
    """A 1 MiB file name (GNU long name) was stored; names are bounded by PATH_MAX."""
    archive = gnu_long_name("n" * ((1 << 20) - 1)) + header("x", fmt="gnu") + END
    built = image(tmp_path, RawLayer(archive))
    refuse(tmp_path, built, CorruptLayerError, match="a name of 1048575 bytes", layer=1)


def test_a_meta_header_over_one_mib_is_refused() -> None:
    archive = gnu_long_name("n" * (1 << 20)) + header("x", fmt="gnu") + END
    assert "the limit is 1048576" in str(tar_error(archive))


def test_regression_an_excessively_deep_path_is_refused_quickly(tmp_path: Path) -> None:
    """node-tar's excessively-deep.tar: 222,371 components took 23 GiB (quadratic)."""
    deep = "a/" * 222_371 + "f"
    archive = pax([("path", deep)]) + header("f") + END
    built = image(tmp_path, RawLayer(archive))
    start = time.monotonic()
    refuse(tmp_path, built, CorruptLayerError, match="the limit is 4096", layer=1)
    assert time.monotonic() - start < 30


def test_depth_is_bounded(tmp_path: Path) -> None:
    built = image(tmp_path, Layer().file("a/" * 20 + "f", b"1"))
    refuse(
        tmp_path,
        built,
        CorruptLayerError,
        match="21 components deep (the limit is 10)",
        layer=1,
        limits=Limits(max_depth=10),
    )


def test_nul_in_a_pax_link_target_is_unsafe(tmp_path: Path) -> None:
    archive = pax([("linkpath", b"a\0b")]) + header("l", type_=b"2") + END
    built = image(tmp_path, RawLayer(archive))
    refuse(tmp_path, built, UnsafeLayerError, match="NUL in link target", layer=1)


# -- headers --------------------------------------------------------------------------------


def test_v7_headers_and_trailing_slash_directories() -> None:
    archive = (
        header("dir/", type_=b"\0", fmt="v7")
        + header("dir/f", type_=b"\0", size=2, fmt="v7")
        + pad(b"hi")
        + END
    )
    assert entries(archive) == [("dir/", b"5", 0, "", b""), ("dir/f", b"0", 2, "", b"hi")]


def test_ustar_prefix_and_base256_numbers() -> None:
    extra = {108: b"\x80" + (2**40).to_bytes(7, "big")}  # uid in base-256
    archive = header("name", prefix=b"some/prefix", extra=extra) + END
    e = TarReader(BytesSource(archive)).next()
    assert e is not None
    assert (e.name, e.uid) == ("some/prefix/name", 2**40)


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (bytes(512) + header("f"), "a zero block followed by a header"),
        (header("f", size=600)[:300], "truncated header"),
        (header("f", size=600) + bytes(100), "truncated content"),
    ],
)
def test_broken_streams_are_refused(tail: bytes, why: str) -> None:
    assert why in str(tar_error(header("ok") + tail))


def test_an_invalid_number_is_refused() -> None:
    bad = bytearray(header("f"))
    bad[100:108] = b"0000x44\0"
    bad[148:156] = b" " * 8
    bad[148:156] = b"%06o\0 " % sum(bad)
    assert "invalid octal number" in str(tar_error(bytes(bad) + END))


def test_what_follows_the_end_marker_is_hashed_and_not_unpacked(tmp_path: Path) -> None:
    """libarchive's test_read_format_tar_concatenated: a second archive after the first
    one's end marker. Go's reader stops at the marker; containerd and moby then copy the
    rest of the stream to io.Discard (hashing it for the diff_id), so they unpack the
    first archive only and accept the layer. patchkit refused it before."""
    second = header("second", size=2) + pad(b"22") + END
    layer = header("first", size=1) + pad(b"1") + END + second + b"trailing garbage"
    assert [e[0] for e in entries(layer)] == ["first"]
    # the diff_id in the config covers the whole stream: a wrong hash would refuse it
    store, tree = ok(tmp_path, RawLayer(layer))
    assert sorted(tree) == ["first"]
    assert blob(store, tree, "first") == b"1"


def test_a_stream_without_its_end_marker_ends_at_the_last_entry() -> None:
    assert [e[0] for e in entries(header("a") + header("b"))] == ["a", "b"]


def test_contiguous_files_are_refused_as_the_runtimes_refuse_them(tmp_path: Path) -> None:
    built = image(tmp_path, RawLayer(header("c", type_=b"7", size=1) + pad(b"1") + END))
    refuse(tmp_path, built, UnsafeLayerError, match="unsupported tar entry type b'7'", layer=1)


def test_tarfile_pax_and_gnu_archives_read_alike() -> None:
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        layer = Layer().dir("d").file("d/" + "x" * 150, b"long").symlink("d/l", "t" * 120)
        archive = _tarfile_bytes(layer, fmt)
        got = [(n.rstrip("/"), t, s, lk, c) for n, t, s, lk, c in entries(archive)]
        assert got == [
            ("d", b"5", 0, "", b""),
            ("d/" + "x" * 150, b"0", 4, "", b"long"),
            ("d/l", b"2", 0, "t" * 120, b""),
        ]


def _tarfile_bytes(layer: Layer, fmt: int) -> bytes:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in layer.entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=512, max_size=512), st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
def test_the_header_byte_sum_is_sums(block: bytes, fill: int) -> None:
    # the checksum's byte sum from two Adler-32s: exact at every value a header can have
    assert _byte_sum(block) == sum(block)
    assert _byte_sum(bytes([fill]) * 512) == fill * 512
