"""Edits: pattern-anchored changes with asserted match counts (``name.edit.toml``).

An edit file is TOML: top-level string keys are its header (``description``,
``upstream-versions``, anything else kept verbatim), then one or more ``[[edit]]`` tables,
applied in order, each with exactly one operation (DESIGN.md, "Kinds of change"). An edit that
matches fewer times than its ``count`` is a *no-match*, more is an *over-match*: either makes
the patch ``conflict``, with the most similar line of the file for a no-match.
``already-applied`` is only reported where the edit's own result is demonstrably there and its
anchor is not (the ``with`` text, the lines right after their anchor, the appended block).

Regular expressions run on the ``regex`` module (the syntax of Python's ``re``, MULTILINE) with
a timeout: a catastrophic pattern is stopped after :data:`REGEX_TIMEOUT` seconds per file and
reported as a ``conflict`` with reason ``timeout``, so it never hangs a check or a matrix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchkit.core.globs import glob_to_regex
from patchkit.core.lines import split_lines
from patchkit.core.model import ChangeKind, EditResult, NearestLine, PatchResult, PatchStatus
from patchkit.core.ranges import in_range
from patchkit.kinds.base import NO_CONTEXT, ApplyContext, ChangeOutcome, PathLister, skipped_result
from patchkit.kinds.dep3 import TomlHeader
from patchkit.kinds.editfile import OPS, Count, Edit, Op, parse_edit_file

__all__ = ["OPS", "REGEX_TIMEOUT", "Count", "Edit", "EditChange", "Op", "load_edit"]

REGEX_TIMEOUT = 2.0  # seconds one regex may run on one file before it is stopped


@dataclass(frozen=True, slots=True, kw_only=True)
class EditChange(TomlHeader):
    """An edit file seen through the :class:`~patchkit.kinds.base.Change` protocol."""

    name: str
    data: bytes
    header: Mapping[str, str]
    edits: tuple[Edit, ...]
    _globs: tuple[str, ...] = field(default=(), repr=False)

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind.EDIT

    @property
    def paths(self) -> tuple[str, ...]:
        return self._globs

    def applies_to(self, version: str) -> bool:
        return in_range(self.upstream_versions, version, where=f"patches/{self.name}")

    def targets(self, lister: PathLister) -> tuple[str, ...]:
        return tuple(dict.fromkeys(lister(self._globs)))

    def render(self) -> bytes:
        return self.data

    def apply(
        self,
        files: Mapping[str, bytes | None],
        *,
        version: str,
        context: ApplyContext = NO_CONTEXT,
    ) -> ChangeOutcome:
        if not self.applies_to(version):
            skipped = skipped_result(self.name, (), self.upstream_versions, version)
            return ChangeOutcome(result=_as_edit(skipped))
        texts = {p: d.decode("utf-8", "surrogateescape") for p, d in files.items() if d is not None}
        results: list[EditResult] = []
        touched: dict[str, None] = {}
        for edit in self.edits:
            regexes = [glob_to_regex(g) for g in edit.files]
            matched = sorted(p for p in texts if any(r.match(p) for r in regexes))
            if not edit.expect_files.admits(len(matched)):
                few = len(matched) < edit.expect_files.low
                results.append(
                    EditResult(
                        index=edit.index,
                        file="",
                        op=edit.op,
                        status=PatchStatus.MISSING_TARGET if few else PatchStatus.CONFLICT,
                        reason="too-few-files" if few else "too-many-files",
                        matches=len(matched),
                        expected=edit.expect_files.text,
                        message=f"{len(matched)} file(s) match {', '.join(edit.files)}",
                    )
                )
                continue
            for path in matched:
                new_text, result = apply_edit(edit, path, texts[path])
                results.append(result)
                touched[path] = None
                if result.status is PatchStatus.APPLIED:
                    texts[path] = new_text
        statuses = {r.status for r in results}
        if PatchStatus.CONFLICT in statuses:
            status = PatchStatus.CONFLICT
        elif PatchStatus.MISSING_TARGET in statuses:
            status = PatchStatus.MISSING_TARGET
        elif statuses == {PatchStatus.ALREADY_APPLIED}:
            status = PatchStatus.ALREADY_APPLIED
        else:
            status = PatchStatus.APPLIED
        failed = [
            r for r in results if r.status in (PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET)
        ]
        contents: dict[str, bytes | None] = {}
        if not failed:
            for path in touched:
                new = texts[path].encode("utf-8", "surrogateescape")
                if new != files[path]:
                    contents[path] = new
        message = "; ".join(_describe(r) for r in failed)
        if failed and self.header.get("verified"):
            # What the change was checked against tells whether a failure is news (DESIGN:
            # a poste.io-only target reports missing-target with its unverified note).
            message += f" [verified: {self.header['verified'].strip()}]"
        patch_result = PatchResult(
            name=self.name,
            status=status,
            files=tuple(touched),
            message=message,
            kind=ChangeKind.EDIT,
            edits=tuple(results),
        )
        return ChangeOutcome(result=patch_result, contents=contents)


def _as_edit(result: PatchResult) -> PatchResult:
    from dataclasses import replace

    return replace(result, kind=ChangeKind.EDIT)


def _describe(r: EditResult) -> str:
    where = f" on {r.file}" if r.file else ""
    text = f"edit {r.index} ({r.op}){where}: {r.reason}"
    if r.reason in ("no-match", "over-match"):
        text += f" ({r.matches} match(es), expected {r.expected})"
    if r.nearest is not None:
        text += f"; nearest line {r.nearest.line}: {r.nearest.text.strip()[:80]}"
    if r.message and r.reason not in ("no-match", "over-match"):
        text += f" ({r.message})"
    return text


# --------------------------------------------------------------------------- applying one edit


def _nearest(anchor: str, text: str) -> NearestLine | None:
    """The line of ``text`` most like ``anchor``'s first non-blank line (difflib ratio)."""
    probe = next((ln.strip() for ln in anchor.splitlines() if ln.strip()), anchor.strip())
    if not probe:
        return None
    best: tuple[float, int, str] | None = None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(probe)
    for no, line in enumerate(split_lines(text), start=1):
        body = line.rstrip("\n")
        if not body.strip():
            continue
        matcher.set_seq1(body.strip())
        if best is not None and matcher.real_quick_ratio() <= best[0]:
            continue
        if best is not None and matcher.quick_ratio() <= best[0]:
            continue
        ratio = matcher.ratio()
        if best is None or ratio > best[0]:
            best = (ratio, no, body)
    return NearestLine(line=best[1], text=best[2]) if best and best[0] > 0 else None


