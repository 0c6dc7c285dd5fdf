"""Haraka's ini files: ``listen`` of the main section of smtp.ini and http.ini.

A ``listen`` under another section (``[headers]``) is not it; values are comma lists of
``HOST:PORT`` or ``/path.sock[:mode]``. smtp.ini without ``listen`` is Haraka's ``[::0]:25``;
http.ini without ``listen`` runs no server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from patchkit.audit.model import Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, host_port
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["SMTP_DEFAULTS", "parse_haraka_http", "parse_haraka_smtp"]

SMTP_DEFAULTS: Mapping[str, Any] = {"listen": "[::0]:25"}


def _ini_main(text: str, file: str, fail: Fail) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    section = "main"
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        m = re.fullmatch(r"\[([^\]]+)\]", line)
        if m:
            section = m.group(1).strip()
            continue
        key, sep, value = line.partition("=")
        if not sep:
            if re.fullmatch(r"[\w.-]+", line):  # a bare key is a boolean true
                continue
            fail(file, no, f"cannot read ini line {line!r}")
            continue
        if section == "main":
            out[key.strip()] = (value.strip(), no)
    return out


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
