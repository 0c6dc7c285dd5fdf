"""Crash safety by fault injection: SIGKILL at every checkpoint of rebase, --continue, refresh.

`patchkit.files.checkpoint` SIGKILLs the process at its Nth call when PATCHKIT_TEST_KILL_AT=N
(checkpoints sit before and after every state save, atomic write (temp written / renamed),
git pick, commit, reset and worktree step). After each kill the project must either be
restored byte for byte by `rebase --abort`, or reach, through `--continue`, exactly the
files an uninterrupted run gives.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.cli import main
from patchkit.errors import LockedError, PatchkitError
from tests.helpers.projectbuilder import (
    C11,
    make_project,
    numbered,
    rebase_scenario,
    snapshot,
    udiff,
)

KILLED = -9


def _project(tmp: Path) -> Path:
    return rebase_scenario(tmp).root


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PATCHKIT_TEST_")}


def _cli(
    root: Path,
    *args: str,
    kill_at: int | None = None,
    log: Path | None = None,
    git_kill_at: int | None = None,
    config_kill_at: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    env = _env()
    if config_kill_at is not None:
        env["PATH"] = f"{_config_killer(root)}{os.pathsep}{env['PATH']}"
        env["PATCHKIT_TEST_CONFIG_KILL_AT"] = str(config_kill_at)
        env["PATCHKIT_TEST_CONFIG_COUNT"] = str(root / ".patchkit/config-kill-count")
    if kill_at is not None:
        env["PATCHKIT_TEST_KILL_AT"] = str(kill_at)
    if log is not None:
        env["PATCHKIT_TEST_CHECKPOINTS"] = str(log)
    if git_kill_at is not None:
        env["PATCHKIT_TEST_GIT_KILL_AT"] = str(git_kill_at)
        env["PATCHKIT_TEST_GIT_COUNT"] = str(root / ".patchkit/git-kill-count")
    return subprocess.run(
        [sys.executable, "-m", "patchkit", "--project", str(root), *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
        # Its own process group: a kill from inside git (the hook below) takes git too.
        start_new_session=git_kill_at is not None or config_kill_at is not None,
    )


def _store(root: Path) -> Path:
    return root / ".patchkit/store.git"


def _fsck_clean(root: Path, where: str) -> None:
    """`git fsck --full --strict` finds nothing wrong in the store (dangling objects of an
    aborted rebase are not wrong: they are garbage for gc)."""
    proc = subprocess.run(
        ["git", "--git-dir", str(_store(root)), "fsck", "--full", "--strict", "--no-progress"],
        capture_output=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    )
    bad = [
        line
        for line in proc.stderr.decode("utf-8", "replace").splitlines()
        if not line.startswith("notice:")
    ]
    assert proc.returncode == 0 and not bad, f"{where}: git fsck: {bad or proc.returncode}"


def _no_rebase_in_progress(root: Path, where: str) -> None:
    """What --abort promises at every kill point: no rebase in progress (for every command
    that asks: rebase --status, the guard of a new rebase), and a store git still takes for
    a bare repository (a store without `core.bare` is a worktree of whatever directory git
    runs in)."""
    assert not (root / ".patchkit/rebase/state.json").exists(), where
    assert Project.open(root).rebase_status() is None, where
    bare = subprocess.run(
        ["git", "--git-dir", str(_store(root)), "rev-parse", "--is-bare-repository"],
        capture_output=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    )
    assert bare.stdout == b"true\n", f"{where}: the store is no longer bare"
    locks = sorted(p.name for p in _store(root).glob("*.lock"))
    assert not locks, f"{where}: git lock files left in the store: {locks}"


def _fresh_rebase_works(root: Path, where: str) -> None:
    """A new `rebase --onto` after the recovery: stops on c.patch's conflict, as always."""
    assert _quiet("--project", str(root), "rebase", "--onto", "1.1") == 1, where
    assert (root / ".patchkit/rebase/worktree/etc/c.conf").exists(), where


def _count(root: Path, tmp: Path, *args: str) -> int:
    log = tmp / "checkpoints.log"
    log.unlink(missing_ok=True)
    proc = _cli(root, *args, log=log)
    assert proc.returncode in (0, 1), proc.stderr
    return len(log.read_text().splitlines())


def _resolve(root: Path) -> None:
    wt = root / ".patchkit/rebase/worktree"
    (wt / "etc/c.conf").write_text(C11.replace("line 4 theirs\n", "line 4 theirs+ours\n"))


def _quiet(*args: str) -> int:
    with (
        contextlib.redirect_stdout(open(os.devnull, "w")),
        contextlib.redirect_stderr(open(os.devnull, "w")),
    ):
        return main(list(args))


