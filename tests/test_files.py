"""patchkit.files: scratch directories that a killed process does not leave behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from patchkit.errors import PatchkitError
from patchkit.files import SCRATCH_DIR, scratch_dir, sweep_scratch


def test_a_scratch_directory_in_use_is_not_swept_and_is_gone_after(tmp_path: Path) -> None:
    with scratch_dir(tmp_path, "job-") as path:
        (path / "work").write_text("busy\n")
        assert sweep_scratch(tmp_path) == []
        assert (path / "work").exists()
    assert list((tmp_path / SCRATCH_DIR).iterdir()) == []


def test_what_a_killed_owner_left_is_swept(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from patchkit.files import scratch_dir\n"
        "with scratch_dir(Path(sys.argv[1]), 'job-') as p:\n"
        "    (p / 'half').write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (tmp_path / SCRATCH_DIR).iterdir())
    assert len(left) == 2 and left[1] == left[0] + ".lock"
    assert sweep_scratch(tmp_path) == [left[0]]
    assert list((tmp_path / SCRATCH_DIR).iterdir()) == []


def test_a_directory_without_its_lock_is_swept_and_nothing_is_one_stat(tmp_path: Path) -> None:
    assert sweep_scratch(tmp_path) == []  # no scratch directory at all
    orphan = tmp_path / SCRATCH_DIR / "job-1-ab"
    orphan.mkdir(parents=True)
    (orphan / "f").write_text("x")
    assert sweep_scratch(tmp_path) == ["job-1-ab"]
    assert not orphan.exists()


def test_two_scratch_directories_of_one_process_are_distinct(tmp_path: Path) -> None:
    with scratch_dir(tmp_path, "a-") as one, scratch_dir(tmp_path, "a-") as two:
        assert one != two and one.is_dir() and two.is_dir()
        assert str(os.getpid()) in one.name


def test_a_scratch_directory_that_cannot_be_made_is_one_error(tmp_path: Path) -> None:
    (tmp_path / SCRATCH_DIR).write_text("a file where the directory goes\n")
    with (
        pytest.raises(PatchkitError, match="cannot make a scratch directory"),
        scratch_dir(tmp_path, "job-"),
    ):
        pass
