"""What in dovecot's config makes dovecot connect somewhere (read by
:mod:`~patchkit.audit.parsers.dovecot` while it walks the settings):

* ``submission_host = host[:port]`` (port 25), ``submission_relay_host`` with
  ``submission_relay_port`` (25): mail dovecot sends through SMTP;
* dictionary URIs in the quota settings (``quota = dict:...:proxy::quota``,
  ``quota_clone_dict``, any ``*_dict``) and in a ``dict { }`` block: ``proxy:[path]:name``
  (a unix socket, ``dict`` under base_dir by default), ``redis:host=...:port=...``
  (127.0.0.1:6379), ``memcached[_ascii]:host=...:port=...`` (127.0.0.1:11211);
* ``quota_warning = <rule> <service> ...``: the script service's unix socket.

Dovecot 2.4's named ``dict`` filters are not read (a known limit, docs/audit.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from patchkit.audit.parsers._common import Emit
from patchkit.audit.parsers._targets import Target, connection, host_and_port

__all__ = ["DovecotClients"]

_DICT_KEY = re.compile(r"^(?:quota\d*|quota_clone_dict|[a-z0-9_]*_dict)$")
_WARNING_KEY = re.compile(r"^quota_warning\d*$")
_DICT_URI = re.compile(r"(?<![\w])(proxy|redis|memcached|memcached_ascii):([^\s]*)")
_DICT_DEFAULTS = {"redis": ("127.0.0.1", 6379), "memcached": ("127.0.0.1", 11211)}


@dataclass(slots=True)
class DovecotClients:
    """Collects the connecting settings of one dovecot config; :meth:`report` emits them."""

    component: str
    base_dir: str
    found: list[tuple[Target, str, int, str, str]] = field(default_factory=list)
    relay: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    def sock(self, name: str) -> str:
        return name if name.startswith("/") else f"/{self.base_dir.strip('/')}/{name}"

    def see(self, key: str, value: str, blocks: list[str], file: str, line: int) -> None:
        written = f"{key} = {value}"
        if key == "submission_host" and value:
            self.found.append((host_and_port(value, 25), file, line, written, "submission host"))
        elif key in ("submission_relay_host", "submission_relay_port") and value:
            self.relay[key] = (value, file, line)
        elif _WARNING_KEY.match(key) and len(value.split()) > 1:
            service = value.split()[1]
            target = Target("unix", socket=self.sock(service))
            self.found.append((target, file, line, written, "quota warning script"))
        elif _DICT_KEY.match(key) or (blocks and blocks[-1] == "dict"):
            for m in _DICT_URI.finditer(value):
                what = f"dictionary {m.group(1)}"
                self.found.append((self._dict(m.group(1), m.group(2)), file, line, written, what))

    def _dict(self, driver: str, args: str) -> Target:
        if driver == "proxy":
            path, _, _name = args.partition(":")
            return Target("unix", socket=self.sock(path or "dict"))
        params = dict(p.partition("=")[::2] for p in args.split(":") if "=" in p)
        if "path" in params:
            return Target("unix", socket=params["path"])
        host, port = _DICT_DEFAULTS["redis" if driver == "redis" else "memcached"]
        return host_and_port(f"{params.get('host', host)}:{params.get('port', port)}", port)

    def report(self, emit: Emit) -> None:
        if "submission_relay_host" in self.relay:
            value, file, line = self.relay["submission_relay_host"]
            port = self.relay.get("submission_relay_port", ("25", "", 0))[0]
            self.found.append(
                (
                    host_and_port(f"{value}:{port}", 25),
                    file,
                    line,
                    f"submission_relay_host = {value}",
                    "submission relay",
                )
            )
        for target, file, line, written, what in self.found:
            emit(
                connection(
                    target,
                    component=self.component,
                    file=file,
                    line=line,
                    directive=written,
                    reason=what,
                )
            )
