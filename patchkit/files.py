"""Files of the maintainer's project: atomic writes and the project lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from patchkit.errors import LockedError, PatchkitError

__all__ = [
    "SCRATCH_DIR",
    "atomic_write",
    "checkpoint",
    "project_lock",
    "scratch_dir",
    "sweep_scratch",
]

_checkpoints = 0


def checkpoint(name: str) -> None:
    """A named step of a multi-step change, for fault-injection tests (a no-op otherwise).

    ``PATCHKIT_TEST_KILL_AT=N`` makes the Nth checkpoint of the process SIGKILL the process
    itself; ``PATCHKIT_TEST_CHECKPOINTS=FILE`` appends each checkpoint's name to FILE;
    ``PATCHKIT_TEST_ENOSPC=TEXT`` makes a checkpoint whose name contains TEXT raise ENOSPC.
    """
    global _checkpoints
    env = os.environ
    if not (
        "PATCHKIT_TEST_KILL_AT" in env
        or "PATCHKIT_TEST_CHECKPOINTS" in env
        or "PATCHKIT_TEST_ENOSPC" in env
    ):
        return
    _checkpoints += 1
    log = env.get("PATCHKIT_TEST_CHECKPOINTS")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{_checkpoints} {name}\n")
    if env.get("PATCHKIT_TEST_KILL_AT") == str(_checkpoints):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    enospc = env.get("PATCHKIT_TEST_ENOSPC")
    if enospc and enospc in name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new, empty file ``.NAME.XXXXXXXXXXXX.tmp`` beside ``path``, open for writing: what
    ``tempfile.mkstemp`` makes (mode 0600, never an existing file or a link), without loading
    ``tempfile`` and ``random`` into every command for it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}")


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half.

    The temp file lives beside the target (same filesystem) and keeps the old mode.
    ``durable=False`` skips the fsync, for files that can be rebuilt (caches): a reader still
    sees the old or the new file, but after a power loss the new one may be empty, which its
    reader must take as a miss. The project's own files are always written durably.
    Raises PatchkitError (and leaves the old file intact) on a full disk or a read-only dir.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    tmp_name = ""
    try:
        fd, tmp_name = _temp_beside(path)
        with os.fdopen(fd, "wb") as f:
            checkpoint(f"write {path.name}")
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        checkpoint(f"rename {path.name}")
        os.replace(tmp_name, path)
    except BaseException as e:
        # Ctrl-C included: never leave a temp file beside the real one.
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        if not isinstance(e, OSError):
            raise
        why = os.strerror(e.errno) if e.errno else str(e)
        raise PatchkitError(f"{path}: cannot write ({why}); the old file is unchanged") from e


@contextlib.contextmanager
def project_lock(state_dir: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the project's lock for a command that changes files or the store.

    ``wait``: seconds to wait for another process to let it go (0: refuse at once).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / "lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"{lock_path}: another patchkit process is working on this project; "
                        "wait for it to finish"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


# -- scratch directories: throwaway work that a killed process must not leave behind --------


SCRATCH_DIR = "scratch"  # under .patchkit/


@contextlib.contextmanager
def scratch_dir(state_dir: Path, prefix: str) -> Iterator[Path]:
    """A new directory under ``state_dir/scratch`` for this process's throwaway work (a
    forecast's repository and worktree), removed on exit.

    Its lock file (``NAME.lock`` beside it) is held while it is in use; one whose lock can be
    taken belongs to a process that is gone (SIGKILL, power loss), and the next
    :func:`sweep_scratch` removes it.
    """
    import shutil  # here, not on every command's path

    root = state_dir / SCRATCH_DIR
    while True:
        name = f"{prefix}{os.getpid()}-{os.urandom(4).hex()}"  # secrets.token_hex, unloaded
        lock = root / f"{name}.lock"
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            raise PatchkitError(
                f"{root}: cannot make a scratch directory ({e.strerror or e})"
            ) from e
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A sweep may have taken the new lock before us and unlinked it: then start again.
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    path = root / name
    try:
        checkpoint("scratch: made")
        path.mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(fd)


def sweep_scratch(state_dir: Path) -> list[str]:
    """Remove what killed processes left in ``state_dir/scratch`` (see :func:`scratch_dir`);
    the names of the directories removed. Cheap when there is nothing: one ``stat``."""
    root = state_dir / SCRATCH_DIR
    try:
        names = os.listdir(root)
    except OSError:
        return []
    import shutil  # only where there is a scratch directory

    removed = []
    for name in sorted(names):
        if not name.endswith(".lock"):
            if not (root / f"{name}.lock").exists() and (root / name).is_dir():
                shutil.rmtree(root / name, ignore_errors=True)  # no owner at all
                removed.append(name)
            continue
        lock = root / name
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # in use
            path = root / name[: -len(".lock")]
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
            if not path.exists():  # a git the killed process started may still be writing
                lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed
