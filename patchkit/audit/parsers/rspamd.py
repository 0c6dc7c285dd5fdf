"""rspamd (UCL, the subset its config uses): ``worker "..." { bind_socket = ...; .include ... }``.

Included files resolve ``$CONFDIR`` / ``$LOCAL_CONFDIR``; the highest ``priority`` that sets
``bind_socket`` wins (override.d 10 > local.d 1 > inline 0); ``#``, ``//``, ``/* */`` comments.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from patchkit.audit.model import Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, host_port, strip_hash_comment
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "parse_rspamd"]

# Debian's layout: both directories are etc/rspamd (local.d/ and override.d/ under it).
DEFAULTS: Mapping[str, Any] = {"confdir": "etc/rspamd", "local_confdir": "etc/rspamd"}

_UCL_INCLUDE = re.compile(r'^\s*\.include(?:\(([^)]*)\))?\s+"([^"]+)"')
_UCL_WORKER = re.compile(r'^\s*worker\s*(?:"([^"]+)"|([A-Za-z_][\w-]*))?\s*\{')
_UCL_BIND = re.compile(r"^\s*bind_socket\s*[=:]?\s*(.*?)\s*;?\s*$")


def _ucl_lines(text: str) -> Iterable[tuple[int, str]]:
    in_block = False
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw
        if in_block:
            end = line.find("*/")
            if end < 0:
                continue
            line, in_block = line[end + 2 :], False
        while "/*" in line:
            start = line.index("/*")
            end = line.find("*/", start + 2)
            if end < 0:
                line, in_block = line[:start], True
                break
            line = line[:start] + line[end + 2 :]
        line = strip_hash_comment(line)
        if line.strip().startswith("//"):
            continue
        yield no, line


def _ucl_bind(value: str, file: str, no: int, fail: Fail) -> str | None:
    v = value.strip().rstrip(";").strip()
    m = re.fullmatch(r'"([^"]*)"|\'([^\']*)\'|([^\s"\';]+)', v)
    if not m:
        fail(file, no, f"cannot read bind_socket value {value.strip()!r}")
        return None
    return next(g for g in m.groups() if g is not None)


def parse_rspamd(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    opts = defaults(DEFAULTS, rule)
    dirs = {"$CONFDIR": opts["confdir"], "$LOCAL_CONFDIR": opts["local_confdir"]}

    def resolve(inc: str) -> str:
        for var, d in dirs.items():
            inc = inc.replace("${" + var[1:] + "}", d).replace(var, d)
        return posixpath.normpath(inc.lstrip("/"))

    def binds_in(file: str, lines: Iterable[tuple[int, str]]) -> list[tuple[str, int, str]]:
        out = []
        for no, line in lines:
            m = _UCL_BIND.match(line)
            if m:
                value = _ucl_bind(m.group(1), file, no, fail)
                if value is not None:
                    out.append((value, no, file))
        return out

    depth = 0
    worker: str | None = None
    worker_depth = 0
    sources: list[tuple[int, list[tuple[str, int, str]]]] = []  # (priority, binds)
    inline: list[tuple[int, str]] = []

    def finish(name: str) -> None:
        candidates = [(0, binds_in(path, inline)), *sources]
        best = [c for c in candidates if c[1]]
        if not best:
            return
        top = max(p for p, _ in best)
        for priority, binds in best:
            if priority != top:
                continue
            for value, no, file in binds:
                _listener(rule, name, value, file, no, emit, fail)

    for no, line in _ucl_lines(text):
        m = _UCL_WORKER.match(line) if worker is None else None
        if m:
            worker = m.group(1) or m.group(2) or "worker"
            worker_depth = depth
            sources, inline = [], []
        elif worker is not None:
            inc = _UCL_INCLUDE.match(line)
            if inc:
                params = inc.group(1) or ""
                pm = re.search(r"priority\s*=\s*(\d+)", params)
                file = resolve(inc.group(2))
                sub = view.read(file)
                if sub is None:
                    if "try=true" not in params.replace(" ", ""):
                        fail(path, no, f"include {inc.group(2)} not found")
                    continue
                sources.append((int(pm.group(1)) if pm else 0, binds_in(file, _ucl_lines(sub))))
                continue
            if depth == worker_depth + 1:
                inline.append((no, line))
        depth += line.count("{") - line.count("}")
        if depth < 0:
            fail(path, no, "unbalanced '}'")
            return
        if worker is not None and depth <= worker_depth:
            finish(worker)
            worker = None
    if depth != 0 or worker is not None:
        fail(path, len(text.splitlines()), "unbalanced '{' (block not closed)")


def _listener(
    rule: AuditRule, name: str, value: str, file: str, no: int, emit: Emit, fail: Fail
) -> None:
    base = Listener(
        component=rule.component, file=file, line=no, kind="tcp", reason=f"worker {name}"
    )
    first = value.split()[0] if value.split() else ""
    if first.startswith(("/", ".", "systemd:")):
        emit(replace(base, kind="unix", socket=first))
        return
    hp = host_port(first, None)
    if hp is None or hp[1] is None:
        fail(file, no, f"cannot read bind_socket {value!r} (want HOST:PORT or a socket path)")
        return
    emit(replace(base, address=hp[0], port=hp[1]))
