"""Replacing every file of ``patches/`` at once: the complete new set is built beside it, then
the two directories are exchanged in one ``renameat2(RENAME_EXCHANGE)``, so that whatever
kills the process, ``patches/`` is the old set or the new one.

Where the kernel or filesystem lacks RENAME_EXCHANGE, two renames do it (patches/ -> old,
new -> patches/); between them there is no ``patches/`` for an instant, and the journal in
the edit state lets the next patchkit command roll forward (:func:`recover`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchkit.errors import PatchkitError
from patchkit.files import atomic_write, checkpoint

__all__ = ["build_new_set", "manifest", "recover", "rename_exchange", "swap_in"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc: ctypes.CDLL | None = None


def _renameat2() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return getattr(_libc, "renameat2", None)


def rename_exchange(a: Path, b: Path) -> bool:
    """Exchange ``a`` and ``b`` atomically; False where the system cannot (then nothing moved)."""
    if os.environ.get("PATCHKIT_TEST_NO_EXCHANGE"):
        return False
    try:
        fn = _renameat2()
    except OSError:
        return False
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise PatchkitError(f"{b}: cannot swap in the new patches ({os.strerror(err)}); unchanged")


def manifest(root: Path) -> dict[str, str]:
    """Every file below ``root``: relative path -> SHA-256 of its bytes (``+x``: executable)."""
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = digest + ("+x" if path.stat().st_mode & 0o111 else "")
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_new_set(patches: Path, temp: Path, writes: Mapping[str, bytes]) -> None:
    """``temp``: a copy of ``patches`` (bytes, modes and times kept) with ``writes`` applied."""
    if temp.exists():
        shutil.rmtree(temp)
    checkpoint("edit: copy patches")
    try:
        shutil.copytree(patches, temp, symlinks=True, copy_function=shutil.copy2)
        for rel, data in sorted(writes.items()):
            target = temp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)
        for dirpath, _dirs, _files in os.walk(temp):
            _fsync_dir(Path(dirpath))
        _fsync_dir(temp.parent)
    except OSError as e:
        shutil.rmtree(temp, ignore_errors=True)
        raise PatchkitError(
            f"{temp}: cannot build the new patches ({e.strerror}); unchanged"
        ) from e
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def swap_in(patches: Path, temp: Path, old: Path) -> None:
    """Make ``temp`` the new ``patches``; the old set is deleted."""
    checkpoint("edit: swap")
    if rename_exchange(temp, patches):
        checkpoint("edit: swapped")
        _fsync_dir(patches.parent)
        checkpoint("edit: drop old set")
        shutil.rmtree(temp, ignore_errors=True)
        return
    # The journal (written by the caller before this) lets the next command roll forward.
    os.rename(patches, old)
    checkpoint("edit: old set moved")
    os.rename(temp, patches)
    checkpoint("edit: swapped")
    _fsync_dir(patches.parent)
    checkpoint("edit: drop old set")
    shutil.rmtree(old, ignore_errors=True)


def recover(patches: Path, temp: Path, old: Path, wanted: Mapping[str, str]) -> bool:
    """After a kill during :func:`build_new_set`/:func:`swap_in`: finish or undo the swap.
    True when ``patches`` now holds the new set (``wanted``), False when the old one."""
    if not patches.exists() and temp.is_dir():
        os.rename(temp, patches)  # killed between the two renames of the fallback: forward
        _fsync_dir(patches.parent)
    done = manifest(patches) == dict(wanted)
    for leftover in (temp, old):
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)
    return done
