"""rspamd: its whole config tree (``rspamd.conf`` and every ``.include``, read by
:mod:`~patchkit.audit.parsers.ucl` with rspamd's priorities), then

* listeners: ``bind_socket`` of each ``worker`` (the highest priority that sets it wins:
  override.d 10 > local.d 1 > inline 0);
* connections: the redis ``servers`` (``read_servers``, ``write_servers``) of the ``redis``
  section, of a classifier and of a module's own section, and the ``hosts`` of the proxy
  worker's ``upstream`` / ``mirror`` blocks (port 11333 when none is given).

``$CONFDIR`` and friends resolve to image directories (:data:`DEFAULTS`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from patchkit.audit.model import Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, host_port
from patchkit.audit.parsers._targets import connection, server_list
from patchkit.audit.parsers.ucl import UclObject, UclValue, read_ucl, scalars, walk
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "parse_rspamd"]

_REDIS_KEYS = ("servers", "read_servers", "write_servers")

# Debian's layout: both directories are etc/rspamd (local.d/ and override.d/ under it); the
# other variables rspamd defines (an include naming one outside the audit roots reads as
# absent). `clients`: (section path glob, keys, default port, what) of the settings that
# make rspamd connect somewhere.
DEFAULTS: Mapping[str, Any] = {
    "confdir": "etc/rspamd",
    "local_confdir": "etc/rspamd",
    "variables": {
        "DBDIR": "var/lib/rspamd",
        "RUNDIR": "run/rspamd",
        "LOGDIR": "var/log/rspamd",
        "SHAREDIR": "usr/share/rspamd",
        "RULESDIR": "usr/share/rspamd/rules",
        "PLUGINSDIR": "usr/share/rspamd/plugins",
        "LUALIBDIR": "usr/share/rspamd/lualib",
        "WWWDIR": "usr/share/rspamd/www",
    },
    "clients": (
        ("redis", _REDIS_KEYS, 6379, "redis"),
        ("classifier", _REDIS_KEYS, 6379, "classifier (redis backend)"),
        ("classifier/*", _REDIS_KEYS, 6379, "classifier (redis backend)"),
        ("worker/*/upstream/*", ("hosts",), 11333, "proxy upstream"),
        ("worker/*/mirror/*", ("hosts",), 11333, "proxy mirror"),
        ("worker/upstream/*", ("hosts",), 11333, "proxy upstream"),
        ("*", _REDIS_KEYS, None, "module"),
    ),
}


def parse_rspamd(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    opts = defaults(DEFAULTS, rule)
    variables = {
        **opts["variables"],
        "CONFDIR": opts["confdir"],
        "LOCAL_CONFDIR": opts["local_confdir"],
    }
    tree = read_ucl(view, path, variables, fail)
    if tree is None:
        return
    for name, worker in _workers(tree):
        for bind in _top(worker.get("bind_socket")):
            for v in scalars(bind):
                _listener(rule, name, v, emit, fail)
    for keys, value in walk(tree):
        spec = _client(keys, opts["clients"])
        if spec is None:
            continue
        default_port, what = spec
        for v in scalars(value):
            assert isinstance(v.value, str)
            note = f"{what} ({'/'.join(keys[:-1])})"
            for target in server_list(v.value, default_port):
                emit(
                    connection(
                        target,
                        component=rule.component,
                        file=v.file,
                        line=v.line,
                        directive=f'{keys[-1]} = "{v.value}"',
                        reason=note,
                    )
                )


def _client(
    keys: tuple[str, ...], clients: tuple[tuple[str, tuple[str, ...], int | None, str], ...]
) -> tuple[int | None, str] | None:
    section = "/".join(keys[:-1])
    for pattern, names, port, what in clients:
        if (
            keys[-1] in names
            and fnmatch.fnmatchcase(section, pattern)
            and section.count("/") == pattern.count("/")
        ):
            return port, what
    return None


def _top(values: list[UclValue]) -> list[UclValue]:
    """The values that win: those of the highest priority."""
    if not values:
        return []
    top = max(v.priority for v in values)
    return [v for v in values if v.priority == top]


def _workers(tree: UclObject) -> list[tuple[str, UclObject]]:
    """(name, section) of each worker: `worker "name" { }` or `worker { type = ...; }`."""
    out: list[tuple[str, UclObject]] = []
    for w in tree.get("worker"):
        if not isinstance(w.value, UclObject):
            continue
        section = w.value
        if section.get("type") or section.get("bind_socket"):
            kind = next((v.value for v in section.get("type") if isinstance(v.value, str)), "")
            out.append((kind or "worker", section))
            continue
        out.extend(
            (name, v.value)
            for name, vs in section.keys.items()
            for v in vs
            if isinstance(v.value, UclObject)
        )
    return out


def _listener(rule: AuditRule, name: str, v: UclValue, emit: Emit, fail: Fail) -> None:
    assert isinstance(v.value, str)
    value = v.value
    base = Listener(
        component=rule.component, file=v.file, line=v.line, kind="tcp", reason=f"worker {name}"
    )
    first = value.split()[0] if value.split() else ""
    if first.startswith(("/", ".", "systemd:")):
        emit(replace(base, kind="unix", socket=first))
        return
    hp = host_port(first, None)
    if hp is None or hp[1] is None:
        fail(v.file, v.line, f"cannot read bind_socket {value!r} (want HOST:PORT or a socket path)")
        return
    emit(replace(base, address=hp[0], port=hp[1]))
