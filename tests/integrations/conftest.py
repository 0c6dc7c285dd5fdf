"""Shared by the integration tests: this checkout as a git repository, tools beside the venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import PINNED_GIT_ENV, require_tool
from tests.images.conftest import proxy, repo  # the registry fixtures (test_action_watch)

__all__ = ["ROOT", "git", "proxy", "repo", "venv_tool", "working_tree_repo"]

ROOT = Path(__file__).resolve().parents[2]


def venv_tool(name: str) -> str:
    """A tool the test extra installs (beside this Python), else one on PATH, else skip."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else require_tool(name)


def git(cwd: Path, *args: str) -> str:
    # Pinned identity here too: module-scoped fixtures run before the autouse one sets it.
    env = {**os.environ, **PINNED_GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout


def working_tree_repo(dest: Path) -> Path:
    """A one-commit git repository of this checkout's working tree (tracked and new files,
    minus what .gitignore ignores): what pre-commit and build see once it is committed."""
    require_tool("git")
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    dest.mkdir(parents=True)
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree, not committed yet
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel, follow_symlinks=False)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "working tree")
    return dest
