"""The git repository the maintainer keeps the project in (not patchkit's store).

Read-only queries, paths relative to the project directory (which may be a subdirectory
of the repository). What counts as a changed patch or release is the caller's business.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from pathlib import Path

from patchkit.git.runner import run_git_in

__all__ = ["ProjectRepo", "public_url"]


def _paths(out: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


class ProjectRepo:
    """The repository around ``root``. Raises StoreError only when git cannot run at all."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        self.prefix = prefix  # root's path inside the repository, "" or ending in "/"

    @classmethod
    def find(cls, root: Path) -> ProjectRepo | None:
        """The repository ``root`` lies in, or None when it is in none."""
        proc = run_git_in(root, "rev-parse", "--show-prefix")
        if proc.returncode != 0:
            return None
        return cls(root, proc.stdout.decode("utf-8", "surrogateescape").strip())

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_git_in(self.root, *args)

    def has_commit(self, ref: str) -> bool:
        return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode == 0

    def read_at(self, ref: str, rel: str) -> bytes | None:
        """The bytes of ``rel`` (relative to the project) at ``ref``; None where it is absent."""
        proc = self._git("show", f"{ref}:{self.prefix}{rel}")
        return proc.stdout if proc.returncode == 0 else None

    def changed_since(self, ref: str) -> set[str] | None:
        """Files of the project that differ from ``ref``, committed or not (None: diff failed)."""
        proc = self._git("diff", "--name-only", "--no-renames", "-z", ref, "--", ".")
        if proc.returncode != 0:
            return None
        return {p[len(self.prefix) :] for p in _paths(proc.stdout)}  # diff names repo paths

    def untracked(self, under: str) -> set[str]:
        """Files below ``under`` that git does not track and does not ignore."""
        proc = self._git("ls-files", "--others", "--exclude-standard", "-z", "--", under)
        return set(_paths(proc.stdout))  # ls-files names paths relative to the project

    def head(self) -> str | None:
        """The commit checked out (None: no commit yet)."""
        proc = self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def remote_url(self, name: str = "origin") -> str | None:
        """Where the repository is published (``public_url`` of the remote ``name``)."""
        proc = self._git("remote", "get-url", name)
        if proc.returncode != 0:
            return None
        return public_url(proc.stdout.decode("utf-8", "replace").strip())


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")


def public_url(remote: str) -> str | None:
    """A remote's address as a browsable https URL, without credentials or ``.git``; None
    for a local path. What an image label may show: a token in the remote never leaks.

    >>> public_url("git@github.com:acme/poste-isolated.git")
    'https://github.com/acme/poste-isolated'
    >>> public_url("https://x-access-token:secret@github.com/acme/poste-isolated")
    'https://github.com/acme/poste-isolated'
    """
    remote = remote.strip()
    if "://" not in remote:
        m = _SCP_LIKE.match(remote)
        if m is None or remote.startswith(("/", ".")):
            return None
        remote = f"ssh://{m.group(1)}/{m.group(2)}"
    url = urllib.parse.urlsplit(remote)
    if url.scheme not in ("https", "http", "ssh", "git") or not url.hostname:
        return None
    path = url.path.rstrip("/").removesuffix(".git")
    web = url.scheme in ("https", "http")  # ssh and git remotes: their host's https address
    host = url.hostname + (f":{url.port}" if url.port and web else "")
    return f"{url.scheme if web else 'https'}://{host}{path}"
