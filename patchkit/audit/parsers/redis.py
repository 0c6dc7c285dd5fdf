"""redis.conf: ``bind`` (last wins; ``-addr`` marks an optional one), ``port``, ``unixsocket``,
``include``. redis has whole-line comments only."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from patchkit.audit.model import Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, join, read_once
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "parse_redis"]

# No `port` means 6379; no `bind` means every interface.
DEFAULTS: Mapping[str, Any] = {"port": 6379, "bind": ("*", "::")}


def parse_redis(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    opts = defaults(DEFAULTS, rule)
    binds: tuple[str, ...] = tuple(opts["bind"])
    bind_at = (path, 0)
    port: int = opts["port"]
    port_at = (path, 0)
    sockets: list[tuple[str, str, int]] = []
    seen: set[str] = set()

    def walk(file: str) -> None:
        nonlocal binds, bind_at, port, port_at
        text = read_once(view, file, seen)
        if text is None:
            return
        for no, raw in enumerate(text.splitlines(), 1):
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            key = words[0].lower()
            if key == "bind":
                if len(words) < 2:
                    fail(file, no, "'bind' without an address")
                    continue
                binds, bind_at = tuple(w.lstrip("-") for w in words[1:]), (file, no)
            elif key == "port":
                if len(words) != 2 or not words[1].isdigit():
                    fail(file, no, f"'port' needs one number, got {' '.join(words[1:])!r}")
                    continue
                port, port_at = int(words[1]), (file, no)
            elif key == "unixsocket":
                if len(words) != 2:
                    fail(file, no, "'unixsocket' needs one path")
                    continue
                sockets.append((words[1], file, no))
            elif key == "include" and len(words) == 2:
                walk(join(posixpath.dirname(file), words[1]))

    if view.read(path) is None:
        return  # no redis here
    walk(path)
    if port != 0:
        file, line = port_at if port_at[1] else bind_at
        for addr in binds:
            emit(
                Listener(
                    component=rule.component,
                    file=file,
                    line=line,
                    kind="tcp",
                    address=addr,
                    port=port,
                    origin="config" if port_at[1] or bind_at[1] else "default",
                )
            )
    for sock, file, line in sockets:
        emit(Listener(component=rule.component, file=file, line=line, kind="unix", socket=sock))
