"""Projects and a git runner for the edit worktree tests (real git, pinned identity)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from patchkit import Project
from tests.helpers.projectbuilder import make_project, numbered, udiff

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Maintainer",
    "GIT_AUTHOR_EMAIL": "m@example.org",
    "GIT_COMMITTER_NAME": "Maintainer",
    "GIT_COMMITTER_EMAIL": "m@example.org",
    "GIT_AUTHOR_DATE": "2001-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2001-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
}

A = numbered(20)
B = numbered(12, "bee")
C = numbered(10, "sea")
E = "listen = 127.0.0.1\nport = 25\n"

FORMAT_PATCH_HEADER = (
    "From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001\n"
    "From: Someone <someone@example.org>\n"
    "Date: Tue, 2 Jan 2024 10:00:00 +0100\n"
    "Subject: [PATCH 2/3] bee: change line 3\n"
    "\n"
    "Upstream wants this later.\n"
    "---\n"
    " etc/b.conf | 2 +-\n"
    " 1 file changed, 1 insertion(+), 1 deletion(-)\n"
    "\n"
)
EDIT_TOML = (
    'description = "listen everywhere"\n\n'
    "[[edit]]\n"
    'files = "etc/e.conf"\n'
    'replace = "127.0.0.1"\n'
    'with = "0.0.0.0"\n'
)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full.update(GIT_ENV)
    full.update(env or {})
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def series_patches() -> dict[str, str]:
    a2 = A.replace("line 5\n", "line 5 ours\n")
    return {
        "a.patch": udiff(
            "etc/a.conf", A, a2, "Description: patch a\n more about a\nForwarded: no\n\n"
        ),
        "a2.patch": udiff(
            "etc/a.conf", a2, a2.replace("line 9\n", "line 9 two\n"), "Description: a two\n\n"
        ),
        "b.patch": FORMAT_PATCH_HEADER
        + udiff("etc/b.conf", B, B.replace("bee 3\n", "bee 3 changed\n"))
        + "-- \n2.39.5\n\n",
        "listen.edit.toml": EDIT_TOML,
        "c.patch": udiff(
            "etc/c.conf", C, C.replace("sea 4\n", "sea 4 ours\n"), "Description: c\n\n"
        ),
    }


SERIES = (
    "# the series\n"
    "a.patch\n"
    "a2.patch  # second on a\n"
    "\n"
    "# from upstream's list\n"
    "b.patch -p1\n"
    "listen.edit.toml\n"
    "c.patch\n"
)

RELEASE = {
    "etc/a.conf": A,
    "etc/b.conf": B,
    "etc/c.conf": C,
    "etc/e.conf": E,
    "etc/other.conf": "untouched\n",
    "usr/share/doc/readme": "docs\n",
}


def build_project(tmp: Path) -> Project:
    root = make_project(
        tmp,
        {"1.0": RELEASE, "1.1": {**RELEASE, "etc/c.conf": C.replace("sea 4\n", "sea 4 up\n")}},
        series_patches(),
        base="1.0",
        series=SERIES,
    )
    p = Project.open(root)
    p.import_release("1.0")
    p.import_release("1.1")
    return p


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("edit-template")
    build_project(tmp)
    return tmp


@pytest.fixture
def project(_template: Path, tmp_path: Path) -> Project:
    """A fresh copy of the project (store included) for each test."""
    import shutil

    dest = tmp_path / "t"
    shutil.copytree(_template, dest, symlinks=True)
    # The releases' dir: sources point at the template; they are imported already.
    return Project.open(dest / "project")


def stat_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root``: bytes and mtime (ns)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
