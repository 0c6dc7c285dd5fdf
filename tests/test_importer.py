"""import_release: verification, reuse, atomicity and progress."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patchkit.errors import DigestMismatchError
from patchkit.images import ProgressEvent, parse_source
from patchkit.importer import import_release, manifest_ref
from patchkit.store import Store
from tests.imagebuilder import Layer, build_docker_archive, build_oci_layout

LAYERS = [Layer().dir("etc").file("etc/os-release", b"ID=test\n"), Layer().file("etc/motd", b"hi\n", uid=7)]


def test_import_commits_tree_with_trailers(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0")
    store = Store.open(tmp_path / "store")
    res = import_release(store, "1.0", parse_source(built.source))
    info = store.release("1.0")
    assert info is not None
    assert (res.commit, res.tree, res.digest) == (info.commit, info.tree, built.digest)
    assert info.source == built.source and info.layers == built.layers == res.layers
    assert res.files == 2 and res.extras == 1 and not res.reused
    assert set(store.ls_tree(info.commit)) == {"etc/os-release", "etc/motd"}
    assert store.rev_parse(manifest_ref("1.0")) is not None


def test_reimport_of_the_same_digest_reads_no_layer(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0")
    store = Store.open(tmp_path / "store")
    first = import_release(store, "1.0", parse_source(built.source))
    for digest in built.layers:
        (built.path / "blobs" / "sha256" / digest[7:]).unlink()  # reading a layer would now fail
    again = import_release(store, "1.0", parse_source(built.source), expected_digest=built.digest)
    assert again.reused and again.commit == first.commit and again.tree == first.tree


def test_same_image_from_docker_archive_and_oci_gives_the_same_tree(tmp_path: Path) -> None:
    oci = build_oci_layout(tmp_path / "img", LAYERS, compression="zstd")
    arc = build_docker_archive(tmp_path / "img.tar", LAYERS, style="legacy")
    store = Store.open(tmp_path / "store")
    a = import_release(store, "a", parse_source(oci.source))
    b = import_release(store, "b", parse_source(arc.source))
    assert a.tree == b.tree


def test_version_recorded_with_another_digest_is_refused(tmp_path: Path) -> None:
    one = build_oci_layout(tmp_path / "one", LAYERS)
    two = build_oci_layout(tmp_path / "two", [*LAYERS, Layer().file("new", b"")])
    store = Store.open(tmp_path / "store")
    import_release(store, "1.0", parse_source(one.source))
    before = store.git("for-each-ref").stdout
    with pytest.raises(DigestMismatchError) as e:
        import_release(store, "1.0", parse_source(two.source))
    assert str(e.value) == (
        f"version 1.0 is recorded with digest {one.digest} but {two.source} has {two.digest}"
    )
    assert store.git("for-each-ref").stdout == before


def test_expected_digest_that_differs_is_refused_before_reading(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", LAYERS)
    store = Store.open(tmp_path / "store")
    with pytest.raises(DigestMismatchError, match=r"version 2 is recorded with digest sha256:0+ but"):
        import_release(store, "2", parse_source(built.source), expected_digest="sha256:" + "0" * 64)
    assert store.release("2") is None


def test_failure_in_a_late_layer_leaves_no_ref_and_nothing_outside_the_store(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", [*LAYERS, Layer().file("big", b"x" * 100000)], compression=None)
    last = built.path / "blobs" / "sha256" / built.layers[-1][7:]
    last.write_bytes(Layer().file("big", b"y" * 100000).tar())  # same size, wrong digest
    store = Store.open(tmp_path / "store")
    outside = sorted(p for p in tmp_path.rglob("*") if "store" not in p.parts)
    with pytest.raises(DigestMismatchError, match="layer 3"):
        import_release(store, "1.0", parse_source(built.source))
    assert store.git("for-each-ref").stdout == b""
    assert sorted(p for p in tmp_path.rglob("*") if "store" not in p.parts) == outside
    # the store stays usable: a good import afterwards works
    good = build_oci_layout(tmp_path / "good", LAYERS)
    assert not import_release(store, "1.0", parse_source(good.source)).reused


def test_progress_reports_every_layer_to_the_end(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", LAYERS)
    events: list[ProgressEvent] = []
    import_release(Store.open(tmp_path / "store"), "1", parse_source(built.source), progress=events.append)
    done = [e for e in events if e.done]
    assert [(e.layer, e.layers, e.digest) for e in done] == [(1, 2, built.layers[0]), (2, 2, built.layers[1])]
    assert all(e.read == e.total for e in done)


def test_tar_reimport_with_same_file_is_reused(tmp_path: Path) -> None:
    from tests.imagebuilder import build_tarball

    built = build_tarball(tmp_path / "t.tar", Layer().file("a/b", b"1"))
    store = Store.open(tmp_path / "store")
    import_release(store, "t", parse_source(built.source))
    copy = tmp_path / "copy.tar"
    shutil.copy(built.path, copy)
    assert import_release(store, "t", parse_source(f"tar:{copy}")).reused
