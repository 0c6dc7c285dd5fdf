"""import_release: verification, reuse, atomicity and progress."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patchkit.errors import DigestMismatchError
from patchkit.git.store import Store
from patchkit.images import ProgressEvent, parse_source
from patchkit.ops.importing import import_release, manifest_ref
from tests.helpers.imagebuilder import Layer, build_docker_archive, build_oci_layout

LAYERS = [
    Layer().dir("etc").file("etc/os-release", b"ID=test\n"),
    Layer().file("etc/motd", b"hi\n", uid=7),
]


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
        " (if upstream really replaced it, import again with --replace)"
    )
    assert store.git("for-each-ref").stdout == before
    # replace=True takes it (a re-pushed tag, a rebuilt model), and only then.
    result = import_release(store, "1.0", parse_source(two.source), replace=True)
    assert result.digest == two.digest and not result.reused
    assert import_release(store, "1.0", parse_source(two.source)).reused


def test_expected_digest_that_differs_is_refused_before_reading(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", LAYERS)
    store = Store.open(tmp_path / "store")
    with pytest.raises(
        DigestMismatchError, match=r"version 2 is recorded with digest sha256:0+ but"
    ):
        import_release(store, "2", parse_source(built.source), expected_digest="sha256:" + "0" * 64)
    assert store.release("2") is None


def test_failure_in_a_late_layer_leaves_no_ref_and_nothing_outside_the_store(
    tmp_path: Path,
) -> None:
    built = build_oci_layout(
        tmp_path / "img", [*LAYERS, Layer().file("big", b"x" * 100000)], compression=None
    )
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
    import_release(
        Store.open(tmp_path / "store"), "1", parse_source(built.source), progress=events.append
    )
    done = [e for e in events if e.done]
    assert [(e.layer, e.layers, e.digest) for e in done] == [
        (1, 2, built.layers[0]),
        (2, 2, built.layers[1]),
    ]
    assert all(e.read == e.total for e in done)


def test_tar_reimport_with_same_file_is_reused(tmp_path: Path) -> None:
    from tests.helpers.imagebuilder import build_tarball

    built = build_tarball(tmp_path / "t.tar", Layer().file("a/b", b"1"))
    store = Store.open(tmp_path / "store")
    import_release(store, "t", parse_source(built.source))
    copy = tmp_path / "copy.tar"
    shutil.copy(built.path, copy)
    assert import_release(store, "t", parse_source(f"tar:{copy}")).reused


# -- layer cache ---------------------------------------------------------------------


def _tricky_lower() -> list[Layer]:
    """Whiteouts, opaque dirs, hard links across layers, symlinked parents, setuid, empty dirs."""
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
        .symlink("lnk", "usr")
        .symlink("abs", "/etc")
        .dir("empty", mode=0o700)
        .dir("w")
        .file("w/gone", b"g")
        .fifo("run/fifo")
        .device("dev/null", 1, 3)
        .file("ping", b"p", xattrs={"security.capability": "\x01\x02"})
    )
    l2 = (
        Layer()
        .whiteout("etc/a")
        .dir("d")
        .opaque("d")
        .file("d/new", b"n")
        .hardlink("usr/hl", "usr/bin/tool")
        .file("lnk/via-link", b"v", uid=33, gid=33)
        .whiteout("w")
        .file("abs/through-abs", b"ta")
    )
    l3 = Layer().file("etc/a", b"back").symlink("etc/b", "a").dir("empty2")
    return [l1, l2, l3]


def _store_state(store: Store, version: str) -> tuple[str, bytes | None]:
    info = store.release(version)
    assert info is not None
    manifest = None
    if info.manifest_blob:
        with store.blob_reader() as reader:
            manifest = reader.read(info.manifest_blob)
    return info.tree, manifest


TOP_A = Layer().file("etc/top", b"release A").hardlink("hl-top", "usr/bin/su")
TOP_B = (
    Layer()
    .file("etc/top", b"release B")
    .whiteout("etc/a")
    .hardlink("usr/hl2", "usr/hl")
    .file("lnk/bin/new", b"new", mode=0o2755)
    .opaque("usr/bin")
    .file("usr/bin/only", b"o")
)


def _release_b_without_lower_blobs(tmp_path: Path) -> tuple[str, str]:
    """Release B (shares the lower layers with A) whose lower layer blobs are deleted."""
    b = build_oci_layout(tmp_path / "b", [*_tricky_lower(), TOP_B], tag="b")
    for digest in b.layers[:-1]:
        (b.path / "blobs" / "sha256" / digest[7:]).unlink()
    return b.source, b.digest


def test_release_sharing_lower_layers_reads_only_its_new_layer(tmp_path: Path) -> None:
    a = build_oci_layout(tmp_path / "a", [*_tricky_lower(), TOP_A], tag="a")
    reference = build_oci_layout(tmp_path / "ref", [*_tricky_lower(), TOP_B], tag="b")
    fresh = Store.open(tmp_path / "fresh")
    import_release(fresh, "B", parse_source(reference.source), layer_cache=False)

    store = Store.open(tmp_path / "store")
    import_release(store, "A", parse_source(a.source))
    source, _ = _release_b_without_lower_blobs(tmp_path)  # reading a lower layer would fail
    events: list[ProgressEvent] = []
    import_release(store, "B", parse_source(source), progress=events.append)
    assert [e.layer for e in events if e.cached] == [1, 2, 3]
    assert _store_state(store, "B") == _store_state(fresh, "B")


def test_sparse_import_from_a_complete_cache_equals_sparse_from_blobs(tmp_path: Path) -> None:
    a = build_oci_layout(tmp_path / "a", [*_tricky_lower(), TOP_A], tag="a")
    reference = build_oci_layout(tmp_path / "ref", [*_tricky_lower(), TOP_B], tag="b")
    sparse = {"include": ["etc/**", "usr/**"], "exclude": ["usr/bin/tool"], "always": ["d/new"]}
    fresh = Store.open(tmp_path / "fresh")
    import_release(fresh, "B", parse_source(reference.source), layer_cache=False, **sparse)  # type: ignore[arg-type]
    store = Store.open(tmp_path / "store")
    import_release(store, "A", parse_source(a.source))
    source, _ = _release_b_without_lower_blobs(tmp_path)
    import_release(store, "B", parse_source(source), **sparse)  # type: ignore[arg-type]
    assert _store_state(store, "B") == _store_state(fresh, "B")


def test_cache_written_by_a_sparse_import_does_not_serve_a_full_one(tmp_path: Path) -> None:
    a = build_oci_layout(tmp_path / "a", [*_tricky_lower(), TOP_A], tag="a")
    b = build_oci_layout(tmp_path / "b", [*_tricky_lower(), TOP_B], tag="b")
    store = Store.open(tmp_path / "store")
    import_release(store, "A", parse_source(a.source), include=["etc/**"])
    import_release(store, "B", parse_source(b.source))  # reads every layer again, fully
    fresh = Store.open(tmp_path / "fresh")
    import_release(fresh, "B", parse_source(b.source), layer_cache=False)
    assert _store_state(store, "B") == _store_state(fresh, "B")


def test_same_globs_on_the_same_lower_layers_reuse_a_sparse_cache(tmp_path: Path) -> None:
    a = build_oci_layout(tmp_path / "a", [*_tricky_lower(), TOP_A], tag="a")
    store = Store.open(tmp_path / "store")
    import_release(store, "A", parse_source(a.source), include=["etc/**"])
    source, _ = _release_b_without_lower_blobs(tmp_path)
    import_release(store, "B", parse_source(source), include=["etc/**"])
    reference = build_oci_layout(tmp_path / "ref", [*_tricky_lower(), TOP_B], tag="b")
    fresh = Store.open(tmp_path / "fresh")
    import_release(
        fresh, "B", parse_source(reference.source), include=["etc/**"], layer_cache=False
    )
    assert _store_state(store, "B") == _store_state(fresh, "B")


def _corrupt_cache_entry(store: Store, diff_id: str, layer_json: bytes) -> None:
    from patchkit.git.objects import MODE_FILE, TreeEntry
    from patchkit.images.cache import layer_ref

    with store.fast_import() as fi:
        fi.commit(
            layer_ref(diff_id),
            {"layer.json": TreeEntry(mode=MODE_FILE, blob=fi.blob(layer_json))},
            "x\n",
        )


@pytest.mark.parametrize(
    "layer_json",
    [
        b"{not json",
        b'{"schema":1,"diff_id":"sha256:' + b"0" * 64 + b'","complete":true,"entries":[]}',
        b'{"schema":1,"reader":2,"diff_id":"DIFF","complete":true,"entries":[["etc/x","f",420,0,0,1,"",0,0,null,"'
        + b"1" * 40
        + b'"]]}',
        b'{"schema":1,"reader":2,"diff_id":"DIFF","complete":true,"entries":[["etc/x","f",-1]]}',
        None,
    ],
    ids=["not-json", "other-diff-id", "missing-blob", "malformed-row", "no-layer-json"],
)
def test_corrupt_cache_entry_is_ignored_with_a_warning_and_recomputed(
    tmp_path: Path, layer_json: bytes | None
) -> None:
    from patchkit.git.objects import MODE_FILE, TreeEntry
    from patchkit.images.cache import LayerCacheWarning, layer_ref

    a = build_oci_layout(tmp_path / "a", [*_tricky_lower(), TOP_A], tag="a")
    b = build_oci_layout(tmp_path / "b", [*_tricky_lower(), TOP_B], tag="b")
    store = Store.open(tmp_path / "store")
    import_release(store, "A", parse_source(a.source))
    victim = b.diff_ids[1]
    if layer_json is None:
        with store.fast_import() as fi:
            blob = fi.blob(b"x")
            fi.commit(layer_ref(victim), {"other": TreeEntry(mode=MODE_FILE, blob=blob)}, "x\n")
    else:
        _corrupt_cache_entry(store, victim, layer_json.replace(b"DIFF", victim.encode()))
    with pytest.warns(
        LayerCacheWarning, match=r"layer 2 \(sha256:[0-9a-f]{12}…\): layer cache entry"
    ):
        import_release(store, "B", parse_source(b.source))
    fresh = Store.open(tmp_path / "fresh")
    import_release(fresh, "B", parse_source(b.source), layer_cache=False)
    assert _store_state(store, "B") == _store_state(fresh, "B")
    # the entry was rewritten: a third import replays every shared layer without a warning
    import warnings

    c = build_oci_layout(tmp_path / "c", [*_tricky_lower(), Layer().file("c", b"c")], tag="c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events: list[ProgressEvent] = []
        import_release(store, "C", parse_source(c.source), progress=events.append)
    assert [e.layer for e in events if e.cached] == [1, 2, 3]


def test_a_cache_entry_of_the_tarfile_reader_is_read_again_silently(tmp_path: Path) -> None:
    """Entries made before issue 23 (no "reader": `tarfile`, which read repeated headers and
    sparse files otherwise) are not replayed: the layer is read again and its entry replaced."""
    import json
    import warnings

    from patchkit.images.cache import layer_ref

    a = build_oci_layout(tmp_path / "a", [*_tricky_lower(), TOP_A], tag="a")
    b = build_oci_layout(tmp_path / "b", [*_tricky_lower(), TOP_B], tag="b")
    store = Store.open(tmp_path / "store")
    import_release(store, "A", parse_source(a.source))
    victim = b.diff_ids[1]
    doc = json.loads(store.git("cat-file", "blob", f"{layer_ref(victim)}:layer.json").stdout)
    del doc["reader"]
    doc["entries"] = [[f"wrong-{row[0]}", *row[1:]] for row in doc["entries"]]  # tarfile's view
    _corrupt_cache_entry(store, victim, json.dumps(doc).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events: list[ProgressEvent] = []
        import_release(store, "B", parse_source(b.source), progress=events.append)
    assert 2 not in [e.layer for e in events if e.cached]  # read again; the others replayed
    fresh = Store.open(tmp_path / "fresh")
    import_release(fresh, "B", parse_source(b.source), layer_cache=False)
    assert _store_state(store, "B") == _store_state(fresh, "B")
    replaced = store.git("cat-file", "blob", f"{layer_ref(victim)}:layer.json").stdout
    assert json.loads(replaced)["reader"] == 2


def test_cached_layer_is_checked_against_the_new_lower_layers(tmp_path: Path) -> None:
    from patchkit.errors import UnsafeLayerError

    top = Layer().file("p/x", b"x")
    safe = build_oci_layout(tmp_path / "safe", [Layer().dir("p"), top], tag="s")
    store = Store.open(tmp_path / "store")
    import_release(store, "safe", parse_source(safe.source))
    # the same top layer over a lower layer that plants p -> ../.. must still be refused
    hostile = build_oci_layout(tmp_path / "hostile", [Layer().symlink("p", "../.."), top], tag="h")
    with pytest.raises(UnsafeLayerError, match=r"layer 2 .*entry 'p/x'.*climbs above the root"):
        import_release(store, "hostile", parse_source(hostile.source))


# -- progress on a terminal (the CLI's consumer of ProgressEvent) ----------------------


def test_cli_progress_draws_one_bar_per_layer_on_a_terminal(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from patchkit.cli.ui import progress as _progress

    built = build_oci_layout(
        tmp_path / "img", [*LAYERS, Layer().file("big", b"x" * 300_000)], compression=None
    )
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    callback, bar = _progress(console, enabled=True)
    with bar:
        import_release(
            Store.open(tmp_path / "store"), "1", parse_source(built.source), progress=callback
        )
        tasks = list(bar.tasks)  # type: ignore[attr-defined]
    assert [t.description for t in tasks] == ["layer 1/3", "layer 2/3", "layer 3/3"]
    assert all(t.finished and t.completed == t.total for t in tasks)
    assert tasks[2].total == len(Layer().file("big", b"x" * 300_000).tar())
    assert "layer 3/3" in buf.getvalue()


def test_cli_progress_is_silent_on_a_pipe_and_with_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from patchkit.cli import main
    from tests.helpers.projectbuilder import make_project

    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0")
    root = make_project(tmp_path, {"1.0": {}, "2.0": {}}, {}, base="1.0")
    assert main(["--project", str(root), "import", "1.0", built.source]) == 0
    _, err = capsys.readouterr()
    assert "layer 1" not in err and "\x1b" not in err
    assert main(["--project", str(root), "-q", "import", "2.0", built.source]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_cli_import_verbose_names_the_zlib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from patchkit.cli import main
    from patchkit.compress import ZLIB_NAME
    from tests.helpers.projectbuilder import make_project

    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0")
    root = make_project(tmp_path, {"1.0": {}, "2.0": {}}, {}, base="1.0")
    assert main(["--project", str(root), "import", "-v", "1.0", built.source]) == 0
    _, err = capsys.readouterr()
    assert f"zlib: {ZLIB_NAME}" in err.splitlines()
    assert main(["--project", str(root), "import", "2.0", built.source, "--json", "-v"]) == 0
    out, err = capsys.readouterr()
    assert "zlib" not in out and f"zlib: {ZLIB_NAME}" in err  # stdout stays JSON alone
    assert main(["--project", str(root), "import", "2.0", built.source]) == 0
    assert "zlib" not in capsys.readouterr().err  # only with -v


def test_result_names_the_zlib_the_import_used(tmp_path: Path) -> None:
    from patchkit.compress import ZLIB_NAME

    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0")
    res = import_release(Store.open(tmp_path / "store"), "1.0", parse_source(built.source))
    assert res.zlib == ZLIB_NAME and ZLIB_NAME.split()[0] in ("isal", "zlib")
    assert "zlib" not in res.to_dict()  # the JSON stays as docs/json.md documents it


def test_standard_zlib_and_isal_give_the_same_store(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0", compression="gzip")
    code = (
        "import sys; from pathlib import Path; from patchkit.git.store import Store;"
        "from patchkit.images import parse_source; from patchkit.ops.importing import import_release;"
        "r = import_release(Store.open(Path(sys.argv[1])), '1.0', parse_source(sys.argv[2]));"
        "print(r.tree, r.zlib)"
    )
    out = {}
    for which in ("zlib", "best"):
        env = {**os.environ, "PATCHKIT_ZLIB": which}
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / which), built.source],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        out[which] = proc.stdout.split(maxsplit=1)
        fsck = subprocess.run(
            ["git", "--git-dir", str(tmp_path / which), "fsck", "--full", "--strict"],
            capture_output=True,
            text=True,
        )
        assert fsck.returncode == 0, fsck.stderr
    assert out["zlib"][1].startswith("zlib")
    assert out["zlib"][0] == out["best"][0]


def test_layer_cache_rows_streamed_out_give_the_same_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LayerRecord writes rows as entries become final (spilling to a temporary file past
    _SPILL bytes); the cache entry is the bytes json.dumps of the whole layer gives."""
    import json

    import patchkit.images.cache as cache_mod
    import patchkit.images.layers as layers_mod

    many = Layer().dir("d")
    for i in range(60):
        many = many.file(f"d/f{i}", b"%d\n" % i).symlink(f"d/l{i}", f"f{i}")
    layers = [*LAYERS, many, Layer().file("d/f3", b"again\n")]
    built = build_oci_layout(tmp_path / "img", layers, tag="1.0")
    plain = Store.open(tmp_path / "plain")
    import_release(plain, "1.0", parse_source(built.source))
    monkeypatch.setattr(cache_mod, "_SPILL", 64)  # a spill every few rows
    monkeypatch.setattr(layers_mod, "_PENDING", 4)  # ids resolved and rows flushed often
    spilled = Store.open(tmp_path / "spilled")
    import_release(spilled, "1.0", parse_source(built.source))
    refs = plain.git("for-each-ref").stdout
    assert refs == spilled.git("for-each-ref").stdout and b"refs/patchkit/layers/" in refs
    sizes = []
    for line in refs.decode().splitlines():
        if "/layers/" in line:
            data = spilled.git("cat-file", "blob", line.split()[0] + ":layer.json").stdout
            doc = json.loads(data)
            assert data == json.dumps(doc, separators=(",", ":")).encode()
            sizes.append(len(doc["entries"]))
    assert max(sizes) == 121  # d, 60 files, 60 symlinks


