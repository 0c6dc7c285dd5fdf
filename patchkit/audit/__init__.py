"""The isolation audit: every network listener the configs of a release declare.

Reads a tree (a release, patched in memory or not) through a small file view, runs one
parser per config format, and judges each listener with the rules in :data:`RULES` and
the tables beside it, the one place that says what is allowed:

* a unix socket is ``ok``;
* TCP on a loopback or wildcard address is ``forbidden`` (it collides between instances);
* a public port bound to the start-up placeholder (:data:`PLACEHOLDER`) is ``ok``;
* TCP on any other specific address is ``ok``;
* a listener in a file that a patch marked ``Verified: offline-unverifiable`` would
  change, where that patch is skipped on this release, is ``unverified`` (reported, and
  a failure only with ``strict``);
* a config a rule cannot parse gives a problem naming file and line: a failure.

>>> view = MemoryView({"etc/redis/redis.conf": "bind 127.0.0.1\\nport 6379\\n"})
>>> [(l.address, l.port, l.verdict.value) for l in audit_view(view).listeners]
[('127.0.0.1', 6379, 'forbidden')]
"""

from __future__ import annotations

import enum
import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from patchkit.core.model import SCHEMA, CheckResult, PatchStatus
from patchkit.core.patchfile import Patch
from patchkit.git.objects import MODE_LINK, BlobReader, TreeEntry

if TYPE_CHECKING:
    from patchkit.project import Project

__all__ = [
    "LOOPBACK",
    "PLACEHOLDER",
    "PUBLIC_PORTS",
    "RULES",
    "WILDCARD",
    "AuditResult",
    "FileView",
    "Listener",
    "MemoryView",
    "Problem",
    "Rule",
    "TreeView",
    "Verdict",
    "audit_release",
    "audit_view",
    "render_audit",
    "unverified_files",
]

# -- the rules: data ------------------------------------------------------------------

PLACEHOLDER = "__LISTEN_ON__"  # replaced at container start by the hostname's addresses (issue 7)
PUBLIC_PORTS = frozenset({25, 80, 110, 143, 443, 465, 587, 993, 995, 4190})
LOOPBACK = ("127.", "::1", "localhost", "0:0:0:0:0:0:0:1")
WILDCARD = frozenset({"*", "0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0", "", "*v4", "*v6"})
# Where in a tree the configs above (and what they include) live: the audit reads only these.
AUDIT_ROOTS = ("etc", "opt", "usr/share/dovecot")
VERIFIED_FIELD = re.compile(r"^verified:[ \t]*offline-unverifiable\b", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """Where one component's configs are and how to read them."""

    component: str
    files: tuple[str, ...]  # globs in the tree; each match is parsed (with its includes)
    parser: str  # key of PARSERS
    defaults: Mapping[str, Any] = field(default_factory=dict)


RULES: tuple[Rule, ...] = (
    # redis: no `port` means 6379; no `bind` means every interface.
    Rule(
        component="redis",
        files=("etc/redis/redis.conf",),
        parser="redis",
        defaults={"port": 6379, "bind": ("*", "::")},
    ),
    # rspamd: workers in rspamd.conf; local.d (priority 1) and override.d (10) replace bind_socket.
    Rule(
        component="rspamd",
        files=("etc/rspamd/rspamd.conf",),
        parser="rspamd",
        defaults={"confdir": "etc/rspamd", "local_confdir": "etc/rspamd"},
    ),
    # Haraka: smtp.ini `listen` (default [::0]:25); http.ini `listen` (no listen: no server).
    Rule(
        component="haraka",
        files=("opt/*/config/smtp.ini",),
        parser="haraka-smtp",
        defaults={"listen": "[::0]:25"},
    ),
    Rule(component="haraka", files=("opt/*/config/http.ini",), parser="haraka-http"),
    # dovecot: `listen` (default "*, ::"), inet_listener blocks; built-in listeners of the
    # enabled protocols apply unless a block changes them; port = 0 disables one.
    Rule(
        component="dovecot",
        files=("etc/dovecot/dovecot.conf",),
        parser="dovecot",
        defaults={
            "listen": "*, ::",
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
        },
    ),
    # nginx: nginx.conf and what it includes, plus poste.io's templates (rendered into
    # sites-enabled at start). `listen 80` = *:80; a server without listen = *:80.
    Rule(
        component="nginx",
        files=("etc/nginx/nginx.conf", "etc/nginx/sites-enabled.templates/*"),
        parser="nginx",
        defaults={"port": 80, "root": "etc/nginx"},
    ),
)


# -- results --------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    OK = "ok"
    FORBIDDEN = "forbidden"
    UNVERIFIED = "unverified"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """One place a service accepts connections."""

    component: str
    file: str
    line: int
    kind: str  # "tcp" | "unix"
    address: str | None = None
    port: int | None = None
    socket: str | None = None
    origin: str = "config"  # "config" | "default" (a built-in default the config leaves alone)
    verdict: Verdict = Verdict.OK
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "address": self.address,
            "port": self.port,
            "socket": self.socket,
            "origin": self.origin,
            "verdict": self.verdict.value,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """A config a rule could not read: always a failure."""

    component: str
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "file": self.file,
            "line": self.line,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditResult:
    version: str
    patched: bool
    listeners: tuple[Listener, ...]
    problems: tuple[Problem, ...] = ()
    strict: bool = False

    def count(self, verdict: Verdict) -> int:
        return sum(1 for x in self.listeners if x.verdict is verdict)

    @property
    def failed(self) -> bool:
        bad = self.count(Verdict.FORBIDDEN) + len(self.problems)
        return bool(bad or (self.strict and self.count(Verdict.UNVERIFIED)))

    @property
    def summary(self) -> dict[str, int]:
        out = {v.value: self.count(v) for v in Verdict}
        out["problems"] = len(self.problems)
        out["listeners"] = len(self.listeners)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "audit",
            "version": self.version,
            "patched": self.patched,
            "strict": self.strict,
            "failed": self.failed,
            "listeners": [x.to_dict() for x in self.listeners],
            "problems": [p.to_dict() for p in self.problems],
            "summary": self.summary,
        }


