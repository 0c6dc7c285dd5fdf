"""A throwaway repository that borrows the store's objects (git alternates).

Git work that must leave the store exactly as it was (``patchkit forecast``) happens there:
its objects, refs, index and worktrees are written into the borrowing repository, which is
removed afterwards; the store is only read.
"""

from __future__ import annotations

from pathlib import Path

from patchkit.git.store import Store

__all__ = ["borrow"]


def borrow(store: Store, path: Path) -> Store:
    """A new bare repository at ``path`` (which must not exist) that reads ``store``'s objects.

    Nothing it does writes to ``store``: git writes objects, refs and worktree registrations
    into the repository it runs in, and only reads through an alternate.
    """
    path.mkdir(parents=True)
    scratch = Store(path)
    scratch.git("init", "--bare", "-q", "--template=")  # no sample hooks to copy
    objects = (store.path / "objects").resolve()
    (path / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (path / "objects" / "info" / "alternates").write_text(f"{objects}\n", encoding="utf-8")
    for key, value in (("gc.auto", "0"), ("core.logAllRefUpdates", "false")):
        scratch.git("config", key, value)
    return scratch
