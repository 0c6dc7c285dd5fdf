"""Linked worktrees of the store (rebase, edit): create, drive, remove."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from patchkit.git.store import Store

__all__ = [
    "Worktree",
    "clear_worktree",
    "enable_worktree_config",
    "worktree_add",
    "worktree_remove",
]


class Worktree:
    """A linked worktree of the store, checked out sparsely on the paths patches touch."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path

    def git(
        self, *args: str, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return self.store.git(*args, cwd=self.path, check=check, input=input)

    def drop_stale_locks(self) -> None:
        """Remove the lock files a git command killed inside this worktree left (index.lock,
        HEAD.lock): they would make every later command fail. Only for the worktree's owner,
        who holds the project lock, so no git command of its own can be running in it."""
        try:
            text = (self.path / ".git").read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return
        if not text.startswith("gitdir:"):
            return
        admin = Path(text[len("gitdir:") :].strip())
        if not admin.is_absolute():
            admin = self.path / admin
        for name in ("index.lock", "HEAD.lock"):
            (admin / name).unlink(missing_ok=True)

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


def _no_step(name: str) -> None:
    pass


def enable_worktree_config(store: Store, *, step: Callable[[str], None] = _no_step) -> None:
    """Per-worktree config (for sparse checkout); `core.bare` must then live in the bare
    repository's own config.worktree, or every linked worktree would count as bare.

    Redone whole until it is complete, in an order that keeps the store bare at every step
    (a kill between two of these `git config` runs must not leave a store without
    `core.bare`, which git then takes for a worktree of the directory it runs in).
    """
    out = store.git(
        "config",
        "--show-scope",
        "--get-regexp",
        r"^(core\.bare|extensions\.worktreeconfig)$",
        check=False,
    ).stdout.decode("utf-8", "replace")
    have = {tuple(line.split()) for line in out.splitlines()}
    if have == {("local", "extensions.worktreeconfig", "true"), ("worktree", "core.bare", "true")}:
        return
    step("worktree: config")
    store.git("config", "extensions.worktreeConfig", "true")
    store.git("config", "--worktree", "core.bare", "true")
    step("worktree: config unset")
    store.git("config", "--unset-all", "core.bare", check=False)  # the shared one only


def _sparse_pattern(path: str) -> str:
    escaped = "".join("\\" + c if c in "*?[]\\!# " else c for c in path)
    return "/" + escaped


# A `git worktree add` takes milliseconds between creating its admin dir and naming the
# worktree in it: an unnamed admin dir older than this is left by a killed add.
_STALE_ADD_SECONDS = 60.0


def worktree_add(
    store: Store,
    path: Path,
    commit: str,
    paths: Iterable[str],
    *,
    step: Callable[[str], None] = _no_step,
) -> Worktree:
    """Check ``commit`` out at ``path``, only the files in ``paths`` (sparse).

    Whatever an earlier, interrupted add or remove of ``path`` left (its directory, its
    registration in the store, locked or not) is cleared first, so this always starts clean.
    ``step(name)`` is called between the git commands (fault-injection checkpoints).
    """
    clear_worktree(store, path)
    enable_worktree_config(store, step=step)
    step("worktree: add")
    store.git("worktree", "add", "-q", "--no-checkout", "--detach", str(path), commit)
    step("worktree: sparse")
    wt = Worktree(store, path)
    wt.git("config", "--worktree", "core.sparseCheckout", "true")
    patterns = sorted({_sparse_pattern(p) for p in paths}) or ["/.patchkit-nothing"]
    # `info/sparse-checkout` is per worktree; `--git-path info` would name the store's shared
    # info/, which a linked worktree does not read (it would check everything out).
    sparse = Path(wt.git("rev-parse", "--git-path", "info/sparse-checkout").stdout.decode().strip())
    if not sparse.is_absolute():
        sparse = path / sparse
    sparse.parent.mkdir(parents=True, exist_ok=True)
    sparse.write_text("\n".join(patterns) + "\n", encoding="utf-8")
    step("worktree: checkout")
    wt.git("checkout", "-q", "--detach", commit)
    return wt


def worktree_remove(store: Store, path: Path) -> None:
    """Remove the worktree at ``path`` and its registration, whatever state a kill left them in."""
    clear_worktree(store, path)


def clear_worktree(store: Store, path: Path) -> None:
    """Remove ``path`` and every registration of it in the store; prune the stale ones.

    A SIGKILL inside `git worktree add` leaves its admin dir (``worktrees/<id>``) *locked*
    ("initializing") with a null HEAD: `git worktree prune` and `remove --force` skip locked
    worktrees, `git fsck` reports "detached HEAD points at nothing" and the next add of the
    same path is refused. So the admin dirs that name ``path`` are removed here directly.
    """
    _drop_stale_config_locks(store)
    store.git("worktree", "remove", "--force", "--force", str(path), check=False)
    if path.exists() or path.is_symlink():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    admin_root = store.path / "worktrees"
    if admin_root.is_dir():
        wanted = _resolved(path / ".git")
        for admin in sorted(admin_root.iterdir()):
            if not admin.is_dir():
                continue
            gitdir = _registered_gitdir(admin)
            if gitdir is None:
                if _stale_unnamed(admin):
                    shutil.rmtree(admin, ignore_errors=True)
            elif gitdir == wanted:
                shutil.rmtree(admin, ignore_errors=True)
    store.git("worktree", "prune", check=False)


# The store's own config files (`config.worktree`: the bare store's, once per-worktree config
# is on): `git config` writes one through `<file>.lock`.
_CONFIG_LOCKS = ("config.lock", "config.worktree.lock")


def _drop_stale_config_locks(store: Store) -> None:
    """Remove the lock a `git config` killed mid-write left on the store's config: git refuses
    every later change of the config while it exists ("could not lock config file ...: File
    exists"), so no worktree could be made again, and a rebase started after an --abort would
    stop half-started, in progress. Only for callers holding the project lock: no `git
    config` of ours can be running then."""
    for name in _CONFIG_LOCKS:
        (store.path / name).unlink(missing_ok=True)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _registered_gitdir(admin: Path) -> Path | None:
    """The ``.git`` file of the worktree an admin dir belongs to (``None``: not written yet)."""
    try:
        text = (admin / "gitdir").read_text(encoding="utf-8", errors="surrogateescape").strip()
    except OSError:
        return None
    if not text:
        return None
    gitdir = Path(text)
    return _resolved(gitdir if gitdir.is_absolute() else admin / gitdir)


def _stale_unnamed(admin: Path) -> bool:
    """An admin dir without a ``gitdir``, locked "initializing" long ago: a killed add's."""
    try:
        reason = (admin / "locked").read_text(encoding="utf-8", errors="replace").strip()
        age = time.time() - admin.stat().st_mtime
    except OSError:
        return False
    return reason == "initializing" and age > _STALE_ADD_SECONDS