# -- the file view ----------------------------------------------------------------------


class FileView(Protocol):
    def read(self, path: str) -> str | None: ...
    def glob(self, pattern: str) -> list[str]: ...


class MemoryView:
    """A tree held in a dict (path -> text); used by tests and by `TreeView` callers."""

    def __init__(self, files: Mapping[str, str | None], links: Mapping[str, str] | None = None):
        self.files = {k: v for k, v in files.items() if v is not None}
        self.links = dict(links or {})

    def _resolve(self, path: str) -> str:
        for _ in range(16):
            target = self.links.get(path)
            if target is None:
                return path
            path = posixpath.normpath(
                target.lstrip("/")
                if target.startswith("/")
                else posixpath.join(posixpath.dirname(path), target)
            )
        return path

    def read(self, path: str) -> str | None:
        return self.files.get(self._resolve(path))

    def glob(self, pattern: str) -> list[str]:
        return _glob(set(self.files) | set(self.links), pattern)


def _read_once(view: FileView, file: str, seen: set[str]) -> str | None:
    """``file``'s text the first time an include chain reaches it; None after (or if absent)."""
    if file in seen:
        return None
    seen.add(file)
    return view.read(file)


def _glob(names: Iterable[str], pattern: str) -> list[str]:
    """Names matching ``pattern`` component by component (``*`` never crosses ``/``)."""
    want = pattern.split("/")
    return sorted(
        n
        for n in names
        if len(parts := n.split("/")) == len(want)
        and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, want, strict=True))
    )


class TreeView:
    """A release tree in the store, plus the patched files (path -> content, None: deleted)."""

    def __init__(
        self,
        reader: BlobReader,
        entries: Mapping[str, TreeEntry],
        overlay: Mapping[str, bytes | None],
    ):
        self.reader = reader
        self.entries = entries
        self.overlay = overlay
        self._names = (set(entries) | {p for p, c in overlay.items() if c is not None}) - {
            p for p, c in overlay.items() if c is None
        }

    def _raw(self, path: str) -> tuple[bytes | None, bool]:
        if path in self.overlay:
            return self.overlay[path], False
        entry = self.entries.get(path)
        if entry is None:
            return None, False
        return self.reader.read(entry.blob), entry.mode == MODE_LINK

    def read(self, path: str) -> str | None:
        for _ in range(16):
            data, is_link = self._raw(path)
            if data is None:
                return None
            if not is_link:
                return data.decode("utf-8", "replace")
            target = data.decode("utf-8", "surrogateescape")
            path = posixpath.normpath(
                target.lstrip("/")
                if target.startswith("/")
                else posixpath.join(posixpath.dirname(path), target)
            )
        return None

    def glob(self, pattern: str) -> list[str]:
        return _glob(self._names, pattern)


