"""The ``patchkit`` command: a thin shell over ``patchkit.Project``.

``main`` (parser + dispatch table) is in :mod:`patchkit.cli.main`, one function per command in
:mod:`patchkit.cli.commands`, consoles and JSON on stdout in :mod:`patchkit.cli.ui`, exit codes
and the error handler in :mod:`patchkit.cli.exits`. docs/cli.md documents the command.
"""

from __future__ import annotations

from patchkit.cli.main import main

__all__ = ["main"]
