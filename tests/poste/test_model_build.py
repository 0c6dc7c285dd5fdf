"""bench/model/build.py against a machine that has one of the model's packages installed.

The scratch `apt-get download` must not read the machine's dpkg status: with nginx-common
from the machine's security suite installed (newer than the suite the model takes), apt made
the installed version the candidate and failed ("E: Can't find a source to download version
'1.22.1-9+deb12u12' of 'nginx-common:amd64'"). This test installs such a version for real
(apt-get, as root), builds the model of the machine's own Debian suite, and removes the
package again if it installed it. Slow (a whole model build, about a minute): `-m "not slow"`
leaves it out; CI runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "nginx-common"  # a model package with no daemon: configuration files only
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
LOCK = ["-o", "DPkg::Lock::Timeout=300"]


def _cannot(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI runs this test)")
    pytest.skip(reason)


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, env=APT_ENV)


def _codename() -> str:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    m = re.search(r"^VERSION_CODENAME=(\S+)$", text, re.M)
    return m.group(1) if m else ""


def _installed(package: str) -> str:
    r = _sh("dpkg-query", "-W", "-f", "${Status} ${Version}", package, check=False)
    words = r.stdout.split()
    return words[-1] if r.returncode == 0 and "installed" in words[:3] else ""


@pytest.fixture
def newer_than_the_suite() -> Iterator[tuple[str, str, str]]:
    """(model label, the suite's own version, the machine's newer one), that one installed."""
    if os.geteuid() != 0:
        _cannot("needs root: installs a Debian package on this machine")
    for tool in ("apt-get", "apt-cache", "dpkg-query", "node", "npm"):
        if shutil.which(tool) is None:
            _cannot(f"{tool} not found")
    codename = _codename()
    label = f"model-{codename}"
    if codename not in ("bookworm", "trixie"):
        _cannot(f"this machine runs Debian {codename or '?'}: no model release of that suite")
    madison = _sh("apt-cache", "madison", PACKAGE, check=False).stdout
    versions: dict[str, str] = {}
    for line in madison.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) == 3:
            versions.setdefault(cols[2].split()[1], cols[1])  # "URI suite/main arch" -> version
    suite_version = versions.get(f"{codename}/main", "")
    candidate = re.search(r"Candidate: (\S+)", _sh("apt-cache", "policy", PACKAGE).stdout)
    newer = candidate.group(1) if candidate else ""
    if not suite_version or not newer or newer == suite_version:
        _cannot(
            f"the machine's apt offers no {PACKAGE} newer than {codename}/main's "
            f"({suite_version or '?'}; candidate {newer or '?'}): nothing to test with"
        )
    before = _installed(PACKAGE)
    if before != newer:
        r = _sh("apt-get", "install", "-y", "-q", "--no-install-recommends", *LOCK,
                f"{PACKAGE}={newer}", check=False)  # fmt: skip
        if r.returncode != 0:
            _cannot(f"apt-get install {PACKAGE}={newer} failed: {r.stderr.strip()[-200:]}")
    try:
        assert _installed(PACKAGE) == newer
        yield label, suite_version, newer
    finally:
        if not before:
            _sh("apt-get", "purge", "-y", "-q", *LOCK, PACKAGE, check=False)
        elif before != newer:
            _sh("apt-get", "install", "-y", "-q", "--allow-downgrades", *LOCK,
                f"{PACKAGE}={before}", check=False)  # fmt: skip


@pytest.mark.slow
def test_model_build_takes_the_suites_version_whatever_the_machine_has_installed(
    newer_than_the_suite: tuple[str, str, str], tmp_path: Path
) -> None:
    label, suite_version, installed = newer_than_the_suite
    out = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench/model/build.py"), "--only", label, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
        env={**os.environ, "HOME": str(tmp_path)},  # npm's cache and config: not the user's
    )
    assert proc.returncode == 0, proc.stderr[-600:]
    assert "Can't find a source to download version" not in proc.stderr
    nginx = json.loads((out / f"{label}.json").read_text())["components"]["nginx"]
    assert f"Package: {PACKAGE} Version: {suite_version}" in nginx, nginx
    assert all(installed not in entry for entry in nginx)
    assert (out / label / "index.json").is_file()
