"""The release: `python -m build` makes an sdist and a wheel that `twine check` passes, and the
wheel, installed from the file into a fresh venv (dependencies from the index), runs the demo."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from patchkit._version import __version__
from tests.conftest import in_ci
from tests.integrations.conftest import ROOT, venv_tool, working_tree_repo

pytestmark = pytest.mark.timeout(600)


def _require_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        if in_ci():
            pytest.fail(f"{name} is required in CI (pip install -e '.[test]')")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"PIP_CACHE_DIR": str(tmp_path_factory.mktemp("pip-cache"))}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory, caches: dict[str, str]) -> Path:
    """sdist + wheel of the working tree (as it would be committed), built as a release is."""
    _require_module("build")
    base = tmp_path_factory.mktemp("release")
    src = working_tree_repo(base / "src")
    out = base / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        env={**os.environ, **caches},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_build_makes_an_sdist_and_a_wheel_of_the_one_version(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"patchkit-{__version__}-py3-none-any.whl", f"patchkit-{__version__}.tar.gz"]
    with zipfile.ZipFile(dist / names[0]) as whl:
        files = set(whl.namelist())
        metadata = whl.read(f"patchkit-{__version__}.dist-info/METADATA").decode()
        entry_points = whl.read(f"patchkit-{__version__}.dist-info/entry_points.txt").decode()
    assert {"patchkit/_version.py", "patchkit/py.typed", "patchkit/cli/main.py"} <= files
    assert not any(f.startswith("tests/") for f in files)
    assert f"\nVersion: {__version__}\n" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    assert "patchkit = patchkit._entry:main" in entry_points
    with tarfile.open(dist / names[1]) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "patchkit/_version.py"} <= members


def test_twine_check_passes(dist: Path) -> None:
    twine = venv_tool("twine")
    proc = subprocess.run(
        [twine, "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(
    dist: Path, tmp_path: Path, caches: dict[str, str]
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, **caches}
    env.pop("VIRTUAL_ENV", None)
    [wheel] = dist.glob("*.whl")
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    patchkit = str(venv / "bin" / "patchkit")
    # Run from outside the checkout, so nothing is imported from it.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import patchkit; print(patchkit.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout
    version = subprocess.run(
        [patchkit, "--version"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert version.stdout.strip() == f"patchkit {__version__}", version.stdout + version.stderr
    demo = subprocess.run(
        [patchkit, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Traceback" not in demo.stdout + demo.stderr
    assert re.search(r"rebase", demo.stdout + demo.stderr, re.IGNORECASE)


def test_the_changelog_has_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(__version__)}\b", text, re.MULTILINE)
