"""The store's references read from its files: what git itself lists, or None."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from patchkit.git.refs import UPSTREAM_PREFIX, read_refs


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@localhost",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@localhost",
        GIT_AUTHOR_DATE="1970-01-01T00:00:00+0000",
        GIT_COMMITTER_DATE="1970-01-01T00:00:00+0000",
    )
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=stdin,
        capture_output=True,
        check=True,
        env=env,
        text=True,
    ).stdout.strip()


def _repo(tmp_path: Path) -> tuple[Path, list[str]]:
    repo = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    tree = _git(repo, "mktree", stdin="")
    commits = [_git(repo, "commit-tree", tree, "-m", f"release {n}") for n in range(3)]
    return repo, commits


def _listed(repo: Path) -> dict[str, str]:
    out = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)", UPSTREAM_PREFIX)
    return dict(line.split(" ") for line in out.splitlines() if line)


def test_loose_packed_and_both_read_as_git_lists_them(tmp_path: Path) -> None:
    repo, (c0, c1, c2) = _repo(tmp_path)
    assert read_refs(repo, UPSTREAM_PREFIX) == {}
    _git(repo, "update-ref", UPSTREAM_PREFIX + "1.0", c0)
    _git(repo, "update-ref", UPSTREAM_PREFIX + "2.0/rc", c1)  # a label with a slash
    _git(repo, "update-ref", "refs/patchkit/manifest/1.0", c2)  # another prefix: not listed
    assert (
        read_refs(repo, UPSTREAM_PREFIX)
        == _listed(repo)
        == {
            UPSTREAM_PREFIX + "1.0": c0,
            UPSTREAM_PREFIX + "2.0/rc": c1,
        }
    )
    _git(repo, "pack-refs", "--all")
    assert not (repo / "refs/patchkit/upstream/1.0").exists()
    assert read_refs(repo, UPSTREAM_PREFIX) == _listed(repo)
    _git(repo, "update-ref", UPSTREAM_PREFIX + "1.0", c2)  # loose again, over the packed one
    refs = read_refs(repo, UPSTREAM_PREFIX)
    assert refs == _listed(repo) and refs[UPSTREAM_PREFIX + "1.0"] == c2
    _git(repo, "update-ref", "-d", UPSTREAM_PREFIX + "2.0/rc")
    assert read_refs(repo, UPSTREAM_PREFIX) == _listed(repo)
    # A write in flight (its lock taken): the reference is still the one in its file.
    (repo / "refs/patchkit/upstream/3.0.lock").write_text(c1 + "\n")
    assert read_refs(repo, UPSTREAM_PREFIX) == _listed(repo)


def test_what_this_does_not_read_is_none(tmp_path: Path) -> None:
    repo, (c0, _, _) = _repo(tmp_path)
    assert read_refs(tmp_path / "nothing-here", UPSTREAM_PREFIX) == {}
    _git(repo, "symbolic-ref", UPSTREAM_PREFIX + "latest", "refs/heads/main")
    assert read_refs(repo, UPSTREAM_PREFIX) is None  # a symbolic reference
    _git(repo, "symbolic-ref", "--delete", UPSTREAM_PREFIX + "latest")
    _git(repo, "update-ref", UPSTREAM_PREFIX + "1.0", c0)
    assert read_refs(repo, UPSTREAM_PREFIX) == {UPSTREAM_PREFIX + "1.0": c0}
    (repo / "reftable").mkdir()  # git's other reference backend
    assert read_refs(repo, UPSTREAM_PREFIX) is None
