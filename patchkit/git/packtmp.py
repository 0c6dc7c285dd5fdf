"""The temporary files of pack writers (:class:`patchkit.git.pack.PackWriter`): their names,
the lock each live writer holds, and clearing what a killed writer left.

Apart from the writer so that opening a store (:meth:`patchkit.git.store.Store.open`, which
clears a killed import's files) does not load the writer, its thread and zlib: a command that
only reads, a cold ``patchkit matrix`` for one, opens a store too. Imports ``os``, ``re``,
``contextlib`` and ``pathlib``.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

__all__ = ["TMP_PREFIX", "clear_stale_packs"]

TMP_PREFIX = "tmp_pack_pk_"  # + a writer's token (12 hex digits): its files and its lock
_TOKEN = re.compile(r"tmp_pack_pk_([0-9a-f]{12})(?:\.lock|_)")
_LEGACY_AGE = 3600  # seconds: files of writers without a lock (older patchkit) are stale then


def _try_lock(path: Path) -> int | None:
    """An fd of ``path`` holding its exclusive flock, or None (held elsewhere, or gone)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def clear_stale_packs(pack_dir: Path) -> list[str]:
    """Remove the temporary packs and indexes of writers that are gone (a killed import):
    every writer holds the flock of its ``tmp_pack_pk_<token>.lock`` while it lives, so a
    group whose lock can be taken, or that has none, is stale. Returns the names removed."""
    import time

    try:
        names = [n for n in os.listdir(pack_dir) if n.startswith(TMP_PREFIX)]
    except OSError:
        return []
    groups: dict[str | None, list[str]] = {}
    for name in names:
        m = _TOKEN.match(name)
        groups.setdefault(m.group(1) if m else None, []).append(name)
    removed: list[str] = []
    for token, members in groups.items():
        if token is None:  # no token: an older patchkit's; stale once old
            now = time.time()
            for name in members:
                with contextlib.suppress(OSError):
                    if now - os.lstat(pack_dir / name).st_mtime > _LEGACY_AGE:
                        os.unlink(pack_dir / name)
                        removed.append(name)
            continue
        lock = f"{TMP_PREFIX}{token}.lock"
        fd = _try_lock(pack_dir / lock) if lock in members else None
        if lock in members and fd is None:
            continue  # its writer is alive
        try:
            for name in sorted(members, key=lambda n: n == lock):  # the lock last
                with contextlib.suppress(OSError):
                    os.unlink(pack_dir / name)
                    removed.append(name)
        finally:
            if fd is not None:
                os.close(fd)
    return removed
