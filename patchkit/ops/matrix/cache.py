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
from patchkit.ops.matrix.keys import CACHE_FORMAT

__all__ = ["CACHE_DIR", "CellCache", "Warn"]

CACHE_DIR = "cache/matrix"  # below the project's state directory

Warn = Callable[[str], None]


class CellCache:
    """Cells by key and blob ids by path, per (release label, tree); ``root`` None: no cache."""

    def __init__(self, root: Path | None, warn: Warn) -> None:
        self.root = root
        self.warn = warn
        self._queued: list[tuple[Path, bytes]] = []  # stored, not written yet
        self._failed: list[str] = []  # list.append is atomic: the writer threads report here

    def __enter__(self) -> CellCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()

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
        from patchkit.ops.matrix.codec import patch_result_from_dict  # a cold run reads none

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
        """Queue one release's entry (:meth:`flush` writes it)."""
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
        self._queued.append((path, json.dumps(doc, sort_keys=True).encode()))

    def flush(self) -> None:
        """Write the stored entries. Without fsync (``durable=False``): an entry is rebuilt
        if lost, and ten fsyncs in a row cost more than a cold run's work on a busy disk."""
        queued, self._queued = self._queued, []
        for path, data in queued:
            self._write(path, data)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Atomic: readers see the old entry or the new one, never half of one; an entry
            # a power loss emptied is read as a corrupt one (a warning and a miss).
            atomic_write(path, data, durable=False)
        except (OSError, PatchkitError) as e:
            why = e.strerror if isinstance(e, OSError) else _why(e)
            self._failed.append(f"cannot write cache entry {path} ({why}); results are still right")

    def wait(self) -> None:
        """Wait for the entries being written; warn about those that could not be."""
        self.flush()
        failed, self._failed = self._failed, []
        for message in sorted(failed):
            self.warn(message)


def _why(error: PatchkitError) -> str:
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error)
