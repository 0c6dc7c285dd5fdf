"""patchkit.git.pack: the writer's id set and index columns (issue 15: flat memory)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.compress import zlib_backend
from patchkit.git import pack
from patchkit.git.pack import PackWriter, _IdSet

IDS = st.binary(min_size=20, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(IDS, max_size=300), st.lists(IDS, max_size=50))
def test_id_set_answers_as_a_set_of_bytes_does(added: list[bytes], asked: list[bytes]) -> None:
    ids, reference = _IdSet(), set()
    for oid in added:
        if oid not in ids:
            ids.add(oid)
        reference.add(oid)
    assert len(ids) == len(reference)
    assert all(oid in ids for oid in reference)
    assert [oid in ids for oid in asked] == [oid in reference for oid in asked]


def test_id_set_grows_past_its_first_table() -> None:
    ids = _IdSet()
    many = [hashlib.sha1(b"%d" % n).digest() for n in range(20000)]  # > 4096 slots / 2
    for oid in many:
        ids.add(oid)
    assert len(ids) == 20000 and all(oid in ids for oid in many)
    assert hashlib.sha1(b"other").digest() not in ids


def test_a_pack_of_many_objects_passes_git_verify_pack(tmp_path: Path) -> None:
    """Thousands of objects in two sealed packs: git reads both indexes and every object."""
    git_dir = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    writer = PackWriter(git_dir)
    blobs = [os.urandom(n % 97) + b"%d" % n for n in range(5000)]
    ids = [writer.add(b) for b in blobs[:3000]]
    writer.seal()
    ids += [writer.add(b) for b in blobs[3000:]]
    ids.append(writer.add(blobs[0]))  # written already: not again
    writer.finish()
    packs = sorted((git_dir / "objects" / "pack").glob("pack-*.idx"))
    assert len(packs) == 2
    counts = 0
    for idx in packs:
        out = subprocess.run(
            ["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True, text=True
        ).stdout
        counts += sum(1 for line in out.splitlines() if " blob " in line)
    assert counts == 5000
    got = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch-check"],
        input="\n".join(ids[:10] + ids[-10:]) + "\n",
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "missing" not in got and got.count(" blob ") == 20


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_objects_on_both_sides_of_the_small_object_level_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Small objects are deflated at a cheaper level than the rest, the CRC-32 of the index
    comes from isal where installed: git verifies every object and reads each one back."""
    module, _ = zlib_backend(backend)
    monkeypatch.setattr(pack, "_DEFLATE", module)
    monkeypatch.setattr(pack, "_SMALL_LEVEL", 0 if module is not zlib else 1)
    git_dir = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    writer = PackWriter(git_dir)
    text = b"".join(b"line %d of a config file\n" % n for n in range(5000))
    sizes = [0, 1, 100, pack._SMALL - 1, pack._SMALL, pack._SMALL + 1, len(text)]
    blobs = [text[:n] for n in sizes] + [os.urandom(pack._SMALL - 1)]
    ids = [writer.add(b) for b in blobs]
    big = text * 300  # streamed (over _PACK_WHOLE)
    ids.append(writer.add_stream(len(big), [big[i : i + 65536] for i in range(0, len(big), 65536)]))
    writer.finish()
    for idx in (git_dir / "objects" / "pack").glob("pack-*.idx"):
        subprocess.run(["git", "verify-pack", str(idx)], check=True, capture_output=True)
    for oid, data in zip(ids, [*blobs, big], strict=True):
        got = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "blob", oid],
            check=True,
            capture_output=True,
        ).stdout
        assert got == data
