"""UCL, the subset rspamd's configs use, read into a tree that keeps where each value came
from and at which priority.

Syntax: ``key = value;`` / ``key: value`` / ``key value`` (newline or ``;``/``,`` ends a
value), ``key { ... }``, ``key "name" { ... }`` (= ``key { name { ... } }``), ``[ ... ]``
arrays, double/single-quoted strings, ``<<TAG`` heredocs, ``#`` and nested ``/* */``
comments (and ``//`` at the start of a token, as rspamd's own examples never use it in a
value). Macros: ``.include`` / ``.try_include`` with ``(try=true; priority=N;
duplicate=append|merge|replace|rewrite|error; glob=true)``, ``.priority(N)``.

Priorities as libucl applies them: a key set at a higher priority replaces the key's
values of lower priority; at equal priority ``duplicate`` decides (``append``, the default,
keeps both as an implicit array; ``merge`` merges objects). A file a non-``try`` include
names that is absent, and syntax this reader does not know, are reported through ``fail``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from patchkit.audit.parsers._common import Fail, has_glob, matches
from patchkit.audit.view import FileView, join_path

__all__ = ["UclObject", "UclValue", "read_ucl", "scalars", "walk"]


@dataclass(slots=True)
class UclValue:
    """One value: a string (scalars are kept as written), an object or a list."""

    value: str | UclObject | list[UclValue]
    file: str
    line: int
    priority: int = 0


@dataclass(slots=True)
class UclObject:
    keys: dict[str, list[UclValue]] = field(default_factory=dict)

    def get(self, key: str) -> list[UclValue]:
        return self.keys.get(key, [])


class _Stop(Exception):
    """Syntax this reader cannot follow: the file's reading ends there."""


_ATOM_END = set(" \t\r\n;,{}[]\"'=")
_PUNCT = set("{}[];,=")


@dataclass(slots=True)
class _Token:
    kind: str  # "atom" | "string" | "punct" | "macro" | "heredoc"
    text: str
    line: int
    newline_before: bool = False


def _tokens(text: str, file: str) -> Iterator[_Token]:
    i, n, line = 0, len(text), 1
    newline = True
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            newline = True
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            depth, i, start = 1, i + 2, line
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += text[i] == "\n"
                    i += 1
            if depth:
                raise _Stop(f"{file}:{start}: unterminated /* comment")
        elif ch in "\"'":
            j, buf, start = i + 1, [], line
            while j < n and text[j] != ch:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                line += text[j] == "\n"
                buf.append(text[j])
                j += 1
            if j >= n:
                raise _Stop(f"{file}:{start}: unterminated quoted string")
            yield _Token("string", "".join(buf), start, newline)
            newline = False
            i = j + 1
        elif text.startswith("<<", i) and (m := re.match(r"<<([A-Z][A-Z0-9_]*)\n", text[i:])):
            tag, start = m.group(1), line
            body_start = i + m.end()
            end = re.compile(rf"^{tag}[ \t]*$", re.MULTILINE).search(text, body_start)
            if end is None:
                raise _Stop(f"{file}:{start}: heredoc <<{tag} not closed")
            body = text[body_start : end.start()]
            line += body.count("\n") + 1
            yield _Token("heredoc", body, start, newline)
            newline = False
            i = end.end()
        elif ch in _PUNCT:
            yield _Token("punct", ch, line, newline)
            newline = False
            i += 1
        elif ch == "." and (m := re.match(r"\.([a-z_]+)", text[i:])):
            yield _Token("macro", m.group(1), line, newline)
            newline = False
            i += m.end()
        else:
            j = i
            while j < n and text[j] not in _ATOM_END:
                j += 1
            yield _Token("atom", text[i:j], line, newline)
            newline = False
            i = j


