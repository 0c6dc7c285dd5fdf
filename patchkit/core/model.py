"""Result records and outcome enums shared by every layer (pure: no I/O)."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ATTENTION",
    "EXACT",
    "FAILED",
    "LARGE_OFFSET",
    "LEAVES_SERIES",
    "MADE",
    "NOT_MADE",
    "NOT_TRIED",
    "PRESENT",
    "REBASE_ONLY",
    "RISK_FLAGS",
    "SCHEMA",
    "ChangeKind",
    "ChangeLine",
    "CheckResult",
    "Drift",
    "EditResult",
    "HunkResult",
    "ImportResult",
    "Matrix",
    "MatrixCell",
    "NearestLine",
    "OverlayEntry",
    "PatchResult",
    "PatchStatus",
    "PlatformCheck",
    "RebasePatchResult",
    "RebaseResult",
    "RebaseState",
    "ReleaseInfo",
    "kind_detail",
]

SCHEMA = 1


class PatchStatus(enum.StrEnum):
    """What happened to one patch (or hunk) against one release."""

    APPLIED = "applied"
    OFFSET = "offset"
    FUZZ = "fuzz"
    MERGED = "merged"
    ALREADY_APPLIED = "already-applied"
    CONFLICT = "conflict"
    MISSING_TARGET = "missing-target"
    SKIPPED = "skipped"
    DROPPED = "dropped"  # the person chose `rebase --skip`

    def __str__(self) -> str:
        return self.value


# The named groups of statuses: the one copy every command, format and test uses.
# A change that could not be made: it changes nothing, the next change sees the files as they were.
FAILED = frozenset({PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET})
# Statuses that make `check`/`matrix`/`rebase` exit 1 ("finished, needs attention").
ATTENTION = FAILED | {PatchStatus.FUZZ}
# Made exactly: every hunk (or edit) matched its full context, maybe at other lines.
EXACT = frozenset({PatchStatus.APPLIED, PatchStatus.OFFSET})
# This change made its change (possibly with reduced context or a 3-way merge).
MADE = EXACT | {PatchStatus.FUZZ, PatchStatus.MERGED}
# After it, the release holds the change: made now, or already there upstream.
PRESENT = MADE | {PatchStatus.ALREADY_APPLIED}
# The change is not made by this patch: it failed, or upstream already has it (what bisect
# calls "stops applying"; unlike ATTENTION, already-applied counts: the patch is no longer needed).
NOT_MADE = FAILED | {PatchStatus.ALREADY_APPLIED}
# Not tried: outside its release range, or dropped by the person (`rebase --skip`).
NOT_TRIED = frozenset({PatchStatus.SKIPPED, PatchStatus.DROPPED})
# Statuses only a rebase reports (tables show them in their own colours).
REBASE_ONLY = frozenset({PatchStatus.MERGED, PatchStatus.DROPPED})
# A rebase removes a change with one of these from the series (its file stays in patches/).
LEAVES_SERIES = frozenset({PatchStatus.ALREADY_APPLIED, PatchStatus.DROPPED})

# A hunk that lands this many lines or more from where its patch says is flagged
# "large-offset" (matrix, check) and is a risk in a rebase: code may have moved under it.
LARGE_OFFSET = 20

# Matrix risk flags that say "look at this cell" (the 3-way merge disagrees with the result).
RISK_FLAGS = frozenset({"3way-conflict", "3way-differs"})


def _summary(statuses: list[PatchStatus]) -> dict[str, int]:
    counts = Counter(s.value for s in statuses)
    return {s.value: counts.get(s.value, 0) for s in PatchStatus}


class ChangeKind(enum.StrEnum):
    """The three kinds of change a series line can name (DESIGN.md, "Kinds of change")."""

    DIFF = "diff"  # name.patch: a unified diff
    EDIT = "edit"  # name.edit.toml: pattern edits with asserted match counts
    OVERLAY = "overlay"  # dir/: whole files placed over the image

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class NearestLine:
    """The line of a file most like an anchor that matched nowhere (1-based)."""

    line: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text}


@dataclass(frozen=True, slots=True, kw_only=True)
class EditResult:
    """One ``[[edit]]`` of an edit file on one file (or on no file: ``file`` is "")."""

    index: int  # 1-based position of the [[edit]] table in its file
    file: str
    op: str  # replace | delete | delete-from | insert-after | insert-before | append | prepend
    status: PatchStatus  # applied | already-applied | conflict | missing-target
    reason: str = (
        ""  # where it failed: no-match | over-match | timeout | too-few-files | too-many-files
    )
    matches: int = 0
    expected: str = ""  # the count it asserts, as written: "1", "2..3", ">=1"
    nearest: NearestLine | None = None  # for a no-match: the most similar line of the file
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "file": self.file,
            "op": self.op,
            "status": self.status.value,
            "reason": self.reason,
            "matches": self.matches,
            "expected": self.expected,
            "nearest": self.nearest.to_dict() if self.nearest else None,
        }
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlayEntry:
    """One file of an overlay on one release."""

    path: str
    status: PatchStatus  # applied (added or replaced) | already-applied | conflict
    action: str  # added | replaced | unchanged | refused
    mode: str = "100644"  # git mode it is placed with
    owner: str = ""  # "uid:gid" when the overlay's owners table names one (default root)
    flags: tuple[str, ...] = ()  # "upstream-changed: PATH"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "status": self.status.value,
            "action": self.action,
            "mode": self.mode,
        }
        if self.owner:
            d["owner"] = self.owner
        if self.flags:
            d["flags"] = list(self.flags)
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class HunkResult:
    """One hunk of one file: where and how it applied."""

    file: str
    index: int  # 1-based position of the hunk within its file
    status: PatchStatus
    offset: int = 0  # lines between where the patch said and where it applied
    fuzz: int = 0  # context lines ignored at each end
    line: int | None = None  # 1-based line in the target file where the hunk landed
    text: str = ""  # the hunk itself, kept for failures (JUnit, HTML)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "index": self.index, "status": self.status.value}
        if self.offset:
            d["offset"] = self.offset
        if self.fuzz:
            d["fuzz"] = self.fuzz
        if self.line is not None:
            d["line"] = self.line
        if self.text:
            d["text"] = self.text
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchResult:
    """One patch against one release."""

    name: str
    status: PatchStatus
    files: tuple[str, ...] = ()
    hunks: tuple[HunkResult, ...] = ()
    message: str = ""
    flags: tuple[str, ...] = ()  # risk flags (matrix): "large-offset", "3way-conflict", ...
    kind: ChangeKind = ChangeKind.DIFF
    edits: tuple[EditResult, ...] = ()  # kind edit: one per [[edit]] and file
    entries: tuple[OverlayEntry, ...] = ()  # kind overlay: one per file

    @property
    def needs_attention(self) -> bool:
        return self.status in ATTENTION

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "files": list(self.files),
            "hunks": [h.to_dict() for h in self.hunks],
        }
        if self.message:
            d["message"] = self.message
        if self.flags:
            d["flags"] = list(self.flags)
        # Diffs keep the fields they always had; the other kinds say what they are.
        if self.kind is not ChangeKind.DIFF:
            d["kind"] = self.kind.value
        d.update(kind_detail(self.kind, self.edits, self.entries))
        return d


def kind_detail(
    kind: ChangeKind, edits: tuple[EditResult, ...], entries: tuple[OverlayEntry, ...]
) -> dict[str, Any]:
    """The JSON a change of ``kind`` adds: an edit's ``edits``, an overlay's ``entries``."""
    if kind is ChangeKind.EDIT:
        return {"edits": [e.to_dict() for e in edits]}
    if kind is ChangeKind.OVERLAY:
        return {"entries": [e.to_dict() for e in entries]}
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The series against one release, patch by patch, applied cumulatively."""

    version: str
    patches: tuple[PatchResult, ...]
    tree: str = ""  # git tree id of the release checked
    # A multi-platform release: every platform, the first being this result's own.
    platforms: tuple[PlatformCheck, ...] = ()

    @property
    def needs_attention(self) -> bool:
        return any(p.needs_attention for p in self.patches) or any(
            p.check is not None and p.check.needs_attention for p in self.platforms
        )

    @property
    def summary(self) -> dict[str, int]:
        return _summary([p.status for p in self.patches])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "command": "check",
            "version": self.version,
            "patches": [p.to_dict() for p in self.patches],
            "summary": self.summary,
        }
        if self.platforms:
            d["platforms"] = [p.to_dict() for p in self.platforms]
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformCheck:
    """One platform of a multi-platform release in `check`: checked on its own tree where it
    differs from every platform before it, else the same as the one whose tree it shares."""

    platform: str
    label: str  # its store label (the release's own for the first platform)
    tree: str
    same_as: str | None = None  # the platform with the identical tree (nothing checked again)
    check: CheckResult | None = None  # its own result (None: the first platform, or same_as)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"platform": self.platform, "label": self.label, "tree": self.tree}
        if self.same_as is not None:
            d["same_as"] = self.same_as
        if self.check is not None:
            d["patches"] = [p.to_dict() for p in self.check.patches]
            d["summary"] = self.check.summary
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixCell:
    version: str
    patch: str
    status: PatchStatus
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "patch": self.patch,
            "status": self.status.value,
        }
        if self.flags:
            d["flags"] = list(self.flags)
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """Why a patch fails: the first release where it fails after the last one where it applied."""

    patch: str
    first_bad: str  # first release, in version order, where it fails (after last_good)
    last_good: str | None  # the release before it where it applied; None: none in the matrix
    versions: tuple[str, ...]  # the failing releases this explains (first_bad and those after it)
    status: PatchStatus  # its status on first_bad
    files: tuple[str, ...] = ()  # patch files whose upstream content differs last_good -> first_bad
    upstream_diff: str = ""  # `git diff` of those files between the two releases, when known

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "patch": self.patch,
            "first_bad": self.first_bad,
            "last_good": self.last_good,
            "versions": list(self.versions),
            "status": self.status.value,
            "files": list(self.files),
        }
        if self.upstream_diff:
            d["upstream_diff"] = self.upstream_diff
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Matrix:
    """Every tracked release x every patch."""

    versions: tuple[str, ...]
    patches: tuple[str, ...]
    checks: tuple[CheckResult, ...]  # one per version, same order
    fingerprint: str = (
        ""  # of the series (names, -pN, patch bytes): `--merge` joins equal ones only
    )
    drift: tuple[Drift, ...] = ()
    # version -> path -> upstream blob id ("" when absent), for every file the series touches
    blobs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def cells(self) -> tuple[MatrixCell, ...]:
        return tuple(
            MatrixCell(version=c.version, patch=p.name, status=p.status, flags=p.flags)
            for c in self.checks
            for p in c.patches
        )

    def result(self, version: str, patch: str) -> PatchResult | None:
        for c in self.checks:
            if c.version == version:
                for p in c.patches:
                    if p.name == patch:
                        return p
        return None

    def status(self, version: str, patch: str) -> PatchStatus | None:
        p = self.result(version, patch)
        return p.status if p is not None else None

    def drift_for(self, version: str, patch: str) -> Drift | None:
        for d in self.drift:
            if d.patch == patch and version in d.versions:
                return d
        return None

    @property
    def needs_attention(self) -> bool:
        return any(c.needs_attention for c in self.checks)

    @property
    def summary(self) -> dict[str, int]:
        return _summary([cell.status for cell in self.cells])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "matrix",
            "versions": list(self.versions),
            "patches": list(self.patches),
            "results": [cell.to_dict() for cell in self.cells],
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary,
            "fingerprint": self.fingerprint,
            "drift": [d.to_dict() for d in self.drift],
            "blobs": self.blobs,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseInfo:
    """What the store knows of one imported release."""

    version: str
    commit: str
    tree: str
    source: str
    digest: str
    layers: tuple[str, ...] = ()
    manifest_blob: str | None = None  # JSON of what git cannot hold (owners, devices, ...)
    # What the image said of itself, recorded by an import (empty: an older import, or a
    # dir:/tar: source, which has no image config)
    platform: str = ""
    created: str = ""  # the config's creation date (RFC 3339)
    config: str = ""  # the config's digest
    size: int | None = None  # bytes of its layers as stored (compressed), if every size was known
    tag_digest: str | None = None  # what the tag pointed to at import (an index for multi-arch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "commit": self.commit,
            "tree": self.tree,
            "source": self.source,
            "digest": self.digest,
            "layers": list(self.layers),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """Outcome of importing one release."""

    version: str
    source: str
    digest: str
    commit: str
    tree: str
    layers: tuple[str, ...] = ()
    files: int = 0
    reused: bool = False  # the same digest was already imported: nothing was read
    extras: int = 0  # entries recorded in the manifest (owners, devices, empty dirs, ...)
    # the zlib the import used (patchkit.compress.ZLIB_NAME, e.g. "isal 1.9.1"), for `import -v`;
    # not in the JSON, whose fields are documented in docs/json.md
    zlib: str = ""
    # A multi-platform release (`platforms` in the TOML): this result's platform, and the
    # imports of the other platforms (each under its platform label, `2.5.24@linux-arm64`).
    platform: str | None = None
    platforms: tuple[ImportResult, ...] = ()
    tag_digest: str | None = None  # what the tag points to now (an index for multi-arch images)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "command": "import",
            "version": self.version,
            "source": self.source,
            "digest": self.digest,
            "commit": self.commit,
            "tree": self.tree,
            "layers": list(self.layers),
            "files": self.files,
            "reused": self.reused,
            "manifest_entries": self.extras,
            "tag_digest": self.tag_digest,
        }
        if self.platform:
            d["platform"] = self.platform
        if self.platforms:
            d["platforms"] = [
                {k: v for k, v in p.to_dict().items() if k not in ("schema", "command")}
                for p in self.platforms
            ]
        return d


