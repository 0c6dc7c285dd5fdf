"""Fixtures of the CLI tests: a Ui over in-memory consoles, for calling command functions."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from patchkit.cli.ui import Ui


class MemoryUi:
    """A Ui whose consoles write to strings (what a person would see, without colour)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.out_buf, self.err_buf = io.StringIO(), io.StringIO()
        self.ui = Ui(
            out=Console(file=self.out_buf, width=100, color_system=None),
            err=Console(file=self.err_buf, width=100, color_system=None),
            quiet=quiet,
        )

    @property
    def out(self) -> str:
        return self.out_buf.getvalue()

    @property
    def err(self) -> str:
        return self.err_buf.getvalue()


@pytest.fixture
def memory_ui() -> MemoryUi:
    return MemoryUi()
