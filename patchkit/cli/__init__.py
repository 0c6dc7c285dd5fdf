"""The ``patchkit`` command: a thin shell over ``patchkit.Project``.

``main`` (parser + dispatch table) is in :mod:`patchkit.cli.main`, one function per command in
:mod:`patchkit.cli.commands`, consoles and JSON on stdout in :mod:`patchkit.cli.ui`, exit codes
and the error handler in :mod:`patchkit.cli.exits`. docs/cli.md documents the command.
"""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from patchkit.cli.main import main

__all__ = ["main"]


class _Package(types.ModuleType):
    """``patchkit.cli.main`` is the function, loaded on first use: ``patchkit.cli.quick``
    runs a quiet JSON matrix without the parser and the other commands. (The function and
    its submodule share the name: importing the submodule rebinds the package's attribute
    to the module, so the attribute is answered here, as the eager import left it.)"""

    def __getattribute__(self, name: str) -> object:
        if name == "main":
            from patchkit.cli.main import main

            return main
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package
