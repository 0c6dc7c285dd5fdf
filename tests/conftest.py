"""Shared fixtures: pinned git identity, no writes to $HOME, loopback only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PINNED_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    # $HOME lies below a regular file: any write there fails, even as root.
    blocker = tmp_path_factory.mktemp("nohome") / "file"
    blocker.write_text("")
    home = blocker / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("PATCHKIT_OFFLINE", "1")
    for key, value in PINNED_GIT_ENV.items():
        monkeypatch.setenv(key, value)
    yield


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """Path of a system tool; skip (or fail under CI=true) when it is missing."""
    import shutil

    path = shutil.which(name)
    if path is None:
        if in_ci():
            pytest.fail(f"{name} is required in CI (.ci/run installs it)")
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    d = tmp_path / "project"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The loopback docker-registry (.ci/registry.sh's, else one of the session's own);
    skips without the binary, fails under CI=true."""
    import shutil

    from tests.helpers import registry_server as rs

    external = rs.registry_from_env()
    if external is not None:
        yield external
        return
    if shutil.which(rs.REGISTRY_BIN) is None:
        reason = "Debian's docker-registry is not installed (apt-get install docker-registry)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    reg = rs.start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()
