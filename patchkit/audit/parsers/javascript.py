"""Node.js code that opens sockets: ``x.connect(...)``, ``net.createConnection(...)``.

Node's forms: ``(port[, host])`` (host defaults to ``localhost``: ``origin: default``),
``(path)`` (a unix socket), ``({port, host})`` / ``({path})``. Arguments that are not
literals make a ``variable`` target; a call without arguments (a client connecting with
options given earlier) names no target and is not reported. Comments are skipped.
"""

from __future__ import annotations

import re

from patchkit.audit.parsers._common import Emit, Fail
from patchkit.audit.parsers._scripts import Arg, blank_comments, line_of, list_elements
from patchkit.audit.parsers._targets import Target, connection, host_and_port
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["parse_js_connect"]

_CALL = re.compile(r"(?:\.connect|\bcreateConnection)\s*\(")


def _object_field(text: str, name: str) -> str | None:
    m = re.search(rf"\b{name}\s*:\s*('[^']*'|\"[^\"]*\"|\d+|[^,}}]+)", text)
    if m is None:
        return None
    value = m.group(1).strip()
    return value[1:-1] if value[:1] in "'\"" else value


def _target(args: list[Arg]) -> tuple[Target, str] | None:
    if not args:
        return None
    first = args[0]
    if first.text.lstrip().startswith("{") and not first.literal:
        path = _object_field(first.text, "path")
        if path is not None:
            return Target("unix", socket=path), "config"
        port = _object_field(first.text, "port") or ""
        host = _object_field(first.text, "host")
        target = host_and_port(f"{host or 'localhost'}:{port}", None)
        return target, "config" if host is not None else "default"
    if first.literal and first.text.isdigit():
        if len(args) > 1:
            return host_and_port(f"{args[1].text}:{first.text}", None), "config"
        return host_and_port(f"localhost:{first.text}", None), "default"
    if first.literal:
        return Target("unix", socket=first.text), "config"
    return Target("variable", host=first.text), "config"


def parse_js_connect(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    clean = blank_comments(text, "c")
    for m in _CALL.finditer(clean):
        args, stop = list_elements(clean, m.end(), concat="+")
        found = _target(args)
        if found is None:
            continue
        target, origin = found
        begin = m.start()
        while begin and (clean[begin - 1].isalnum() or clean[begin - 1] in "_.$"):
            begin -= 1  # the receiver: `socket.connect(...)`
        written = " ".join(clean[begin:stop].split())
        emit(
            connection(
                target,
                component=rule.component,
                file=path,
                line=line_of(clean, m.start()),
                directive=written,
                origin=origin,
                reason="" if origin == "config" else "no host: Node's localhost",
            )
        )
