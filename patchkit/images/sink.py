"""What the image code writes to and reads from: the seam between `images/` and `git/`.

The flattener, the layer cache and the directory source write git objects through an
`ObjectSink` (blobs, streamed blobs, tree objects, commits) and the layer cache reads
its entries back through a `CacheStore`. `patchkit.git.pack.FastImport` implements the
sink (writing a pack with `PackWriter`, or feeding `git fast-import`); `ops/importing.py`
wires the two, so `patchkit.images` never imports `patchkit.git`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from patchkit.core.objects import TreeEntry

__all__ = ["CacheStore", "ObjectSink", "TreeSink"]


class TreeSink(Protocol):
    """What `RootFS.write_tree` writes a tree through: small blobs and tree objects."""

    def blob(self, data: bytes | bytearray) -> str:
        """Store a blob given whole; return its id."""
        ...

    def tree(self, body: bytes) -> bytes:
        """Store a tree object whose body is ``body`` (`core.objects.tree_body`); return
        its id as 20 bytes."""
        ...


class ObjectSink(TreeSink, Protocol):
    """Where git objects go; every method returns or uses git's own ids."""

    def blob_stream(self, size: int, chunks: Iterable[bytes]) -> str:
        """Store a blob of ``size`` bytes arriving as ``chunks``; return its id.

        Raises StoreError if the chunks do not add up to ``size``.
        """
        ...

    def blob_stream_later(self, size: int, chunks: Iterable[bytes]) -> Callable[[], bytes]:
        """Like `blob_stream`, but the id may be computed on another thread meanwhile:
        the returned function gives it, as 20 bytes (waiting if need be). The chunks
        are consumed before this returns."""
        ...

    def checkpoint(self) -> None:
        """The objects given so far may be made final now (a pack sealed on another
        thread) while more follow; nothing becomes visible before the session ends."""
        ...

    def commit(
        self,
        ref: str,
        files: Mapping[str, TreeEntry],
        message: str,
        *,
        parent: str | None = None,
    ) -> None:
        """A commit at ``ref`` whose tree is exactly ``files`` (path -> entry)."""
        ...

    def commit_tree(self, ref: str, tree: str, message: str, *, parent: str | None = None) -> None:
        """A commit at ``ref`` of the tree ``tree`` (an id `tree` returned, as hex)."""
        ...


class CacheStore(Protocol):
    """What the layer cache reads back from the store its sink writes to."""

    def ref_targets(self, prefix: str) -> dict[str, str]:
        """Every ref under ``prefix`` -> the commit it points at."""
        ...

    def read_blob(self, spec: str) -> bytes | None:
        """The blob ``spec`` (`<rev>:<path>`) names, or None if there is none."""
        ...

    def missing_objects(self, oids: Iterable[str]) -> set[str]:
        """The ids of ``oids`` the store does not hold."""
        ...
