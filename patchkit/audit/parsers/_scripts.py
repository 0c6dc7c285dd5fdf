"""Reading the small programs configs are made of: comments blanked out, shell words,
literal lists (PHP, JavaScript, sieve), PHP string expressions.

Every function keeps offsets (comments become spaces, newlines stay), so a match in the
cleaned text has the line number it had in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Arg",
    "blank_comments",
    "line_of",
    "list_elements",
    "php_value",
    "shell_words",
    "string_end",
]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: a literal's value, or the expression as written (``literal`` False)."""

    text: str
    literal: bool = True


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


def _line_comment(text: str, i: int, style: str) -> bool:
    """Whether a comment running to the end of the line starts at ``i``."""
    if style in ("c", "php") and text.startswith("//", i):
        return True
    if text[i] != "#" or (style == "php" and text.startswith("#[", i)):  # a PHP attribute
        return False
    return style in ("php", "sieve") or (style == "hash" and (i == 0 or text[i - 1] in " \t\n;"))


def blank_comments(text: str, style: str) -> str:
    """``text`` with its comments turned into spaces. ``style``: ``hash`` (shell, YAML: a
    ``#`` at the start of a word), ``sieve`` (``#`` anywhere outside strings, ``/* */``),
    ``c`` (JavaScript: ``//``, ``/* */``), ``php`` (``c`` plus ``#``)."""
    out: list[str] = []
    i, n, quote = 0, len(text), ""
    escapes = style != "hash"
    while i < n:
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and (escapes or quote == '"') and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "'\"" or (ch == "`" and style in ("c", "php")):
            quote = ch
            out.append(ch)
            i += 1
            continue
        comment_end = -1
        if style in ("c", "php", "sieve") and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            comment_end = n if end < 0 else end + 2
        elif _line_comment(text, i, style):
            end = text.find("\n", i)
            comment_end = n if end < 0 else end
        if comment_end >= 0:
            out.append(_blank(text[i:comment_end]))
            i = comment_end
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def string_end(text: str, start: int) -> int:
    """The index of the quote closing the string whose opening quote is at ``start``
    (``len(text)`` if unterminated)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "'":
            i += 2
            continue
        if text[i] == "\\" and quote == "'" and text[i + 1 : i + 2] in ("'", "\\"):
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return len(text)


def _unescape(body: str, quote: str) -> str:
    if quote == "'":
        return body.replace("\\'", "'").replace("\\\\", "\\")
    return re.sub(r"\\(.)", r"\1", body)


def shell_words(text: str) -> list[Arg]:
    """The words of one shell command in ``text``, up to its end (a newline that is not
    escaped, or an unquoted ``|``, ``;``, ``&``, ``)``, ``>``, ``<``). Quotes are removed;
    ``$(...)``, ``${...}`` and backticks stay inside their word; a word holding ``$`` is not
    a literal."""
    words: list[Arg] = []
    cur: list[str] = []
    dynamic = False
    started = False
    i, n = 0, len(text)

    def flush() -> None:
        nonlocal cur, dynamic, started
        if started:
            words.append(Arg("".join(cur), literal=not dynamic))
        cur, dynamic, started = [], False, False

    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                cur.append(text[i + 1])
                started = True
            i += 2
            continue
        if ch in " \t":
            flush()
            i += 1
            continue
        if ch in "\n|;&)><":
            break
        if ch in "'\"":
            end = string_end(text, i)
            body = text[i + 1 : end]
            if ch == '"' and "$" in body:
                dynamic = True
            cur.append(body if ch == "'" else _unescape(body, ch))
            started = True
            i = end + 1
            continue
        if ch == "$" and text.startswith(("$(", "${"), i):
            close = ")" if text[i + 1] == "(" else "}"
            depth, j = 0, i + 1
            while j < n:
                if text[j] in "({":
                    depth += 1
                elif text[j] in ")}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            cur.append(text[i : j + 1] if j < n and text[j] == close else text[i:])
            dynamic, started = True, True
            i = j + 1
            continue
        if ch == "`":
            j = text.find("`", i + 1)
            j = n - 1 if j < 0 else j
            cur.append(text[i : j + 1])
            dynamic, started = True, True
            i = j + 1
            continue
        if ch == "$":
            dynamic = True
        cur.append(ch)
        started = True
        i += 1
    flush()
    return words


def list_elements(text: str, start: int, concat: str = ".") -> tuple[list[Arg], int]:
    """The elements of a list literal from ``start`` (just after an element or an opening
    bracket) to its closing ``]`` or ``)``: string literals as values, anything else as the
    expression written (``concat``: the string operator, PHP ``.``, JavaScript ``+``).
    Returns the elements and the index after the list."""
    out: list[Arg] = []
    i, n = start, len(text)
    expr: list[str] = []
    depth = 0

    def push() -> None:
        raw = "".join(expr).strip()
        if raw:
            out.append(php_value(raw, concat))
        expr.clear()

    while i < n:
        ch = text[i]
        if ch in "'\"":
            end = string_end(text, i)
            expr.append(text[i : end + 1])
            i = end + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                push()
                return out, i + 1
            depth -= 1
        elif ch == "," and depth == 0:
            push()
            i += 1
            continue
        expr.append(ch)
        i += 1
    push()
    return out, n


def php_value(expr: str, concat: str = ".") -> Arg:
    """A PHP (or, with ``concat`` ``+``, JavaScript) expression's string value when it is
    string literals joined by ``concat``; a part that is not a literal is kept as written
    (``gethostname()``), and the value is then not a literal."""
    parts: list[str] = []
    literal = True
    i, n = 0, len(expr)
    piece: list[str] = []

    def push_piece() -> None:
        nonlocal literal
        raw = "".join(piece).strip()
        piece.clear()
        if raw:
            parts.append(raw)
            literal = literal and bool(re.fullmatch(r"-?\d+", raw))

    while i < n:
        ch = expr[i]
        if ch in "'\"":
            end = string_end(expr, i)
            if "".join(piece).strip():  # a string inside an expression: kept as written
                piece.append(expr[i : end + 1])
                i = end + 1
                continue
            body = expr[i + 1 : end]
            if ch == '"' and "$" in body:
                literal = False
            parts.append(_unescape(body, ch))
            i = end + 1
            continue
        if ch == concat and not re.match(r"\d", expr[i + 1 : i + 2] or "x"):
            push_piece()
            i += 1
            continue
        piece.append(ch)
        i += 1
    push_piece()
    if literal and not parts:
        return Arg("", literal=True)
    return Arg("".join(parts), literal=literal)
