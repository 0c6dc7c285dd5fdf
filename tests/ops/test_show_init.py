"""init (a new project, never overwriting), show (a release's file) and diff (upstream's change)."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchkit import Project
from patchkit.errors import ConfigError, NotFoundError, UsageError
from patchkit.ops.show import parse_version_path
from tests.helpers.projectbuilder import make_project, write_tree

REDIS = """--- a/etc/redis/redis.conf
+++ b/etc/redis/redis.conf
@@ -1 +1 @@
-port 6379
+port 0
"""


def test_init_writes_a_project_that_opens_and_imports(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "rel", {"etc/redis/redis.conf": "port 6379\n"})
    root = tmp_path / "new"
    proj = Project.init(
        root, image="docker.io/analogic/poste.io", version="2.5.24", source=f"dir:{tree}"
    )
    assert proj.versions.base == "2.5.24"
    assert proj.versions.upstream.image == "docker.io/analogic/poste.io"
    assert proj.series.entries == ()
    assert (root / ".gitignore").read_text() == ".patchkit/\n"
    proj.import_release("2.5.24")
    assert proj.show("2.5.24", "etc/redis/redis.conf") == b"port 6379\n"


def test_init_appends_to_gitignore_once_and_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc")
    Project.init(tmp_path, image="docker.io/library/nginx", version="1.27")
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\n.patchkit/\n"
    before = (tmp_path / "upstream-versions.toml").read_bytes()
    with pytest.raises(ConfigError, match="exists already"):
        Project.init(tmp_path, image="docker.io/library/nginx", version="1.28")
    assert (tmp_path / "upstream-versions.toml").read_bytes() == before
    with pytest.raises(UsageError, match="--version"):
        Project.init(tmp_path / "x", image="docker.io/library/nginx")


def test_init_refuses_a_label_that_cannot_be_a_release_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="version label"):
        Project.init(tmp_path, image="docker.io/library/nginx", version="bad label")
    assert list(tmp_path.iterdir()) == []


def project(tmp_path: Path) -> Project:
    root = make_project(
        tmp_path,
        {
            "1.0": {"etc/redis/redis.conf": "port 6379\n", "etc/a": "a\n", "etc/gone": "x\n"},
            "2.0": {
                "etc/redis/redis.conf": "port 6379\nbind ::1\n",
                "etc/a": "a2\n",
                "etc/new": "n\n",
            },
        },
        {"redis.patch": REDIS},
        base="1.0",
    )
    proj = Project.open(root)
    proj.import_release("1.0")
    proj.import_release("2.0")
    return proj


def test_show_reads_upstream_or_patched_without_a_checkout(tmp_path: Path) -> None:
    proj = project(tmp_path)
    assert proj.show("1.0", "etc/redis/redis.conf") == b"port 6379\n"
    assert proj.show("1.0", "/etc/redis/redis.conf", patched=True) == b"port 0\n"
    with pytest.raises(NotFoundError, match=r"1\.0:etc/nope"):
        proj.show("1.0", "etc/nope")
    assert parse_version_path("2.5.24:/etc/x") == ("2.5.24", "etc/x")
    with pytest.raises(UsageError):
        parse_version_path("etc/x")


def test_diff_lists_upstream_changes_all_given_or_touched(tmp_path: Path) -> None:
    proj = project(tmp_path)
    every = proj.diff("1.0", "2.0")
    assert dict((p, s) for s, p in every.files) == {
        "etc/a": "M",
        "etc/gone": "D",
        "etc/new": "A",
        "etc/redis/redis.conf": "M",
    }
    touched = proj.diff("1.0", "2.0", touched=True)
    assert touched.files == (("M", "etc/redis/redis.conf"),)
    assert "+bind ::1" in touched.text and "1.0/etc/redis/redis.conf" in touched.text
    only = proj.diff("1.0", "2.0", ["etc/a"], stat=True)
    assert only.files == (("M", "etc/a"),) and "etc/a" in only.text and "@@" not in only.text
    assert proj.diff("1.0", "2.0").to_dict()["command"] == "diff"