class _Reader:
    """Reads one file's tokens into an object, following includes through ``include``."""

    def __init__(
        self,
        tokens: list[_Token],
        file: str,
        include: Callable[[str, dict[str, str], int], list[tuple[str, UclObject]]],
    ) -> None:
        self.tokens, self.pos, self.file, self.include = tokens, 0, file, include
        self.priority = 0

    def peek(self, ahead: int = 0) -> _Token | None:
        k = self.pos + ahead
        return self.tokens[k] if k < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise _Stop(f"{self.file}:{self.tokens[-1].line if self.tokens else 1}: unexpected end")
        self.pos += 1
        return tok

    def stop(self, tok: _Token, message: str) -> _Stop:
        return _Stop(f"{self.file}:{tok.line}: {message}")

    def body(self, obj: UclObject, closing: str | None) -> None:
        while True:
            tok = self.peek()
            if tok is None:
                if closing is not None:
                    raise _Stop(
                        f"{self.file}:{self.tokens[-1].line}: unbalanced '{{' (block not closed)"
                    )
                return
            if tok.kind == "punct" and tok.text == closing:
                self.pos += 1
                return
            if tok.kind == "punct" and tok.text in ";,":
                self.pos += 1
                continue
            if tok.kind == "punct" and tok.text == "}":
                raise self.stop(tok, "unbalanced '}'")
            if tok.kind == "macro":
                self.macro(obj)
                continue
            self.pair(obj)

    def number(self, tok: _Token, text: str) -> int:
        if not text.isdigit():
            raise self.stop(tok, f"priority must be a number, got {text!r}")
        return int(text)

    def macro(self, obj: UclObject) -> None:
        tok = self.take()
        params: dict[str, str] = {}
        nxt = self.peek()
        if nxt is not None and nxt.kind == "atom" and nxt.text.startswith("("):
            # `(a=b; c=d)` arrives as atoms and punctuation up to the closing parenthesis
            raw = []
            while True:
                part = self.take()
                raw.append(part.text)
                if part.text.endswith(")"):
                    break
            # `;` and `,` come as their own tokens: they separate the `key=value` items
            text = "".join(" " if r in (";", ",") else r for r in raw).strip("()")
            for item in text.split():
                key, sep, value = item.partition("=")
                if sep:
                    params[key.strip()] = value.strip()
        if tok.text == "priority":
            self.priority = self.number(tok, params.get("priority", "0"))
            return
        if tok.text not in ("include", "try_include", "includes"):
            raise self.stop(tok, f"UCL macro .{tok.text} is not read by the audit")
        arg = self.take()
        if arg.kind != "string":
            raise self.stop(arg, f".{tok.text} needs a quoted path")
        if tok.text == "try_include":
            params["try"] = "true"
        priority = self.number(arg, params.get("priority", "0"))
        duplicate = params.get("duplicate", "append")
        for file, sub in self.include(arg.text, params, arg.line):
            for key, values in sub.keys.items():
                for v in values:
                    insert(obj, key, _with_priority(v, priority), duplicate, file)

    def pair(self, obj: UclObject) -> None:
        tok = self.take()
        if tok.kind not in ("atom", "string"):
            raise self.stop(tok, f"expected a key, got {tok.text!r}")
        key = tok.text
        names: list[str] = []
        nxt = self.peek()
        if tok.kind == "atom" and ":" in key:
            key, _, rest = key.partition(":")
            if rest:
                self.tokens.insert(self.pos, _Token("atom", rest, tok.line))
        elif nxt is not None and nxt.kind == "punct" and nxt.text == "=":
            self.pos += 1
        elif nxt is not None and nxt.kind == "atom" and nxt.text.startswith(":"):
            self.pos += 1
            if nxt.text[1:]:
                self.tokens.insert(self.pos, _Token("atom", nxt.text[1:], nxt.line))
        else:
            # `key "name" ... {`: the words before a block on the key's line are names
            k = 0
            while (
                (t := self.peek(k)) is not None
                and t.kind in ("atom", "string")
                and not t.newline_before
            ):
                k += 1
            t = self.peek(k)
            if k and t is not None and t.kind == "punct" and t.text == "{":
                names = [self.take().text for _ in range(k)]
        value = self.value(tok)
        for name in reversed(names):
            wrapper = UclObject()
            wrapper.keys[name] = [value]
            value = UclValue(wrapper, self.file, tok.line, self.priority)
        insert(obj, key, value, "append", self.file)
        end = self.peek()
        if (
            end is not None
            and not end.newline_before
            and not (end.kind == "punct" and end.text in ";,}]")
            and isinstance(value.value, str)
        ):
            raise self.stop(end, f"cannot read the value of {key!r}: unexpected {end.text!r}")

    def value(self, key: _Token) -> UclValue:
        tok = self.take()
        if tok.kind == "punct" and tok.text == "{":
            obj = UclObject()
            self.body(obj, "}")
            return UclValue(obj, self.file, tok.line, self.priority)
        if tok.kind == "punct" and tok.text == "[":
            items: list[UclValue] = []
            while True:
                nxt = self.peek()
                if nxt is None:
                    raise self.stop(tok, "unbalanced '[' (array not closed)")
                if nxt.kind == "punct" and nxt.text == "]":
                    self.pos += 1
                    break
                if nxt.kind == "punct" and nxt.text in ",;":
                    self.pos += 1
                    continue
                items.append(self.value(key))
            return UclValue(items, self.file, tok.line, self.priority)
        if tok.kind in ("atom", "string", "heredoc"):
            return UclValue(tok.text, self.file, tok.line, self.priority)
        raise self.stop(tok, f"cannot read the value of {key.text!r}: unexpected {tok.text!r}")


