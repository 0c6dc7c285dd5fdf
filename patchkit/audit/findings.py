"""The audit's result as generic findings (:class:`~patchkit.core.report.AuditSummary`), for
reports that compare two audits or show one (``patchkit report``).

``SECTIONS`` is the one table of the audit's kinds of finding (listeners, connections): a new
kind is one function from its record to an :class:`AuditFinding` and one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from patchkit.audit.model import AuditResult, Connection, Listener
from patchkit.audit.render import listener_address
from patchkit.core.report import AuditFinding, AuditSummary

__all__ = ["SECTIONS", "summarise"]


def _listener(x: Listener) -> AuditFinding:
    where = listener_address(x)
    return AuditFinding(
        section="listeners",
        # The same listener on two releases: same component, kind and address, any line.
        key=f"{x.component} {x.kind} {where}",
        text=f"{x.kind} {where}" + (" (default)" if x.origin == "default" else ""),
        component=x.component,
        file=x.file,
        line=x.line,
        verdict=x.verdict.value,
        reason=x.reason,
    )


def _connection(c: Connection) -> AuditFinding:
    return AuditFinding(
        section="connections",
        # The same client on two releases: same component, kind and target (and the directive
        # it came from: one component may reach one target from two settings), any line.
        key=f"{c.component} {c.kind} {c.target} {c.file} {c.directive}",
        text=f"{c.kind} {c.target or '?'}" + (" (default)" if c.origin == "default" else ""),
        component=c.component,
        file=c.file,
        line=c.line,
        verdict=c.verdict.value,
        reason=c.reason,
    )


# section -> (the records of that kind in a result, the finding of one record)
SECTIONS: Mapping[
    str, tuple[Callable[[AuditResult], Iterable[Any]], Callable[[Any], AuditFinding]]
] = {
    "listeners": (lambda r: r.listeners, _listener),
    "connections": (lambda r: r.connections, _connection),
}


def summarise(result: AuditResult) -> AuditSummary:
    """Every finding of ``result``, section by section, with its verdict and counts."""
    findings = [
        finding(record) for records, finding in SECTIONS.values() for record in records(result)
    ]
    return AuditSummary(
        version=result.version,
        patched=result.patched,
        failed=result.failed,
        sections=tuple(SECTIONS),
        summary=tuple(result.summary.items()),
        findings=tuple(findings),
        problems=tuple(str(p) for p in result.problems),
    )
