"""The audit as plain text: one line a listener, one a connection, problems, a summary line.

Kept here so the library owns no rich renderable; the CLI prints it (it may later move to
patchkit/output with the other reports).
"""

from __future__ import annotations

from patchkit.audit.model import AuditResult, Listener

__all__ = ["listener_address", "render_audit"]


def listener_address(x: Listener) -> str:
    """Where it listens: ``/var/run/x.sock``, ``127.0.0.1:6379``, ``[::1]:25``, ``None:25``."""
    host = f"[{x.address}]" if x.address and ":" in x.address else x.address
    return x.socket or "" if x.kind == "unix" else f"{host}:{x.port}"


def render_audit(result: AuditResult) -> str:
    """Plain text: one line a listener (file:line, what, verdict), then one a connection
    (verdict, target, file:line, the directive it came from, why), problems, a summary."""
    lines = []
    for x in result.listeners:
        where = listener_address(x)
        origin = " (default)" if x.origin == "default" else ""
        lines.append(
            f"{x.verdict.value:<10} {x.component:<8} {x.kind:<4} {where:<40} /{x.file}:{x.line}{origin}  {x.reason}"
        )
    if result.connections:
        lines.append("connections (where the configs tell components to connect):")
    for c in result.connections:
        origin = " (default)" if c.origin == "default" else ""
        what = f"  {c.directive}" if c.directive else ""
        lines.append(
            f"{c.verdict.value:<10} {c.component:<8} {c.kind:<8} {c.target or '?':<40} "
            f"/{c.file}:{c.line}{origin}{what}  [{c.reason}]"
        )
    for p in result.problems:
        lines.append(f"{'unparsable':<10} {p.component:<8} /{p.file}:{p.line}: {p.message}")
    s = result.summary
    state = "FAILED" if result.failed else "passed"
    what = "patched" if result.patched else "unpatched"
    lines.append(
        f"audit {result.version} ({what}): {state}: {s['listeners']} listener(s), {s['forbidden']} forbidden, "
        f"{s['unverified']} unverified, {s['problems']} unparsable; "
        f"{s['connections']} connection(s), {s['connections_forbidden']} forbidden, "
        f"{s['connections_problem']} problem(s), {s['connections_unverified']} unverified"
    )
    return "\n".join(lines)
