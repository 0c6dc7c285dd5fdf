"""File views: how the parsers read a tree (a release in the store, patched or not, or a dict).

A view answers two questions, ``read(path)`` (text, symlinks followed; None: absent) and
``glob(pattern)`` (``*`` never crosses ``/``). Paths are image-root relative.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Mapping
from typing import Protocol

from patchkit.git.objects import MODE_LINK, BlobReader, TreeEntry

__all__ = ["FileView", "MemoryView", "TreeView", "glob_names", "join_path"]

_MAX_LINKS = 16  # a symlink chain longer than this (or a loop) reads as absent


class FileView(Protocol):
    def read(self, path: str) -> str | None: ...
    def glob(self, pattern: str) -> list[str]: ...


def glob_names(names: Iterable[str], pattern: str) -> list[str]:
    """Names matching ``pattern`` component by component (``*`` never crosses ``/``)."""
    want = pattern.split("/")
    return sorted(
        n
        for n in names
        if len(parts := n.split("/")) == len(want)
        and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, want, strict=True))
    )


def join_path(base_dir: str, path: str) -> str:
    """``path`` (an include, a symlink target) image-root relative: absolute ones from the
    root, relative ones from ``base_dir``."""
    return posixpath.normpath(
        path.lstrip("/") if path.startswith("/") else posixpath.join(base_dir, path)
    )


def _link_target(path: str, target: str) -> str:
    """Where a symlink at ``path`` pointing to ``target`` leads."""
    return join_path(posixpath.dirname(path), target)


class MemoryView:
    """A tree held in a dict (path -> text); used by tests and by `TreeView` callers."""

    def __init__(self, files: Mapping[str, str | None], links: Mapping[str, str] | None = None):
        self.files = {k: v for k, v in files.items() if v is not None}
        self.links = dict(links or {})

    def _resolve(self, path: str) -> str:
        for _ in range(_MAX_LINKS):
            target = self.links.get(path)
            if target is None:
                return path
            path = _link_target(path, target)
        return path

    def read(self, path: str) -> str | None:
        return self.files.get(self._resolve(path))

    def glob(self, pattern: str) -> list[str]:
        return glob_names(set(self.files) | set(self.links), pattern)


class TreeView:
    """A release tree in the store, plus the patched files (path -> content, None: deleted)."""

    def __init__(
        self,
        reader: BlobReader,
        entries: Mapping[str, TreeEntry],
        overlay: Mapping[str, bytes | None],
    ):
        self.reader = reader
        self.entries = entries
        self.overlay = overlay
        self._names = (set(entries) | {p for p, c in overlay.items() if c is not None}) - {
            p for p, c in overlay.items() if c is None
        }

    def _raw(self, path: str) -> tuple[bytes | None, bool]:
        if path in self.overlay:
            return self.overlay[path], False
        entry = self.entries.get(path)
        if entry is None:
            return None, False
        return self.reader.read(entry.blob), entry.mode == MODE_LINK

    def read(self, path: str) -> str | None:
        for _ in range(_MAX_LINKS):
            data, is_link = self._raw(path)
            if data is None:
                return None
            if not is_link:
                return data.decode("utf-8", "replace")
            path = _link_target(path, data.decode("utf-8", "surrogateescape"))
        return None

    def glob(self, pattern: str) -> list[str]:
        return glob_names(self._names, pattern)
