"""The store's own pack writer: git reads what it writes, and a failure leaves nothing."""

from __future__ import annotations

import os
import random
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchkit.errors import DigestMismatchError, StoreError
from patchkit.git.objects import MODE_EXEC, MODE_FILE, MODE_LINK, TreeEntry, git_blob_id
from patchkit.git.pack import PackWriter, _pack_index
from patchkit.git.store import Store
from patchkit.images import parse_source
from patchkit.ops.importing import import_release
from tests.helpers.imagebuilder import Layer, build_oci_layout
from tests.ops.test_importer import _tricky_lower


def _pack_files(store: Store) -> list[str]:
    return sorted(p.name for p in (store.path / "objects" / "pack").iterdir())


def _fsck(store: Store) -> None:
    proc = store.git("fsck", "--full", "--strict", "--no-dangling", check=False)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    assert b"error" not in proc.stderr and b"missing" not in proc.stdout


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _blobs() -> list[bytes]:
    rnd = random.Random(7)
    sizes = [0, 1, 15, 16, 127, 128, 2047, 2048, 16383, 16384, 1 << 20, (1 << 20) + 1, 3_000_001]
    out = [bytes(rnd.getrandbits(8) for _ in range(min(s, 4096))) * (s // 4096 + 1) for s in sizes]
    return [b[:s] for b, s in zip(out, sizes, strict=True)] + [b"text\n" * 1000, b"\0binary\xff"]


def test_packed_blobs_are_read_back_by_git_and_fsck_is_clean(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    files: dict[str, TreeEntry] = {}
    with store.fast_import(pack=True) as fi:
        for i, data in enumerate(_blobs()):
            oid = fi.blob_stream(len(data), _chunks(data, 300_000)) if i % 2 else fi.blob(data)
            assert oid == git_blob_id(data)
            assert fi.blob(data) == oid  # a duplicate is not written twice
            files[f"f{i}"] = TreeEntry(mode=MODE_FILE, blob=oid)
        fi.commit("refs/heads/t", files, "t\n")
    packs = _pack_files(store)
    assert len(packs) == 2 and packs[0].endswith(".idx") and packs[1].endswith(".pack")
    verify = store.git("verify-pack", "-v", str(store.path / "objects" / "pack" / packs[0])).stdout
    assert verify.count(b" blob ") == len(set(_blobs()))
    assert verify.count(b" tree ") == 1 and verify.count(b" commit ") == 1
    with store.blob_reader() as reader:
        for i, data in enumerate(_blobs()):
            assert reader.read(f"refs/heads/t:f{i}") == data
    _fsck(store)
    assert store.git("count-objects", "-v").stdout.splitlines()[0] == b"count: 0"  # nothing loose
    assert store.git("cat-file", "-t", "refs/heads/t^{tree}").stdout == b"tree\n"


def test_ids_computed_on_the_writer_thread_equal_git_and_duplicates_are_written_once(
    tmp_path: Path,
) -> None:
    from patchkit.images.sink import ObjectSink

    big = os.urandom(1 << 20) * 3  # streamed through the writer thread in chunks
    datas = [*_blobs(), big, big, b"", b"x" * 5000, b"x" * 5000]
    for pack in (True, False):
        store = Store.open(tmp_path / f"store-{pack}")
        with store.fast_import(pack=pack) as fi:
            sink: ObjectSink = fi  # the seam images/ writes through
            later = [sink.blob_stream_later(len(d), _chunks(d, 1 << 18)) for d in datas]
            ids = [get().hex() for get in later]
            assert ids == [git_blob_id(d) for d in datas]
            files = {f"f{i}": TreeEntry(mode=MODE_FILE, blob=oid) for i, oid in enumerate(ids)}
            sink.commit("refs/heads/t", files, "t\n")
        with store.blob_reader() as reader:
            assert reader.read("refs/heads/t:f5") is not None
        _fsck(store)
        if pack:
            idx = next(p for p in _pack_files(store) if p.endswith(".idx"))
            verify = store.git("verify-pack", "-v", str(store.path / "objects/pack" / idx))
            assert verify.stdout.count(b" blob ") == len(set(datas))


def test_blobs_the_store_has_are_not_written_again(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    with store.fast_import(pack=True) as fi:
        fi.blob(b"packed already\n")
        fi.commit(
            "refs/heads/a",
            {"a": TreeEntry(mode=MODE_FILE, blob=git_blob_id(b"packed already\n"))},
            "a\n",
        )
    store.git("hash-object", "-w", "--stdin", input=b"loose already\n")
    before = _pack_files(store)
    with store.fast_import(pack=True) as fi:
        fi.blob(b"packed already\n")
        fi.blob_stream(len(b"loose already\n"), iter([b"loose already\n"]))
    assert _pack_files(store) == before  # nothing new: no pack at all
    big = os.urandom(1 << 20) * 2
    with store.fast_import(pack=True) as fi:
        fi.blob_stream(len(big), _chunks(big, 1 << 16))
    with store.fast_import(pack=True) as fi:
        fi.blob_stream(len(big), _chunks(big, 1 << 16))  # streamed, then cut off again
        fi.blob(b"new\n")
    newest = [p for p in _pack_files(store) if p.endswith(".idx") and p not in before]
    counts = sorted(
        store.git("verify-pack", "-v", str(store.path / "objects" / "pack" / p)).stdout.count(
            b" blob "
        )
        for p in newest
    )
    assert counts == [1, 1]
    _fsck(store)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("where", ["between blobs", "inside a streamed blob"])
def test_failure_midway_leaves_no_pack_and_no_ref(
    tmp_path: Path, exc: type[BaseException], where: str
) -> None:
    store = Store.open(tmp_path / "store")

    def failing() -> Iterator[bytes]:
        yield b"x" * (1 << 20)
        raise exc("boom")

    with pytest.raises(exc), store.fast_import(pack=True) as fi:
        for i in range(50):
            fi.blob(os.urandom(50_000) + bytes([i]))
        fi.commit("refs/heads/t", {}, "t\n")
        if where == "between blobs":
            raise exc("boom")
        fi.blob_stream(3 << 20, failing())
    assert _pack_files(store) == []  # not even a temporary file
    assert store.git("for-each-ref").stdout == b""


def test_a_short_stream_is_refused_and_the_pack_stays_sound(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    with store.fast_import(pack=True) as fi:
        keep = fi.blob(b"kept\n")
        for size in (10, 5 << 20):
            with pytest.raises(StoreError, match="ended after"):
                fi.blob_stream(size, iter([b"short"]))
            with pytest.raises(StoreError, match="longer than"):
                fi.blob_stream(size, iter([b"x" * (size + 1)]))
        last = fi.blob(b"after\n")
        fi.commit(
            "refs/heads/t",
            {"k": TreeEntry(mode=MODE_FILE, blob=keep), "l": TreeEntry(mode=MODE_FILE, blob=last)},
            "t\n",
        )
    _fsck(store)
    assert set(store.ls_tree("refs/heads/t")) == {"k", "l"}


def _without_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Store.fast_import

    def fast_import(self: Store, *, marks: Path | None = None, pack: bool = False) -> object:
        return original(self, marks=marks, pack=False)

    monkeypatch.setattr(Store, "fast_import", fast_import)


def test_import_gives_the_same_commits_as_plain_fast_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = os.urandom(1 << 20) * 3  # streamed in chunks
    dup = Layer().file("etc/dup", b"same layer twice: its cache ref is committed twice")
    layers = [
        *_tricky_lower(),
        dup,
        Layer().file("big", big).file("big-again", big).file("etc/new", b"n"),
        dup,
    ]
    built = build_oci_layout(tmp_path / "img", layers, tag="1")
    packed = Store.open(tmp_path / "packed")
    a = import_release(packed, "1", parse_source(built.source))
    sparse = import_release(packed, "2", parse_source(built.source), include=["etc/**"])
    _fsck(packed)
    _without_pack(monkeypatch)
    plain = Store.open(tmp_path / "plain")
    b = import_release(plain, "1", parse_source(built.source))
    c = import_release(plain, "2", parse_source(built.source), include=["etc/**"])
    assert (a.tree, a.commit, sparse.tree, sparse.commit) == (b.tree, b.commit, c.tree, c.commit)
    assert packed.ref_targets("refs/") == plain.ref_targets(
        "refs/"
    )  # layer cache and manifests too


def test_layer_cache_blobs_stay_reachable_after_gc(tmp_path: Path) -> None:
    lower = [Layer().file("a", os.urandom(3 << 20)).file("b", b"b")]
    one = build_oci_layout(tmp_path / "one", [*lower, Layer().file("c", b"1")], tag="1")
    two = build_oci_layout(tmp_path / "two", [*lower, Layer().file("c", b"2")], tag="2")
    store = Store.open(tmp_path / "store")
    first = import_release(store, "1", parse_source(one.source))
    store.git("gc", "-q", "--prune=now")
    _fsck(store)
    for digest in one.layers[:1]:  # the shared lower layer can only come from the cache now
        (two.path / "blobs" / "sha256" / digest[7:]).write_bytes(b"")
    second = import_release(store, "2", parse_source(two.source))
    assert store.ls_tree(second.commit)["a"] == store.ls_tree(first.commit)["a"]
    _fsck(store)


def test_failed_import_leaves_no_pack(tmp_path: Path) -> None:
    built = build_oci_layout(
        tmp_path / "img", [*_tricky_lower(), Layer().file("big", b"x" * 100000)], compression=None
    )
    last = built.path / "blobs" / "sha256" / built.layers[-1][7:]
    last.write_bytes(Layer().file("big", b"y" * 100000).tar())  # same size, wrong digest
    store = Store.open(tmp_path / "store")
    with pytest.raises(DigestMismatchError):
        import_release(store, "1", parse_source(built.source))
    assert _pack_files(store) == [] and store.git("for-each-ref").stdout == b""


def test_index_with_offsets_past_2_gib() -> None:
    ids = [bytes([b]) * 20 for b in (0x10, 0x80, 0x81, 0xFF)]
    entries = [
        (ids[0], 12, 1),
        (ids[2], 3 << 31, 2),
        (ids[1], (1 << 31) - 1, 3),
        (ids[3], 5 << 32, 4),
    ]
    idx = _pack_index(entries, b"\xaa" * 20)
    assert idx[:8] == b"\377tOc\0\0\0\2"
    fanout = struct.unpack(">256I", idx[8 : 8 + 1024])
    assert (fanout[0x0F], fanout[0x10], fanout[0x80], fanout[0x81], fanout[0xFE], fanout[0xFF]) == (
        0,
        1,
        2,
        3,
        3,
        4,
    )
    at = 8 + 1024
    assert idx[at : at + 80] == b"".join(ids)
    crcs = struct.unpack(">4I", idx[at + 80 : at + 96])
    offsets = struct.unpack(">4I", idx[at + 96 : at + 112])
    large = struct.unpack(">2Q", idx[at + 112 : at + 128])
    assert crcs == (1, 3, 2, 4)
    assert offsets == (12, (1 << 31) - 1, 1 << 31, (1 << 31) | 1) and large == (3 << 31, 5 << 32)
    assert idx[at + 128 : at + 148] == b"\xaa" * 20 and len(idx) == at + 168


def test_pack_writer_alone_and_a_kill_before_finish(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    writer = PackWriter(store.path)
    writer.add(b"one\n")
    # a crash before `finish` leaves only tmp_pack_* files (the pack and the writer's lock),
    # which git ignores and the next `Store.open` removes (tests/git/test_pack_kill.py)
    assert [p.startswith("tmp_pack_") for p in _pack_files(store)] == [True, True]
    assert (
        subprocess.run(
            ["git", "--git-dir", str(store.path), "cat-file", "-e", git_blob_id(b"one\n")],
            check=False,
        ).returncode
        != 0
    )
    writer.abort()
    assert _pack_files(store) == []
    writer = PackWriter(store.path)
    writer.add(b"one\n")
    writer.finish()
    assert store.git("cat-file", "blob", git_blob_id(b"one\n")).stdout == b"one\n"


def test_trees_and_commits_written_directly_match_fast_import(tmp_path: Path) -> None:
    from patchkit.git.objects import MODE_EXEC, MODE_LINK

    names = ["a-b", "a.b", "a/b", "a/c/d", "a0", 'q"uote', "new\nline", "b\\s", "\udcff-raw", "z/é"]
    modes = [MODE_FILE, MODE_EXEC, MODE_LINK]
    files = {
        n: TreeEntry(mode=modes[i % 3], blob=git_blob_id(n.encode("utf-8", "surrogateescape")))
        for i, n in enumerate(names)
    }
    ids = []
    for pack in (True, False):
        store = Store.open(tmp_path / f"s{pack}")
        with store.fast_import(pack=pack) as fi:
            for n in names:
                fi.blob(n.encode("utf-8", "surrogateescape"))
            fi.commit("refs/heads/empty", {"x": files["a-b"]}, "replaced below\n")
            fi.commit("refs/heads/empty", {}, "empty\n")  # the same ref twice: the last wins
            fi.commit("refs/heads/one", files, "one\n\nPatchkit-X: y\n")
        parent = store.rev_parse("refs/heads/one")
        assert parent is not None
        with store.fast_import(pack=pack) as fi:
            fi.commit("refs/heads/two", dict(list(files.items())[:3]), "two ü\n", parent=parent)
        if pack:
            with pytest.raises(StoreError), store.fast_import(pack=True) as fi:
                fi.commit_changes("refs/heads/x", {}, "x\n", parent=parent)
        _fsck(store)
        ids.append(store.ref_targets("refs/"))
    assert ids[0] == ids[1] and len(ids[0]) == 3


def test_blob_ids_and_reads_answer_per_path_even_for_spaces_and_absent_paths(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "store")
    with store.fast_import(pack=True) as fi:
        a, b = fi.blob(b"a\n"), fi.blob(b"b b\n")
        fi.commit(
            "refs/heads/t",
            {
                "dir/a": TreeEntry(mode=MODE_FILE, blob=a),
                "with space": TreeEntry(mode=MODE_FILE, blob=b),
            },
            "t\n",
        )
    tree = store.git("rev-parse", "refs/heads/t^{tree}").stdout.decode().strip()
    asked = [
        "dir/a",
        "with space",
        "no such file",
        "dir",
        "odd\nname",
        "also missing here",
        "dir/a/deeper",
    ]
    with store.blob_reader() as reader:
        assert reader.blob_ids([(tree, p) for p in asked]) == [a, b, None, None, None, None, None]
        # a commit stands for its tree; a second reader call reuses the parsed trees
        assert reader.blob_ids([("refs/heads/t", "dir/a"), (tree, "with space")]) == [a, b]
        # git agrees on every id
        for path, oid in (("dir/a", a), ("with space", b)):
            assert store.git("rev-parse", f"{tree}:{path}").stdout.decode().strip() == oid
        assert reader.read_many(tree, asked) == {
            "dir/a": b"a\n",
            "with space": b"b b\n",
            "no such file": None,
            "dir": None,
            "odd\nname": None,
            "also missing here": None,
            "dir/a/deeper": None,
        }
        assert reader.read(f"{tree}:no such file") is None  # "<spec> missing" holds spaces
        assert reader.read_objects([b, a, "0" * 40]) == {b: b"b b\n", a: b"a\n", "0" * 40: None}


def test_blob_ids_equal_git_ls_tree_for_every_path_of_a_nested_tree(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    rnd = random.Random(3)
    files: dict[str, TreeEntry] = {}
    with store.fast_import(pack=True) as fi:
        for i in range(300):
            depth = rnd.randint(0, 4)
            path = "/".join([f"d{rnd.randint(0, 3)}" for _ in range(depth)] + [f"f {i}.txt"])
            mode = rnd.choice([MODE_FILE, MODE_EXEC, MODE_LINK])
            files[path] = TreeEntry(mode=mode, blob=fi.blob(f"{i % 50}\n".encode()))
        fi.commit("refs/heads/t", files, "t\n")
    listed = store.git("ls-tree", "-r", "-z", "refs/heads/t").stdout.split(b"\0")
    expected: dict[str, str] = {}
    for rec in filter(None, listed):
        meta, raw_path = rec.split(b"\t", 1)
        expected[raw_path.decode()] = meta.split()[2].decode()
    assert set(expected) == set(files)
    tree = store.git("rev-parse", "refs/heads/t^{tree}").stdout.decode().strip()
    asked = [*sorted(expected), "d0", "d1/nope", "nope/f 1.txt"]
    with store.blob_reader() as reader:
        got = reader.blob_ids([(tree, p) for p in asked])
    assert got == [expected[p] for p in sorted(expected)] + [None, None, None]


def test_files_with_words_lists_text_files_holding_a_whole_word_and_changed_paths(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "store")
    blobs = {
        "src/a b.c": b'notify("READY=1");\n',
        "src/b.c": b"sd_notify(0);\n",
        "src/c.c": b"sd_notify_x();\n",  # not the whole word
        "bin/tool": b"\0\x01sd_notify\0",  # binary: not searched
    }
    commits = []
    with store.fast_import(pack=True) as fi:
        files = {
            path: TreeEntry(mode=MODE_FILE, blob=fi.blob(data)) for path, data in blobs.items()
        }
        fi.commit("refs/heads/t", files, "t\n")
        fi.commit(
            "refs/heads/u",
            {
                **files,
                "src/b.c": TreeEntry(mode=MODE_FILE, blob=fi.blob(b"x\n")),
                "new.c": TreeEntry(mode=MODE_FILE, blob=fi.blob(b"y\n")),
            },
            "u\n",
        )
    for ref in ("refs/heads/t", "refs/heads/u"):
        commits.append(store.git("rev-parse", ref).stdout.decode().strip())
    t, u = commits
    assert sorted(store.files_with_words(t, ['"READY=1"', "sd_notify", "absent_word"])) == [
        "src/a b.c",
        "src/b.c",
    ]
    assert store.files_with_words(t, []) == [] and store.files_with_words(t, ["absent_word"]) == []
    assert sorted(store.changed_paths(t, u)) == ["new.c", "src/b.c"]
    assert store.changed_paths(u, t) == ["src/b.c"]  # a deleted file is not "changed" into anything


def test_a_sealed_pack_and_the_next_are_installed_together(tmp_path: Path) -> None:
    """`checkpoint` (the import calls it once the layers are read) completes the blob pack
    on the writer thread; trees and commits go to a second pack; both appear at the end."""
    store = Store.open(tmp_path / "store")
    big = os.urandom(1 << 20) * 2
    with store.fast_import(pack=True) as fi:
        first = [fi.blob(b"one\n"), fi.blob_stream(len(big), _chunks(big, 1 << 16))]
        fi.checkpoint()
        fi.checkpoint()  # nothing new: no empty pack
        second = fi.blob(b"two\n")
        assert fi.blob(b"one\n") == first[0]  # in the sealed pack: not written again
        files = {f"f{i}": TreeEntry(mode=MODE_FILE, blob=oid) for i, oid in enumerate(first)}
        fi.commit("refs/heads/t", {**files, "g": TreeEntry(mode=MODE_FILE, blob=second)}, "t\n")
    packs = _pack_files(store)
    assert len(packs) == 4 and all(p.startswith("pack-") for p in packs)
    counts = sorted(
        store.git("verify-pack", "-v", str(store.path / "objects/pack" / p)).stdout.count(b" blob ")
        for p in packs
        if p.endswith(".idx")
    )
    assert counts == [1, 2]
    with store.blob_reader() as reader:
        assert reader.read("refs/heads/t:f1") == big
    _fsck(store)


def test_failure_after_a_checkpoint_leaves_no_pack(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    with pytest.raises(RuntimeError), store.fast_import(pack=True) as fi:
        fi.blob(b"one\n")
        fi.checkpoint()
        fi.blob(b"two\n")
        fi.commit("refs/heads/t", {}, "t\n")
        raise RuntimeError("boom")
    assert _pack_files(store) == [] and store.git("for-each-ref").stdout == b""


def test_an_import_writes_a_blob_pack_and_a_tree_pack(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "img", [*_tricky_lower()])
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(built.source))
    assert len([p for p in _pack_files(store) if p.endswith(".pack")]) == 2
    _fsck(store)
