"""patchkit.git.pack: the writer's id set and index columns (issue 15: flat memory)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

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
