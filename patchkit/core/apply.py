"""The in-memory apply engine and diff maker (pure: bytes in, values out).

:func:`apply_file_patch` follows GNU ``patch`` and makes its rules explicit:

* Content is split on ``"\\n"`` only; line endings (CRLF included) and a missing
  final newline are part of the line and must match exactly.
* Hunks go in order. A hunk is first looked for where its ``@@`` line says,
  moved by the offset the previous hunk of the file needed, then alternately
  one line further down and up (nearest first, down before up), never before
  the end of the previous hunk. Found where the ``@@`` line says: ``applied``;
  elsewhere: ``offset`` (``HunkResult.offset`` = lines from where it said).
* As GNU patch does, a hunk with less leading than trailing context that starts
  at line 1 must match at the top of the file, and one with less trailing than
  leading context must match at the end (each fuzz step relaxes this by one).
  A context-free insertion at ``-0,0`` goes to the top.
* Not found: if the hunk's new lines are there instead, it is
  ``already-applied``. A context-free pure insertion (nothing to match) counts
  as already-applied when its new lines sit exactly where it would insert them.
* Else fuzz 1..``max_fuzz``: up to N leading and N trailing *context* lines are
  ignored and the search repeats: ``fuzz`` (``HunkResult.fuzz`` = N).
* Else ``conflict`` (the hunk text is kept in ``HunkResult.text``).

File status: ``conflict`` if any hunk conflicts, and also when some hunks are
already-applied and others are not ("partly applied upstream": applying the
rest would leave a half-old file, so a person must look); ``already-applied``
when every hunk is; otherwise the worst of ``fuzz`` > ``offset`` > ``applied``.
A conflicting file keeps its content.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from patchkit.core.lines import lines_of
from patchkit.core.model import HunkResult, PatchResult, PatchStatus
from patchkit.core.patchfile import DEFAULT_MODE, FilePatch, Hunk, HunkLine, Patch

__all__ = [
    "FileApplyResult",
    "PatchApplyResult",
    "apply_file_patch",
    "apply_patch",
    "change_set",
    "unified_diff",
]

PARTLY_APPLIED = "partly applied upstream"

# Order used to pick the patch status from its files' statuses, worst first.
_SEVERITY = (
    PatchStatus.CONFLICT,
    PatchStatus.MISSING_TARGET,
    PatchStatus.FUZZ,
    PatchStatus.OFFSET,
    PatchStatus.APPLIED,
)


def _lines(data: bytes) -> list[str]:
    return lines_of(data)


def _bytes(lines: Iterable[str]) -> bytes:
    return "".join(lines).encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileApplyResult:
    """One file patch against one file: the outcome and the content after it (``None``: absent)."""

    path: str
    status: PatchStatus
    content: bytes | None
    hunks: tuple[HunkResult, ...] = ()
    message: str = ""
    mode: str | None = None  # the file's mode after the patch, when the patch says


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchApplyResult:
    """One patch against a set of files.

    ``contents`` holds the new content of every touched file (``None``: deleted)
    unless the patch conflicts or misses a target, in which case it is empty:
    such a patch changes nothing and the next patch sees the files unchanged.
    """

    name: str
    status: PatchStatus
    files: tuple[FileApplyResult, ...] = ()
    contents: dict[str, bytes | None] = field(default_factory=dict)
    message: str = ""

    @property
    def hunks(self) -> tuple[HunkResult, ...]:
        return tuple(h for f in self.files for h in f.hunks)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.path for f in self.files))

    def to_patch_result(self) -> PatchResult:
        return PatchResult(
            name=self.name,
            status=self.status,
            files=self.paths,
            hunks=self.hunks,
            message=self.message,
        )


# --------------------------------------------------------------------------- applying one hunk


@dataclass(slots=True)
class _Cursor:
    """Where the previous hunks of one file left things."""

    out: list[str]
    delta: int = 0  # lines the located hunks add (patch-old position -> position in out)
    growth: int = 0  # lines the applied hunks added to out (position in out -> input line)
    last_offset: int = 0
    last_end: int = 0


def _fits(out: Sequence[str], pos: int, length: int, new_block: Sequence[str]) -> bool:
    """Whether replacing out[pos:pos+length] by new_block keeps "only the last line lacks a newline"."""
    n = len(out)
    if new_block and not new_block[-1].endswith("\n") and pos + length != n:
        return False
    return not (new_block and length == 0 and pos == n and n and not out[-1].endswith("\n"))


def _search(
    out: Sequence[str],
    block: Sequence[str],
    replacement: Sequence[str],
    *,
    start: int,
    low: int,
    at_start: bool,
    at_end: bool,
) -> int | None:
    """Nearest position >= low where ``block`` sits in ``out``: start, start+1, start-1, ..."""
    m = len(block)
    high = len(out) - m
    if high < low:
        return None

    def match(pos: int) -> bool:
        return (
            low <= pos <= high
            and list(out[pos : pos + m]) == list(block)
            and _fits(out, pos, m, replacement)
        )

    if at_start or at_end:
        candidates = {0} if at_start else {high}
        if at_start and at_end:
            candidates = {0} if high == 0 else set()
        for pos in candidates:
            if match(pos):
                return pos
        return None
    if not block:
        distance = 0
        while True:
            down, up = start + distance, start - distance
            if down > high and up < low:
                return None
            for pos in (down, up) if distance else (down,):
                if match(pos):
                    return pos
            distance += 1
    # Where the block's first line is (list.index scans in C), nearest first: start, start+1,
    # start-1, start+2, ...
    first, found, at = block[0], [], low
    with contextlib.suppress(ValueError):
        while True:
            at = out.index(first, at, high + 1)
            found.append(at)
            at += 1
    for pos in sorted(found, key=lambda p: (abs(p - start), p < start)):
        if match(pos):
            return pos
    return None


def _anchors(hunk: Hunk, fuzz: int) -> tuple[int, int, bool, bool]:
    """(top, bottom) context lines to ignore and (start, end) anchoring at this fuzz, as GNU patch."""
    lead, trail = hunk.leading_context, hunk.trailing_context
    context = max(lead, trail)
    prefix_fuzz = fuzz + lead - context
    suffix_fuzz = fuzz + trail - context
    at_start = (prefix_fuzz < 0 and hunk.old_start <= 1) or (
        hunk.old_start == 0 and hunk.old_len == 0
    )
    at_end = suffix_fuzz < 0
    top = min(max(prefix_fuzz, 0), lead)
    bottom = min(max(suffix_fuzz, 0), trail)
    return top, bottom, at_start, at_end


def _nominal(hunk: Hunk) -> int:
    return hunk.old_start - 1 if hunk.old_len else hunk.old_start


def _apply_hunk(cur: _Cursor, hunk: Hunk, index: int, path: str, max_fuzz: int) -> HunkResult:
    old, new = list(hunk.old_lines), list(hunk.new_lines)
    nominal = _nominal(hunk) + cur.delta
    guess = nominal + cur.last_offset

    def located(
        pos: int, status: PatchStatus, fuzz: int, top: int, old_n: int, new_block: list[str]
    ) -> HunkResult:
        # pos: where the (fuzz-reduced) block starts in out; old_n lines there become new_block.
        hunk_pos = pos - top
        line = max(hunk_pos - cur.growth, 0) + 1
        if status is PatchStatus.ALREADY_APPLIED:
            cur.last_end = pos + len(new_block)
        else:
            cur.out[pos : pos + old_n] = new_block
            cur.growth += len(new_block) - old_n
            cur.last_end = pos + len(new_block)
        offset = hunk_pos - nominal
        cur.last_offset = offset
        cur.delta += len(new) - len(old)
        if status is PatchStatus.APPLIED and offset:
            status = PatchStatus.OFFSET
        return HunkResult(
            file=path, index=index, status=status, offset=offset, fuzz=fuzz, line=line
        )

    top, bottom, at_start, at_end = _anchors(hunk, 0)
    if not old and new and cur.last_end <= guess and cur.out[guess : guess + len(new)] == new:
        # Nothing to match, so it fits anywhere: only its new lines in place say "already there".
        return located(guess, PatchStatus.ALREADY_APPLIED, 0, 0, 0, new)
    pos = _search(
        cur.out, old, new, start=guess, low=cur.last_end, at_start=at_start, at_end=at_end
    )
    if pos is not None:
        return located(pos, PatchStatus.APPLIED, 0, 0, len(old), new)
    if new:
        pos = _search(
            cur.out, new, new, start=guess, low=cur.last_end, at_start=at_start, at_end=at_end
        )
        if pos is not None:
            return located(pos, PatchStatus.ALREADY_APPLIED, 0, 0, len(new), new)
    tried = {(top, bottom, at_start, at_end)}
    for fuzz in range(1, max_fuzz + 1):
        top, bottom, at_start, at_end = _anchors(hunk, fuzz)
        if (top, bottom, at_start, at_end) in tried:
            continue
        tried.add((top, bottom, at_start, at_end))
        old_block = old[top : len(old) - bottom]
        new_block = new[top : len(new) - bottom]
        if old and not old_block:
            continue  # nothing left to anchor on
        pos = _search(
            cur.out,
            old_block,
            new_block,
            start=guess + top,
            low=cur.last_end,
            at_start=at_start,
            at_end=at_end,
        )
        if pos is not None:
            return located(pos, PatchStatus.FUZZ, fuzz, top, len(old_block), new_block)
    return HunkResult(
        file=path,
        index=index,
        status=PatchStatus.CONFLICT,
        line=max(guess - cur.growth, 0) + 1,
        text=hunk.render(),
    )


# --------------------------------------------------------------------------- applying a file


def _file_status(results: Sequence[HunkResult]) -> tuple[PatchStatus, str]:
    statuses = {r.status for r in results}
    if PatchStatus.CONFLICT in statuses:
        failed = [r.index for r in results if r.status is PatchStatus.CONFLICT]
        return PatchStatus.CONFLICT, f"hunk {', '.join(map(str, failed))} failed"
    if PatchStatus.ALREADY_APPLIED in statuses and len(statuses) > 1:
        there = [r.index for r in results if r.status is PatchStatus.ALREADY_APPLIED]
        return (
            PatchStatus.CONFLICT,
            f"{PARTLY_APPLIED}: hunk {', '.join(map(str, there))} already present",
        )
    if statuses == {PatchStatus.ALREADY_APPLIED}:
        return PatchStatus.ALREADY_APPLIED, ""
    for status in (PatchStatus.FUZZ, PatchStatus.OFFSET):
        if status in statuses:
            return status, ""
    return PatchStatus.APPLIED, ""


def _whole(fp: FilePatch, status: PatchStatus) -> tuple[HunkResult, ...]:
    return tuple(
        HunkResult(
            file=fp.path,
            index=i,
            status=status,
            line=1,
            text=h.render() if status is PatchStatus.CONFLICT else "",
        )
        for i, h in enumerate(fp.hunks, 1)
    )


def apply_file_patch(content: bytes | None, fp: FilePatch, *, max_fuzz: int = 2) -> FileApplyResult:
    """Apply one file's hunks to ``content`` (``None``: the file is absent), in memory.

    Created files: absent -> ``applied``; present with exactly the new content ->
    ``already-applied``; present otherwise -> ``conflict``. Deleted files: absent ->
    ``already-applied``; present with exactly the old content -> ``applied``
    (content ``None``); otherwise ``conflict``. A changed file that is absent is
    ``missing-target``. See the module docstring for the hunk rules.

    >>> from patchkit.core.apply import unified_diff
    >>> fp = unified_diff(b"a\\nb\\nc\\n", b"a\\nB\\nc\\n", "f")
    >>> r = apply_file_patch(b"x\\na\\nb\\nc\\n", fp)
    >>> r.status.value, r.content, r.hunks[0].offset
    ('offset', b'x\\na\\nB\\nc\\n', 1)
    """
    path = fp.path
    if fp.is_new:
        created = _bytes(fp.new_lines)
        if content is None:
            return FileApplyResult(
                path=path,
                status=PatchStatus.APPLIED,
                content=created,
                hunks=_whole(fp, PatchStatus.APPLIED),
                mode=fp.new_mode,
            )
        if content == created:
            return FileApplyResult(
                path=path,
                status=PatchStatus.ALREADY_APPLIED,
                content=content,
                hunks=_whole(fp, PatchStatus.ALREADY_APPLIED),
            )
        return FileApplyResult(
            path=path,
            status=PatchStatus.CONFLICT,
            content=content,
            hunks=_whole(fp, PatchStatus.CONFLICT),
            message=f"{path}: the patch creates it, but it exists with other content",
        )
    if fp.is_deleted:
        if content is None:
            return FileApplyResult(
                path=path,
                status=PatchStatus.ALREADY_APPLIED,
                content=None,
                hunks=_whole(fp, PatchStatus.ALREADY_APPLIED),
            )
        if content == _bytes(fp.old_lines):
            return FileApplyResult(
                path=path,
                status=PatchStatus.APPLIED,
                content=None,
                hunks=_whole(fp, PatchStatus.APPLIED),
            )
        return FileApplyResult(
            path=path,
            status=PatchStatus.CONFLICT,
            content=content,
            hunks=_whole(fp, PatchStatus.CONFLICT),
            message=f"{path}: the patch deletes it, but its content differs from the patch",
        )
    if content is None:
        return FileApplyResult(
            path=path,
            status=PatchStatus.MISSING_TARGET,
            content=None,
            hunks=_whole(fp, PatchStatus.MISSING_TARGET),
            message=f"{path}: no such file in this release",
        )
    cur = _Cursor(out=_lines(content))
    results = tuple(_apply_hunk(cur, h, i, path, max_fuzz) for i, h in enumerate(fp.hunks, 1))
    status, message = _file_status(results)
    if status in (PatchStatus.CONFLICT, PatchStatus.ALREADY_APPLIED):
        new_content = content
    else:
        new_content = _bytes(cur.out)
    if message:
        message = f"{path}: {message}"
    mode = fp.new_mode if fp.new_mode != fp.old_mode else None
    return FileApplyResult(
        path=path, status=status, content=new_content, hunks=results, message=message, mode=mode
    )


def apply_patch(
    files: Mapping[str, bytes | None], patch: Patch, *, max_fuzz: int = 2
) -> PatchApplyResult:
    """Apply every file diff of ``patch`` to ``files`` (path -> content, ``None``: absent).

    Status: ``already-applied`` only if every file is; a mix of already-applied
    and changed files is a ``conflict`` ("partly applied upstream"); otherwise the
    worst of conflict > missing-target > fuzz > offset > applied. ``contents``
    has the new content of every touched file, or is empty when the patch
    conflicts or misses a target (nothing changes; the next patch of a series
    is then applied to the unchanged files). Paths absent from ``files`` are
    taken as absent. Two diffs of one path apply one after the other.
    """
    current: dict[str, bytes | None] = {}
    results: list[FileApplyResult] = []
    for fp in patch.files:
        path = fp.path
        before = current[path] if path in current else files.get(path)
        result = apply_file_patch(before, fp, max_fuzz=max_fuzz)
        results.append(result)
        current[path] = result.content
    statuses = [r.status for r in results]
    messages = [r.message for r in results if r.message]
    if not statuses:
        return PatchApplyResult(name=patch.name, status=PatchStatus.APPLIED)
    if all(s is PatchStatus.ALREADY_APPLIED for s in statuses):
        return PatchApplyResult(
            name=patch.name, status=PatchStatus.ALREADY_APPLIED, files=tuple(results)
        )
    status = (
        next(s for s in _SEVERITY if s in statuses)
        if any(s in _SEVERITY for s in statuses)
        else PatchStatus.APPLIED
    )
    if PatchStatus.ALREADY_APPLIED in statuses and status not in (
        PatchStatus.CONFLICT,
        PatchStatus.MISSING_TARGET,
    ):
        there = [r.path for r in results if r.status is PatchStatus.ALREADY_APPLIED]
        status = PatchStatus.CONFLICT
        messages.append(f"{PARTLY_APPLIED}: {', '.join(there)} already changed")
    contents = {} if status in (PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET) else current
    return PatchApplyResult(
        name=patch.name,
        status=status,
        files=tuple(results),
        contents=contents,
        message="; ".join(messages),
    )


# --------------------------------------------------------------------------- making diffs


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(
        b"blob %d\0" % len(data) + data
    ).hexdigest()  # git's blob id, for `index` lines


def _hunk(
    old: Sequence[str], new: Sequence[str], group: Sequence[tuple[str, int, int, int, int]]
) -> Hunk:
    i1, i2 = group[0][1], group[-1][2]
    j1, j2 = group[0][3], group[-1][4]
    lines: list[HunkLine] = []
    for tag, a1, a2, b1, b2 in group:
        if tag == "equal":
            lines.extend(HunkLine(kind=" ", text=t) for t in old[a1:a2])
            continue
        lines.extend(HunkLine(kind="-", text=t) for t in old[a1:a2])
        lines.extend(HunkLine(kind="+", text=t) for t in new[b1:b2])
    old_len, new_len = i2 - i1, j2 - j1
    return Hunk(
        old_start=i1 + 1 if old_len else i1,
        old_len=old_len,
        new_start=j1 + 1 if new_len else j1,
        new_len=new_len,
        lines=tuple(lines),
    )


def unified_diff(
    old: bytes | None, new: bytes | None, path: str, *, context: int = 3, mode: str = DEFAULT_MODE
) -> FilePatch | None:
    """The :class:`FilePatch` turning ``old`` into ``new`` (``None``: absent), or None if they are equal.

    Hunks are difflib's (no autojunk, so the result is minimal-ish and stable);
    a missing final newline is kept as in the content. ``mode`` is recorded for
    created and deleted files.
    """
    if old == new:
        return None
    a = _lines(old) if old is not None else []
    b = _lines(new) if new is not None else []
    hunks: list[Hunk] = []
    if a != b:
        import difflib  # only for making diffs, not for applying them

        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        hunks = [_hunk(a, b, group) for group in matcher.get_grouped_opcodes(context)]
    raw = [f"diff --git a/{path} b/{path}\n"]
    old_id = _blob_id(old) if old is not None else "0" * 40
    new_id = _blob_id(new) if new is not None else "0" * 40
    raw.append(f"index {old_id[:12]}..{new_id[:12]}\n")
    return FilePatch(
        old_path=path if old is not None else None,
        new_path=path if new is not None else None,
        hunks=tuple(hunks),
        old_mode=mode if new is None else None,
        new_mode=mode if old is None else None,
        raw_header_lines=tuple(raw),
    )


def change_set(
    item: FilePatch | Patch | Iterable[FilePatch],
) -> dict[str, tuple[Counter[str], Counter[str]]]:
    """Per target path, the multisets of removed and added lines (context and positions ignored).

    A line both removed and added in one file cancels out, so moving a line or
    re-wrapping a hunk leaves the change set unchanged.

    >>> fp = unified_diff(b"a\\nb\\n", b"b\\na\\nc\\n", "f")
    >>> change_set(fp)["f"]
    (Counter(), Counter({'c\\n': 1}))
    """
    if isinstance(item, FilePatch):
        fps: Iterable[FilePatch] = (item,)
    elif isinstance(item, Patch):
        fps = item.files
    else:
        fps = item
    raw: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for fp in fps:
        removed, added = raw.setdefault(fp.path, (Counter(), Counter()))
        for h in fp.hunks:
            for ln in h.lines:
                if ln.kind == "-":
                    removed[ln.text] += 1
                elif ln.kind == "+":
                    added[ln.text] += 1
    return {path: (removed - added, added - removed) for path, (removed, added) in raw.items()}