@pytest.mark.parametrize("form", ["oci", "docker-archive"])
def test_import_records_what_the_image_says_of_itself(tmp_path: Path, form: str) -> None:
    """Platform, creation date, config digest and layer size, for `patchkit report`."""
    created = "2025-03-04T05:06:07Z"
    if form == "oci":
        built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0", created=created)
        sizes = [(built.path / "blobs/sha256" / d[7:]).stat().st_size for d in built.layers]
    else:
        built = build_docker_archive(tmp_path / "img.tar", LAYERS)
        sizes = []
    store = Store.open(tmp_path / "store")
    import_release(store, "1.0", parse_source(built.source))
    info = store.release("1.0")
    assert info is not None
    assert (info.platform, info.config) == ("linux/amd64", built.config_digest)
    if form == "oci":
        assert (info.created, info.size) == (created, sum(sizes))
    else:
        assert info.created == "" and info.size is not None and info.size > 0


def test_a_release_imported_before_those_fields_reads_as_unknown(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    message = Store.release_message("1.0", source="dir:/x", digest="git-tree:0")
    assert "Patchkit-Platform" not in message and "Patchkit-Size" not in message
    built = build_oci_layout(tmp_path / "img", LAYERS, tag="1.0")
    import_release(store, "1.0", parse_source(f"dir:{built.path}"))
    info = store.release("1.0")
    assert info is not None and (info.platform, info.created, info.config, info.size) == (
        "",
        "",
        "",
        None,
    )
