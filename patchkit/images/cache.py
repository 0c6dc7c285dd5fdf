"""The layer cache: each layer, keyed by its diff_id, kept in the store for reuse.

A layer is cached as the list of its tar entries in order (name, type, mode,
owner, link target, xattrs and, for regular files, the git blob id of the
content already in the store): exactly what the flattener consumes, without the
bytes. Replaying that list through the same flattener code gives the same tree
as reading the blob, but costs metadata only, so a new release that shares lower
layers only reads its new ones.

Each entry is a commit at `refs/patchkit/layers/<alg>/<hex of diff_id>` whose tree
holds `layer.json` (the entries) and `blobs/<xx>/<38 hex>` (every content blob,
which keeps them reachable). An entry written by a full import is *complete* and
serves any later import, sparse or not; one written by a sparse import lacks the
unselected contents, so it only serves an import with the same selection on the
same lower layers (same chain id). A corrupt entry is reported with a
`LayerCacheWarning` and the layer is read again.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from patchkit.core.objects import MODE_FILE, MODE_TREE, tree_body
from patchkit.images.digests import short
from patchkit.images.sink import CacheStore, ObjectSink, TreeSink
from patchkit.images.tar import TarEntry

__all__ = [
    "CACHE_SCHEMA",
    "LAYER_PREFIX",
    "Entry",
    "LayerCache",
    "LayerCacheWarning",
    "LayerRecord",
    "Selection",
    "chain_ids",
    "entry_from_tar",
]

CACHE_SCHEMA = 1
# The tar reader whose rows a cache entry holds: 1 was `tarfile` (before issue 23), which
# read some layers otherwise (repeated headers, sparse files); an entry of another reader
# is read again from its blob, silently, and replaced.
READER = 2
LAYER_PREFIX = "refs/patchkit/layers/"

# One letter a tar entry type; "?" (unsupported) is never cached: it fails the import.
FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, OTHER = "f", "d", "s", "h", "c", "b", "p", "?"
_TYPES = frozenset({FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO})
_OID = re.compile(r"\A[0-9a-f]{40}\Z")
_compact = json.JSONEncoder(separators=(",", ":")).encode
_SPILL = 1 << 20  # bytes of layer.json rows held in memory before they go to a temporary file


class LayerCacheWarning(UserWarning):
    """A cache entry could not be used; the layer was read from its blob instead."""


@dataclass(slots=True, kw_only=True)
class Entry:
    """One tar entry as the flattener needs it (content replaced by its blob id)."""

    name: str
    type: str  # one of FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, OTHER
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    link: str = ""  # symlink target or hard-link target name
    major: int = 0
    minor: int = 0
    xattrs: dict[str, bytes] | None = None
    blob: str | None = None  # regular files: git blob id (None: content not stored)
    raw_type: bytes = b""  # for the message about an unsupported type

    def row(self) -> list[Any]:
        xattrs = (
            {k: base64.b64encode(v).decode() for k, v in self.xattrs.items()}
            if self.xattrs
            else None
        )
        return [
            self.name,
            self.type,
            self.mode,
            self.uid,
            self.gid,
            self.size,
            self.link,
            self.major,
            self.minor,
            xattrs,
            self.blob,
        ]

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        """Parse one cached row; ValueError if it is not exactly what `row` writes."""
        if not isinstance(row, list) or len(row) != 11:
            raise ValueError("malformed entry")
        name, type_, mode, uid, gid, size, link, major, minor, xattrs, blob = row
        if not (isinstance(name, str) and isinstance(link, str) and type_ in _TYPES):
            raise ValueError("malformed entry")
        if not all(type(v) is int and v >= 0 for v in (mode, uid, gid, size, major, minor)):
            raise ValueError(f"malformed numbers in entry {name!r}")
        if blob is not None and (
            type_ != FILE or not isinstance(blob, str) or not _OID.match(blob)
        ):
            raise ValueError(f"malformed blob id in entry {name!r}")
        xa: dict[str, bytes] | None = None
        if xattrs is not None:
            if not isinstance(xattrs, dict):
                raise ValueError(f"malformed xattrs in entry {name!r}")
            xa = {str(k): base64.b64decode(str(v), validate=True) for k, v in xattrs.items()}
        return cls(
            name=name,
            type=type_,
            mode=mode,
            uid=uid,
            gid=gid,
            size=size,
            link=link,
            major=major,
            minor=minor,
            xattrs=xa,
            blob=blob,
        )


_TYPES_OF = {
    b"0": FILE,
    b"S": FILE,  # an old GNU sparse file, rebuilt by the reader
    b"5": DIR,
    b"2": SYMLINK,
    b"1": HARDLINK,
    b"3": CHAR,
    b"4": BLOCK,
    b"6": FIFO,
}


def entry_from_tar(member: TarEntry) -> Entry:
    """The Entry of a tar header (content not read yet: ``blob`` is None)."""
    type_ = _TYPES_OF.get(member.type, OTHER)
    dev = type_ in (CHAR, BLOCK)
    return Entry(
        name=member.name,
        type=type_,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        size=member.size if type_ == FILE else 0,
        link=member.link if type_ in (SYMLINK, HARDLINK) else "",
        major=member.major if dev else 0,
        minor=member.minor if dev else 0,
        xattrs=member.xattrs,
        raw_type=member.type,
    )


def chain_ids(diff_ids: Sequence[str | None]) -> list[str | None]:
    """OCI ChainIDs: layer n's identity together with every layer below it."""
    out: list[str | None] = []
    chain: str | None = None
    for i, diff_id in enumerate(diff_ids):
        if diff_id is None or (i and chain is None):
            chain = None
        elif chain is None:
            chain = diff_id
        else:
            chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
        out.append(chain)
    return out