# -- helpers ----------------------------------------------------------------------------

Emit = Callable[[Listener], None]
Fail = Callable[[str, int, str], None]


def _host_port(text: str, default_port: int | None) -> tuple[str, int | None] | None:
    """`[::1]:25`, `127.0.0.1:25`, `*:80`, `80`, `host` -> (host, port); None if malformed."""
    text = text.strip()
    m = re.fullmatch(r"\[([^\]]*)\](?::(\d+))?", text)
    if m:
        return m.group(1), int(m.group(2)) if m.group(2) else default_port
    if re.fullmatch(r"\d+", text):
        return "*", int(text)
    if text.count(":") > 1:  # bare IPv6 without brackets: no port
        return text, default_port
    host, sep, port = text.rpartition(":")
    if sep:
        if not re.fullmatch(r"\d+", port):
            return None
        return host, int(port)
    return text, default_port


def _judge(listener: Listener) -> Listener:
    if listener.kind == "unix":
        return replace(listener, verdict=Verdict.OK, reason="unix socket")
    addr = (listener.address or "").strip("[]").lower()
    port = listener.port
    if PLACEHOLDER.lower() in addr:
        if port in PUBLIC_PORTS:
            return replace(
                listener, verdict=Verdict.OK, reason="public port on the start-up placeholder"
            )
        return replace(
            listener,
            verdict=Verdict.FORBIDDEN,
            reason=f"port {port} is internal: use a unix socket",
        )
    if addr in WILDCARD:
        return replace(
            listener, verdict=Verdict.FORBIDDEN, reason="TCP on every address (wildcard)"
        )
    if addr.startswith(LOOPBACK):
        return replace(listener, verdict=Verdict.FORBIDDEN, reason="TCP on loopback")
    return replace(listener, verdict=Verdict.OK, reason="TCP on a specific address")


def _strip_hash_comment(line: str) -> str:
    out, quote = [], ""
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def _join(base_dir: str, path: str) -> str:
    return posixpath.normpath(
        path.lstrip("/") if path.startswith("/") else posixpath.join(base_dir, path)
    )


# -- redis --------------------------------------------------------------------------------


def parse_redis(view: FileView, path: str, rule: Rule, emit: Emit, fail: Fail) -> None:
    binds: tuple[str, ...] = tuple(rule.defaults["bind"])
    bind_at = (path, 0)
    port: int = rule.defaults["port"]
    port_at = (path, 0)
    sockets: list[tuple[str, str, int]] = []
    seen: set[str] = set()

    def walk(file: str) -> None:
        nonlocal binds, bind_at, port, port_at
        text = _read_once(view, file, seen)
        if text is None:
            return
        for no, raw in enumerate(text.splitlines(), 1):
            words = raw.split()  # redis has whole-line comments only
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
                walk(_join(posixpath.dirname(file), words[1]))

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


# -- rspamd (UCL, the subset its config uses) --------------------------------------------

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
        line = _strip_hash_comment(line)
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


