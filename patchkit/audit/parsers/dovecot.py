"""dovecot.conf: global ``listen``, ``protocols``, ``service`` / ``inet_listener`` /
``unix_listener`` blocks merged across ``!include`` / ``!include_try`` files (globs too);
and the settings that make dovecot connect somewhere
(:mod:`~patchkit.audit.parsers._dovecot_clients`).

``protocols`` in 2.3's form (``= $protocols x``) and 2.4's (``protocols { x = yes }``);
``port = 0`` disables a listener; ``address`` (2.3) or ``listen`` (2.4) inside one. The
built-in listeners of the enabled protocols apply unless a block changes them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchkit.audit.model import Listener
from patchkit.audit.parsers._common import (
    Emit,
    Fail,
    defaults,
    has_glob,
    join,
    matches,
    read_once,
    strip_hash_comment,
)
from patchkit.audit.parsers._dovecot_clients import DovecotClients
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "parse_dovecot"]

# dovecot's own defaults: `listen = *, ::`; the listeners each protocol's login service
# brings; which protocol a service belongs to; base_dir, where relative unix sockets live.
DEFAULTS: Mapping[str, Any] = {
    "listen": "*, ::",
    "base_dir": "/var/run/dovecot",
    "builtin": {
        "imap": (("imap-login", "imap", 143), ("imap-login", "imaps", 993)),
        "pop3": (("pop3-login", "pop3", 110), ("pop3-login", "pop3s", 995)),
        "sieve": (("managesieve-login", "sieve", 4190),),
        "submission": (("submission-login", "submission", 587),),
    },
    "service_protocol": {
        "imap-login": "imap",
        "pop3-login": "pop3",
        "managesieve-login": "sieve",
        "submission-login": "submission",
        "lmtp": "lmtp",
    },
}


@dataclass(slots=True)
class _DovecotListener:
    service: str
    name: str
    file: str
    line: int
    port: int | None = None
    port_line: int = 0
    address: str | None = None
    kind: str = "inet"


def parse_dovecot(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    opts = defaults(DEFAULTS, rule)
    listen: tuple[str, str, int] = (opts["listen"], path, 0)
    protocols: dict[str, tuple[str, int]] = {}
    listeners: dict[tuple[str, str, str], _DovecotListener] = {}
    seen: set[str] = set()
    clients = DovecotClients(component=rule.component, base_dir=opts["base_dir"])

    def set_protocols(value: str, file: str, no: int) -> None:
        words = value.replace(",", " ").split()
        keep = "$protocols" in words
        if not keep:
            protocols.clear()
        for w in words:
            if w != "$protocols" and w != "none":
                protocols[w] = (file, no)

    def walk(file: str) -> None:
        nonlocal listen
        text = read_once(view, file, seen)
        if text is None:
            return
        stack: list[tuple[str, str]] = []
        current: _DovecotListener | None = None
        for no, raw in enumerate(text.splitlines(), 1):
            line = strip_hash_comment(raw).strip()
            if not line:
                continue
            m = re.match(r"^!include(_try)?\s+(\S+)$", line)
            if m:
                pattern = join(posixpath.dirname(file), m.group(2).strip("\"'"))
                paths = matches(view, pattern)
                found = [p for p in paths if view.read(p) is not None]
                if not found and not m.group(1) and not has_glob(pattern):
                    fail(file, no, f"!include {m.group(2)} not found")
                for sub in found:
                    walk(sub)
                continue
            m = re.match(r'^([\w-]+)(?:\s+("[^"]*"|[^{}\s"]+))?\s*\{$', line)
            if m:
                kind, name = m.group(1), (m.group(2) or "").strip("\"'")
                stack.append((kind, name))
                service = next((n for k, n in reversed(stack) if k == "service"), "")
                if kind in ("inet_listener", "unix_listener", "fifo_listener"):
                    ident = (service, kind, name or f"#{no}")
                    current = listeners.get(ident) or _DovecotListener(
                        service=service, name=name, file=file, line=no, kind=kind.split("_")[0]
                    )
                    listeners[ident] = current
                continue
            if line == "}":
                if not stack:
                    fail(file, no, "unbalanced '}'")
                    return
                kind, _ = stack.pop()
                if kind.endswith("_listener"):
                    current = None
                continue
            m = re.match(r"^([\w-]+)\s*=\s*(.*)$", line)
            if not m:
                if stack and stack[-1][0] == "protocols" and re.match(r"^[\w-]+$", line):
                    continue
                fail(file, no, f"cannot read dovecot line {line!r}")
                continue
            key, value = m.group(1), m.group(2).strip().strip('"')
            clients.see(key, value, [k for k, _ in stack], file, no)
            if not stack and key == "listen":
                listen = (value, file, no)
            elif not stack and key == "protocols":
                set_protocols(value, file, no)
            elif stack and stack[-1][0] == "protocols":
                if value.lower() in ("yes", "true", "1"):
                    protocols[key] = (file, no)
                else:
                    protocols.pop(key, None)
            elif current is not None and key == "port":
                if not value.isdigit():
                    fail(file, no, f"inet_listener port must be a number, got {value!r}")
                    continue
                current.port, current.port_line = int(value), no
            elif current is not None and key in ("address", "listen"):
                current.address = value
            elif current is not None and key == "path" and current.kind == "unix":
                current.name = value
        if stack:
            fail(
                file, len(text.splitlines()), f"unbalanced '{{': section {stack[-1][0]} not closed"
            )

    walk(path)
    if not seen or view.read(path) is None:
        return
    clients.report(emit)
    builtin: Mapping[str, Sequence[tuple[str, str, int]]] = opts["builtin"]
    by_protocol: Mapping[str, str] = opts["service_protocol"]
    for proto, items in builtin.items():
        if proto not in protocols:
            continue
        for service, name, port in items:
            key = (service, "inet_listener", name)
            if key not in listeners:
                file, no = protocols[proto]
                listeners[key] = _DovecotListener(service=service, name=name, file=file, line=no)
                listeners[key].port = None
            if listeners[key].port is None:
                listeners[key].port = port
    for (service, _kind, _name), lst in listeners.items():
        needs = by_protocol.get(service)
        if needs is not None and needs not in protocols:
            continue  # the service of a protocol that is not enabled does not run
        if lst.kind == "unix":
            sock = (
                lst.name
                if lst.name.startswith("/")
                else f"/{opts['base_dir'].strip('/')}/{lst.name}"
            )
            emit(
                Listener(
                    component=rule.component,
                    file=lst.file,
                    line=lst.line,
                    kind="unix",
                    socket=sock,
                    reason=f"service {service}",
                )
            )
            continue
        if lst.kind != "inet":
            continue
        if not lst.port:
            continue  # port = 0 (or no port and no built-in one) disables the listener
        addresses = lst.address if lst.address is not None else listen[0]
        origin = "config" if lst.port_line else "default"
        for addr in filter(None, (a.strip() for a in addresses.replace(",", " ").split())):
            emit(
                Listener(
                    component=rule.component,
                    file=lst.file,
                    line=lst.port_line or lst.line,
                    kind="tcp",
                    address=addr,
                    port=lst.port,
                    origin=origin,
                    reason=f"service {service} {lst.name}".strip(),
                )
            )
