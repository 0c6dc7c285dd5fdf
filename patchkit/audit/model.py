"""The audit's records: one listener, one connection, one unreadable config, the result of
one release."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from patchkit.core.model import SCHEMA

__all__ = ["AuditResult", "Connection", "Listener", "Problem", "Verdict"]


class Verdict(enum.StrEnum):
    OK = "ok"
    FORBIDDEN = "forbidden"
    UNVERIFIED = "unverified"
    # A connection that cannot work as written (an nginx variable host without a resolver).
    PROBLEM = "problem"

    def __str__(self) -> str:
        return self.value


# The verdicts a listener can get (a listener is never a `problem`).
LISTENER_VERDICTS = (Verdict.OK, Verdict.FORBIDDEN, Verdict.UNVERIFIED)


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
class Connection:
    """One place a config tells a component to connect to something.

    ``kind``: ``tcp`` (``host``, ``port``), ``udp`` (a DNS resolver), ``unix`` (``socket``),
    or ``variable`` (the target is computed at run time: ``host`` holds the expression).
    ``directive`` is the text it came from, as written. ``missing`` is what the target
    lacks to work at all (an nginx variable host without a ``resolver``): the policy makes
    such a connection a ``problem``.
    """

    component: str
    file: str
    line: int
    kind: str
    host: str | None = None
    port: int | None = None
    socket: str | None = None
    directive: str = ""
    origin: str = "config"  # "config" | "default" (the client's built-in target)
    missing: str = ""
    verdict: Verdict = Verdict.OK
    reason: str = ""

    @property
    def target(self) -> str:
        """``host:port`` (IPv6 in brackets), the socket path, or the expression."""
        if self.kind == "unix":
            return self.socket or ""
        host = self.host or ""
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return host if self.port is None else f"{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "host": self.host,
            "port": self.port,
            "socket": self.socket,
            "directive": self.directive,
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
    connections: tuple[Connection, ...] = ()
    problems: tuple[Problem, ...] = ()
    strict: bool = False

    def count(self, verdict: Verdict) -> int:
        """Listeners with ``verdict``."""
        return sum(1 for x in self.listeners if x.verdict is verdict)

    def count_connections(self, verdict: Verdict) -> int:
        return sum(1 for x in self.connections if x.verdict is verdict)

    @property
    def failed(self) -> bool:
        bad = (
            self.count(Verdict.FORBIDDEN)
            + len(self.problems)
            + self.count_connections(Verdict.FORBIDDEN)
            + self.count_connections(Verdict.PROBLEM)
        )
        unverified = self.count(Verdict.UNVERIFIED) + self.count_connections(Verdict.UNVERIFIED)
        return bool(bad or (self.strict and unverified))

    @property
    def summary(self) -> dict[str, int]:
        """Listener counts under their verdicts (as before connections existed), problems,
        and the connections' counts under ``connections_<verdict>``."""
        out = {v.value: self.count(v) for v in LISTENER_VERDICTS}
        out["problems"] = len(self.problems)
        out["listeners"] = len(self.listeners)
        out["connections"] = len(self.connections)
        for v in Verdict:
            out[f"connections_{v.value}"] = self.count_connections(v)
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
            "connections": [x.to_dict() for x in self.connections],
            "problems": [p.to_dict() for p in self.problems],
            "summary": self.summary,
        }
