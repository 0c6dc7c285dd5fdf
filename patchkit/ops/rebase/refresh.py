"""Rewriting a change's file in ``patches/`` from the commit that now makes it, with minimal
churn: unchanged when it still applies exactly; a diff's ``@@`` numbers only, when only
positions moved; else, for a diff, its header kept verbatim over a fresh ``git diff``.

Whether a change still applies exactly is asked of its kind (:meth:`Change.apply`); rewriting
what it does is kind-specific: diffs here, in :func:`_rediff` (a new kind adds its branch in
:func:`refreshed_bytes`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from patchkit.core.model import EXACT, LEAVES_SERIES, ChangeKind, PatchResult
from patchkit.core.patchfile import Patch, context_width, diff_prefixes, parse_patch, render_patch
from patchkit.core.series import parse_series
from patchkit.core.versions import set_base
from patchkit.errors import RebaseStateError
from patchkit.files import atomic_write, checkpoint
from patchkit.git.store import Store
from patchkit.kinds import Change, DiffChange
from patchkit.ops.rebase.backup import ProjectBackup
from patchkit.ops.rebase.series import series_commits
from patchkit.ops.rebase.state import PatchEntry, RebaseStateRecord
from patchkit.ops.workspace import Workspace

__all__ = [
    "exact_result",
    "refresh_to_base",
    "refreshed_bytes",
    "renumber_hunks",
    "write_rebased",
]

_HUNK_NUMBERS = re.compile(rb"^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@", re.M)


def renumber_hunks(original: bytes, header: str, offsets: Sequence[int]) -> bytes:
    """``original`` with each hunk's start lines moved by its offset; nothing else touched
    (header, section headings, count notation, every body byte stay as written)."""
    head_len = len(header.encode("utf-8", "surrogateescape"))
    moves = iter(offsets)

    def move(m: re.Match[bytes]) -> bytes:
        shift = next(moves, 0)
        old, new = int(m.group(1)), int(m.group(3))
        # A hunk at line 0 (insertion into an empty file) stays at 0.
        old_to = old + shift if old else 0
        new_to = new + shift if new else 0
        return b"@@ -%d%s +%d%s @@" % (old_to, m.group(2), new_to, m.group(4))

    return original[:head_len] + _HUNK_NUMBERS.sub(move, original[head_len:])


def exact_result(store: Store, change: Change, commit: str, *, version: str) -> PatchResult | None:
    """The result of ``change`` on ``commit``'s parent if it applies exactly there (maybe at
    other lines, no fuzz) and makes ``commit``'s content; None otherwise.

    ``version``: a release in the change's range (the old base), for kinds that check it.
    """
    with store.blob_reader() as reader:
        paths = list(change.targets(lambda patterns: reader.list_paths(commit, patterns)))
        before = {p: reader.read(f"{commit}^:{p}") for p in paths}
        after = {p: reader.read(f"{commit}:{p}") for p in paths}
    outcome = change.apply(before, version=version)
    if outcome.status not in EXACT or any(
        outcome.contents.get(p, before[p]) != after[p] for p in paths
    ):
        return None
    return outcome.result


def refreshed_bytes(
    store: Store, change: Change, commit: str, original: bytes, *, version: str
) -> bytes:
    """The file for ``change`` as ``commit`` now makes it (``original``: its bytes today)."""
    exact = exact_result(store, change, commit, version=version)
    if isinstance(change, DiffChange):
        patch = change.patch
        if exact is not None:
            offsets = [h.offset for h in exact.hunks]
            return renumber_hunks(original, patch.header, offsets) if any(offsets) else original
        return _rediff(store, patch, commit)
    if exact is not None:
        return original
    raise RebaseStateError(
        f"patches/{change.name}: the rebase changed what this {change.kind} change does, "
        f"and rewriting a {change.kind} file is not supported yet; run patchkit rebase --abort"
    )


def write_rebased(
    ws: Workspace,
    store: Store,
    record: RebaseStateRecord,
    backup: ProjectBackup,
    *,
    old: Callable[[PatchEntry], Change],
) -> tuple[list[str], list[str]]:
    """The end of a rebase: each replayed change's file rewritten from its new commit,
    emptied and skipped changes out of the series, base moved (last). Idempotent (it
    compares with the wanted bytes), so an interrupted run is simply redone.
    ``old(entry)``: the change as the backup has it. Returns (refreshed, dropped) names."""
    refreshed: list[str] = []
    writes: list[tuple[Path, bytes]] = []
    dropped: list[str] = []
    for entry in record.patches:
        if entry.status in LEAVES_SERIES:
            dropped.append(entry.name)
            continue
        if entry.result is None or entry.kind is not ChangeKind.DIFF:
            continue  # edits and overlays were re-evaluated: their files are the source
        # The backup, not patches/: an interrupted refresh may have rewritten the file.
        path = ws.patches_dir / entry.name
        original = backup.original(record.backup, _rel(ws, path))
        data = refreshed_bytes(store, old(entry), entry.result, original, version=record.base)
        if data != original:
            writes.append((path, data))
            refreshed.append(entry.name)
    for path, data in writes:
        if not path.exists() or path.read_bytes() != data:
            atomic_write(path, data)
    if dropped:
        text = backup.original(record.backup, _rel(ws, ws.series_path)).decode("utf-8")
        new_series = parse_series(text).without(dropped).render()
        if ws.series_path.read_text(encoding="utf-8") != new_series:
            atomic_write(ws.series_path, new_series.encode("utf-8"))
    versions = backup.original(record.backup, _rel(ws, ws.versions_path)).decode("utf-8")
    # Moving base is the last write: until it lands, --abort restores everything.
    ws.write_versions_text(set_base(versions, record.onto))
    return refreshed, dropped


def refresh_to_base(ws: Workspace, store: Store, *, marks: Path) -> tuple[str, ...]:
    """Rewrite every change that applies to base only with an offset (or fuzz) so that it
    applies exactly; the names of the files rewritten. The caller holds the lock and
    deletes the series commits' refs afterwards."""
    base = ws.versions.base
    ws.release_tree(base)
    info = store.release(base)
    assert info is not None
    changes = list(ws.changes())
    commits = series_commits(store, changes, base_commit=info.commit, version=base, marks=marks)
    written: list[str] = []
    for change, commit in zip(changes, commits, strict=True):
        if commit is None:
            continue
        path = ws.patches_dir / change.name
        original = path.read_bytes()
        data = refreshed_bytes(store, change, commit, original, version=base)
        if data != original:
            checkpoint(f"refresh {change.name}")
            atomic_write(path, data)
            written.append(change.name)
    return tuple(written)


def _rel(ws: Workspace, path: Path) -> str:
    return str(path.relative_to(ws.root))


def _rediff(store: Store, patch: Patch, commit: str) -> bytes:
    """The header kept verbatim over a fresh diff with the patch's own context width."""
    src, dst = diff_prefixes(patch)
    diff = store.diff(
        commit + "^", commit, src_prefix=src, dst_prefix=dst, context=context_width(patch)
    )
    new = parse_patch(diff, name=patch.name, strip=patch.strip)
    return render_patch(dataclasses.replace(new, header=patch.header, name=patch.name))
