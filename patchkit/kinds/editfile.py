"""Edit files (``NAME.edit.toml``): the records and the parser. Every error is one line naming
``patches/NAME:LINE`` (the TOML error's line, or the line of the key at fault)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from patchkit.core.patchfile import check_relative_path
from patchkit.core.ranges import check_range
from patchkit.errors import EditFileError, PatchParseError

__all__ = ["OPS", "Count", "Edit", "Op", "parse_edit_file"]


# The operations, in the order the docs list them; `delete-to` goes with `delete-from`.
OPS = ("replace", "delete", "delete-from", "insert-after", "insert-before", "append", "prepend")


Op = str


_KEYS = frozenset(OPS) | {"files", "expect-files", "count", "regex", "with", "lines", "delete-to"}


_LINE_ANCHORS = ("delete", "delete-from", "delete-to", "insert-after", "insert-before")
_KEY_LINE = re.compile(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")
_EDIT_TABLE = re.compile(r"\[\[\s*edit\s*\]\]")


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


def _key_lines(text: str) -> tuple[dict[str, int], list[tuple[int, dict[str, int]]]]:
    """Line numbers of the top-level keys, and of each ``[[edit]]`` table and its keys."""
    top: dict[str, int] = {}
    tables: list[tuple[int, dict[str, int]]] = []
    key = _KEY_LINE
    for no, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if _EDIT_TABLE.match(stripped):
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
        # Checked with Python's own re (the syntax the docs promise; the engine that runs it,
        # the regex module with its timeout, reads the same syntax): loading regex costs more
        # than parsing a whole series, and only an edit that runs needs it.
        try:
            re.compile(anchor, re.MULTILINE)
        except re.error as e:
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


def parse_edit_file(data: bytes, *, name: str) -> tuple[dict[str, str], tuple[Edit, ...]]:
    """The header and the ``[[edit]]`` tables of an edit file; every error is one line naming
    ``patches/NAME:LINE``."""
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
    return header, tuple(edits)
