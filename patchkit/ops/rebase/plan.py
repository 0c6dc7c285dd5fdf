"""What a rebase starts from: the two releases, the series and how it applies to its base.

Shared by ``rebase --onto`` (which refuses a series that does not apply to its base) and
``forecast`` (which reports those changes and leaves them out); both read only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from patchkit.core.model import MADE, NOT_TRIED, CheckResult, PatchResult, PatchStatus, ReleaseInfo
from patchkit.core.series import Series
from patchkit.errors import RebaseStateError
from patchkit.kinds import Change
from patchkit.ops.check import check_tree
from patchkit.ops.rebase.risk import targets_at
from patchkit.ops.rebase.state import PatchEntry
from patchkit.ops.workspace import Workspace

__all__ = ["RebasePlan", "plan_rebase"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RebasePlan:
    base: ReleaseInfo
    onto: ReleaseInfo
    series: Series
    changes: tuple[Change, ...]
    check: CheckResult  # the series on its base
    files: tuple[tuple[str, ...], ...]  # per change: the paths it targets on the base

    @property
    def refused(self) -> tuple[PatchResult, ...]:
        """The changes that keep a rebase from starting: they do not apply to the base."""
        return tuple(
            p for p in self.check.patches if p.status not in MADE and p.status not in NOT_TRIED
        )

    def refusal(self) -> str:
        bad = ", ".join(f"{p.name} ({p.status})" for p in self.refused)
        return (
            f"the series does not apply to its base {self.base.version}: {bad}; "
            f"fix these first (patchkit check {self.base.version})"
        )

    def entries(self, commits: Sequence[str | None]) -> tuple[PatchEntry, ...]:
        """One state entry per change; ``commits``: each change's commit on the base (None:
        not replayed, outside its release range)."""
        return tuple(
            PatchEntry(
                name=c.name,
                kind=c.kind,
                strip=line.strip,
                commit=commit,
                status=None if commit else PatchStatus.SKIPPED,
                files=paths,
                message="" if commit else f"Upstream-Versions excludes {self.base.version}",
            )
            for c, line, commit, paths in zip(
                self.changes, self.series.entries, commits, self.files, strict=True
            )
        )


def plan_rebase(ws: Workspace, onto: str) -> RebasePlan:
    """The plan of a rebase of ``ws``'s series onto ``onto`` (one line errors: ``onto`` is not
    tracked, is the base, or either release is not imported)."""
    vf = ws.versions
    vf.release(onto)
    base = vf.base
    if onto == base:
        raise RebaseStateError(f"the series is already based on {onto}")
    base_tree = ws.release_tree(base)
    ws.release_tree(onto)
    store = ws.store
    base_info = store.release(base)
    onto_info = store.release(onto)
    assert base_info is not None and onto_info is not None
    series = ws.series
    changes = tuple(ws.changes(series))
    with store.blob_reader() as reader:
        check = check_tree(reader, version=base, tree=base_tree, patches=changes)
        files = tuple(tuple(sorted(set(targets_at(reader, c, base_info.commit)))) for c in changes)
    return RebasePlan(
        base=base_info, onto=onto_info, series=series, changes=changes, check=check, files=files
    )
