"""nginx.conf and what it ``include``s: every ``listen`` of every ``server`` block, and every
place nginx connects to.

Listeners: ``80``, ``*:80``, ``[::]:443 ssl``, ``127.0.0.1:8080``, ``unix:/path``, flags
after the address; a ``server`` without ``listen`` is nginx's ``*:80``.

Connections: ``proxy_pass`` (``http://unix:/path:/uri`` too), ``fastcgi_pass``,
``uwsgi_pass``, ``scgi_pass``, ``memcached_pass``, ``grpc_pass`` in any location (an
``auth_request`` subrequest's location included), the ``server`` lines of ``upstream``
blocks (a ``*_pass`` naming an upstream is reported through them), and ``resolver``
(UDP 53). A ``*_pass`` whose argument holds a variable is resolved by nginx at run time:
its host, unless an address or a unix socket, needs a ``resolver`` in scope (the block or
an enclosing one, in this file or the file that includes it), else nginx answers 500 ("no
resolver defined to resolve ..."): reported as missing, which the policy makes a problem.

Quotes, ``#`` comments. A rule's ``ports`` names words an image's own start-up replaces
with port numbers in its templates (poste.io: ``listen __HTTP_PORT__;`` is port 80): they
are read as those ports, in ``listen`` and in connection targets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from patchkit.audit.model import Connection, Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, host_port, join, matches
from patchkit.audit.parsers._targets import Target, connection, host_and_port, url_target
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "PASS_DIRECTIVES", "parse_nginx"]

# `listen 80` = *:80; include paths are relative to nginx's prefix (Debian: etc/nginx).
DEFAULTS: Mapping[str, Any] = {"port": 80, "root": "etc/nginx", "ports": {}}

# The directives that make nginx connect to a backend; True: the argument is a URL with a
# scheme (proxy_pass), False: an address (`host:port`, `unix:/path`, an upstream's name).
PASS_DIRECTIVES: Mapping[str, bool] = {
    "proxy_pass": True,
    "grpc_pass": False,
    "fastcgi_pass": False,
    "uwsgi_pass": False,
    "scgi_pass": False,
    "memcached_pass": False,
}


def _nginx_tokens(text: str, file: str, fail: Fail) -> list[tuple[str, int]] | None:
    tokens: list[tuple[str, int]] = []
    i, no, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            no += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            tokens.append((ch, no))
            i += 1
        elif ch in "\"'":
            start_no = no
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "\n":
                    no += 1
                j += 1
            if j >= n:
                fail(file, start_no, "unterminated quoted string")
                return None
            tokens.append((text[i + 1 : j], start_no))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            tokens.append((text[i:j], no))
            i = j
    return tokens


@dataclass(slots=True)
class _Block:
    """One open block: what it is, whether a `server` saw a `listen`, its `resolver`."""

    name: str
    args: tuple[str, ...]
    line: int
    saw_listen: bool = False
    resolver: bool = False


@dataclass(slots=True)
class _Pass:
    """A `*_pass` seen, judged once the whole config is read (upstreams and resolvers may
    come later in the file)."""

    directive: str
    text: str  # the argument with the rule's port words replaced
    file: str
    line: int
    scope: tuple[_Block, ...]
    written: str = ""


@dataclass(slots=True)
class _State:
    upstreams: set[str] = field(default_factory=set)
    auth_targets: set[str] = field(default_factory=set)
    passes: list[_Pass] = field(default_factory=list)


def parse_nginx(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    opts = defaults(DEFAULTS, rule)
    root = opts["root"]
    ports: Mapping[str, int] = opts["ports"]
    state = _State()

    def ported(text: str) -> str:
        for word, port in ports.items():
            text = text.replace(word, str(port))
        return text

    def walk(file: str, seen: tuple[str, ...], outer: list[_Block]) -> None:
        if file in seen:
            return
        text = view.read(file)
        if text is None:
            return
        tokens = _nginx_tokens(text, file, fail)
        if tokens is None:
            return
        stmt: list[tuple[str, int]] = []
        blocks = list(outer)  # enclosing blocks of the including file stay in scope
        base = len(outer)
        for tok, no in tokens:
            if tok == ";":
                if stmt:
                    directive(stmt, file, seen, blocks)
                stmt = []
            elif tok == "{":
                name = stmt[0][0] if stmt else ""
                blocks.append(
                    _Block(
                        name=name,
                        args=tuple(t for t, _ in stmt[1:]),
                        line=stmt[0][1] if stmt else no,
                    )
                )
                if name == "upstream" and len(stmt) > 1:
                    state.upstreams.add(stmt[1][0])
                stmt = []
            elif tok == "}":
                if stmt:
                    fail(file, stmt[0][1], f"directive {stmt[0][0]!r} not ended with ';'")
                    stmt = []
                if len(blocks) <= base:
                    fail(file, no, "unbalanced '}'")
                    return
                block = blocks.pop()
                if block.name == "server" and not block.args and not block.saw_listen:
                    emit(
                        Listener(
                            component=rule.component,
                            file=file,
                            line=block.line,
                            kind="tcp",
                            address="*",
                            port=opts["port"],
                            origin="default",
                            reason="server block without listen",
                        )
                    )
            else:
                stmt.append((tok, no))
        if stmt:
            fail(file, stmt[0][1], f"directive {stmt[0][0]!r} not ended with ';'")
        if len(blocks) > base:
            fail(file, blocks[-1].line, "unbalanced '{' (block not closed)")

    def directive(
        stmt: list[tuple[str, int]], file: str, seen: tuple[str, ...], blocks: list[_Block]
    ) -> None:
        name, no = stmt[0]
        args = [t for t, _ in stmt[1:]]
        if name == "include" and args:
            for sub in matches(view, join(root, args[0])):
                walk(sub, (*seen, file), blocks)
        elif name == "listen":
            listen(args, file, no, blocks)
        elif name in PASS_DIRECTIVES:
            if not args:
                fail(file, no, f"{name} without an address")
                return
            state.passes.append(
                _Pass(
                    directive=name,
                    text=ported(args[0]),
                    file=file,
                    line=no,
                    scope=tuple(blocks),
                    written=" ".join([name, *args]),
                )
            )
        elif name == "server" and blocks and blocks[-1].name == "upstream" and args:
            target = _address(ported(args[0]), opts["port"])
            emit(
                connection(
                    target,
                    component=rule.component,
                    file=file,
                    line=no,
                    directive=" ".join([name, *args]),
                    reason=f"upstream {' '.join(blocks[-1].args)}",
                )
            )
        elif name == "resolver":
            if blocks:
                blocks[-1].resolver = True
            for arg in args:
                if "=" in arg:
                    continue  # valid=30s, ipv6=off, status_zone=...
                dns = host_and_port(arg, 53)
                emit(
                    connection(
                        replace(dns, kind="udp") if dns.kind == "tcp" else dns,
                        component=rule.component,
                        file=file,
                        line=no,
                        directive=" ".join([name, *args]),
                        reason="DNS resolver",
                    )
                )
        elif name == "auth_request" and args and args[0] != "off":
            state.auth_targets.add(args[0])

    def listen(args: list[str], file: str, no: int, blocks: list[_Block]) -> None:
        if not args:
            fail(file, no, "listen without an address")
            return
        for blk in reversed(blocks):
            if blk.name == "server":
                blk.saw_listen = True
                break
        target = ported(args[0])
        if target.startswith("unix:"):
            emit(
                Listener(
                    component=rule.component, file=file, line=no, kind="unix", socket=target[5:]
                )
            )
            return
        hp = host_port(target, opts["port"])
        if hp is None or hp[1] is None:
            fail(file, no, f"cannot read listen {target!r}")
            return
        emit(
            Listener(
                component=rule.component,
                file=file,
                line=no,
                kind="tcp",
                address=hp[0],
                port=hp[1],
            )
        )

    walk(path, (), [])
    for p in state.passes:
        found = _judge_pass(p, state, rule.component)
        if found is not None:
            emit(found)


def _address(text: str, default_port: int | None) -> Target:
    """An nginx address: `unix:/path`, `host[:port]`, `[v6]:port`."""
    if text.startswith("unix:"):
        return Target("unix", socket=text[5:])
    return host_and_port(text, default_port)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _judge_pass(p: _Pass, state: _State, component: str) -> Connection | None:
    """The connection a `*_pass` makes (None: it names an upstream, reported through its
    `server` lines)."""
    text = p.text
    if PASS_DIRECTIVES[p.directive] or "://" in text:
        target = url_target(text, None)
    else:
        target = _address(text, None)
    host = target.host or ""
    if target.kind != "unix" and "$" not in host and host in state.upstreams:
        return None
    location = next((b for b in reversed(p.scope) if b.name == "location"), None)
    where = f"location {' '.join(location.args)}" if location else ""
    if location and location.args and location.args[-1] in state.auth_targets:
        where += " (an auth_request subrequest)"
    found = connection(
        target,
        component=component,
        file=p.file,
        line=p.line,
        directive=p.written,
        reason=where,
    )
    if target.port is None and target.port_text:
        found = replace(found, reason=f"{where}, port {target.port_text}".strip(", "))
    needs_resolver = (
        "$" in text
        and target.kind != "unix"
        and not _is_address(host)
        and not any(b.resolver for b in p.scope)
    )
    if needs_resolver:
        found = replace(
            found,
            missing=(
                f"{p.directive} with a variable resolves {host!r} at run time and no resolver "
                f"is in scope: nginx answers 500 ('no resolver defined to resolve {host}')"
            ),
        )
    return found