def parse_rspamd(view: FileView, path: str, rule: Rule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    dirs = {"$CONFDIR": rule.defaults["confdir"], "$LOCAL_CONFDIR": rule.defaults["local_confdir"]}

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
                _rspamd_listener(rule, name, value, file, no, emit, fail)

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


def _rspamd_listener(
    rule: Rule, name: str, value: str, file: str, no: int, emit: Emit, fail: Fail
) -> None:
    base = Listener(
        component=rule.component, file=file, line=no, kind="tcp", reason=f"worker {name}"
    )
    first = value.split()[0] if value.split() else ""
    if first.startswith(("/", ".")):
        emit(replace(base, kind="unix", socket=first))
        return
    if first.startswith("systemd:"):
        emit(replace(base, kind="unix", socket=first))
        return
    hp = _host_port(first, None)
    if hp is None or hp[1] is None:
        fail(file, no, f"cannot read bind_socket {value!r} (want HOST:PORT or a socket path)")
        return
    emit(replace(base, address=hp[0], port=hp[1]))


# -- Haraka (ini) -------------------------------------------------------------------------


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


def parse_haraka_smtp(view: FileView, path: str, rule: Rule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    main = _ini_main(text, path, fail)
    value, no = main.get("listen", (rule.defaults["listen"], 0))
    _haraka_listen(rule, path, no, value, 25, emit, fail, origin="config" if no else "default")


def parse_haraka_http(view: FileView, path: str, rule: Rule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    main = _ini_main(text, path, fail)
    if "listen" in main:
        value, no = main["listen"]
        _haraka_listen(rule, path, no, value, 80, emit, fail, origin="config")


def _haraka_listen(
    rule: Rule,
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
        hp = _host_port(item, default_port)
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


# -- dovecot ------------------------------------------------------------------------------


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


def parse_dovecot(view: FileView, path: str, rule: Rule, emit: Emit, fail: Fail) -> None:
    listen: tuple[str, str, int] = (rule.defaults["listen"], path, 0)
    protocols: dict[str, tuple[str, int]] = {}
    listeners: dict[tuple[str, str, str], _DovecotListener] = {}
    seen: set[str] = set()

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
        text = _read_once(view, file, seen)
        if text is None:
            return
        stack: list[tuple[str, str]] = []
        current: _DovecotListener | None = None
        for no, raw in enumerate(text.splitlines(), 1):
            line = _strip_hash_comment(raw).strip()
            if not line:
                continue
            m = re.match(r"^!include(_try)?\s+(\S+)$", line)
            if m:
                pattern = _join(posixpath.dirname(file), m.group(2).strip("\"'"))
                matches = view.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
                found = [p for p in matches if view.read(p) is not None]
                if not found and not m.group(1) and not any(c in pattern for c in "*?["):
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
    builtin: Mapping[str, Sequence[tuple[str, str, int]]] = rule.defaults["builtin"]
    by_protocol: Mapping[str, str] = rule.defaults["service_protocol"]
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
            sock = lst.name if lst.name.startswith("/") else f"/var/run/dovecot/{lst.name}"
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


# -- nginx --------------------------------------------------------------------------------


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


def parse_nginx(view: FileView, path: str, rule: Rule, emit: Emit, fail: Fail) -> None:
    root = rule.defaults["root"]

    def walk(file: str, seen: tuple[str, ...]) -> None:
        if file in seen:
            return
        text = view.read(file)
        if text is None:
            return
        tokens = _nginx_tokens(text, file, fail)
        if tokens is None:
            return
        stmt: list[tuple[str, int]] = []
        blocks: list[list[bool]] = []  # per open block: [is_server, saw_listen]
        block_line: list[int] = []
        for tok, no in tokens:
            if tok == ";":
                if stmt:
                    directive(stmt, file, seen, blocks)
                stmt = []
            elif tok == "{":
                is_server = bool(stmt) and stmt[0][0] == "server" and len(stmt) == 1
                blocks.append([is_server, False])
                block_line.append(stmt[0][1] if stmt else no)
                stmt = []
            elif tok == "}":
                if stmt:
                    fail(file, stmt[0][1], f"directive {stmt[0][0]!r} not ended with ';'")
                    stmt = []
                if not blocks:
                    fail(file, no, "unbalanced '}'")
                    return
                is_server, saw_listen = blocks.pop()
                start = block_line.pop()
                if is_server and not saw_listen:
                    emit(
                        Listener(
                            component=rule.component,
                            file=file,
                            line=start,
                            kind="tcp",
                            address="*",
                            port=rule.defaults["port"],
                            origin="default",
                            reason="server block without listen",
                        )
                    )
            else:
                stmt.append((tok, no))
        if stmt:
            fail(file, stmt[0][1], f"directive {stmt[0][0]!r} not ended with ';'")
        if blocks:
            fail(file, block_line[-1], "unbalanced '{' (block not closed)")

    def directive(
        stmt: list[tuple[str, int]], file: str, seen: tuple[str, ...], blocks: list[list[bool]]
    ) -> None:
        name, no = stmt[0]
        args = [t for t, _ in stmt[1:]]
        if name == "include" and args:
            pattern = _join(root, args[0])
            matches = view.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
            for sub in matches:
                walk(sub, (*seen, file))
        elif name == "listen":
            if not args:
                fail(file, no, "listen without an address")
                return
            for blk in reversed(blocks):
                if blk[0]:
                    blk[1] = True
                    break
            target = args[0]
            if target.startswith("unix:"):
                emit(
                    Listener(
                        component=rule.component, file=file, line=no, kind="unix", socket=target[5:]
                    )
                )
                return
            hp = _host_port(target, rule.defaults["port"])
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

    walk(path, ())


PARSERS: dict[str, Callable[[FileView, str, Rule, Emit, Fail], None]] = {
    "redis": parse_redis,
    "rspamd": parse_rspamd,
    "haraka-smtp": parse_haraka_smtp,
    "haraka-http": parse_haraka_http,
    "dovecot": parse_dovecot,
    "nginx": parse_nginx,
}


# -- driver -------------------------------------------------------------------------------


def unverified_files(patches: Sequence[Patch], check: CheckResult | None) -> dict[str, str]:
    """Files that an offline-unverifiable patch would change but that was skipped here: path -> patch."""
    if check is None:
        return {}
    skipped = {p.name for p in check.patches if p.status is PatchStatus.SKIPPED}
    out: dict[str, str] = {}
    for patch in patches:
        if patch.name in skipped and VERIFIED_FIELD.search(patch.header):
            for path in patch.paths:
                out.setdefault(path, patch.name)
    return out


def audit_view(
    view: FileView,
    *,
    version: str = "",
    patched: bool = False,
    unverified: Mapping[str, str] | None = None,
    strict: bool = False,
    rules: Sequence[Rule] = RULES,
) -> AuditResult:
    """Run every rule over ``view`` and judge each listener found."""
    listeners: list[Listener] = []
    problems: list[Problem] = []
    pending = dict(unverified or {})
    for rule in rules:
        parser = PARSERS[rule.parser]

        def emit(listener: Listener) -> None:
            judged = _judge(listener)
            owner = pending.get(judged.file)
            if judged.verdict is Verdict.FORBIDDEN and owner:
                judged = replace(
                    judged,
                    verdict=Verdict.UNVERIFIED,
                    reason=f"{judged.reason}; {owner} would change this file but is offline-unverifiable and skipped here",
                )
            listeners.append(judged)

        def fail(file: str, line: int, message: str, _rule: Rule = rule) -> None:
            problems.append(
                Problem(component=_rule.component, file=file, line=line, message=message)
            )

        for pattern in rule.files:
            paths = view.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
            for path in paths:
                parser(view, path, rule, emit, fail)
    listeners.sort(key=lambda x: (x.component, x.file, x.line, x.address or "", x.port or 0))
    return AuditResult(
        version=version,
        patched=patched,
        listeners=tuple(listeners),
        problems=tuple(problems),
        strict=strict,
    )


def audit_release(
    project: Project, version: str | None = None, *, patched: bool = True, strict: bool = False
) -> AuditResult:
    """Audit ``version`` (default: base) with the series applied in memory (or as imported)."""
    from patchkit.ops.build import patched_tree

    version = version or project.versions.base
    tree = project.release_tree(version)
    store = project.store
    patches = project.patches() if patched else []
    entries = store.ls_tree(tree, AUDIT_ROOTS)
    with store.blob_reader() as reader:
        overlay: Mapping[str, bytes | None] = {}
        check = None
        if patched:
            pt = patched_tree(reader, version=version, tree=tree, patches=patches, store=store)
            overlay, check = pt.changes, pt.check
        view = TreeView(reader, entries, overlay)
        return audit_view(
            view,
            version=version,
            patched=patched,
            unverified=unverified_files(patches, check),
            strict=strict,
        )


def render_audit(result: AuditResult) -> str:
    """Plain text: one line a listener (file:line, what, verdict), problems, a summary."""
    lines = []
    for x in result.listeners:
        host = f"[{x.address}]" if x.address and ":" in x.address else x.address
        where = x.socket if x.kind == "unix" else f"{host}:{x.port}"
        origin = " (default)" if x.origin == "default" else ""
        lines.append(
            f"{x.verdict.value:<10} {x.component:<8} {x.kind:<4} {where:<40} /{x.file}:{x.line}{origin}  {x.reason}"
        )
    for p in result.problems:
        lines.append(f"{'unparsable':<10} {p.component:<8} /{p.file}:{p.line}: {p.message}")
    s = result.summary
    state = "FAILED" if result.failed else "passed"
    what = "patched" if result.patched else "unpatched"
    lines.append(
        f"audit {result.version} ({what}): {state}: {s['listeners']} listener(s), {s['forbidden']} forbidden, "
        f"{s['unverified']} unverified, {s['problems']} unparsable"
    )
    return "\n".join(lines)
