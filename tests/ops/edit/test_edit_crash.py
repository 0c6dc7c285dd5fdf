"""A save killed at every checkpoint (SIGKILL, as tests/ops/test_crash.py does): patches/ is
the old set or the new one, byte for byte, and the next command recovers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patchkit import Project
from tests.ops.edit.conftest import files, git


def _prepare(template: Path, dest: Path) -> Project:
    shutil.copytree(template, dest, symlinks=True)
    p = Project.open(dest / "project")
    wt = Path(p.edit("a.patch").worktree)
    path = wt / "etc/a.conf"
    path.write_text(path.read_text().replace("line 2\n", "line 2 too\n"))
    git(wt, "commit", "-q", "-a", "--amend", "--no-edit")
    (wt / "etc/new.conf").write_text("new\n")
    git(wt, "add", "--sparse", "etc/new.conf")
    git(wt, "commit", "-qm", "Add new")
    return p


def _save(
    root: Path,
    *,
    kill_at: int | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PATCHKIT_TEST_")}
    full.update(env or {})
    if kill_at is not None:
        full["PATCHKIT_TEST_KILL_AT"] = str(kill_at)
    if log is not None:
        full["PATCHKIT_TEST_CHECKPOINTS"] = str(log)
    proc = subprocess.run(
        [sys.executable, "-m", "patchkit", "--project", str(root), "edit", "--save"],
        env=full,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc.returncode


@pytest.fixture(scope="module")
def reference(
    _template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, bytes], dict[str, bytes], list[str]]:
    """(old set, new set, checkpoint names) of an uninterrupted save."""
    tmp = tmp_path_factory.mktemp("edit-crash-ref")
    p = _prepare(_template, tmp / "t")
    old = files(p.patches_dir)
    log = tmp / "log"
    assert _save(p.root, log=log) == 0
    new = files(p.patches_dir)
    assert set(new) - set(old) == {"add-new.patch"}
    assert {k for k in old if old[k] != new[k]} == {"a.patch", "series"}
    return old, new, [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "two-renames"])
def test_kill_save_at_every_checkpoint(
    _template: Path,
    tmp_path: Path,
    reference: tuple[dict[str, bytes], dict[str, bytes], list[str]],
    fallback: bool,
) -> None:
    old, new, names = reference
    points: list[int] = list(range(1, len(names) + 1))
    if fallback:  # the two-renames path differs only around the swap
        points = [i for i, n in enumerate(names, 1) if "swap" in n or "set" in n or "adopt" in n]
    env = {"PATCHKIT_TEST_NO_EXCHANGE": "1"} if fallback else {}
    for n in points:
        where = f"killed at checkpoint {n} ({names[n - 1]})"
        p = _prepare(_template, tmp_path / f"k{n}")
        assert _save(p.root, kill_at=n, env=env) == -9, where
        now = files(p.patches_dir) if p.patches_dir.exists() else None
        if now is None:
            assert fallback, where  # only between the fallback's two renames
        else:
            assert now in (old, new), where
        # The next command recovers; a save then ends with the new set. Every other run
        # alternates with an abort first.
        st = p.edit_status()
        assert st.open, where
        assert files(p.patches_dir) in (old, new), where
        if n % 2:
            p.edit_abort()
            assert files(p.patches_dir) in (old, new), where
        result = p.edit_save()
        assert not result.stopped, where
        assert files(p.patches_dir) == new, where
        leftovers = [x.name for x in p.root.iterdir() if x.name.startswith(".patches")]
        assert leftovers == [], where
        shutil.rmtree(tmp_path / f"k{n}")
