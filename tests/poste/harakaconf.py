"""Haraka's own config reader (haraka-config from npm, tests/poste/haraka), for the tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import in_ci

HARAKA_NODE = Path(__file__).parent / "haraka" / "node_modules"


def require_node_module(name: str) -> Path:
    """tests/poste/haraka/node_modules/NAME; skip (fail under CI=true) when npm ci did not run."""
    path = HARAKA_NODE / name
    if not path.is_dir():
        if in_ci():
            pytest.fail("tests/poste/haraka/node_modules missing: .ci/run runs npm ci there")
        pytest.skip(f"{name} not installed (cd tests/poste/haraka && npm ci)")
    return path


def haraka_ini(path: Path) -> dict[str, dict[str, str]]:
    """Parse an ini the way Haraka does (haraka-config from npm)."""
    require_node_module("haraka-config")
    js = (
        "const r=require('haraka-config/lib/reader');"
        f"console.log(JSON.stringify(r.read_config({json.dumps(str(path))},'ini')))"
    )
    out = subprocess.run(
        ["node", "-e", js], cwd=HARAKA_NODE.parent, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]