def _block(lines: Sequence[str]) -> list[str]:
    return [ln + "\n" for ln in lines]


def _has_backrefs(template: str) -> bool:
    return "\\" in template


def apply_edit(edit: Edit, path: str, text: str) -> tuple[str, EditResult]:
    """One edit on one file's text: the new text and the per-file result."""

    def result(
        status: PatchStatus, matches: int, reason: str = "", message: str = ""
    ) -> EditResult:
        nearest = None
        if reason == "no-match":
            nearest = _nearest(edit.until if message == "until" else edit.anchor, text)
            message = ""
        return EditResult(
            index=edit.index,
            file=path,
            op=edit.op,
            status=status,
            reason=reason,
            matches=matches,
            expected=edit.count.text,
            nearest=nearest,
            message=message,
        )

    def counted(n: int, already: bool = False) -> EditResult | None:
        """The failure for ``n`` matches, or None when the count is met."""
        if edit.count.admits(n):
            return None
        if n < edit.count.low:
            if already:
                return result(PatchStatus.ALREADY_APPLIED, n)
            return result(PatchStatus.CONFLICT, n, "no-match")
        return result(PatchStatus.CONFLICT, n, "over-match")

    op = edit.op
    if op == "replace":
        return _replace(edit, text, result, counted)
    if op in ("append", "prepend"):
        block = edit.anchor if edit.anchor.endswith("\n") else edit.anchor + "\n"
        if op == "append":
            if text.endswith(block) or text.rstrip("\n").endswith(block.rstrip("\n")):
                return text, result(PatchStatus.ALREADY_APPLIED, 0)
            sep = "" if not text or text.endswith("\n") else "\n"
            return text + sep + block, result(PatchStatus.APPLIED, 1)
        if text.startswith(block):
            return text, result(PatchStatus.ALREADY_APPLIED, 0)
        return block + text, result(PatchStatus.APPLIED, 1)
    lines = split_lines(text)
    if op == "delete":
        hits = [i for i, ln in enumerate(lines) if edit.anchor in ln]
        failure = counted(len(hits))
        if failure is not None:
            return text, failure
        drop = set(hits)
        return "".join(ln for i, ln in enumerate(lines) if i not in drop), result(
            PatchStatus.APPLIED, len(hits)
        )
    if op == "delete-from":
        ranges: list[tuple[int, int]] = []
        i = 0
        while True:
            start = next((k for k in range(i, len(lines)) if edit.anchor in lines[k]), None)
            if start is None:
                break
            end = next((k for k in range(start + 1, len(lines)) if edit.until in lines[k]), None)
            if end is None:
                return text, result(PatchStatus.CONFLICT, len(ranges), "no-match", "until")
            ranges.append((start, end))
            i = end + 1
        failure = counted(len(ranges))
        if failure is not None:
            return text, failure
        drop = {k for s, e in ranges for k in range(s, e + 1)}
        return "".join(ln for k, ln in enumerate(lines) if k not in drop), result(
            PatchStatus.APPLIED, len(ranges)
        )
    # insert-after / insert-before
    inserted = _block(edit.lines)
    want = [ln.rstrip("\n") for ln in inserted]
    anchors = [i for i, ln in enumerate(lines) if edit.anchor in ln]
    failure = counted(len(anchors))
    if failure is not None:
        return text, failure
    k = len(inserted)

    def has_block(i: int) -> bool:
        near = lines[i + 1 : i + 1 + k] if op == "insert-after" else lines[max(i - k, 0) : i]
        return len(near) == k and [ln.rstrip("\n") for ln in near] == want

    missing = [i for i in anchors if not has_block(i)]
    if not missing:
        return text, result(PatchStatus.ALREADY_APPLIED, len(anchors))
    out: list[str] = []
    todo = set(missing)
    for i, ln in enumerate(lines):
        if i in todo and op == "insert-before":
            out.extend(inserted)
        if i in todo and op == "insert-after" and not ln.endswith("\n"):
            ln += "\n"
        out.append(ln)
        if i in todo and op == "insert-after":
            out.extend(inserted)
    return "".join(out), result(PatchStatus.APPLIED, len(anchors))


