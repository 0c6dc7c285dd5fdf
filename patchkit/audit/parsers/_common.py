"""What the parsers share: their signature, address forms, comments, include paths."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from patchkit.audit.model import Connection, Listener
from patchkit.audit.view import FileView, join_path
from patchkit.profiles.base import AuditRule

__all__ = [
    "Emit",
    "Fail",
    "Parser",
    "defaults",
    "has_glob",
    "host_port",
    "join",
    "matches",
    "read_once",
    "strip_hash_comment",
]

# a listener or a connection found (the driver judges it)
Emit = Callable[[Listener | Connection], None]
Fail = Callable[[str, int, str], None]  # (file, line, message): a config it cannot read
# parse(view, path, rule, emit, fail): read ``path`` (and what it includes) for ``rule``.
Parser = Callable[[FileView, str, AuditRule, Emit, Fail], None]


def defaults(own: Mapping[str, Any], rule: AuditRule) -> dict[str, Any]:
    """The parser's own defaults (the software's built-in values), overridden by the rule's."""
    return {**own, **rule.defaults}


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def matches(view: FileView, pattern: str) -> list[str]:
    """The paths a pattern names: its glob matches, or the path itself when it is not a glob."""
    return view.glob(pattern) if has_glob(pattern) else [pattern]


def read_once(view: FileView, file: str, seen: set[str]) -> str | None:
    """``file``'s text the first time an include chain reaches it; None after (or if absent)."""
    if file in seen:
        return None
    seen.add(file)
    return view.read(file)


def host_port(text: str, default_port: int | None) -> tuple[str, int | None] | None:
    """`[::1]:25`, `127.0.0.1:25`, `*:80`, `80`, `host` -> (host, port); None if malformed."""
    text = text.strip()
    m = re.fullmatch(r"\[([^\]]*)\](?::(\d+))?", text)
    if m:
        return m.group(1), int(m.group(2)) if m.group(2) else default_port
    if re.fullmatch(r"\d+", text):
        return "*", int(text)
    if text.count(":") > 1:  # bare IPv6 without brackets: no port
        return text, default_port
    host, sep, port = text.rpartition(":")
    if sep:
        if not re.fullmatch(r"\d+", port):
            return None
        return host, int(port)
    return text, default_port


def strip_hash_comment(line: str) -> str:
    """``line`` up to a ``#`` that is not inside quotes."""
    out, quote = [], ""
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


# An include path, image-root relative: absolute ones from the root, others from base_dir.
join = join_path
