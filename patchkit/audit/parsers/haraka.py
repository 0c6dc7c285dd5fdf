"""Haraka's config files.

Listeners: ``listen`` of the main section of smtp.ini and http.ini. A ``listen`` under
another section (``[headers]``) is not it; values are comma lists of ``HOST:PORT`` or
``/path.sock[:mode]``. smtp.ini without ``listen`` is Haraka's ``[::0]:25``; http.ini
without ``listen`` runs no server.

Connections (:func:`parse_haraka_clients`, given an instance's ``config/plugins``): the
plugins that connect somewhere (:data:`CLIENTS`: haraka-plugin-rspamd's ``rspamd.ini``,
haraka-plugin-redis's ``redis.ini``), each from its ini file, or from the plugin's
built-in default where the file or the setting is absent or commented out (``origin:
default``). A socket setting wins over host and port, as the plugins do.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from patchkit.audit.model import Connection, Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, host_port
from patchkit.audit.parsers._targets import Target, connection, host_and_port
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = [
    "CLIENTS",
    "SMTP_DEFAULTS",
    "parse_haraka_clients",
    "parse_haraka_http",
    "parse_haraka_smtp",
]

SMTP_DEFAULTS: Mapping[str, Any] = {"listen": "[::0]:25"}


Ini = dict[str, dict[str, tuple[str, int]]]  # section -> key -> (value, line)


def _ini(text: str, file: str, fail: Fail) -> Ini:
    """Every section's settings (keys before any section are in ``main``); ``;``/``#``
    comment lines; a bare key is a boolean and carries no value."""
    out: Ini = {"main": {}}
    section = "main"
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        m = re.fullmatch(r"\[([^\]]+)\]", line)
        if m:
            section = m.group(1).strip()
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            if re.fullmatch(r"[\w.+-]+", line):
                continue
            fail(file, no, f"cannot read ini line {line!r}")
            continue
        out[section][key.strip()] = (value.strip(), no)
    return out


def _ini_main(text: str, file: str, fail: Fail) -> dict[str, tuple[str, int]]:
    return _ini(text, file, fail)["main"]


def parse_haraka_smtp(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    main = _ini_main(text, path, fail)
    value, no = main.get("listen", (defaults(SMTP_DEFAULTS, rule)["listen"], 0))
    _listen(rule, path, no, value, 25, emit, fail, origin="config" if no else "default")


def parse_haraka_http(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    main = _ini_main(text, path, fail)
    if "listen" in main:
        value, no = main["listen"]
        _listen(rule, path, no, value, 80, emit, fail, origin="config")


def _listen(
    rule: AuditRule,
    file: str,
    no: int,
    value: str,
    default_port: int,
    emit: Emit,
    fail: Fail,
    *,
    origin: str,
) -> None:
    for item in filter(None, (v.strip() for v in value.split(","))):
        if item.startswith("/"):
            emit(
                Listener(
                    component=rule.component,
                    file=file,
                    line=no,
                    kind="unix",
                    socket=re.sub(r":[0-7]{3}$", "", item),
                )
            )
            continue
        hp = host_port(item, default_port)
        if hp is None:
            fail(file, no, f"cannot read listen address {item!r}")
            continue
        emit(
            Listener(
                component=rule.component,
                file=file,
                line=no,
                kind="tcp",
                address=hp[0],
                port=hp[1],
                origin=origin,
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    """A plugin that connects: its ini file, the sections that each make one connection
    (with the sections whose settings they inherit), the keys, the built-in target."""

    ini: str
    sections: Mapping[str, tuple[str, ...]]
    socket: str
    host: tuple[str, ...]
    port: str
    default_host: str
    default_port: int


# haraka-plugin-rspamd: [main] unix_socket, else host (localhost) / port (11333).
# haraka-plugin-redis: [server] and [pubsub] each over [opts]: path, else host (or the legacy
# ip) / port, 127.0.0.1:6379 (pubsub does not inherit server's settings).
CLIENTS: Mapping[str, Client] = {
    "rspamd": Client(
        ini="rspamd.ini",
        sections={"main": ()},
        socket="unix_socket",
        host=("host",),
        port="port",
        default_host="localhost",
        default_port=11333,
    ),
    "redis": Client(
        ini="redis.ini",
        sections={"server": ("opts",), "pubsub": ("opts",)},
        socket="path",
        host=("host", "ip"),
        port="port",
        default_host="127.0.0.1",
        default_port=6379,
    ),
}


def _enabled(text: str) -> set[str]:
    """The plugin names a config/plugins file lists (npm names without `haraka-plugin-`)."""
    out = set()
    for raw in text.splitlines():
        name = raw.split("#", 1)[0].strip()
        if name:
            out.add(name.removeprefix("haraka-plugin-"))
    return out


def parse_haraka_clients(
    view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail
) -> None:
    """``path``: an instance's config/plugins; its clients are read from the same folder.
    A rule's ``clients`` names the plugins of :data:`CLIENTS` to read (default: all)."""
    text = view.read(path)
    if text is None:
        return
    enabled = _enabled(text)
    config = posixpath.dirname(path)
    names: tuple[str, ...] = tuple(defaults({"clients": tuple(CLIENTS)}, rule)["clients"])
    for name in names:
        client = CLIENTS[name]
        ini_path = posixpath.join(config, client.ini)
        ini_text = view.read(ini_path)
        if name not in enabled and ini_text is None:
            continue
        ini = _ini(ini_text or "", ini_path, fail)
        unlisted = "" if name in enabled else " (not in config/plugins)"
        for section, inherits in client.sections.items():
            note = f"plugin {name} [{section}]{unlisted}"
            emit(_client_connection(rule, ini_path, ini, section, inherits, client, note))


def _client_connection(
    rule: AuditRule,
    file: str,
    ini: Ini,
    section: str,
    inherits: tuple[str, ...],
    client: Client,
    note: str,
) -> Connection:
    def setting(keys: tuple[str, ...]) -> tuple[str, int] | None:
        for sec in (section, *inherits):
            for key in keys:
                found = ini.get(sec, {}).get(key)
                if found is not None and found[0]:
                    return found
        return None

    where = f"[{section}]"
    sock = setting((client.socket,))
    if sock is not None:
        return connection(
            Target("unix", socket=sock[0]),
            component=rule.component,
            file=file,
            line=sock[1],
            directive=f"{where} {client.socket}={sock[0]}",
            reason=note,
        )
    host, port = setting(client.host), setting((client.port,))
    set_lines = [x for x in (host, port) if x is not None]
    target = host_and_port(host[0] if host else client.default_host, client.default_port)
    if port is not None:
        target = host_and_port(f"{target.host}:{port[0]}", client.default_port)
    shown = [f"{k}={v[0]}" for k, v in (("host", host), ("port", port)) if v is not None]
    return connection(
        target,
        component=rule.component,
        file=file,
        line=set_lines[0][1] if set_lines else 0,
        directive=f"{where} {' '.join(shown)}".strip() if shown else "",
        origin="config" if host is not None else "default",
        reason=note
        + ("" if host is not None else f": no host set, the plugin's {client.default_host}"),
    )
