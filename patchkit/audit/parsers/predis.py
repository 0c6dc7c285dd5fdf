"""A Symfony services file's ``Predis\\Client`` definition: the redis server of a PHP app.

The definition is the line ``Predis\\Client: ...`` (a flow mapping) or the block indented
under it; its first connection parameter is a DSN string (``tcp://host:port``,
``unix:/path``, ``unix:///path``, ``redis://...``) or a mapping with ``path`` /
``host`` / ``port``. A ``%parameter%`` or ``%env(...)%`` is a ``variable`` target. Without
arguments Predis connects to its default, ``tcp://127.0.0.1:6379`` (``origin: default``).
``#`` comments are skipped (a value kept in a comment is not read).
"""

from __future__ import annotations

import re

from patchkit.audit.parsers._common import Emit, Fail
from patchkit.audit.parsers._scripts import blank_comments, line_of
from patchkit.audit.parsers._targets import Target, connection, host_and_port, url_target
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["parse_predis"]

_DEFINITION = re.compile(r"^([ \t]*)['\"]?Predis\\\\?Client['\"]?[ \t]*:(.*)$", re.MULTILINE)
_DSN = re.compile(
    r"""['"]?((?:tcp|tls|unix|redis|rediss)://[^'"\s,\]}]*|unix:/[^'"\s,\]}]*|%[^%\s]+%)"""
)


def _block(clean: str, m: re.Match[str]) -> str:
    """The definition's text: its own line, and the lines indented deeper below it."""
    indent = len(m.group(1).expandtabs())
    lines = [m.group(2)]
    for line in clean[m.end() + 1 :].splitlines():
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        lines.append(line)
    return "\n".join(lines)


def parse_predis(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    clean = blank_comments(text, "hash")
    for m in _DEFINITION.finditer(clean):
        body = _block(clean, m)
        line = line_of(clean, m.start())
        written = " ".join(f"Predis\\Client:{m.group(2)}".split())
        dsn = _DSN.search(body)
        origin, note = "config", ""
        if dsn is not None and dsn.group(1).startswith("%"):
            target = Target("variable", host=dsn.group(1))
        elif dsn is not None:
            target = url_target(dsn.group(1), 6379)
        elif (p := re.search(r"\bpath\s*:\s*['\"]?([^'\"\s,}]+)", body)) is not None:
            target = Target("unix", socket=p.group(1))
        elif (h := re.search(r"\bhost\s*:\s*['\"]?([^'\"\s,}]+)", body)) is not None:
            port = re.search(r"\bport\s*:\s*(\d+)", body)
            target = host_and_port(f"{h.group(1)}:{port.group(1) if port else 6379}", 6379)
        else:
            target = host_and_port("127.0.0.1:6379", 6379)
            origin, note = "default", "no connection parameters: Predis's tcp://127.0.0.1:6379"
        emit(
            connection(
                target,
                component=rule.component,
                file=path,
                line=line,
                directive=written,
                origin=origin,
                reason=f"Predis{': ' + note if note else ''}",
            )
        )
