"""Why a change that replayed cleanly still deserves a look, and whether upstream already has
it (docs/rebase.md, "Risk"): a large offset, patch(1) and the 3-way merge disagreeing, its
lines already there, words it adds that upstream newly has elsewhere.

Kind-generic checks go through :class:`~patchkit.kinds.Change` (``targets``/``apply``); the
ones that read a diff's own lines (its change set, the words it introduces) run for diffs only.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from patchkit.core.model import LARGE_OFFSET, MADE, ChangeLine, PatchStatus
from patchkit.core.patchfile import Patch, introduced_words, words_in
from patchkit.core.rangediff import change_lines, change_present, content_change_set
from patchkit.errors import PatchkitError
from patchkit.files import atomic_write
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.kinds import Change, DiffChange

__all__ = [
    "UpstreamDelta",
    "introduced",
    "range_diff",
    "risks",
    "same_change",
    "targets_at",
    "upstream_has",
]

_DIFF_NOISE = re.compile(rb"^(?:@@ .*|index .*)$", re.M)


def _diff(change: Change) -> Patch | None:
    """The parsed diff behind a change of the diff kind (``None`` for other kinds)."""
    return change.patch if isinstance(change, DiffChange) else None


def introduced(change: Change) -> set[str]:
    """Distinctive words the change adds (diffs: string literals, long identifiers)."""
    patch = _diff(change)
    return set(introduced_words(patch)) if patch is not None else set()


def targets_at(reader: BlobReader, change: Change, rev: str) -> list[str]:
    """The paths ``change`` reads or writes on ``rev``'s tree."""
    return list(change.targets(lambda patterns: reader.list_paths(rev, patterns)))


def _read(reader: BlobReader, rev: str, paths: Iterable[str]) -> dict[str, bytes | None]:
    return {p: reader.read(f"{rev}:{p}") for p in paths}


