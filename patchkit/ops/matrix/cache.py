"""The matrix cache: ``.patchkit/cache/matrix/``, one JSON file per (release label, tree).

Each file maps cell keys (:func:`patchkit.ops.matrix.keys.cell_keys`) to patch results, and
holds the release's blob ids of every path the series touches. A cache only ever costs
speed: a corrupt entry is a warning and is recomputed, a failed write a warning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path

from patchkit.core.model import PatchResult
from patchkit.errors import PatchkitError
from patchkit.files import atomic_write
from patchkit.ops.matrix.codec import patch_result_from_dict
from patchkit.ops.matrix.keys import CACHE_FORMAT

__all__ = ["CACHE_DIR", "CellCache", "Warn"]

CACHE_DIR = "cache/matrix"  # below the project's state directory

Warn = Callable[[str], None]


class CellCache:
    """Cells by key and blob ids by path, per (release label, tree); ``root`` None: no cache."""

    def __init__(self, root: Path | None, warn: Warn) -> None:
        self.root = root
        self.warn = warn

    def path(self, label: str, tree: str) -> Path | None:
        if self.root is None:
            return None
        name = hashlib.sha256(f"{label}\0{tree}".encode()).hexdigest()[:40]
        return self.root / f"{name}.json"

    def load(self, label: str, tree: str) -> tuple[dict[str, PatchResult], dict[str, str]]:
        path = self.path(label, tree)
        if path is None or not path.exists():
            return {}, {}
        try:
            doc = json.loads(path.read_bytes())
            if doc.get("format") != CACHE_FORMAT or doc.get("tree") != tree:
                raise ValueError("format or tree differs")
            raw_cells = doc["cells"]
            blobs = {str(k): str(v) for k, v in doc["blobs"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.warn(f"cache entry {path} is corrupt ({type(e).__name__}); recomputing {label}")
            return {}, {}
        cells: dict[str, PatchResult] = {}
        for key, value in raw_cells.items():
            try:
                cells[key] = patch_result_from_dict(value)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                self.warn(
                    f"cache entry {path} has a corrupt cell ({type(e).__name__}); recomputing it"
                )
        return cells, blobs

    def store(
        self, label: str, tree: str, cells: Mapping[str, PatchResult], blobs: Mapping[str, str]
    ) -> None:
        path = self.path(label, tree)
        if path is None:
            return
        doc = {
            "format": CACHE_FORMAT,
            "version": label,
            "tree": tree,
            "cells": {k: v.to_dict() for k, v in cells.items()},
            "blobs": dict(blobs),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Atomic: readers see the old entry or the new one, never half of one.
            atomic_write(path, json.dumps(doc, sort_keys=True).encode())
        except (OSError, PatchkitError) as e:
            why = e.strerror if isinstance(e, OSError) else _why(e)
            self.warn(f"cannot write cache entry {path} ({why}); results are still right")


def _why(error: PatchkitError) -> str:
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error)
