"""``patchkit report VERSION``: the upgrade report's data (:class:`~patchkit.core.report.UpgradeReport`).

Gathers, reading only: the release and the base as the store records them, the forecast of a
rebase onto the release (:mod:`patchkit.ops.forecast`), upstream's diff of the files the series
touches (``diff --touched``, :mod:`patchkit.ops.show`; capped), the packages that changed
(:mod:`patchkit.core.packages`). The audit sits above this layer: the caller passes it in as
a function (``Project.report`` passes :func:`patchkit.audit.findings.summarise` over
:func:`patchkit.audit.audit_release`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from patchkit.core.lines import split_lines
from patchkit.core.model import ReleaseInfo
from patchkit.core.packages import (
    DPKG_STATUS,
    PackageChange,
    npm_manifests,
    package_changes,
    parse_dpkg_status,
    parse_package_json,
)
from patchkit.core.report import (
    AuditDelta,
    AuditSummary,
    FileDiff,
    ReleaseFacts,
    UpgradeReport,
    UpstreamChanges,
    audit_deltas,
)
from patchkit.errors import PatchkitError
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.ops.forecast import forecast
from patchkit.ops.show import upstream_diff

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["MAX_DIFF_LINES", "MAX_FILE_DIFF_LINES", "Audit", "build_report"]

# The caps on upstream's diff in a report: lines per file, lines in all.
MAX_FILE_DIFF_LINES = 200
MAX_DIFF_LINES = 2000

# (version, patched) -> that release's audit, as findings
Audit = Callable[[str, bool], AuditSummary]


def build_report(ws: Workspace, version: str, *, audit: Audit | None = None) -> UpgradeReport:
    """The upgrade report of ``version`` (tracked and imported) against the series' base."""
    result = forecast(ws, version)  # every bad input (untracked, not imported, the base) first
    store = ws.store
    base_info, info = store.release(result.base), store.release(version)
    assert base_info is not None and info is not None
    notes: list[str] = []
    audit_changes: tuple[AuditDelta, ...] = ()
    patched = None
    if audit is not None:
        try:
            audit_changes = audit_deltas(audit(result.base, False), audit(version, False))
            patched = audit(version, True)
        except PatchkitError as e:
            notes.append(f"the audit could not run: {e}")
    with store.blob_reader() as reader:
        packages = _packages(store, reader, base_info, info, notes)
    return UpgradeReport(
        name=ws.versions.upstream.name,
        release=_facts(info),
        base=_facts(base_info),
        forecast=result,
        upstream=_upstream(ws, result.base, version),
        audit_changes=audit_changes,
        audit=patched,
        packages=tuple(packages),
        notes=tuple(notes),
    )


def _facts(info: ReleaseInfo) -> ReleaseFacts:
    # An image's digest is its manifest's; a dir: or tar: source's, its content's.
    digests = [
        ("tag", info.tag_digest or ""),  # what the tag pointed to: an index for multi-arch images
        ("manifest" if info.layers else "content", info.digest),
        ("config", info.config),
    ]
    return ReleaseFacts(
        version=info.version,
        source=info.source,
        digest=info.digest,
        digests=tuple((what, d) for what, d in digests if d),
        created=info.created,
        platform=info.platform,
        layers=info.layers,
        size=info.size,
    )


def _upstream(ws: Workspace, base: str, version: str) -> UpstreamChanges:
    """``diff --touched`` base -> version: the stat, and each file's diff within the caps."""
    full = upstream_diff(ws, base, version, touched=True)
    stat = upstream_diff(ws, base, version, touched=True, stat=True).text
    blocks = _per_file(full.text, [p for _, p in full.files], old=base, new=version)
    diffs: list[FileDiff] = []
    left_out: list[str] = []
    budget = MAX_DIFF_LINES
    for status, path in full.files:
        lines = split_lines(blocks.get(path, ""))
        shown = lines[: min(MAX_FILE_DIFF_LINES, budget)]
        if not shown:  # over the budget (or a name git quoted in its header: see the stat)
            left_out.append(path)
            continue
        budget -= len(shown)
        diffs.append(
            FileDiff(
                path=path, status=status, text="".join(shown), truncated=len(shown) < len(lines)
            )
        )
    return UpstreamChanges(
        files=full.files, stat=stat, diffs=tuple(diffs), left_out=tuple(left_out)
    )


def _per_file(text: str, paths: list[str], *, old: str, new: str) -> dict[str, str]:
    """``git diff``'s text cut into one block per path (its ``diff --git`` header first)."""
    headers = {f"diff --git {old}/{p} {new}/{p}\n": p for p in paths}
    out: dict[str, str] = {}
    current: str | None = None
    for line in split_lines(text):
        if line.startswith("diff --git ") and line in headers:
            current = headers[line]
            out[current] = ""
        if current is not None:
            out[current] += line
    return out


def _packages(
    store: Store, reader: BlobReader, old: ReleaseInfo, new: ReleaseInfo, notes: list[str]
) -> list[PackageChange]:
    changes: list[PackageChange] = []
    status = {v.version: reader.read(f"{v.commit}:{DPKG_STATUS}") for v in (old, new)}
    if all(data is not None for data in status.values()):
        texts = [(status[v.version] or b"").decode("utf-8", "replace") for v in (old, new)]
        before, after = (parse_dpkg_status(t) for t in texts)
        changes += package_changes(
            "debian",
            {k: [v] for k, v in before.items()},
            {k: [v] for k, v in after.items()},
        )
    else:
        missing = [v for v, data in status.items() if data is None]
        notes.append(
            f"no {DPKG_STATUS} in {' and '.join(missing)} as imported (not a Debian-based "
            "image, or left out by a sparse import): Debian packages not compared"
        )
    npm = [_npm_versions(store, reader, v.commit) for v in (old, new)]
    changes += package_changes("npm", npm[0], npm[1])
    return changes


def _npm_versions(store: Store, reader: BlobReader, commit: str) -> dict[str, set[str]]:
    entries = store.ls_tree(commit)
    manifests = npm_manifests(entries)
    blobs = reader.read_objects(sorted({entries[p].blob for p in manifests}))
    versions: dict[str, set[str]] = {}
    for path in manifests:
        data = blobs.get(entries[path].blob)
        found = parse_package_json(data) if data is not None else None
        if found is not None:
            versions.setdefault(found[0], set()).add(found[1])
    return versions
