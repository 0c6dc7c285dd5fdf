"""Git object vocabulary both sides of an import share: tree entry modes, entries, blob ids.

Pure (hashlib only): `patchkit.images` builds trees of these and `patchkit.git` writes
them, without either importing the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_LINK",
    "MODE_TREE",
    "TreeEntry",
    "git_blob_id",
    "git_object_id",
    "tree_body",
]


MODE_FILE = 0o100644


MODE_EXEC = 0o100755


MODE_LINK = 0o120000


MODE_TREE = 0o40000


def git_blob_id(data: bytes | bytearray) -> str:
    """The id git gives a blob with this content."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def git_object_id(kind: bytes, body: bytes | bytearray) -> bytes:
    """The id (20 bytes) git gives an object of ``kind`` (b"blob", b"tree", b"commit")."""
    h = hashlib.sha1(b"%s %d\0" % (kind, len(body)))
    h.update(body)
    return h.digest()


def tree_body(entries: Iterable[tuple[int, bytes, bytes]]) -> bytes:
    """The body of the git tree holding ``entries`` (mode, name, 20-byte id), in git's
    order: by name, a subtree sorting as if its name ended in "/".

    >>> tree_body([(MODE_FILE, b"b", bytes(20)), (MODE_TREE, b"a", bytes(20))])[:7]
    b'40000 a'
    """
    items = [
        (name + b"/" if mode == MODE_TREE else name, b"%o %s\0%s" % (mode, name, oid))
        for mode, name, oid in entries
    ]
    items.sort()
    return b"".join([raw for _, raw in items])


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeEntry:
    mode: int  # MODE_FILE, MODE_EXEC or MODE_LINK
    blob: str  # 40-hex git blob id