class RebaseState(enum.StrEnum):
    COMPLETED = "completed"  # every patch replayed, patches/ refreshed, base moved
    STOPPED = "stopped"  # a conflict waits for a person
    ABORTED = "aborted"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeLine:
    """One +/- line that differs between a patch before and after a rebase (range-diff style).

    ``mark`` is two characters: the outer one says which version of the patch has the line
    (``-`` only the old, ``+`` only the new), the inner one what the patch does with it
    (``+`` adds, ``-`` removes). ``-+x``: the patch used to add ``x`` and no longer does.
    """

    file: str
    mark: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "mark": self.mark, "text": self.text}

    def render(self) -> str:
        return f"{self.file}: {self.mark}{self.text}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RebasePatchResult:
    name: str
    status: PatchStatus  # applied | merged | already-applied | conflict | dropped | skipped
    files: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # files with conflict markers
    message: str = ""
    risk: tuple[str, ...] = ()  # why a person should look at this result although it applied
    changes: tuple[ChangeLine, ...] = ()  # +/- lines that differ from the old patch

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "files": list(self.files),
            "risk": list(self.risk),
            "changes": [c.to_dict() for c in self.changes],
        }
        if self.conflicts:
            d["conflicts"] = list(self.conflicts)
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class RebaseResult:
    base: str
    onto: str
    state: RebaseState
    patches: tuple[RebasePatchResult, ...] = ()
    pending: tuple[str, ...] = ()  # patches not replayed yet (after a stop)
    worktree: str = ""
    refreshed: tuple[str, ...] = ()  # patch files rewritten on completion
    dropped: tuple[str, ...] = ()  # removed from series (empty after merge, or skipped)
    hints: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_attention(self) -> bool:
        return self.state is RebaseState.STOPPED

    @property
    def summary(self) -> dict[str, int]:
        return _summary([p.status for p in self.patches])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "rebase",
            "base": self.base,
            "onto": self.onto,
            "state": self.state.value,
            "patches": [p.to_dict() for p in self.patches],
            "pending": list(self.pending),
            "worktree": self.worktree,
            "refreshed": list(self.refreshed),
            "dropped": list(self.dropped),
            "summary": self.summary,
        }
