"""patchkit.core.objects: tree bodies are the ones git itself makes (`git mktree`)."""

from __future__ import annotations

import subprocess
import tempfile

from hypothesis import example, given, settings
from hypothesis import strategies as st

from patchkit.core.objects import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    git_object_id,
    tree_body,
)

NAME = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=6,
).filter(lambda n: n not in (".", ".."))
ENTRY = st.tuples(
    st.sampled_from([MODE_FILE, MODE_EXEC, MODE_LINK, MODE_TREE]),
    st.binary(min_size=20, max_size=20),
)


@settings(max_examples=60, deadline=None)
@example({"a": (MODE_TREE, bytes(20)), "a.b": (MODE_FILE, bytes(20)), "a0": (MODE_FILE, bytes(20))})
@given(st.dictionaries(NAME, ENTRY, min_size=0, max_size=8))
def test_tree_body_is_what_git_mktree_writes(entries: dict[str, tuple[int, bytes]]) -> None:
    rows = [(mode, name.encode(), oid) for name, (mode, oid) in entries.items()]
    mine = git_object_id(b"tree", tree_body(rows)).hex()
    listing = "".join(
        f"{mode:06o} {'tree' if mode == MODE_TREE else 'blob'} {oid.hex()}\t{name}\0"
        for name, (mode, oid) in entries.items()
    )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "init", "-q", "--bare", tmp], check=True)
        theirs = (
            subprocess.run(
                ["git", "--git-dir", tmp, "mktree", "-z", "--missing"],
                input=listing.encode(),
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .strip()
        )
    assert mine == theirs
