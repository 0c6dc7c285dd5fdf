"""A package's names loaded on first use (PEP 562): the one rule of the lazy packages.

A package that re-exports names from heavy modules (the layer reader, the matrix engine)
sets ``__getattr__ = lazy_names(__name__, {name: home module})``: a command that only needs
the package's light parts (``watch``, the warm matrix) does not pay for the rest at start-up.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (warm-path start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: each name of ``homes`` imported from its home
    module when first asked for, then kept in the package (later lookups are plain)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
