"""Run a test module's imports twice: as configured, and with the tree packing every
file at once (`patchkit.images.tree.RootFS.pack` after each file, blob ids filled in at
once), so the OCI rules are checked on packed directories too (issue 15)."""

from __future__ import annotations

import pytest

import patchkit.images.layers as layers_module


@pytest.fixture(params=["as-configured", "packed-at-once"], autouse=True)
def tree_packing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "packed-at-once":
        monkeypatch.setattr(layers_module, "_PACK_EVERY", 1)
        monkeypatch.setattr(layers_module, "_PENDING", 1)
    return str(request.param)
