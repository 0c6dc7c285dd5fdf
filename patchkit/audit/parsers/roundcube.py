"""Roundcube's ``config.inc.php`` (over ``defaults.inc.php`` when the tree has it): the IMAP,
SMTP and ManageSieve servers webmail connects to.

``$config['key'] = EXPR;`` (and the older ``$rcmail_config``): the last assignment in a file
wins; a later file wins over an earlier one. Within one file a current option name wins
over its legacy name (Roundcube 1.6: ``imap_host`` over ``default_host``, ``smtp_host``
over ``smtp_server``), as ``rcube_config::fix_legacy_props`` does. EXPR is read as string
literals joined by ``.``; ``gethostname()`` stays as written (the policy knows it); a
host with a Roundcube macro (``%h``, ``%n``...), an array or any other expression is a
``variable`` target. ``ssl://`` / ``tls://`` choose the default port. A service no file
sets connects to Roundcube's own default (``origin: default``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from patchkit.audit.model import Connection
from patchkit.audit.parsers._common import Emit, Fail, defaults
from patchkit.audit.parsers._scripts import blank_comments, line_of, php_value, string_end
from patchkit.audit.parsers._targets import Target, connection, host_and_port
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "parse_roundcube"]

# Per service: its option names (current first, then legacy ones), the options that give a
# port, Roundcube's default server, the default port by scheme ("" = none).
DEFAULTS: Mapping[str, Any] = {
    "defaults_file": "defaults.inc.php",
    "services": {
        "imap": {
            "keys": ("imap_host", "default_host"),
            "port_keys": ("default_port",),
            "default": "localhost:143",
            "ports": {"ssl": 993, "imaps": 993, "tls": 143, "": 143},
        },
        "smtp": {
            "keys": ("smtp_host", "smtp_server"),
            "port_keys": ("smtp_port",),
            "default": "localhost:587",
            "ports": {"ssl": 465, "tls": 587, "": 587},
        },
        "managesieve": {
            "keys": ("managesieve_host",),
            "port_keys": ("managesieve_port",),
            "default": "localhost:4190",
            "ports": {"ssl": 4190, "tls": 4190, "": 4190},
        },
    },
}

_ASSIGN = re.compile(r"\$(?:config|rcmail_config)\s*\[\s*(['\"])(\w+)\1\s*\]\s*=")

Setting = tuple[str, str, int, str]  # (expression, file, line, the option as written)


def _statement_end(text: str, i: int) -> int:
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = string_end(text, i) + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ";" and depth <= 0:
            return i
        i += 1
    return i


def _assignments(text: str, file: str) -> dict[str, Setting]:
    clean = blank_comments(text, "php")
    out: dict[str, Setting] = {}
    for m in _ASSIGN.finditer(clean):
        end = _statement_end(clean, m.end())
        out[m.group(2)] = (
            clean[m.end() : end].strip(),
            file,
            line_of(clean, m.start()),
            m.group(2),
        )
    return out


def parse_roundcube(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    opts = defaults(DEFAULTS, rule)
    services: Mapping[str, Mapping[str, Any]] = opts["services"]
    defaults_path = posixpath.join(posixpath.dirname(path), opts["defaults_file"])
    merged: dict[str, Setting] = {}
    for file in (defaults_path, path):
        body = text if file == path else view.read(file)
        if body is None:
            continue
        found = _assignments(body, file)
        for spec in services.values():
            current, *legacy = spec["keys"]
            for old in legacy:
                if old in found:
                    found.setdefault(current, found[old])
                    del found[old]
        merged.update(found)
    for name, spec in services.items():
        emit(_service(rule, path, name, spec, merged, defaults_path))


def _service(
    rule: AuditRule,
    path: str,
    name: str,
    spec: Mapping[str, Any],
    merged: Mapping[str, Setting],
    defaults_path: str,
) -> Connection:
    key = spec["keys"][0]
    setting = merged.get(key)
    expr, file, line, written_key = setting if setting else ("", path, 0, key)
    origin = "config" if setting and file != defaults_path else "default"
    value = php_value(expr).text if setting else spec["default"]
    port_setting = next((merged[k] for k in spec["port_keys"] if k in merged), None)
    port = php_value(port_setting[0]).text if port_setting else ""
    scheme, _, rest = value.rpartition("://")
    default_port: int | None = spec["ports"].get(scheme.lower(), spec["ports"][""])
    if port.isdigit():
        default_port = int(port)
    if not setting or (re.fullmatch(r"[\w.:\[\]-]+|.*gethostname\(\)", rest) and "%" not in rest):
        target = host_and_port(rest, default_port)
    else:
        target = Target("variable", host=expr or value)
    written = f"$config['{written_key}'] = {expr}" if setting else ""
    note = f"{name}" + ("" if setting else f": not set, Roundcube's {spec['default']}")
    return connection(
        target,
        component=rule.component,
        file=file,
        line=line,
        directive=written,
        origin=origin,
        reason=note,
    )
