"""Git object vocabulary both sides of an import share: tree entry modes, entries, blob ids.

Pure (hashlib only): `patchkit.images` builds trees of these and `patchkit.git` writes
them, without either importing the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["MODE_EXEC", "MODE_FILE", "MODE_LINK", "TreeEntry", "git_blob_id"]


MODE_FILE = 0o100644


MODE_EXEC = 0o100755


MODE_LINK = 0o120000


def git_blob_id(data: bytes | bytearray) -> str:
    """The id git gives a blob with this content."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeEntry:
    mode: int  # MODE_FILE, MODE_EXEC or MODE_LINK
    blob: str  # 40-hex git blob id
