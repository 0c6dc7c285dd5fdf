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
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchkit.core.globs import glob_to_regex
from patchkit.core.lines import split_lines
from patchkit.core.model import ChangeKind, EditResult, NearestLine, PatchResult, PatchStatus
from patchkit.core.patchfile import check_relative_path
from patchkit.core.ranges import check_range, in_range
from patchkit.errors import EditFileError, PatchParseError
from patchkit.kinds.base import NO_CONTEXT, ApplyContext, ChangeOutcome, PathLister, skipped_result
from patchkit.kinds.dep3 import dep3_header

__all__ = ["REGEX_TIMEOUT", "Count", "Edit", "EditChange", "Op", "load_edit"]

REGEX_TIMEOUT = 2.0  # seconds one regex may run on one file before it is stopped

# The operations, in the order the docs list them; `delete-to` goes with `delete-from`.
OPS = ("replace", "delete", "delete-from", "insert-after", "insert-before", "append", "prepend")
Op = str
_KEYS = frozenset(OPS) | {"files", "expect-files", "count", "regex", "with", "lines", "delete-to"}
_LINE_ANCHORS = ("delete", "delete-from", "delete-to", "insert-after", "insert-before")


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    """How many matches (or files) an edit asserts: ``low`` to ``high`` (None: no limit)."""

    low: int
    high: int | None
    text: str  # as written: "1", "2..3", ">=1"

    def admits(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit:
    """One ``[[edit]]`` table."""

    index: int  # 1-based
    line: int  # where its table starts in the file
    op: Op
    files: tuple[str, ...]
    expect_files: Count
    count: Count
    anchor: str = ""  # replace / delete / delete-from / insert-* text; append/prepend block
    until: str = ""  # delete-to
    with_text: str = ""
    regex: bool = False
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EditChange:
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
    def upstream_versions(self) -> str | None:
        return self.header.get("upstream-versions")

    @property
    def description(self) -> str:
        return self.header.get("description", "")

    @property
    def paths(self) -> tuple[str, ...]:
        return self._globs

    @property
    def patch_header(self) -> str:
        return dep3_header(self.header)

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


def _key_lines(text: str) -> tuple[dict[str, int], list[tuple[int, dict[str, int]]]]:
    """Line numbers of the top-level keys, and of each ``[[edit]]`` table and its keys."""
    top: dict[str, int] = {}
    tables: list[tuple[int, dict[str, int]]] = []
    key = re.compile(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")
    for no, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if re.match(r"\[\[\s*edit\s*\]\]", stripped):
            tables.append((no, {}))
            continue
        m = key.match(line)
        if m is None:
            continue
        name = m.group(1) or m.group(2) or m.group(3)
        target = tables[-1][1] if tables else top
        target.setdefault(name, no)
    return top, tables


def _count(value: object, where: str, what: str, minimum: int) -> Count:
    if isinstance(value, bool):
        raise EditFileError(f'{where}: bad {what} {value!r}: N, "N..M" or ">=N"')
    if isinstance(value, int):
        if value < minimum:
            raise EditFileError(f"{where}: bad {what} {value}: at least {minimum}")
        return Count(low=value, high=value, text=str(value))
    if isinstance(value, str):
        s = value.strip()
        m = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)", s)
        if m and minimum <= int(m.group(1)) <= int(m.group(2)):
            return Count(low=int(m.group(1)), high=int(m.group(2)), text=s)
        m = re.fullmatch(r">=\s*(\d+)", s)
        if m and int(m.group(1)) >= minimum:
            return Count(low=int(m.group(1)), high=None, text=s)
        if re.fullmatch(r"\d+", s) and int(s) >= minimum:
            return Count(low=int(s), high=int(s), text=s)
    raise EditFileError(f'{where}: bad {what} {value!r}: N, "N..M" or ">=N" (N >= {minimum})')


def load_edit(data: bytes, *, name: str) -> EditChange:
    """Parse an edit file; every error is one line naming ``patches/NAME:LINE``."""
    where = f"patches/{name}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EditFileError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = m.group(1) if m else "1"
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg) if m else msg
        raise EditFileError(f"{where}:{line}: invalid TOML: {msg}") from e
    top_lines, table_lines = _key_lines(text)
    header: dict[str, str] = {}
    for key, value in doc.items():
        if key == "edit":
            continue
        if not isinstance(value, str):
            raise EditFileError(
                f"{where}:{top_lines.get(key, 1)}: header key '{key}' must be a string "
                "(edits go in [[edit]] tables)"
            )
        header[key] = value
    if "upstream-versions" in header:
        try:
            check_range(
                header["upstream-versions"], f"{where}:{top_lines.get('upstream-versions', 1)}"
            )
        except PatchParseError as e:
            raise EditFileError(str(e)) from e
    raw = doc.get("edit")
    if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
        line = top_lines.get("edit", 1)
        raise EditFileError(f"{where}:{line}: no [[edit]] table (an edit file needs at least one)")
    edits = []
    for i, table in enumerate(raw, start=1):
        start, keys = table_lines[i - 1] if i - 1 < len(table_lines) else (1, {})
        edits.append(_parse_edit(table, i, start, keys, where))
    globs = tuple(dict.fromkeys(g for e in edits for g in e.files))
    return EditChange(name=name, data=data, header=header, edits=tuple(edits), _globs=globs)