def _abort(root: Path) -> tuple[int, str]:
    """`rebase --abort` in this process: its exit code and what it said on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["--project", str(root), "rebase", "--abort"])
    return code, err.getvalue()


def _finish(root: Path) -> None:
    """From any state, drive the rebase to completion as a person would."""
    r = str(root)
    for _ in range(5):
        if not (root / ".patchkit/rebase/state.json").exists():
            if 'base = "1.1"' in (root / "upstream-versions.toml").read_text():
                return
            assert _quiet("--project", r, "rebase", "--onto", "1.1") in (0, 1)
            continue
        wt = root / ".patchkit/rebase/worktree/etc/c.conf"
        if wt.exists() and "<<<<<<<" in wt.read_text():
            _resolve(root)
        assert _quiet("--project", r, "rebase", "--continue") in (0, 1)
    raise AssertionError("the rebase did not complete")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("crash")
    yield _project(tmp)


@pytest.fixture(scope="module")
def completed(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What an uninterrupted rebase + resolution + --continue leaves."""
    root = tmp_path_factory.mktemp("ref") / "project"
    shutil.copytree(pristine, root, symlinks=True)
    _finish(root)
    return snapshot(root)


def _copy(pristine: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(pristine, dest, symlinks=True)
    return dest


def _no_temp_files(root: Path) -> None:
    stray = [p for p in snapshot(root) if Path(p).name.endswith(".tmp")]
    assert not stray, stray


def test_kill_at_every_step_of_rebase_then_abort_or_continue(
    pristine: Path, completed: dict[str, bytes], tmp_path: Path
) -> None:
    before = snapshot(pristine)
    total = _count(_copy(pristine, tmp_path / "count"), tmp_path, "rebase", "--onto", "1.1")
    assert total >= 30
    for n in range(1, total + 1):
        root = _copy(pristine, tmp_path / f"abort{n}")
        assert _cli(root, "rebase", "--onto", "1.1", kill_at=n).returncode == KILLED
        code = _quiet("--project", str(root), "rebase", "--abort")
        assert code in (0, 3)  # 3: killed before the state existed: nothing to abort
        assert snapshot(root) == before, f"kill point {n}: --abort did not restore the project"
        _no_rebase_in_progress(root, f"kill point {n}, aborted")
        _fsck_clean(root, f"kill point {n}, aborted")
        _fresh_rebase_works(root, f"kill point {n}, aborted")
        shutil.rmtree(root)

        root = _copy(pristine, tmp_path / f"cont{n}")
        assert _cli(root, "rebase", "--onto", "1.1", kill_at=n).returncode == KILLED
        _finish(root)
        assert snapshot(root) == completed, f"kill point {n}: --continue gave another result"
        _no_temp_files(root)
        _fsck_clean(root, f"kill point {n}, continued")
        shutil.rmtree(root)


def test_kill_at_every_step_of_continue(
    pristine: Path, completed: dict[str, bytes], tmp_path: Path
) -> None:
    before = snapshot(pristine)
    root = _copy(pristine, tmp_path / "count")
    assert _quiet("--project", str(root), "rebase", "--onto", "1.1") == 1
    _resolve(root)
    total = _count(root, tmp_path, "rebase", "--continue")
    assert total >= 15
    for n in range(1, total + 1):
        root = _copy(pristine, tmp_path / f"c{n}")
        assert _quiet("--project", str(root), "rebase", "--onto", "1.1") == 1
        _resolve(root)
        assert _cli(root, "rebase", "--continue", kill_at=n).returncode == KILLED
        if n % 2:
            # Odd kill points: the person gives up.
            assert _quiet("--project", str(root), "rebase", "--abort") in (0, 3)
            if (root / "upstream-versions.toml").read_text() != before[
                "upstream-versions.toml"
            ].decode():
                assert snapshot(root) == completed  # killed after completion: nothing to abort
            else:
                assert snapshot(root) == before, f"kill point {n}"
        else:
            _finish(root)
            assert snapshot(root) == completed, f"kill point {n}"
        _no_temp_files(root)
        _fsck_clean(root, f"kill point {n}")
        shutil.rmtree(root)


# Installed in the store for the tests below: SIGKILLs patchkit and every git it runs (the
# process group) from *inside* a git command, at the Nth reference update git prepares
# (its lock file taken, nothing written yet): inside `git worktree add` (the registration
# locked "initializing", HEAD null), fast-import, commit, reset. Checkpoints cannot reach
# there: they run between git commands.
_KILL_HOOK = """#!/bin/sh
cat >/dev/null
[ "$1" = prepared ] && [ -n "$PATCHKIT_TEST_GIT_KILL_AT" ] || exit 0
n=$(( $(cat "$PATCHKIT_TEST_GIT_COUNT" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$PATCHKIT_TEST_GIT_COUNT"
[ "$n" = "$PATCHKIT_TEST_GIT_KILL_AT" ] && kill -KILL 0
exit 0
"""


def _with_kill_hook(pristine: Path, dest: Path) -> Path:
    root = _copy(pristine, dest)
    hook = _store(root) / "hooks/reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(_KILL_HOOK)
    hook.chmod(0o755)
    return root


def _ref_updates(pristine: Path, tmp: Path) -> int:
    root = _with_kill_hook(pristine, tmp / "refcount")
    # A kill point past the last update: the hook only counts.
    assert _cli(root, "rebase", "--onto", "1.1", git_kill_at=10_000).returncode == 1
    return int((root / ".patchkit/git-kill-count").read_text())


def test_kill_inside_git_then_abort_or_continue_leaves_a_clean_store(
    pristine: Path, completed: dict[str, bytes], tmp_path: Path
) -> None:
    """Issue 11, item 10: a kill inside `git worktree add` left a locked registration with
    a null HEAD that --abort did not clear (fsck: "worktrees/worktree/HEAD: detached HEAD
    points at nothing"; the next rebase: "git worktree failed: use 'add -f -f' to
    override..."). After a kill inside any git command, --abort or --continue must leave
    the store fsck-clean and a new rebase possible."""
    before = snapshot(pristine)
    total = _ref_updates(pristine, tmp_path)
    assert total >= 8
    locked_seen = False
    for n in range(1, total + 1):
        root = _with_kill_hook(pristine, tmp_path / f"gabort{n}")
        assert _cli(root, "rebase", "--onto", "1.1", git_kill_at=n).returncode == KILLED
        locked = any(_store(root).glob("worktrees/*/locked"))
        locked_seen = locked_seen or locked
        assert _quiet("--project", str(root), "rebase", "--abort") in (0, 3)
        assert snapshot(root) == before, f"git kill point {n}: --abort did not restore"
        _fsck_clean(root, f"git kill point {n}, aborted")
        _fresh_rebase_works(root, f"git kill point {n}, aborted")
        shutil.rmtree(root)
        if n % 2 and not locked:
            continue  # going on instead: every other point (for time), and the report's one

        root = _with_kill_hook(pristine, tmp_path / f"gcont{n}")
        assert _cli(root, "rebase", "--onto", "1.1", git_kill_at=n).returncode == KILLED
        _finish(root)
        assert snapshot(root) == completed, f"git kill point {n}: --continue gave another result"
        _fsck_clean(root, f"git kill point {n}, continued")
        shutil.rmtree(root)
    # One of the kill points is the one of the report: inside `git worktree add`.
    assert locked_seen


# Installed first on PATH for the test below: a stand-in for git killed while it holds the
# lock of the store's config. At the Nth `git --git-dir STORE config` that writes, it takes
# the lock as git's lockfile API does (`config.lock`, or `config.worktree.lock` for
# --worktree; created exclusively, nothing written yet) and SIGKILLs the process group
# (patchkit and itself) before the real git would write; every other command runs the real
# git. Neither checkpoints nor the reference-transaction hook reach there, and killing the
# real git inside its few microseconds of holding that lock is a matter of luck: that is how
# an independent test found it (issue 23, item 7: 2 of 120 random kill points).
_CONFIG_KILLER = """#!/bin/sh
gitdir=; write=; lock=config.lock; prev=
for a in "$@"; do
  [ "$prev" = --git-dir ] && gitdir=$a
  case $a in
    config) [ -z "$write" ] && write=yes ;;
    --get|--get-all|--get-regexp|--list|-l) write=no ;;
    --worktree) lock=config.worktree.lock ;;
  esac
  prev=$a
done
if [ -n "$gitdir" ] && [ "$write" = yes ]; then
  n=$(( $(cat "$PATCHKIT_TEST_CONFIG_COUNT" 2>/dev/null || echo 0) + 1 ))
  echo "$n" >"$PATCHKIT_TEST_CONFIG_COUNT"
  if [ "$n" = "$PATCHKIT_TEST_CONFIG_KILL_AT" ]; then
    (set -C; : >"$gitdir/$lock") && kill -KILL 0
  fi
fi
exec __GIT__ "$@"
"""


def _config_killer(root: Path) -> Path:
    where = root.parent / f"{root.name}-bin"
    if not (where / "git").exists():
        where.mkdir(exist_ok=True)
        real = shutil.which("git")
        assert real is not None
        (where / "git").write_text(_CONFIG_KILLER.replace("__GIT__", real))
        (where / "git").chmod(0o755)
    return where


def test_kill_inside_git_config_then_abort_leaves_no_rebase_in_progress(
    pristine: Path, tmp_path: Path
) -> None:
    """Issue 23, item 7: a `git config` killed while it held the store's config lock left
    `config.lock` behind; --abort returned, but every new `rebase --onto` then failed making
    its worktree ("could not lock config file"), after saving its state: "a rebase onto 1.1
    is in progress", for ever. --abort (and a new rebase) must clear it; the store must stay
    bare whichever of the `git config` runs the kill hits."""
    before = snapshot(pristine)
    counted = _copy(pristine, tmp_path / "count")
    assert _cli(counted, "rebase", "--onto", "1.1", config_kill_at=1000).returncode == 1
    total = int((counted / ".patchkit/config-kill-count").read_text())
    assert total >= 2  # per-worktree config is turned on by the first rebase: its writes
    for n in range(1, total + 1):
        root = _copy(pristine, tmp_path / f"cfg{n}")
        assert _cli(root, "rebase", "--onto", "1.1", config_kill_at=n).returncode == KILLED
        assert list(_store(root).glob("config*.lock")), f"config kill point {n}: no lock taken"
        assert _quiet("--project", str(root), "rebase", "--abort") in (0, 3)
        assert snapshot(root) == before, f"config kill point {n}: --abort did not restore"
        _no_rebase_in_progress(root, f"config kill point {n}, aborted")
        _fsck_clean(root, f"config kill point {n}, aborted")
        _fresh_rebase_works(root, f"config kill point {n}, aborted")
        shutil.rmtree(root)


RANDOM_KILLS = 24  # seeded: the same moments, as far as this machine's speed allows


def test_kill_at_random_moments_then_abort_leaves_no_rebase_in_progress(
    pristine: Path, tmp_path: Path
) -> None:
    """SIGKILL of `rebase --onto` and every git it runs (the process group) at seeded random
    moments, inside git commands as well as between them: --abort restores the project and
    leaves no rebase in progress, and a new rebase works."""
    before = snapshot(pristine)
    timing = _copy(pristine, tmp_path / "timing")
    start = time.perf_counter()
    assert _cli(timing, "rebase", "--onto", "1.1").returncode == 1
    length = time.perf_counter() - start
    rng = random.Random(23)
    for n in range(RANDOM_KILLS):
        delay = rng.uniform(0.1, 1.1) * length
        where = f"random kill {n} ({delay:.3f} s of {length:.3f} s)"
        root = _copy(pristine, tmp_path / f"rnd{n}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "patchkit", "--project", str(root), "rebase", "--onto", "1.1"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # it may have finished: a stop
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code, said = _abort(root)
        assert code in (0, 3), f"{where}: --abort: {said}"
        assert snapshot(root) == before, f"{where}: --abort did not restore the project"
        _no_rebase_in_progress(root, f"{where} (--abort said: {said.strip() or 'nothing'})")
        _fsck_clean(root, where)
        _fresh_rebase_works(root, where)
        shutil.rmtree(root)


REFRESH_BASE = numbered(40)
REFRESH_MOVED = "".join(f"top {i}\n" for i in range(4)) + REFRESH_BASE
REFRESH_PATCHES = {
    f"p{i}.patch": udiff(
        f"f{i}",
        REFRESH_BASE,
        REFRESH_BASE.replace(f"line {5 + 10 * i}\n", f"line {5 + 10 * i} x\n"),
        f"Description: keep me {i}\n\n",
    )
    for i in range(3)
}


@pytest.fixture
def offset_project(tmp_path: Path) -> Path:
    root = make_project(
        tmp_path, {"1": {f"f{i}": REFRESH_MOVED for i in range(3)}}, REFRESH_PATCHES, base="1"
    )
    Project.open(root).import_release("1")
    return root


def test_kill_at_every_step_of_refresh(offset_project: Path, tmp_path: Path) -> None:
    ref = _copy(offset_project, tmp_path / "ref")
    assert Project.open(ref).refresh() == ("p0.patch", "p1.patch", "p2.patch")
    wanted = snapshot(ref)
    total = _count(_copy(offset_project, tmp_path / "count"), tmp_path, "refresh")
    assert total >= 9
    for n in range(1, total + 1):
        root = _copy(offset_project, tmp_path / f"r{n}")
        assert _cli(root, "refresh", kill_at=n).returncode == KILLED
        for name, old in REFRESH_PATCHES.items():
            # Each patch file is whole: the old bytes or the new, never a mix.
            assert (root / "patches" / name).read_bytes() in (
                old.encode(),
                wanted[f"patches/{name}"],
            )
        Project.open(root).refresh()
        assert snapshot(root) == wanted, f"kill point {n}"
        shutil.rmtree(root)


def test_disk_full_during_refresh_leaves_old_files(
    offset_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC injected at the write of p1.patch (the checkpoint hook, works unprivileged)."""
    before = snapshot(offset_project)
    monkeypatch.setenv("PATCHKIT_TEST_ENOSPC", "write p1.patch")
    with pytest.raises(
        PatchkitError,
        match=r"p1\.patch: cannot write \(No space left on device\); the old file is unchanged",
    ):
        Project.open(offset_project).refresh()
    now = snapshot(offset_project)
    assert now["patches/p1.patch"] == before["patches/p1.patch"]
    assert now["patches/p2.patch"] == before["patches/p2.patch"]
    _no_temp_files(offset_project)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_real_full_disk_during_refresh_leaves_old_files(offset_project: Path) -> None:
    """patches/ on a tiny tmpfs filled to the last byte: a real ENOSPC from the kernel."""
    before = snapshot(offset_project)
    patches = offset_project / "patches"
    saved = {p.name: p.read_bytes() for p in patches.iterdir()}
    with _tmpfs(patches, "64k"):
        for name, data in saved.items():
            (patches / name).write_bytes(data)
        fd = os.open(patches / ".filler", os.O_WRONLY | os.O_CREAT, 0o644)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 512)
        os.close(fd)
        with pytest.raises(PatchkitError, match="No space left on device"):
            Project.open(offset_project).refresh()
        (patches / ".filler").unlink()
        now = {p.name: p.read_bytes() for p in patches.iterdir()}
        assert now == saved
    assert snapshot(offset_project) == before


def test_immutable_patches_dir_during_refresh_leaves_old_files(offset_project: Path) -> None:
    """A read-only patches/ that binds root too: the immutable attribute (chattr +i)."""
    before = snapshot(offset_project)
    patches = offset_project / "patches"
    if (
        subprocess.run(["chattr", "+i", str(patches)], capture_output=True, check=False).returncode
        != 0
    ):
        pytest.skip("chattr +i is not supported here")
    try:
        with pytest.raises(PatchkitError, match="cannot write"):
            Project.open(offset_project).refresh()
    finally:
        subprocess.run(["chattr", "-i", str(patches)], check=False)
    assert snapshot(offset_project) == before


def test_a_second_process_is_refused_with_a_clear_error(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path / "p")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom patchkit.files import project_lock\nfrom pathlib import Path\n"
            f"with project_lock(Path({str(root / '.patchkit')!r})):\n    print('locked', flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        proc = _cli(root, "rebase", "--onto", "1.1")
        assert proc.returncode == 3
        err = proc.stderr.decode()
        assert (
            err.startswith("patchkit: error: ")
            and "another patchkit process" in err
            and err.count("\n") == 1
        )
        with pytest.raises(LockedError):
            Project.open(root).refresh()
    finally:
        holder.kill()
        holder.wait()
    # While a rebase is in progress, a second start is refused by name.
    assert _cli(root, "rebase", "--onto", "1.1").returncode == 1
    proc = _cli(root, "rebase", "--onto", "1.1")
    assert proc.returncode == 3 and b"a rebase onto 1.1 is in progress" in proc.stderr


def test_registrations_a_killed_worktree_add_left_are_cleared(
    pristine: Path, tmp_path: Path
) -> None:
    """Both leftovers of a kill inside `git worktree add`: the registration of our worktree
    (locked "initializing", null HEAD; the fault of the report) and, killed a step earlier,
    an admin dir that does not name its worktree yet (cleared once it is old)."""
    root = _copy(pristine, tmp_path / "p")
    assert _quiet("--project", str(root), "rebase", "--onto", "1.1") == 1
    admin = _store(root) / "worktrees/worktree"
    (admin / "locked").write_text("initializing\n")
    (admin / "HEAD").write_text("0" * 40 + "\n")
    unnamed = _store(root) / "worktrees/worktree9"
    unnamed.mkdir()
    (unnamed / "locked").write_text("initializing\n")
    os.utime(unnamed, (0, 0))
    shutil.rmtree(root / ".patchkit/rebase/worktree")  # the kill came before the checkout
    assert _quiet("--project", str(root), "rebase", "--abort") == 0
    assert not (_store(root) / "worktrees").exists() or not any(
        (_store(root) / "worktrees").iterdir()
    )
    _fsck_clean(root, "after --abort")
    _fresh_rebase_works(root, "after --abort")
