"""Fixtures of the registry tests: a fresh repository name, the token proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import registry_server as rs


@pytest.fixture
def repo() -> str:
    return f"patchkit-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def proxy(registry: rs.Registry) -> Iterator[rs.Proxy]:
    yield from rs.start_proxy(registry.address)