class UpstreamDelta:
    """What upstream changed from the old base to the new release, computed once."""

    def __init__(self, store: Store, *, base_commit: str, onto_commit: str, cache: Path) -> None:
        self.store = store
        self.base_commit = base_commit
        self.onto_commit = onto_commit
        self.cache = cache
        self._changed: list[str] | None = None
        self._newly: dict[str, tuple[str, ...]] | None = None

    @property
    def key(self) -> str:
        return f"{self.base_commit}..{self.onto_commit}"

    def changed(self) -> list[str]:
        """Files upstream added or changed."""
        if self._changed is None:
            self._changed = self.store.changed_paths(self.base_commit, self.onto_commit)
        return self._changed

    def newly(self, wanted: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Word -> files of the new release, for the ``wanted`` words that the new release
        has and the old one had nowhere. Once per rebase: ``wanted`` must be the same set on
        each call (every word the series introduces).

        A word new to the release can only be in a file that changed; whether the old
        release had it anywhere is one `git grep -l` for those few words.
        """
        if self._newly is not None:
            return self._newly
        # Kept beside the state: each --continue/--skip is a new process; a lost or corrupt
        # file only costs the time to compute it again.
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            doc = json.loads(self.cache.read_bytes())
            if doc.get("key") == self.key:
                self._newly = {str(w): tuple(map(str, p)) for w, p in doc["words"].items()}
                return self._newly
        words = set(wanted)
        found: dict[str, set[str]] = {}
        if words:
            for path, text in self._texts(self.onto_commit, self.changed()):
                for w in words_in(text) & words:
                    found.setdefault(w, set()).add(path)
        if found:
            old_files = self.store.files_with_words(self.base_commit, sorted(found))
            for _, text in self._texts(self.base_commit, old_files):
                for w in words_in(text) & found.keys():
                    del found[w]
        self._newly = {w: tuple(sorted(paths)) for w, paths in found.items()}
        with contextlib.suppress(OSError, PatchkitError):
            atomic_write(
                self.cache,
                json.dumps({"key": self.key, "words": self._newly}, sort_keys=True).encode(),
            )
        return self._newly

    def _texts(self, rev: str, paths: Sequence[str]) -> list[tuple[str, str]]:
        """(path, text) of the text files among ``paths`` in ``rev`` (binary ones left out)."""
        with self.store.blob_reader() as reader:
            ids = reader.blob_ids([(rev, p) for p in paths])
            blobs = reader.read_objects(sorted({i for i in ids if i}))
        out = []
        for path, oid in zip(paths, ids, strict=True):
            data = blobs.get(oid) if oid else None
            if data is not None and b"\0" not in data[:8000]:
                out.append((path, data.decode("utf-8", "surrogateescape")))
        return out


def risks(
    store: Store,
    old: Change,
    *,
    head: str,
    result: str,
    version: str,
    newly: Callable[[], Mapping[str, tuple[str, ...]]],
) -> list[str]:
    """Why the clean 3-way result ``result`` of ``old`` on ``head`` still deserves a look.

    ``version``: a release in ``old``'s range (the old base), for kinds that check it;
    ``newly``: :meth:`UpstreamDelta.newly` for the series (called only when needed).
    """
    with store.blob_reader() as reader:
        paths = targets_at(reader, old, head)
        before = _read(reader, head, paths)
        after = _read(reader, result, paths)
    found: list[str] = []
    fuzzy = old.apply(before, version=version)
    if fuzzy.status in MADE:
        differ = [p for p in paths if fuzzy.contents.get(p, before[p]) != after[p]]
        if differ:
            found.append(
                f"patch(1)-style apply and the 3-way merge give different {', '.join(differ)}"
            )
        for h in fuzzy.result.hunks:
            if abs(h.offset) >= LARGE_OFFSET:
                found.append(f"hunk {h.index} of {h.file} moved {h.offset:+d} lines")
    patch = _diff(old)
    if patch is not None and change_present(patch, before):
        found.append("upstream may already have this change (its lines are already there)")
    elsewhere = _absorbed_elsewhere(old, newly)
    if elsewhere:
        found.append(elsewhere)
    return found


def _absorbed_elsewhere(change: Change, newly: Callable[[], Mapping[str, tuple[str, ...]]]) -> str:
    """Distinctive words this change adds that upstream newly has too (e.g. upstream now
    sends systemd's "READY=1" itself): it may have taken the change in another form."""
    patch = _diff(change)
    if patch is None:
        return ""
    words = introduced_words(patch)
    if not words:
        return ""
    upstream = newly()
    hits = [w for w in words if w in upstream]
    if not hits:
        return ""
    where = sorted({p for w in hits for p in upstream[w]})
    shown = ", ".join(hits[:3]) + (f" and {len(hits) - 3} more" if len(hits) > 3 else "")
    return (
        f"upstream newly has {shown}, which this patch adds (in {', '.join(where[:3])}"
        f"{', ...' if len(where) > 3 else ''}): it may have taken this change in another form"
    )


def upstream_has(store: Store, old: Change, *, head: str, version: str) -> str:
    """Why the conflicting change is already upstream at ``head``, or "" if it is not."""
    with store.blob_reader() as reader:
        files = _read(reader, head, targets_at(reader, old, head))
    # Fuzz never makes a hunk "already there", so the kind's own apply answers exactly.
    if old.apply(files, version=version).status is PatchStatus.ALREADY_APPLIED:
        return "upstream already contains this change (the patch reverse-applies)"
    patch = _diff(old)
    if patch is not None and change_present(patch, files):
        return "upstream already contains this change's lines (context differs)"
    return ""


def same_change(store: Store, old_commit: str, new_commit: str) -> bool:
    """Whether two commits make the same diff, line numbers aside."""

    def body(commit: str) -> bytes:
        text = store.diff(commit + "^", commit, src_prefix="a/", dst_prefix="b/")
        # Line numbers, section headings and blob ids differ whenever the file moved.
        return _DIFF_NOISE.sub(b"", text)

    return body(old_commit) == body(new_commit)


def range_diff(
    store: Store, paths: Sequence[str], *, commit: str, result: str
) -> tuple[ChangeLine, ...]:
    """The +/- lines in which ``result`` (the change on the new release) differs from
    ``commit`` (the change on the old base), context and line numbers ignored."""
    with store.blob_reader() as reader:
        old = content_change_set(_read(reader, commit + "^", paths), _read(reader, commit, paths))
        new = content_change_set(_read(reader, result + "^", paths), _read(reader, result, paths))
    return change_lines(old, new)