def _replace(edit: Edit, text: str, result: Any, counted: Any) -> tuple[str, EditResult]:
    old, new = edit.anchor, edit.with_text
    if not edit.regex:
        n = text.count(old)
        if new and old in new and n and text.count(new) >= n:
            return text, result(PatchStatus.ALREADY_APPLIED, 0)  # every anchor sits in a result
        failure = counted(n, already=bool(new) and n == 0 and new in text)
        if failure is not None:
            return text, failure
        return text.replace(old, new), result(PatchStatus.APPLIED, n)
    import regex

    pattern = regex.compile(old, regex.MULTILINE | regex.V0)
    try:
        n = sum(1 for _ in pattern.finditer(text, timeout=REGEX_TIMEOUT))
        literal = not _has_backrefs(new)
        failure = counted(n, already=literal and bool(new) and n == 0 and new in text)
        if failure is not None:
            return text, failure
        return pattern.sub(new, text, timeout=REGEX_TIMEOUT), result(PatchStatus.APPLIED, n)
    except TimeoutError:
        return text, result(
            PatchStatus.CONFLICT,
            0,
            "timeout",
            f"the regex ran for more than {REGEX_TIMEOUT:g} s on this file and was stopped",
        )
    except (regex.error, IndexError) as e:  # a bad group reference in `with`
        return text, result(PatchStatus.CONFLICT, 0, "bad-replacement", str(e))


# --------------------------------------------------------------------------- parsing


def load_edit(data: bytes, *, name: str) -> EditChange:
    """Parse an edit file; every error is one line naming ``patches/NAME:LINE``."""
    header, edits = parse_edit_file(data, name=name)
    globs = tuple(dict.fromkeys(g for e in edits for g in e.files))
    return EditChange(name=name, data=data, header=header, edits=edits, _globs=globs)
