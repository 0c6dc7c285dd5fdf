"""Connection targets as configs write them: URLs, ``host:port``, socket paths, server lists.

Pure string work shared by the parsers that report connections; a target here is not yet
judged (the policy does that).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from patchkit.audit.model import Connection

__all__ = [
    "SCHEME_PORTS",
    "Target",
    "connection",
    "host_and_port",
    "server_list",
    "url_target",
]

# Default ports of URL schemes (RFC-registered ones the configs use).
SCHEME_PORTS: Mapping[str, int] = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "grpc": 80,
    "grpcs": 443,
    "redis": 6379,
    "rediss": 6379,
    "tcp": 6379,  # Predis's tcp:// DSN (redis)
    "smtp": 25,
    "smtps": 465,
    "imap": 143,
    "imaps": 993,
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a connection goes: ``kind`` ``tcp`` (host, port or a port expression),
    ``unix`` (socket) or ``variable`` (host holds the expression)."""

    kind: str
    host: str | None = None
    port: int | None = None
    socket: str | None = None
    port_text: str = ""  # a port written as a variable or placeholder


def host_and_port(authority: str, default_port: int | None) -> Target:
    """``[::1]:25``, ``host:port``, ``host``, a bare IPv6 address; a port that is not a
    number (``$1``, ``__HTTPS_PORT__``) is kept as ``port_text``."""
    text = authority.strip()
    m = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
    if m:
        host, port = m.group(1), m.group(2)
    elif text.count(":") > 1:
        host, port = text, None
    else:
        host, sep, port = text.partition(":")
        port = port if sep else None
    kind = "variable" if "$" in host or "(" in host else "tcp"
    if port is None or port == "":
        return Target(kind, host=host, port=default_port)
    if port.isdigit():
        return Target(kind, host=host, port=int(port))
    return Target(kind, host=host, port=None, port_text=port)


def url_target(
    url: str, default_port: int | None = None, ports: Mapping[str, int] = SCHEME_PORTS
) -> Target:
    """A URL's target: ``scheme://[user@]host[:port][/path]``; nginx's
    ``scheme://unix:/path:/uri`` and ``unix:/path``; ``unix:///path``; without a scheme,
    ``host[:port]``. The default port is the scheme's (``ports``), else ``default_port``."""
    text = url.strip()
    m = re.match(r"^([A-Za-z][\w+.-]*)://(.*)$", text, re.DOTALL)
    scheme, rest = (m.group(1).lower(), m.group(2)) if m else ("", text)
    if scheme == "unix":
        return Target("unix", socket="/" + rest.lstrip("/"))
    if rest.startswith("unix:"):
        path = rest[5:]
        if m:  # nginx: the socket path ends at the ':' that starts the URI
            path = path.split(":", 1)[0]
        return Target("unix", socket=path)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    user, at, host = authority.rpartition("@")
    if at and user and host:  # user[:password]@host (a placeholder like @HOST@ stays whole)
        authority = host
    return host_and_port(authority, ports.get(scheme, default_port))


# rspamd's upstream list prefixes (rotation algorithms).
_ROTATION = re.compile(r"^(?:master-slave|round-robin|random|hash|sequential|ketama):")


def server_list(value: str, default_port: int | None) -> Iterator[Target]:
    """The servers of an upstream list (rspamd: ``"round-robin:a:6379,b"``, ``"/path.sock"``,
    comma, semicolon or space separated; ``host:port:priority``)."""
    for item in re.split(r"[,;\s]+", _ROTATION.sub("", value.strip())):
        if not item:
            continue
        if item.startswith(("/", "./")):
            yield Target("unix", socket=item)
            continue
        parts = item.split(":")
        if len(parts) == 3 and not item.startswith("[") and parts[2].isdigit():
            item = ":".join(parts[:2])  # host:port:priority
        yield host_and_port(item, default_port)


def connection(
    target: Target,
    *,
    component: str,
    file: str,
    line: int,
    directive: str,
    origin: str = "config",
    reason: str = "",
) -> Connection:
    """The connection record for ``target`` (the parser's ``reason`` kept until judged)."""
    base = Connection(
        component=component,
        file=file,
        line=line,
        kind=target.kind,
        directive=directive,
        origin=origin,
        reason=reason,
    )
    if target.kind == "unix":
        return replace(base, socket=target.socket)
    return replace(base, host=target.host, port=target.port)
