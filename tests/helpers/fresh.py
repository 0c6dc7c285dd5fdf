"""A fresh interpreter, for what a command loads at start-up: runs ``code`` with this
checkout first on the path, then says which of ``modules`` it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["modules_loaded"]

_CHECKOUT = Path(__file__).resolve().parents[2]


def modules_loaded(code: str, modules: Sequence[str], *args: str) -> list[str]:
    """Which of ``modules`` are in ``sys.modules`` once ``code`` ran (``args`` are its
    ``sys.argv[1:]``), sorted."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {list(modules)!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(_CHECKOUT)}
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(out.stdout.splitlines()[-1])
    return loaded