def layer_ref(diff_id: str) -> str:
    alg, _, hexpart = diff_id.partition(":")
    return f"{LAYER_PREFIX}{alg}/{hexpart}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """What a sparse import keeps, as a fingerprint (None: everything)."""

    fingerprint: str | None

    @classmethod
    def of(
        cls, include: Sequence[str] | None, exclude: Sequence[str], always: Sequence[str]
    ) -> Selection:
        if include is None and not exclude:
            return cls(fingerprint=None)
        doc = json.dumps([include, list(exclude), sorted(always)], sort_keys=True)
        return cls(fingerprint="sha256:" + hashlib.sha256(doc.encode()).hexdigest())


class LayerRecord:
    """The cache entry of a layer being read, written out as its entries become final.

    The flattener `add`s every entry it applies; `flush` turns the entries added so far
    into their JSON rows, up to the first one whose blob id is still being computed
    (the pack writer hashes on its own thread). Only that short backlog is held as
    `Entry` objects, not the whole layer (50,000 entries would be ~12 MB), and the
    rows are the bytes ``json.dumps({**head, "entries": rows})`` gives.
    """

    def __init__(self, diff_id: str, *, chain: str | None, selection: Selection) -> None:
        self.diff_id = diff_id
        complete = selection.fingerprint is None
        head = {
            "schema": CACHE_SCHEMA,
            "reader": READER,
            "diff_id": diff_id,
            "complete": complete,
            "chain": None if complete else chain,
            "selection": selection.fingerprint,
        }
        self._data = bytearray(_compact(head)[:-1].encode("ascii") + b',"entries":[')
        # rows beyond _SPILL bytes go to an anonymous temporary file: a 50,000-entry
        # layer's JSON is ~8 MB, held through the whole layer otherwise
        self._spill: IO[bytes] | None = None
        self._spilled = 0
        self._waiting: collections.deque[Entry] = collections.deque()
        self._blobs = bytearray()  # the content blob ids, 20 bytes each
        self.count = 0  # entries written out

    @property
    def backlog(self) -> int:
        """Entries added but not written out yet."""
        return len(self._waiting)

    def add(self, entry: Entry) -> None:
        self._waiting.append(entry)

    def flush(self, until: Entry | None = None) -> None:
        """Write out the entries added so far, stopping at ``until`` (an entry whose blob
        id is not known yet) if it is among them."""
        waiting, data, blobs = self._waiting, self._data, self._blobs
        while waiting and waiting[0] is not until:
            e = waiting.popleft()
            if self.count:
                data += b","
            data += _compact(e.row()).encode("ascii")
            self.count += 1
            if e.blob is not None:
                blobs += bytes.fromhex(e.blob)
        if len(data) >= _SPILL:
            if self._spill is None:
                self._spill = tempfile.TemporaryFile()  # noqa: SIM115 - closed by `store`; no name on disk
            self._spill.write(data)
            self._spilled += len(data)
            data.clear()

    def blobs_tree(self, sink: TreeSink) -> bytes | None:
        """Write the tree `blobs/<2 hex>/<38 hex>` of every content blob of the entries
        written out (call after `store`); its id, or None if there are none.

        Built a directory of 256 at a time from the 20-byte ids, not as a map of every
        path (a 50,000-blob layer would hold ~8 MB of strings and entries at once)."""
        ids, self._blobs = self._blobs, bytearray()
        if not ids:
            return None
        buckets = [bytearray() for _ in range(256)]
        for at in range(0, len(ids), 20):
            buckets[ids[at]] += ids[at : at + 20]
        del ids
        subtrees = []
        for first, bucket in enumerate(buckets):
            if bucket:
                oids = sorted({bytes(bucket[at : at + 20]) for at in range(0, len(bucket), 20)})
                body = tree_body((MODE_FILE, oid[1:].hex().encode("ascii"), oid) for oid in oids)
                subtrees.append((MODE_TREE, b"%02x" % first, sink.tree(body)))
                buckets[first] = bytearray()
        return sink.tree(tree_body(subtrees))

    def store(self, fi: ObjectSink) -> str:
        """Write layer.json (every entry, then the end of the document) as a blob of
        ``fi``; return its id. The record is spent."""
        self.flush()
        data = self._data
        data += b"]}"
        spill, self._spill = self._spill, None
        if spill is None:
            return fi.blob(data)  # not copied
        try:
            spill.write(data)
            size = self._spilled + len(data)
            data.clear()
            spill.seek(0)
            return fi.blob_stream(size, iter(lambda: spill.read(_SPILL), b""))
        finally:
            spill.close()


class LayerCache:
    """Reads cached layers from ``store`` (`refs/patchkit/layers/...`); `save` writes
    them through the import's sink, which must write to that same store."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self._refs = store.ref_targets(LAYER_PREFIX)
        self.hits = 0
        self.misses = 0

    def _warn(self, where: str, diff_id: str, why: str) -> None:
        warnings.warn(
            LayerCacheWarning(
                f"{where}: layer cache entry {short(diff_id)} is unusable ({why}); reading the layer"
            ),
            stacklevel=3,
        )

    def load(
        self, diff_id: str | None, *, chain: str | None, selection: Selection, where: str
    ) -> list[Entry] | None:
        """The cached entries of the layer ``diff_id``, or None (not cached, unusable)."""
        if diff_id is None:
            return None
        ref = layer_ref(diff_id)
        commit = self._refs.get(ref)
        if commit is None:
            self.misses += 1
            return None
        data = self.store.read_blob(f"{commit}:layer.json")
        if data is None:
            self._warn(where, diff_id, "no layer.json")
            self.misses += 1
            return None
        try:
            doc = json.loads(data)
            del data
            if not isinstance(doc, dict) or doc.get("schema") != CACHE_SCHEMA:
                raise ValueError("unknown schema")
            if doc.get("diff_id") != diff_id:
                raise ValueError(f"it describes {doc.get('diff_id')!r}")
            rows = doc["entries"]
            if not isinstance(rows, list):
                raise ValueError("malformed entries")
            complete = doc.get("complete") is True
            if doc.get("reader", 1) != READER:
                self.misses += 1
                return None  # made by another tar reader: read the layer again
            if not complete and (
                doc.get("chain") != chain or doc.get("selection") != selection.fingerprint
            ):
                self.misses += 1
                return None  # a sparse entry for other lower layers or globs: not an error
            del doc
            # each row is dropped as its Entry is made: the two are never both whole
            rows.reverse()
            entries = []
            while rows:
                entries.append(Entry.from_row(rows.pop()))
        except (ValueError, KeyError, TypeError) as e:
            self._warn(where, diff_id, str(e) or type(e).__name__)
            self.misses += 1
            return None
        missing = self.store.missing_objects({e.blob for e in entries if e.blob is not None})
        if missing:
            self._warn(where, diff_id, f"{len(missing)} blob(s) missing, e.g. {min(missing)}")
            self.misses += 1
            return None
        self.hits += 1
        return entries

    def save(self, fi: ObjectSink, record: LayerRecord) -> None:
        """Write ``record`` (every entry of its layer, with blob ids) as its cache entry."""
        rows = [(MODE_FILE, b"layer.json", bytes.fromhex(record.store(fi)))]
        blobs = record.blobs_tree(fi)
        if blobs is not None:  # keeps every content blob reachable (and `git gc` off them)
            rows.append((MODE_TREE, b"blobs", blobs))
        tree = fi.tree(tree_body(rows)).hex()
        fi.commit_tree(layer_ref(record.diff_id), tree, f"patchkit: layer cache {record.diff_id}\n")
