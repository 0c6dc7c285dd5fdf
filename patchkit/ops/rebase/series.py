"""The series as commits on the old base (one commit a change, via ``git fast-import``):
what the 3-way replay picks, and what ``refresh`` diffs against."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from patchkit.core.model import MADE
from patchkit.errors import RebaseStateError
from patchkit.git.objects import MODE_FILE, TreeEntry
from patchkit.git.store import Store
from patchkit.kinds import Change
from patchkit.ops.check import apply_series

__all__ = ["SERIES_REF", "commit_message", "series_commits"]

SERIES_REF = "refs/patchkit/rebase/series"


def commit_message(name: str) -> str:
    return f"{name}\n\nPatchkit-Patch: {name}\n"


def series_commits(
    store: Store, changes: Sequence[Change], *, base_commit: str, version: str, marks: Path
) -> list[str | None]:
    """Commit each change on ``base_commit`` (one commit a change), in order; None for one
    outside its release range. Every change must apply (a bad series is refused before).

    The changes are applied as ``check`` applies them (one engine: each sees the files the
    ones before it left, globs included); each commit holds what its change made.
    """
    with store.blob_reader() as reader:
        applied = apply_series(reader, version=version, tree=base_commit, patches=changes)
    touched = sorted({p for o in applied.outcomes for p in o.contents})
    entries = store.ls_tree(base_commit, touched)
    marks_of: list[int | None] = []
    with store.fast_import(marks=marks) as fi:
        parent = base_commit
        for change, outcome in zip(changes, applied.outcomes, strict=True):
            if not change.applies_to(version):
                marks_of.append(None)
                continue
            if outcome.status not in MADE:
                raise RebaseStateError(
                    f"{change.name} does not apply to the base release ({outcome.status})"
                )
            tree: dict[str, TreeEntry | None] = {}
            for path, data in outcome.contents.items():
                if data is None:
                    tree[path] = None
                    entries.pop(path, None)
                    continue
                old = entries.get(path)
                mode_text = outcome.modes.get(path)
                mode = int(mode_text, 8) if mode_text else (old.mode if old else MODE_FILE)
                entry = TreeEntry(mode=mode, blob=fi.blob(data))
                entries[path] = entry
                tree[path] = entry
            message = commit_message(change.name)
            marks_of.append(fi.commit_changes(SERIES_REF, tree, message, parent=parent))
            parent = f":{marks_of[-1]}"
    by_mark = {}
    for line in marks.read_text().splitlines():
        mark, _, oid = line.partition(" ")
        by_mark[int(mark[1:])] = oid
    marks.unlink()
    return [by_mark[m] if m is not None else None for m in marks_of]
