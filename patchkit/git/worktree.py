"""Linked worktrees of the store (rebase, edit): create, drive, remove."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from patchkit.git.store import Store

__all__ = ["Worktree", "worktree_add", "worktree_remove"]


class Worktree:
    """A linked worktree of the store, checked out sparsely on the paths patches touch."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path

    def git(
        self, *args: str, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return self.store.git(*args, cwd=self.path, check=check, input=input)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.decode().strip()

    def unmerged(self) -> list[str]:
        out = self.git("diff", "--name-only", "-z", "--diff-filter=U").stdout
        return sorted({p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p})

    def quit_pick(self) -> None:
        self.git("cherry-pick", "--quit", check=False)

    def index_matches_head(self) -> bool:
        return self.git("diff", "--cached", "--quiet", "HEAD", check=False).returncode == 0

    def add_all(self) -> None:
        self.git("add", "-A", "--sparse", ".")

    def commit(self, message: str) -> str:
        self.git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", input=message.encode())
        return self.head()

    def reset_hard(self, commit: str) -> None:
        self.git("reset", "-q", "--hard", commit)

    def pick(self, commit: str, *, algorithm: str = "histogram") -> tuple[bool, str]:
        """3-way pick of ``commit`` without committing, with a diff algorithm (histogram, patience,
        minimal, myers); (ok, git's message)."""
        proc = self.git(
            "-c",
            "merge.conflictStyle=zdiff3",
            "-c",
            f"diff.algorithm={algorithm}",
            "cherry-pick",
            "--no-commit",
            "--allow-empty",
            "-X",
            f"diff-algorithm={algorithm}",
            commit,
            check=False,
        )
        msg = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        return proc.returncode == 0, msg

    def reset_soft(self, commit: str) -> None:
        """Move HEAD to ``commit``, keeping the index and the files."""
        self.git("reset", "-q", "--soft", commit)

    def add_paths(self, paths: Iterable[str]) -> None:
        selected = list(paths)
        if selected:
            self.git("add", "--sparse", "--", *selected)

    def changed_paths(self, commit: str) -> list[str]:
        """Files that differ from ``commit`` (staged, unstaged or untracked)."""
        out = self.git("diff", "--name-only", "-z", commit).stdout
        out += self.git("ls-files", "--others", "--exclude-standard", "-z").stdout
        return sorted({p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p})


def _enable_worktree_config(store: Store) -> None:
    """Per-worktree config (for sparse checkout); `core.bare` must then live in the bare
    repository's own config.worktree, or every linked worktree would count as bare."""
    if (
        store.git("config", "--get", "extensions.worktreeConfig", check=False).stdout.strip()
        == b"true"
    ):
        return
    store.git("config", "--unset", "core.bare", check=False)
    store.git("config", "extensions.worktreeConfig", "true")
    store.git("config", "--worktree", "core.bare", "true")


def _sparse_pattern(path: str) -> str:
    escaped = "".join("\\" + c if c in "*?[]\\!# " else c for c in path)
    return "/" + escaped


def _worktree_add(store: Store, path: Path, commit: str, paths: Iterable[str]) -> Worktree:
    _enable_worktree_config(store)
    store.git("worktree", "prune")
    store.git("worktree", "add", "-q", "--no-checkout", "--detach", str(path), commit)
    wt = Worktree(store, path)
    wt.git("config", "--worktree", "core.sparseCheckout", "true")
    patterns = sorted({_sparse_pattern(p) for p in paths}) or ["/.patchkit-nothing"]
    info = Path(wt.git("rev-parse", "--git-path", "info").stdout.decode().strip())
    if not info.is_absolute():
        info = path / info
    info.mkdir(parents=True, exist_ok=True)
    (info / "sparse-checkout").write_text("\n".join(patterns) + "\n", encoding="utf-8")
    wt.git("checkout", "-q", "--detach", commit)
    return wt


def worktree_add(store: Store, path: Path, commit: str, paths: Iterable[str]) -> Worktree:
    """Check ``commit`` out at ``path``, only the files in ``paths`` (sparse)."""
    return _worktree_add(store, path, commit, paths)


def worktree_remove(store: Store, path: Path) -> None:
    store.git("worktree", "remove", "--force", str(path), check=False)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    store.git("worktree", "prune", check=False)
