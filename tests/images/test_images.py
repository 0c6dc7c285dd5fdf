"""Image formats and layer flattening, against images built for real in tmp dirs."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from patchkit.core.globs import Selector, glob_to_regex
from patchkit.errors import DigestMismatchError, PatchkitError, SourceError
from patchkit.git.objects import MODE_EXEC, MODE_FILE, MODE_LINK
from patchkit.git.store import Store
from patchkit.images import open_image, parse_source
from patchkit.images.source import Source, SourceKind
from patchkit.images.tree import Kind, load_manifest
from patchkit.ops.importing import import_release
from tests.helpers.imagebuilder import (
    Layer,
    build_docker_archive,
    build_oci_layout,
    build_tarball,
    compress,
    sha256,
)


def flat(store: Store, version: str) -> dict[str, tuple[int, bytes]]:
    """path -> (git mode, content) of an imported release."""
    ref = Store.release_ref(version)
    entries = store.ls_tree(ref)
    with store.blob_reader() as reader:
        out = {}
        for path, e in entries.items():
            data = reader.read(e.blob)
            assert data is not None
            out[path] = (e.mode, data)
    return out


def manifest_of(store: Store, version: str) -> dict[str, dict[str, object]]:
    info = store.release(version)
    assert info is not None
    if info.manifest_blob is None:
        return {}
    with store.blob_reader() as reader:
        data = reader.read(info.manifest_blob)
    assert data is not None
    return {e.path: e.to_dict() for e in load_manifest(data).entries}


def do_import(tmp_path: Path, layers: list[Layer], *, version: str = "1", **kw: object) -> Store:
    built = build_oci_layout(tmp_path / f"img-{version}", layers, **kw)  # type: ignore[arg-type]
    store = Store.open(tmp_path / "store")
    import_release(store, version, parse_source(built.source))
    return store


# -- source syntax ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("docker://nginx", "docker://docker.io/library/nginx:latest"),
        ("docker://analogic/poste.io:2.5.24", "docker://docker.io/analogic/poste.io:2.5.24"),
        (
            "docker://localhost:5000/a/b:1@sha256:" + "a" * 64,
            "docker://localhost:5000/a/b:1@sha256:" + "a" * 64,
        ),
        ("docker://ghcr.io/o/r@sha256:" + "b" * 64, "docker://ghcr.io/o/r@sha256:" + "b" * 64),
        ("docker-archive:/tmp/x.tar", "docker-archive:/tmp/x.tar"),
        ("oci:/tmp/layout", "oci:/tmp/layout"),
        ("oci:/tmp/layout:2.5.24", "oci:/tmp/layout:2.5.24"),
        ("oci:rel/layout:sha256:" + "c" * 64, "oci:rel/layout:sha256:" + "c" * 64),
        ("oci:/data/a:b/layout", "oci:/data/a:b/layout:"),
        ("oci:/data/a:b:", "oci:/data/a:b:"),
        ("docker-daemon:myimg:1.0", "docker-daemon:myimg:1.0"),
        ("docker-daemon:localhost:5000/img", "docker-daemon:localhost:5000/img:latest"),
        ("dir:./tree", "dir:./tree"),
        ("tar:/x/y.tar.gz", "tar:/x/y.tar.gz"),
    ],
)
def test_parse_source_canonical_form_round_trips(text: str, canonical: str) -> None:
    src = parse_source(text)
    assert str(src) == canonical
    assert parse_source(str(src)) == src


def test_parse_source_splits_oci_ref_on_last_colon() -> None:
    src = parse_source("oci:/data/a:b:tag1")
    assert (src.kind, src.path, src.ref) == (SourceKind.OCI, "/data/a:b", "tag1")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nginx:latest",
        "docker:nginx",
        "docker://UPPER/case",
        "docker://x:bad tag",
        "oci:",
        "oci::tag",
        "zip:/x",
        "docker://x@sha256:zz",
        "dir:",
        "tar:/a\nb",
    ],
)
def test_parse_source_rejects_bad_syntax_in_one_line(text: str) -> None:
    with pytest.raises(SourceError) as e:
        parse_source(text)
    assert "\n" not in str(e.value)


def test_source_is_frozen_and_keyword_only() -> None:
    src = Source(kind=SourceKind.DIR, path="x")
    with pytest.raises(AttributeError):
        src.path = "y"  # type: ignore[misc]


def test_every_source_kind_has_an_opener() -> None:
    from patchkit.images import OPENERS

    assert set(OPENERS) == set(SourceKind)
    with pytest.raises(SourceError, match="has no layers"):
        open_image(parse_source("dir:/x")).__enter__()


@pytest.mark.parametrize(
    ("module", "text"),
    [
        ("patchkit.images.registry", "docker://127.0.0.1:1/app:1"),
        ("patchkit.images.daemon", "docker-daemon:app:1"),
    ],
)
def test_a_broken_reader_import_is_a_bug_not_an_unsupported_source(
    monkeypatch: pytest.MonkeyPatch, module: str, text: str
) -> None:
    # None in sys.modules makes the import fail as a missing or broken module would
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError) as info:
        open_image(parse_source(text)).__enter__()
    assert not isinstance(info.value, PatchkitError)
    assert "not supported" not in str(info.value)


def test_a_reader_missing_its_entry_point_is_a_bug_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import patchkit.images.registry as registry

    # The name loads on first use (registry/__init__.py's _LAZY): take it from both places.
    monkeypatch.delattr(registry, "open_registry_image", raising=False)
    monkeypatch.delitem(registry._LAZY, "open_registry_image")
    with pytest.raises(ImportError, match="open_registry_image"):
        open_image(parse_source("docker://127.0.0.1:1/app:1")).__enter__()


# -- globs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("etc/**", "etc", True),
        ("etc/**", "etc/a/b", True),
        ("etc/**", "etcx", False),
        ("**/*.conf", "a/b/c.conf", True),
        ("**/*.conf", "c.conf", True),
        ("*.conf", "a/c.conf", False),
        ("usr/*/x", "usr/lib/x", True),
        ("usr/*/x", "usr/lib/y/x", False),
        ("a?c", "abc", True),
        ("[!a]bc", "abc", False),
    ],
)
def test_glob_semantics(pattern: str, path: str, hit: bool) -> None:
    assert bool(glob_to_regex(pattern).match(path)) is hit


def test_selector_always_overrides_excludes() -> None:
    sel = Selector(["etc/**"], ["etc/secret"], ["etc/secret", "usr/x"])
    assert sel("etc/secret") and sel("usr/x") and sel("etc/a") and not sel("usr/y")


# -- flattening ------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_multi_layer_whiteouts_and_modes(tmp_path: Path, compression: str | None) -> None:
    lower = (
        Layer()
        .dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir("bin")
        .file("bin/tool", b"#!/bin/sh\n", mode=0o755)
        .symlink("bin/sh", "busybox")
    )
    upper = Layer().whiteout("etc/a").file("etc/b", b"b2").file("etc/c", b"c", mode=0o750)
    store = do_import(tmp_path, [lower, upper], compression=compression)
    assert flat(store, "1") == {
        "etc/b": (MODE_FILE, b"b2"),
        "etc/c": (MODE_EXEC, b"c"),
        "bin/tool": (MODE_EXEC, b"#!/bin/sh\n"),
        "bin/sh": (MODE_LINK, b"busybox"),
    }
    assert manifest_of(store, "1")["etc/c"]["mode"] == "0750"


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_dir_hides_lower_children_whatever_the_order(
    tmp_path: Path, marker_first: bool
) -> None:
    lower = (
        Layer().dir("d").file("d/old", b"o").dir("d/sub").file("d/sub/x", b"x").file("keep", b"k")
    )
    upper = Layer().dir("d")
    if marker_first:
        upper.opaque("d").file("d/new", b"n")
    else:
        upper.file("d/new", b"n").opaque("d")
    store = do_import(tmp_path, [lower, upper])
    assert set(flat(store, "1")) == {"d/new", "keep"}


def test_whiteout_does_not_hide_a_file_added_in_the_same_layer(tmp_path: Path) -> None:
    lower = Layer().file("x", b"lower").dir("d").file("d/y", b"lower-y")
    upper = Layer().file("x", b"upper").whiteout("x").dir("d").file("d/z", b"z").whiteout("d")
    store = do_import(tmp_path, [lower, upper])
    assert flat(store, "1") == {"x": (MODE_FILE, b"upper"), "d/z": (MODE_FILE, b"z")}


def test_hard_links_across_layers_share_content_and_are_grouped(tmp_path: Path) -> None:
    l1 = Layer().dir("usr").file("usr/a", b"same", mode=0o755)
    l2 = Layer().hardlink("usr/b", "usr/a", mode=0o600, uid=5)
    store = do_import(tmp_path, [l1, l2])
    tree = flat(store, "1")
    assert tree["usr/a"] == tree["usr/b"] == (MODE_EXEC, b"same")
    m = manifest_of(store, "1")
    assert m["usr/a"]["hardlink"] == m["usr/b"]["hardlink"] == "usr/a"
    assert m["usr/b"]["mode"] == "0755" and m["usr/b"]["uid"] == 0


def test_file_replacing_dir_and_dir_replacing_file(tmp_path: Path) -> None:
    l1 = Layer().dir("a").file("a/inner", b"i").file("b", b"file")
    l2 = Layer().file("a", b"now a file").dir("b").file("b/inner", b"j")
    store = do_import(tmp_path, [l1, l2])
    assert flat(store, "1") == {"a": (MODE_FILE, b"now a file"), "b/inner": (MODE_FILE, b"j")}


def test_symlinked_parent_planted_by_lower_layer_resolves_inside_root(tmp_path: Path) -> None:
    l1 = (
        Layer()
        .dir("real")
        .symlink("rel", "real")
        .symlink("abs", "/real")
        .dir("var")
        .symlink("var/up", "../real")
    )
    l2 = Layer().file("rel/a", b"1").file("abs/b", b"2").file("var/up/c", b"3")
    store = do_import(tmp_path, [l1, l2])
    tree = flat(store, "1")
    assert {p for p in tree if p.startswith("real/")} == {"real/a", "real/b", "real/c"}
    assert tree["abs"] == (MODE_LINK, b"/real")


def test_manifest_records_what_git_cannot_hold(tmp_path: Path) -> None:
    layer = (
        Layer()
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/su", b"su", mode=0o4755)
        .file("home", b"h", uid=1000, gid=100)
        .dir("empty", mode=0o700)
        .dir("tmp", mode=0o1777)
        .file("tmp/.keep", b"")
        .fifo("run.fifo")
        .device("dev-null", 1, 3)
        .device("sda", 8, 0, block=True)
        .file("ping", b"p", xattrs={"security.capability": "\x01\x02"})
    )
    store = do_import(tmp_path, [layer])
    m = manifest_of(store, "1")
    assert m["usr/bin/su"]["mode"] == "4755"
    assert (m["home"]["uid"], m["home"]["gid"]) == (1000, 100)
    assert m["empty"] == {"path": "empty", "type": "dir", "mode": "0700", "uid": 0, "gid": 0}
    assert m["tmp"]["mode"] == "1777"
    assert m["run.fifo"]["type"] == "fifo"
    assert (m["dev-null"]["type"], m["dev-null"]["major"], m["dev-null"]["minor"]) == ("char", 1, 3)
    assert m["sda"]["type"] == "block"
    assert m["ping"]["xattrs"] == {"security.capability": "AQI="}
    tree = flat(store, "1")
    assert "run.fifo" not in tree and "dev-null" not in tree and "usr/bin/su" in tree
    info = store.release("1")
    assert info is not None and info.manifest_blob is not None
    assert store.rev_parse("refs/patchkit/manifest/1") is not None  # keeps the blob reachable
    with store.blob_reader() as r:
        data = r.read(info.manifest_blob)
    assert data is not None and load_manifest(data).get("sda") is not None
    assert load_manifest(data).get("sda").type is Kind.BLOCK  # type: ignore[union-attr]


def test_manifest_json_is_deterministic(tmp_path: Path) -> None:
    layer = Layer().file("b", b"", uid=2).file("a", b"", uid=1).dir("e")
    s1 = do_import(tmp_path / "one", [layer])
    s2 = do_import(tmp_path / "two", [layer])
    i1, i2 = s1.release("1"), s2.release("1")
    assert i1 is not None and i2 is not None
    assert i1.manifest_blob == i2.manifest_blob and i1.tree == i2.tree


def test_sparse_import_equals_full_tree_restricted(tmp_path: Path) -> None:
    l1 = (
        Layer()
        .dir("etc")
        .file("etc/a.conf", b"a")
        .file("etc/b", b"b")
        .dir("usr")
        .file("usr/big", b"x" * 100000)
    )
    l1.symlink("etc/link.conf", "a.conf").symlink("conf", "etc")
    l2 = Layer().whiteout("etc/b").file("conf/c.conf", b"c").file("usr/keep", b"k")
    built = build_oci_layout(tmp_path / "img", [l1, l2])
    store = Store.open(tmp_path / "store")
    import_release(store, "full", parse_source(built.source))
    res = import_release(
        store,
        "sparse",
        parse_source(built.source),
        include=["**/*.conf"],
        exclude=["etc/link.conf"],
        always=["usr/keep"],
    )
    sel = Selector(["**/*.conf"], ["etc/link.conf"], ["usr/keep"])
    full = flat(store, "full")
    assert flat(store, "sparse") == {p: v for p, v in full.items() if sel(p)}
    assert set(flat(store, "sparse")) == {"etc/a.conf", "etc/c.conf", "usr/keep"}
    assert res.files == 3


# -- OCI layouts ---------------------------------------------------------------------


def test_oci_nested_index_multi_arch_default_and_platform_choice(tmp_path: Path) -> None:
    built = build_oci_layout(
        tmp_path / "img",
        {
            "linux/arm64/v8": [Layer().file("arch", b"arm64")],
            "linux/amd64": [Layer().file("arch", b"amd64")],
        },
        nested=True,
        attestation=True,
        tag="1.0",
    )
    src = parse_source(built.source)
    with open_image(src) as plan:
        assert plan.digest == built.digest and plan.platform == "linux/amd64"
    with open_image(src, platform="linux/arm64") as plan:
        assert plan.digest == built.extra["platforms"]["linux/arm64/v8"]["digest"]
    with pytest.raises(SourceError, match=r"no image for platform linux/s390x.*linux/amd64"):
        open_image(src, platform="linux/s390x").__enter__()
    store = Store.open(tmp_path / "store")
    import_release(store, "arm", src, platform="linux/arm64/v8")
    assert flat(store, "arm") == {"arch": (MODE_FILE, b"arm64")}


def test_oci_ref_by_tag_and_by_digest(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", [Layer().file("f", b"1")], tag="v1")
    with open_image(parse_source(f"oci:{built.path}:v1")) as plan:
        assert plan.digest == built.digest
        assert plan.layers[0].diff_id == built.diff_ids[0]
    with open_image(parse_source(f"oci:{built.path}:{built.digest}")) as plan:
        assert plan.digest == built.digest
    with pytest.raises(SourceError, match=r"no image 'v2'.*tags: v1"):
        open_image(parse_source(f"oci:{built.path}:v2")).__enter__()


def test_oci_manifest_blob_tampering_is_detected_before_layers(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", [Layer().file("f", b"1")])
    blob = built.path / "blobs" / "sha256" / built.digest[7:]
    blob.write_bytes(blob.read_bytes().replace(b"schemaVersion", b"schemaversion"))
    with pytest.raises(DigestMismatchError, match="manifest"):
        open_image(parse_source(built.source)).__enter__()


def test_oci_layout_without_marker_is_refused(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", [Layer().file("f", b"1")])
    (built.path / "oci-layout").unlink()
    with pytest.raises(SourceError, match="no oci-layout file"):
        open_image(parse_source(built.source)).__enter__()


# -- docker-archive and tar ------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "compression"),
    [
        ("legacy", None),
        ("oci", None),
        ("oci", "gzip"),
        ("skopeo-symlinks", None),
        ("legacy", "gzip"),
        ("containerd", "gzip"),
        ("crane", "gzip"),
        ("containerd", "zstd"),
    ],
)
def test_docker_archive_styles(tmp_path: Path, style: str, compression: str | None) -> None:
    layers = [Layer().dir("etc").file("etc/a", b"a").file("etc/b", b"b"), Layer().whiteout("etc/a")]
    built = build_docker_archive(tmp_path / "img.tar", layers, style=style, compression=compression)
    src = parse_source(built.source)
    with open_image(src) as plan:
        assert plan.digest == built.digest
        assert plan.config_digest == built.config_digest
        assert [layer.digest for layer in plan.layers] == list(built.layers)
    store = Store.open(tmp_path / "store")
    res = import_release(store, "1", src)
    assert flat(store, "1") == {"etc/b": (MODE_FILE, b"b")}
    assert res.digest == built.digest and res.layers == built.layers


def test_docker_archive_digest_is_the_image_id_without_manifest(tmp_path: Path) -> None:
    built = build_docker_archive(tmp_path / "img.tar", [Layer().file("x", b"")], style="legacy")
    assert built.digest == built.config_digest
    with open_image(parse_source(built.source)) as plan:
        assert plan.digest == built.config_digest


def test_tar_source_with_strip_and_file_digest(tmp_path: Path) -> None:
    layer = (
        Layer()
        .dir("pkg-1.0")
        .file("pkg-1.0/README", b"r")
        .dir("pkg-1.0/src")
        .file("pkg-1.0/src/m.c", b"m")
        .file("top", b"dropped")
    )
    built = build_tarball(tmp_path / "pkg.tar.gz", layer, compression="gzip")
    store = Store.open(tmp_path / "store")
    res = import_release(store, "1.0", parse_source(built.source), strip=1)
    assert res.digest == built.digest == sha256(built.path.read_bytes())
    assert flat(store, "1.0") == {"README": (MODE_FILE, b"r"), "src/m.c": (MODE_FILE, b"m")}


def test_dir_source_matches_the_same_tree_from_a_tar(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "run").write_bytes(b"#!/bin/sh\n")
    (root / "bin" / "run").chmod(0o755)
    (root / "empty").mkdir()
    (root / "conf").write_text("x")
    (root / "conf").chmod(0o600)
    os.symlink("/etc/passwd", root / "outside")
    os.mkfifo(root / "pipe")
    store = Store.open(tmp_path / "store")
    res = import_release(store, "d", parse_source(f"dir:{root}"))
    assert res.digest == f"git-tree:{res.tree}"
    assert flat(store, "d") == {
        "bin/run": (MODE_EXEC, b"#!/bin/sh\n"),
        "conf": (MODE_FILE, b"x"),
        "outside": (MODE_LINK, b"/etc/passwd"),
    }
    m = manifest_of(store, "d")
    assert (
        m["empty"]["type"] == "dir" and m["conf"]["mode"] == "0600" and m["pipe"]["type"] == "fifo"
    )
    again = import_release(store, "d", parse_source(f"dir:{root}"))
    assert again.reused


# -- umoci cross-check -----------------------------------------------------------------


def _walk(root: Path) -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p).encode())
            elif p.is_file():
                out[rel] = ("exec" if os.stat(p).st_mode & 0o111 else "file", p.read_bytes())
    return out


def test_flattened_tree_matches_umoci_unpack(tmp_path: Path) -> None:
    umoci = shutil.which("umoci")
    if umoci is None:
        if os.environ.get("CI") == "true":
            pytest.fail("umoci is required in CI")
        pytest.skip("umoci is not installed")
    l1 = (
        Layer()
        .dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir("d")
        .file("d/x", b"x")
        .dir("d/sub")
        .file("d/sub/y", b"y")
        .dir("usr")
        .file("usr/tool", b"t", mode=0o755)
        .symlink("lnk", "usr")
        .dir("w")
        .file("w/gone", b"g")
    )
    l2 = (
        Layer()
        .whiteout("etc/a")
        .dir("d")
        .opaque("d")
        .file("d/new", b"n")
        .hardlink("usr/hl", "usr/tool")
        .file("lnk2", b"2")
        .whiteout("w")
    )
    l3 = Layer().file("etc/a", b"back").symlink("etc/b", "a").whiteout("lnk2")
    built = build_oci_layout(tmp_path / "img", [l1, l2, l3], tag="t")
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{built.path}:t", str(bundle)],
        check=True,
        capture_output=True,
    )
    expected = _walk(bundle / "rootfs")
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(built.source))
    kinds = {MODE_FILE: "file", MODE_EXEC: "exec", MODE_LINK: "link"}
    got = {p: (kinds[m], data) for p, (m, data) in flat(store, "1").items()}
    assert got == expected


def test_layer_tar_helper_is_deterministic() -> None:
    a = Layer().file("x", b"1").tar()
    assert a == Layer().file("x", b"1").tar()
    with tarfile.open(fileobj=io.BytesIO(compress(a, "gzip"))) as tf:
        assert tf.getnames() == ["x"]


@pytest.mark.parametrize("kind", ["bz2", "xz", "multi-gzip", "multi-zstd"])
def test_tar_source_other_compressions_and_multi_member_streams(tmp_path: Path, kind: str) -> None:
    import bz2
    import gzip
    import lzma

    import zstandard

    tar = Layer().file("a", b"x" * 70000).file("b", b"y").tar()
    half = len(tar) // 2
    data = {
        "bz2": lambda: bz2.compress(tar),
        "xz": lambda: lzma.compress(tar),
        "multi-gzip": lambda: gzip.compress(tar[:half]) + gzip.compress(tar[half:]),
        "multi-zstd": lambda: (
            zstandard.ZstdCompressor().compress(tar[:half])
            + zstandard.ZstdCompressor().compress(tar[half:])
        ),
    }[kind]()
    path = tmp_path / "t.tar.x"
    path.write_bytes(data)
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(f"tar:{path}"))
    assert flat(store, "1") == {"a": (MODE_FILE, b"x" * 70000), "b": (MODE_FILE, b"y")}
