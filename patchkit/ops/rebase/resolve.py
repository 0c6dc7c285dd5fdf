"""After git's 3-way pick conflicts: resolve the conflicted files hunk by hunk, or follow the
lines upstream moved to another file (docs/rebase.md, "Replay", steps 3 and 4).

Works on file contents (the change's commit, its parent, the new head), not on the change's
own file: the same for every kind of change that the rebase turned into a commit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from patchkit.core.apply import apply_file_patch, unified_diff
from patchkit.core.lines import lines_of
from patchkit.core.merge import count_runs, merge3
from patchkit.core.model import EXACT
from patchkit.core.patchfile import Hunk
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree

__all__ = ["Resolution", "marker_lines", "resolve_conflicts"]

_REGION = re.compile(rb"^<{7} ", re.M)
_NL = b"\n"
# Too few characters to recognise a line elsewhere in the release.
_MIN_ANCHOR = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """What :func:`resolve_conflicts` did to the conflicted files."""

    left: tuple[str, ...] = ()  # files still conflicting
    adjacent: int = 0  # adjacent-but-independent pairs merged
    where: tuple[str, ...] = ()  # "file:line" of each conflict region left
    moves: tuple[str, ...] = field(default=())  # one note per hunk that followed moved lines


def marker_lines(text: bytes, rel: str) -> list[str]:
    """``rel:line`` of every conflict region git left in ``text``."""
    return [f"{rel}:{text.count(_NL, 0, m.start()) + 1}" for m in _REGION.finditer(text)]


def resolve_conflicts(
    store: Store,
    wt: Worktree,
    *,
    commit: str,
    head: str,
    files: Sequence[str],
    moved_from: Sequence[str],
) -> Resolution:
    """Redo each conflicted file with :func:`merge3`, else follow lines upstream moved to
    another file. ``moved_from``: files upstream changed or added (where moved lines can
    have gone)."""
    left: list[str] = []
    where: list[str] = []
    moves: list[str] = []
    adjacent = 0
    with store.blob_reader() as reader:
        for rel in files:
            path = wt.path / rel
            base = reader.read(f"{commit}^:{rel}")
            ours = reader.read(f"{head}:{rel}")
            theirs = reader.read(f"{commit}:{rel}")
            if (
                base is None
                or ours is None
                or theirs is None
                or path.is_symlink()
                or not path.is_file()
            ):
                left.append(rel)
                continue
            git_regions = len(_REGION.findall(path.read_bytes()))
            merged = merge3(
                lines_of(base),
                lines_of(ours),
                lines_of(theirs),
                labels=("upstream", "base", "patch"),
            )
            data = "".join(merged.lines).encode("utf-8", "surrogateescape")
            # A clean merge3 result with no adjacent pair means it aligned the lines
            # differently from git, not that it found independent edits: not trusted.
            if merged.conflicts == 0 and merged.adjacent > 0:
                path.write_bytes(data)
                wt.add_paths([rel])
                adjacent += merged.adjacent
                continue
            relocated = _follow_moved_lines(
                store, reader, rel, base, ours, theirs, head, moved_from
            )
            if relocated is not None:
                contents, notes = relocated
                for target, new_data in contents.items():
                    dest = wt.path / target
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(new_data)
                wt.add_paths(sorted(contents))
                moves.extend(notes)
                continue
            left.append(rel)
            if 0 < merged.conflicts < git_regions:
                path.write_bytes(data)  # hunk by hunk: only the truly conflicting ones stay
                where += [f"{rel}:{n}" for n in merged.regions]
            else:
                where += marker_lines(path.read_bytes(), rel)
    return Resolution(left=tuple(left), adjacent=adjacent, where=tuple(where), moves=tuple(moves))


def _one_replacement(hunk: Hunk) -> tuple[list[str], list[str]] | None:
    """(removed, added) lines when the hunk is context, one run of removed lines, the lines
    that replace them, context; else None (a pure insertion has nothing to be found by)."""
    kinds = "".join(ln.kind for ln in hunk.lines)
    if re.fullmatch(r" *(-+)(\+*) *", kinds) is None:
        return None
    removed = [ln.text for ln in hunk.lines if ln.kind == "-"]
    added = [ln.text for ln in hunk.lines if ln.kind == "+"]
    return removed, added


# hunk, the file it moves to, its removed lines (when placed by them alone), its added lines
_Move = tuple[Hunk, str, list[str] | None, list[str]]


def _follow_moved_lines(
    store: Store,
    reader: BlobReader,
    rel: str,
    base: bytes,
    ours: bytes,
    theirs: bytes,
    head: str,
    candidates: Sequence[str],
) -> tuple[dict[str, bytes], list[str]] | None:
    """Upstream moved the lines a hunk edits into another file (a file split in two, a
    block moved to a new module): make the change there.

    Only for a hunk whose lines are gone from ``rel`` and found in exactly one file that
    upstream changed or added, exactly once: its whole pre-image (context and removed
    lines; applied as a hunk, no fuzz), or else its removed lines alone when the hunk is
    one replacement (those lines are replaced in place; the context there differs, which
    the note says). Every other hunk must apply exactly (maybe at other lines) to ``rel``.
    Returns the new contents by path and a note per moved hunk, or None.
    """
    fp = unified_diff(base, theirs, rel)
    if fp is None:
        return None
    texts: dict[str, list[str] | None] = {}

    def text_of(path: str) -> list[str] | None:
        if path not in texts:
            data = reader.read(f"{head}:{path}")
            texts[path] = lines_of(data) if data is not None and b"\0" not in data[:8000] else None
        return texts[path]

    here = lines_of(ours)
    stay: list[Hunk] = []
    moves: list[_Move] = []
    wanted = set(candidates) - {rel}
    for hunk in fp.hunks:
        pre = list(hunk.old_lines)
        if count_runs(here, pre):
            stay.append(hunk)
            continue
        change = _one_replacement(hunk)
        if change is None or count_runs(here, change[0]):
            return None  # not one block of removed lines, or they are still here
        removed, added = change
        longest = max((ln.strip() for ln in removed), key=len)
        if len(longest) < _MIN_ANCHOR:
            return None
        found = [p for p in store.files_containing(head, longest) if p in wanted]
        exact = [
            (p, n) for p in found if (t := text_of(p)) is not None and (n := count_runs(t, pre))
        ]
        anchored = [
            (p, n) for p in found if (t := text_of(p)) is not None and (n := count_runs(t, removed))
        ]
        if len(exact) == 1 and exact[0][1] == 1:
            moves.append((hunk, exact[0][0], None, added))
        elif len(anchored) == 1 and anchored[0][1] == 1:
            moves.append((hunk, anchored[0][0], removed, added))
        else:
            return None
    if not moves:
        return None
    out: dict[str, bytes] = {rel: ours}  # every hunk moved: upstream's file as it is
    if stay:
        kept = apply_file_patch(ours, dataclasses.replace(fp, hunks=tuple(stay)), max_fuzz=0)
        if kept.status not in EXACT or kept.content is None:
            return None
        out[rel] = kept.content
    notes = []
    for hunk, target, removed_lines, added in moves:
        current = text_of(target) if target not in out else lines_of(out[target])
        assert current is not None
        if removed_lines is None:
            one = dataclasses.replace(fp, old_path=target, new_path=target, hunks=(hunk,))
            result = apply_file_patch(
                "".join(current).encode("utf-8", "surrogateescape"), one, max_fuzz=0
            )
            if result.status not in EXACT or result.content is None:
                return None
            out[target] = result.content
            notes.append(f"a hunk of {rel} followed upstream's lines to {target}")
        else:
            at = next(
                i
                for i in range(len(current))
                if current[i : i + len(removed_lines)] == removed_lines
            )
            current = [*current[:at], *added, *current[at + len(removed_lines) :]]
            out[target] = "".join(current).encode("utf-8", "surrogateescape")
            notes.append(
                f"a hunk of {rel} followed upstream's lines to {target} (placed by the lines it "
                "replaces, found once there; the context around them differs)"
            )
    return out, notes
