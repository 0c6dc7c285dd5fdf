"""patchkit.git.objects: the blob reader's tree queries (modes, symlinks on a path, globs)."""

from __future__ import annotations

from pathlib import Path

from patchkit.git.objects import MODE_EXEC, MODE_FILE, MODE_LINK, TreeEntry
from patchkit.git.store import Store


def _tree(tmp_path: Path) -> tuple[Store, str]:
    store = Store.open(tmp_path / "store.git")
    with store.fast_import() as fi:
        files = {
            "etc/real/x.conf": TreeEntry(mode=MODE_FILE, blob=fi.blob(b"x\n")),
            "etc/link": TreeEntry(mode=MODE_LINK, blob=fi.blob(b"/tmp")),
            "bin/tool": TreeEntry(mode=MODE_EXEC, blob=fi.blob(b"#!/bin/sh\n")),
            "opt/haraka-smtp/config/plugins": TreeEntry(mode=MODE_FILE, blob=fi.blob(b"a\n")),
            "opt/haraka-submission/config/plugins": TreeEntry(mode=MODE_FILE, blob=fi.blob(b"b\n")),
        }
        fi.commit("refs/heads/t", files, "t\n")
    return store, "refs/heads/t"


def test_symlinked_names_paths_that_are_or_lie_below_a_link(tmp_path: Path) -> None:
    store, rev = _tree(tmp_path)
    with store.blob_reader() as reader:
        assert reader.symlinked(rev, ["etc/link/x", "etc/link", "etc/real/x.conf", "nope/x"]) == {
            "etc/link/x",
            "etc/link",
        }


def test_modes_of_files_links_and_absent_paths(tmp_path: Path) -> None:
    store, rev = _tree(tmp_path)
    with store.blob_reader() as reader:
        assert reader.modes(rev, ["bin/tool", "etc/link", "etc/real/x.conf", "etc", "no"]) == {
            "bin/tool": "100755",
            "etc/link": "120000",
            "etc/real/x.conf": "100644",
            "etc": None,  # a directory is not a blob
            "no": None,
        }


def test_list_paths_matches_globs_with_braces_and_prefixes(tmp_path: Path) -> None:
    store, rev = _tree(tmp_path)
    with store.blob_reader() as reader:
        assert reader.list_paths(rev, ["opt/haraka-{smtp,submission}/config/plugins"]) == [
            "opt/haraka-smtp/config/plugins",
            "opt/haraka-submission/config/plugins",
        ]
        assert reader.list_paths(rev, ["**/x.conf", "bin/*"]) == ["bin/tool", "etc/real/x.conf"]
        assert reader.list_paths(rev, ["etc/**"]) == ["etc/link", "etc/real/x.conf"]
