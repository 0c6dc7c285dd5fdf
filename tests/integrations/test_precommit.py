"""The pre-commit hooks (.pre-commit-hooks.yaml), run by the real pre-commit tool.

`pre-commit try-repo` installs this repository into a fresh virtualenv with pip (patchkit's
dependencies come from PyPI) and runs a hook on a sample project, as a user's commit would.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from patchkit import Project
from tests.helpers.projectbuilder import make_project, numbered, udiff
from tests.integrations.conftest import ROOT, git, venv_tool, working_tree_repo

pytestmark = pytest.mark.timeout(900)

CONF = numbered(10)
GOOD = udiff("etc/a.conf", CONF, CONF.replace("line 5\n", "line 5 ours\n"), "Description: a\n\n")
# @@ promises 3 old and 3 new lines (through line 9 of the file); the diff goes on at line 10.
BROKEN = (
    "Description: counts are wrong\n\n"
    "--- a/etc/a.conf\n+++ b/etc/a.conf\n@@ -1,3 +1,3 @@\n"
    " line 1\n-line 2\n+line 2 ours\n line 3\n line 4\n"
)
# Written against a line 5 the release does not have: neither side is there.
CONFLICT = udiff(
    "etc/a.conf",
    CONF.replace("line 5\n", "line five\n"),
    CONF.replace("line 5\n", "line 5 ours\n"),
    "Description: c\n\n",
)


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return working_tree_repo(tmp_path_factory.mktemp("hookrepo") / "patchkit")


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # Writable caches for pip and virtualenv (the tests' $HOME refuses every write).
    base = tmp_path_factory.mktemp("caches")
    return {
        "PIP_CACHE_DIR": str(base / "pip"),
        "VIRTUALENV_OVERRIDE_APP_DATA": str(base / "virtualenv"),
    }


def _sample(tmp_path: Path, patch: str) -> Path:
    root = make_project(tmp_path, {"1.0": {"etc/a.conf": CONF}}, {"a.patch": patch}, base="1.0")
    (root / ".gitignore").write_text(".patchkit/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "sample")
    return root


def _try_repo(
    project: Path, hook_repo: Path, caches: dict[str, str], tmp_path: Path, *hooks: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **caches, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit")}
    return subprocess.run(
        [venv_tool("pre-commit"), "try-repo", str(hook_repo), *hooks, "--all-files"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_hooks_file_declares_lint_and_check_on_patches_and_the_toml() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"patchkit-lint", "patchkit-check"}
    assert hooks["patchkit-lint"]["entry"] == "patchkit lint"
    assert hooks["patchkit-check"]["entry"] == "patchkit check"
    import re

    for hook in hooks.values():
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        files = re.compile(hook["files"])
        assert files.search("patches/series") and files.search("patches/sub/x.patch")
        assert files.search("upstream-versions.toml")
        assert not files.search("README.md") and not files.search("upstream-versions.toml.bak")


def test_lint_hook_passes_a_good_series_and_fails_a_broken_patch_with_one_line(
    tmp_path: Path, hook_repo: Path, caches: dict[str, str]
) -> None:
    good = _sample(tmp_path / "good", GOOD)
    proc = _try_repo(good, hook_repo, caches, tmp_path, "patchkit-lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "patchkit lint" in proc.stdout and "Passed" in proc.stdout

    broken = _sample(tmp_path / "broken", BROKEN)
    proc = _try_repo(broken, hook_repo, caches, tmp_path, "patchkit-lint")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Failed" in proc.stdout and "- exit code: 1" in proc.stdout
    assert "patches/a.patch:10: hunk ended at line 9 by its @@ counts" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_check_hook_applies_the_series_to_the_imported_base(
    tmp_path: Path, hook_repo: Path, caches: dict[str, str]
) -> None:
    good = _sample(tmp_path / "good", GOOD)
    Project.open(good).import_release("1.0")
    proc = _try_repo(good, hook_repo, caches, tmp_path, "patchkit-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "patchkit check" in proc.stdout and "Passed" in proc.stdout

    # A conflict fails the commit (exit 1) with the table that says which patch; a release
    # that is not imported fails with patchkit's one-line error (exit 3), no traceback.
    conflict = _sample(tmp_path / "conflict", CONFLICT)
    Project.open(conflict).import_release("1.0")
    proc = _try_repo(conflict, hook_repo, caches, tmp_path, "patchkit-check")
    assert proc.returncode == 1 and "- exit code: 1" in proc.stdout, proc.stdout + proc.stderr
    assert "a.patch" in proc.stdout and "conflict" in proc.stdout
    fresh = _sample(tmp_path / "fresh", GOOD)
    proc = _try_repo(fresh, hook_repo, caches, tmp_path, "patchkit-check")
    assert "- exit code: 3" in proc.stdout, proc.stdout + proc.stderr
    assert (
        "patchkit: error: version '1.0' is not imported yet; run: patchkit import 1.0"
        in proc.stdout
    )
    assert "Traceback" not in proc.stdout + proc.stderr