def _with_priority(v: UclValue, priority: int) -> UclValue:
    return UclValue(v.value, v.file, v.line, max(v.priority, priority))


def insert(obj: UclObject, key: str, value: UclValue, duplicate: str, file: str) -> None:
    """Put ``value`` under ``key`` as libucl does (priority first, then ``duplicate``)."""
    have = obj.keys.get(key)
    if not have:
        obj.keys[key] = [value]
        return
    top = max(v.priority for v in have)
    if value.priority > top:
        obj.keys[key] = [value]
    elif value.priority < top:
        return
    elif duplicate in ("replace", "rewrite"):
        obj.keys[key] = [value]
    elif duplicate == "merge" and isinstance(value.value, UclObject):
        target = next((v for v in reversed(have) if isinstance(v.value, UclObject)), None)
        if target is None or not isinstance(target.value, UclObject):
            have.append(value)
            return
        for k, vs in value.value.keys.items():
            for v in vs:
                insert(target.value, k, v, "merge", file)
    elif duplicate == "error":
        raise _Stop(f"{file}:{value.line}: duplicate key {key!r} (duplicate=error)")
    else:
        have.append(value)


def read_ucl(
    view: FileView, path: str, variables: Mapping[str, str], fail: Fail
) -> UclObject | None:
    """``path`` and what it includes as one tree (None: ``path`` is absent).

    ``variables`` maps ``CONFDIR`` and friends to image-root relative directories; an include
    naming a variable not in it reads as absent.
    """
    seen: list[str] = []

    def resolve(inc: str, base: str) -> str | None:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name not in variables:
                raise KeyError(name)
            return "/" + variables[name].strip("/")

        try:
            out = re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, inc)
        except KeyError:
            return None
        return join_path(base, out)

    def load(file: str) -> UclObject | None:
        text = view.read(file)
        if text is None:
            return None
        if file in seen:
            fail(file, 1, "include loop")
            return UclObject()
        seen.append(file)
        obj = UclObject()
        try:
            tokens = list(_tokens(text, file))
            reader = _Reader(
                tokens, file, lambda inc, params, line: included(file, inc, params, line)
            )
            reader.body(obj, None)
        except _Stop as e:
            where, _, message = str(e).partition(": ")
            wfile, _, wline = where.rpartition(":")
            fail(wfile, int(wline) if wline.isdigit() else 1, message)
        finally:
            seen.pop()
        return obj

    def included(
        file: str, inc: str, params: dict[str, str], line: int
    ) -> list[tuple[str, UclObject]]:
        target = resolve(inc, file.rpartition("/")[0])
        optional = params.get("try", "false").lower() in ("true", "yes", "1")
        paths = (
            matches(view, target)
            if target is not None and (params.get("glob") == "true" or has_glob(target))
            else ([target] if target is not None else [])
        )
        out = [(p, o) for p in paths if (o := load(p)) is not None]
        if not out and not optional and not (target is not None and has_glob(target)):
            fail(file, line, f"include {inc} not found")
        return out

    return load(path)


def walk(obj: UclObject, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], UclValue]]:
    """Every (key path, value) of the tree; arrays are given as their elements' parent value,
    objects are entered."""
    for key, values in obj.keys.items():
        for v in values:
            here = (*path, key)
            yield here, v
            if isinstance(v.value, UclObject):
                yield from walk(v.value, here)


def scalars(value: UclValue) -> Iterator[UclValue]:
    """The string values in ``value`` (itself, or the elements of an array)."""
    if isinstance(value.value, str):
        yield value
    elif isinstance(value.value, list):
        for item in value.value:
            yield from scalars(item)
