"""patchkit's version: the one place it is written.

``pyproject.toml`` reads it (``dynamic = ["version"]``, setuptools ``attr``) without importing
the package, so keep it a plain string assignment. Bump it with the CHANGELOG.md entry.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "1.0.0"
