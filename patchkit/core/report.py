"""The upgrade report of one release (``patchkit report VERSION``): its records (pure).

One document for a pull request's or an issue's body: the release, the forecast of a rebase
onto it, what upstream changed in the files the series touches, the audit's findings that
appeared or disappeared upstream and the verdict on the patched release, the packages that
changed. Rendered by :mod:`patchkit.output.upgrade` (Markdown, HTML) and ``to_dict`` (JSON).

The audit comes in generically (:class:`AuditFinding`: a section such as ``listeners``, a key
that names the finding whatever line it is on, a line of text, a verdict), so a new kind of
audit finding is a new section, not a new record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patchkit.core.forecast import ForecastResult
from patchkit.core.model import SCHEMA
from patchkit.core.packages import PackageChange

__all__ = [
    "AuditDelta",
    "AuditFinding",
    "AuditSummary",
    "FileDiff",
    "ReleaseFacts",
    "UpgradeReport",
    "UpstreamChanges",
    "audit_deltas",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseFacts:
    """One imported release as the store records it."""

    version: str
    source: str = ""
    digest: str = ""  # the (platform) image manifest's digest
    digests: tuple[tuple[str, str], ...] = ()  # every digest recorded: (what, digest)
    created: str = ""
    platform: str = ""
    layers: tuple[str, ...] = ()
    size: int | None = None  # bytes of its layers as stored

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source,
            "digest": self.digest,
            "digests": dict(self.digests),
            "created": self.created,
            "platform": self.platform,
            "layers": list(self.layers),
            "size": self.size,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFinding:
    """One finding of the audit (a listener, ...), in words any report can show."""

    section: str  # "listeners" (the audit's kinds of finding)
    key: str  # the same finding on two releases has the same key (no line numbers)
    text: str  # "tcp 127.0.0.1:6379"
    component: str = ""
    file: str = ""
    line: int = 0
    verdict: str = ""  # "ok" | "forbidden" | "unverified"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "key": self.key,
            "text": self.text,
            "component": self.component,
            "file": self.file,
            "line": self.line,
            "verdict": self.verdict,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSummary:
    """The audit of one release (patched or not), as findings."""

    version: str
    patched: bool
    failed: bool
    sections: tuple[str, ...] = ()  # every kind of finding the audit looks for, found or not
    summary: tuple[tuple[str, int], ...] = ()  # the audit's own counts
    findings: tuple[AuditFinding, ...] = ()
    problems: tuple[str, ...] = ()  # configs the audit could not read: always failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "patched": self.patched,
            "failed": self.failed,
            "sections": list(self.sections),
            "summary": dict(self.summary),
            "findings": [f.to_dict() for f in self.findings],
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditDelta:
    """Findings of one section that one release has and the other has not."""

    section: str
    appeared: tuple[AuditFinding, ...] = ()
    disappeared: tuple[AuditFinding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "appeared": [f.to_dict() for f in self.appeared],
            "disappeared": [f.to_dict() for f in self.disappeared],
        }


def audit_deltas(old: AuditSummary, new: AuditSummary) -> tuple[AuditDelta, ...]:
    """Per section (every one either audit looks for, in its order), the findings by key that
    only one side has."""
    found = (f.section for f in (*old.findings, *new.findings))
    sections = list(dict.fromkeys([*old.sections, *new.sections, *found]))
    out = []
    for section in sections:
        a = {f.key: f for f in old.findings if f.section == section}
        b = {f.key: f for f in new.findings if f.section == section}
        out.append(
            AuditDelta(
                section=section,
                appeared=tuple(b[k] for k in sorted(b.keys() - a.keys())),
                disappeared=tuple(a[k] for k in sorted(a.keys() - b.keys())),
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileDiff:
    """Upstream's diff of one file (capped)."""

    path: str
    status: str  # A | M | D | T
    text: str
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "diff": self.text,
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamChanges:
    """What upstream changed, base -> release, in the files the series touches."""

    files: tuple[tuple[str, str], ...] = ()  # (A | M | D | T, path), every file that changed
    stat: str = ""  # git's --stat table
    diffs: tuple[FileDiff, ...] = ()  # the first files' diffs, within the caps
    left_out: tuple[str, ...] = ()  # changed files whose diff the caps left out

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [{"path": p, "status": s} for s, p in self.files],
            "stat": self.stat,
            "diffs": [d.to_dict() for d in self.diffs],
            "left_out": list(self.left_out),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeReport:
    """Everything a maintainer needs to decide on moving the series onto ``release``."""

    name: str  # the upstream's name (upstream-versions.toml)
    release: ReleaseFacts
    base: ReleaseFacts
    forecast: ForecastResult
    upstream: UpstreamChanges
    audit_changes: tuple[AuditDelta, ...] = ()  # unpatched base -> unpatched release
    audit: AuditSummary | None = None  # the patched release
    packages: tuple[PackageChange, ...] = ()
    notes: tuple[str, ...] = ()  # what the report could not say, and why

    def section(self, name: str) -> AuditDelta:
        for delta in self.audit_changes:
            if delta.section == name:
                return delta
        return AuditDelta(section=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "report",
            "name": self.name,
            "release": self.release.to_dict(),
            "base": self.base.to_dict(),
            "forecast": self.forecast.to_dict(),
            "upstream": self.upstream.to_dict(),
            "audit_changes": [d.to_dict() for d in self.audit_changes],
            "audit": self.audit.to_dict() if self.audit is not None else None,
            "packages": [p.to_dict() for p in self.packages],
            "notes": list(self.notes),
        }
