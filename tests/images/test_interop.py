"""Interop with the reference tools: skopeo writes the image, umoci unpacks it.

A tricky image (whiteouts, opaque dirs, hard links across layers, symlinked parent
dirs, a setuid file, absolute symlinks, empty dirs) is copied by skopeo into an
`oci:` layout and a `docker-archive:`; both import to the tree `umoci unpack
--rootless` produces from the same image: paths, types, permission bits, symlink
targets, contents, empty directories and hard-link groups.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from patchkit.git.objects import MODE_EXEC, MODE_LINK
from patchkit.git.store import Store
from patchkit.images import parse_source
from patchkit.images.tree import load_manifest
from patchkit.ops.importing import import_release
from tests.conftest import require_tool
from tests.helpers.imagebuilder import Layer, build_oci_layout
from tests.helpers.packing import tree_packing  # noqa: F401 - an autouse fixture

Shape = dict[str, tuple[str, int, bytes]]  # path -> (type, permission bits, content or target)


def tricky_layers() -> list[Layer]:
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
        .dir("usr/bin")
        .file("usr/bin/su", b"su", mode=0o4755)
        .file("usr/bin/tool", b"t", mode=0o755)
        .file("usr/bin/sg", b"sg", mode=0o2755)
        .dir("real")
        .symlink("lnk", "real")
        .symlink("etc/abs-link", "/etc/a")
        .symlink("abs-dir", "/real")
        .dir("empty", mode=0o700)
        .dir("w")
        .file("w/gone", b"g")
        .dir("tmp", mode=0o1777)
        .file("secret", b"s", mode=0o600)
    )
    l2 = (
        Layer()
        .whiteout("etc/a")
        .dir("d")
        .opaque("d")
        .file("d/new", b"n")
        .hardlink("usr/hl", "usr/bin/tool")
        .file("lnk/through-rel", b"r")
        .file("abs-dir/through-abs", b"A")
        .whiteout("w")
        .dir("empty2")
    )
    l3 = (
        Layer()
        .file("etc/a", b"back")
        .symlink("etc/b", "a")
        .hardlink("real/hl2", "usr/hl")
        .file("usr/bin/tool", b"t2", mode=0o755)
    )
    return [l1, l2, l3]


def umoci_shape(rootfs: Path) -> tuple[Shape, list[list[str]]]:
    shape: Shape = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(rootfs))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                shape[rel] = ("link", 0o777, os.readlink(p).encode())
            elif stat.S_ISDIR(st.st_mode):
                shape[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                shape[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
                inodes.setdefault(st.st_ino, []).append(rel)
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return shape, groups


def patchkit_shape(store: Store, version: str) -> tuple[Shape, list[list[str]]]:
    info = store.release(version)
    assert info is not None
    entries = store.ls_tree(info.commit)
    with store.blob_reader() as reader:
        manifest = (
            load_manifest(reader.read(info.manifest_blob) or b"") if info.manifest_blob else None
        )
        shape: Shape = {}
        for path, e in entries.items():
            data = reader.read(e.blob)
            assert data is not None
            if e.mode == MODE_LINK:
                shape[path] = ("link", 0o777, data)
            else:
                shape[path] = ("file", 0o755 if e.mode == MODE_EXEC else 0o644, data)
            parts = path.split("/")
            for i in range(1, len(parts)):
                shape.setdefault("/".join(parts[:i]), ("dir", 0o755, b""))
    groups: dict[str, list[str]] = {}
    for m in manifest.entries if manifest else ():
        if m.type.value == "dir":
            shape[m.path] = ("dir", m.mode, b"")
        elif m.type.value == "file":
            kind, _, data = shape[m.path]
            shape[m.path] = (kind, m.mode, data)
        if m.hardlink:
            groups.setdefault(m.hardlink, []).append(m.path)
    return shape, sorted(sorted(g) for g in groups.values())


@pytest.fixture
def tricky(tmp_path: Path) -> tuple[Path, Path, tuple[Shape, list[list[str]]]]:
    """(skopeo oci: layout, skopeo docker-archive, what umoci unpacks from the oci: copy)."""
    skopeo = require_tool("skopeo")
    umoci = require_tool("umoci")
    built = build_oci_layout(tmp_path / "src", tricky_layers(), tag="t")
    oci = tmp_path / "skopeo-oci"
    archive = tmp_path / "skopeo.tar"
    for dest in (f"oci:{oci}:t", f"docker-archive:{archive}:example/tricky:t"):
        subprocess.run(
            [skopeo, "--insecure-policy", "copy", "-q", f"oci:{built.path}:t", dest],
            check=True,
            capture_output=True,
        )
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{oci}:t", str(bundle)],
        check=True,
        capture_output=True,
    )
    return oci, archive, umoci_shape(bundle / "rootfs")


def test_skopeo_oci_layout_imports_to_the_tree_umoci_unpacks(
    tmp_path: Path, tricky: tuple[Path, Path, tuple[Shape, list[list[str]]]]
) -> None:
    oci, _, expected = tricky
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(f"oci:{oci}:t"))
    assert patchkit_shape(store, "1") == expected


def test_skopeo_docker_archive_imports_to_the_tree_umoci_unpacks(
    tmp_path: Path, tricky: tuple[Path, Path, tuple[Shape, list[list[str]]]]
) -> None:
    _, archive, expected = tricky
    store = Store.open(tmp_path / "store")
    res = import_release(store, "1", parse_source(f"docker-archive:{archive}"))
    assert patchkit_shape(store, "1") == expected
    oci_store = Store.open(tmp_path / "oci-store")
    assert import_release(oci_store, "1", parse_source(f"oci:{tricky[0]}:t")).tree == res.tree


def test_tree_from_the_layer_cache_equals_umoci_too(
    tmp_path: Path, tricky: tuple[Path, Path, tuple[Shape, list[list[str]]]]
) -> None:
    oci, archive, expected = tricky
    store = Store.open(tmp_path / "store")
    import_release(store, "archive", parse_source(f"docker-archive:{archive}"))
    import_release(
        store, "oci", parse_source(f"oci:{oci}:t")
    )  # every layer replayed from the cache
    assert patchkit_shape(store, "oci") == expected