def _parse_edit(
    table: dict[str, Any], index: int, start: int, keys: dict[str, int], where: str
) -> Edit:
    def at(key: str | None = None) -> str:
        return f"{where}:{keys.get(key, start) if key else start}"

    for key in table:
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise EditFileError(
                f"{at(key)}: unknown key '{key}' in [[edit]] {index} (known: {known})"
            )
    ops = sorted((op for op in OPS if op in table), key=lambda op: keys.get(op, 0))  # file order
    if not ops:
        raise EditFileError(f"{at()}: [[edit]] {index} has no operation (one of: {', '.join(OPS)})")
    if len(ops) > 1:
        raise EditFileError(
            f"{at(ops[1])}: [[edit]] {index} has two operations ({', '.join(ops)}): one per table"
        )
    op = ops[0]
    if "delete-to" in table and op != "delete-from":
        raise EditFileError(f"{at('delete-to')}: delete-to goes with delete-from")
    for key, allowed in (("with", ("replace",)), ("regex", ("replace",)),
                         ("lines", ("insert-after", "insert-before")),
                         ("count", OPS[:5])):  # fmt: skip
        if key in table and op not in allowed:
            raise EditFileError(f"{at(key)}: '{key}' does not go with {op}")
    if op == "delete-from" and "delete-to" not in table:
        raise EditFileError(f"{at(op)}: delete-from needs delete-to (the line that ends the range)")
    if op == "replace" and "with" not in table:
        raise EditFileError(f"{at(op)}: replace needs 'with' (the replacement text)")
    if op in ("insert-after", "insert-before") and "lines" not in table:
        raise EditFileError(f"{at(op)}: {op} needs 'lines' (a list of lines to insert)")

    files_value = table.get("files")
    if files_value is None:
        raise EditFileError(f"{at()}: [[edit]] {index} needs 'files' (a glob or a list of globs)")
    globs = [files_value] if isinstance(files_value, str) else files_value
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) and g for g in globs):
        raise EditFileError(f"{at('files')}: 'files' must be a glob or a non-empty list of globs")
    for g in globs:
        problem = check_relative_path(g)
        if problem:
            raise EditFileError(
                f"{at('files')}: 'files' glob {g!r}: {problem} (image-root relative)"
            )

    def string(key: str) -> str:
        value = table[key]
        if not isinstance(value, str) or (key != "with" and not value):
            raise EditFileError(f"{at(key)}: '{key}' must be a non-empty string")
        if key in _LINE_ANCHORS and "\n" in value:
            raise EditFileError(f"{at(key)}: '{key}' matches within one line: no newline in it")
        return value

    anchor = string(op)
    with_text = string("with") if op == "replace" else ""
    is_regex = table.get("regex", False)
    if not isinstance(is_regex, bool):
        raise EditFileError(f"{at('regex')}: 'regex' must be true or false")
    if is_regex:
        import regex

        try:
            regex.compile(anchor, regex.MULTILINE | regex.V0)
        except regex.error as e:
            raise EditFileError(f"{at(op)}: regex {anchor!r} does not compile: {e}") from e
    lines: tuple[str, ...] = ()
    if "lines" in table:
        value = table["lines"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(
            isinstance(x, str) and "\n" not in x for x in value
        ):
            raise EditFileError(f"{at('lines')}: 'lines' must be a list of one-line strings")
        lines = tuple(value)
    count = _count(table.get("count", 1), at("count"), "count", 0)
    expect = _count(table.get("expect-files", ">=1"), at("expect-files"), "expect-files", 0)
    return Edit(
        index=index,
        line=start,
        op=op,
        files=tuple(globs),
        expect_files=expect,
        count=count,
        anchor=anchor,
        until=string("delete-to") if op == "delete-from" else "",
        with_text=with_text,
        regex=is_regex,
        lines=lines,
    )
