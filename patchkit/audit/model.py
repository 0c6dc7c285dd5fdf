"""The audit's records: one listener, one unreadable config, the result of one release."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from patchkit.core.model import SCHEMA

__all__ = ["AuditResult", "Listener", "Problem", "Verdict"]


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
