"""Running git: the pinned identity and environment every git call uses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from patchkit.errors import StoreError

__all__ = ["run_git_in"]


# Pinned so that the same import or series always produces the same commit ids.
_IDENT = "patchkit <patchkit@localhost>"


_GIT_ENV = {
    "GIT_AUTHOR_NAME": "patchkit",
    "GIT_AUTHOR_EMAIL": "patchkit@localhost",
    "GIT_COMMITTER_NAME": "patchkit",
    "GIT_COMMITTER_EMAIL": "patchkit@localhost",
    "GIT_AUTHOR_DATE": "1970-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "1970-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def run_git_in(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """git in the maintainer's own repository at ``root`` (not the store), output captured.

    Raises StoreError only when git cannot be run at all; the caller reads returncode.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"})
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, env=env, check=False)
    except OSError as e:
        raise StoreError(f"cannot run git: {e}") from e
