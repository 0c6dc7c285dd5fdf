"""``patchkit forecast VERSION``: what a rebase onto VERSION would do to every change, with
nothing changed (docs/rebase.md, "Forecast").

It is the rebase's own machinery (:mod:`patchkit.ops.rebase`: the plan, the series committed
on the base, each change replayed with git's 3-way merge or re-evaluated, risk flags,
range-diff), run in a throwaway repository that borrows the store's objects
(:func:`patchkit.git.scratch.borrow`) and a worktree of it, both in a scratch directory under
``.patchkit/scratch/`` that is removed afterwards (and, after a SIGKILL, by the next command:
:func:`patchkit.files.sweep_scratch`). Where the rebase would stop, the forecast records what
it would stop on and goes on as ``rebase --skip`` would: the change is left out for the ones
after it. ``patches/``, ``upstream-versions.toml``, a rebase or edit in progress and the store
are only read; the project lock is not taken, so it runs beside a stopped rebase or an open
edit worktree (it forecasts ``patches/`` as saved).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from patchkit.core.conflicts import ConflictRegion, conflict_regions
from patchkit.core.forecast import ConflictFile, ForecastPatch, ForecastResult
from patchkit.core.model import NOT_TRIED, PatchResult, PatchStatus
from patchkit.errors import NotImportedError, RebaseStateError
from patchkit.files import scratch_dir, sweep_scratch
from patchkit.git.scratch import borrow
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree, worktree_add
from patchkit.kinds import Change
from patchkit.ops.edit import edit_in_progress
from patchkit.ops.rebase import BackupManifest, PatchEntry, Rebaser, RebaseStateRecord
from patchkit.ops.rebase.plan import RebasePlan, plan_rebase
from patchkit.ops.rebase.replay import Step, replay_step
from patchkit.ops.rebase.risk import UpstreamDelta, introduced
from patchkit.ops.rebase.series import series_commits
from patchkit.ops.workspace import Workspace

__all__ = ["MAX_REGIONS", "MAX_SIDE_CHARS", "MAX_SIDE_LINES", "forecast"]

# The caps on what a conflict shows: regions per file, and lines / characters per side.
MAX_REGIONS = 10
MAX_SIDE_LINES = 40
MAX_SIDE_CHARS = 4000


def forecast(ws: Workspace, onto: str) -> ForecastResult:
    """What ``rebase --onto onto`` would do to every change of ``ws``'s series."""
    sweep_scratch(ws.state_dir)
    vf = ws.versions
    vf.release(onto)
    imported = ws.imported()  # read before anything opens (and so creates) the store
    for version in (vf.base, onto):
        if version not in imported:
            raise NotImportedError(
                f"version '{version}' is not imported yet; run: patchkit import {version}"
            )
    plan = plan_rebase(ws, onto)
    with scratch_dir(ws.state_dir, "forecast-") as scratch:
        steps = _replay_all(ws.store, plan, scratch)
    return _result(plan, steps, notes=_in_progress(ws))


# -- the replay -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Done:
    """One change as the replay met it."""

    entry: PatchEntry
    outcome: PatchResult | None = None
    conflicts: tuple[ConflictFile, ...] = ()
    refused: PatchResult | None = None  # does not apply to the base


def _replay_all(store: Store, plan: RebasePlan, scratch: Path) -> list[_Done]:
    refused = {p.name: p for p in plan.refused}
    kept = [c for c in plan.changes if c.name not in refused]
    repo = borrow(store, scratch / "store.git")
    # A change that does not apply to the base changes nothing there, so the others are
    # committed as they would be with it in the series.
    made = iter(
        series_commits(
            repo,
            kept,
            base_commit=plan.base.commit,
            version=plan.base.version,
            marks=scratch / "marks",
        )
    )
    commits = [None if c.name in refused else next(made) for c in plan.changes]
    record = RebaseStateRecord(
        base=plan.base.version,
        onto=plan.onto.version,
        base_commit=plan.base.commit,
        onto_commit=plan.onto.commit,
        head=plan.onto.commit,
        backup=BackupManifest(),
        patches=tuple(
            dataclasses.replace(entry, status=refused[entry.name].status, message="")
            if entry.name in refused
            else entry
            for entry in plan.entries(commits)
        ),
    )
    touched = {f for entry in record.patches for f in entry.files}
    wt = worktree_add(repo, scratch / "worktree", record.head, touched)
    delta = UpstreamDelta(
        repo,
        base_commit=record.base_commit,
        onto_commit=record.onto_commit,
        cache=scratch / "newly-upstream.json",
    )
    newly = _newly(delta, [c for c, commit in zip(plan.changes, commits, strict=True) if commit])
    done: list[_Done] = []
    for index, (change, entry) in enumerate(zip(plan.changes, record.patches, strict=True)):
        if entry.name in refused:
            done.append(_Done(entry=entry, refused=refused[entry.name]))
            continue
        if entry.commit is None or entry.status in NOT_TRIED:
            done.append(_Done(entry=entry))
            continue
        record = dataclasses.replace(record, current=index)
        step = replay_step(repo, wt, record, change, delta=delta, newly=newly)
        if not step.stopped:
            record = record.with_entry(step.entry, head=step.head)
            done.append(_Done(entry=step.entry, outcome=step.outcome))
            continue
        # Where the rebase would stop: record what it meets, then leave the change out (as
        # `rebase --skip` does) and go on from the same head.
        conflicts = _conflicts(repo, wt, step, base_commit=entry.commit, head=record.head)
        wt.quit_pick()
        wt.reset_hard(record.head)
        record = record.with_entry(step.entry)
        done.append(_Done(entry=step.entry, outcome=step.outcome, conflicts=conflicts))
    return done


def _newly(
    delta: UpstreamDelta, changes: Sequence[Change]
) -> Callable[[], Mapping[str, tuple[str, ...]]]:
    def newly() -> Mapping[str, tuple[str, ...]]:
        return delta.newly(w for c in changes for w in introduced(c))

    return newly


def _conflicts(
    repo: Store, wt: Worktree, step: Step, *, base_commit: str | None, head: str
) -> tuple[ConflictFile, ...]:
    """The files the stopped change conflicts in, with each conflict region's three sides."""
    out = []
    for rel in step.entry.conflicts:
        path = wt.path / rel
        regions: list[ConflictRegion] = []
        if path.is_file() and not path.is_symlink():
            regions = conflict_regions(path.read_bytes().decode("utf-8", "surrogateescape"))
        shown = tuple(
            r.capped(max_lines=MAX_SIDE_LINES, max_chars=MAX_SIDE_CHARS)
            for r in regions[:MAX_REGIONS]
        )
        reason = "" if regions else _why(repo, rel, commit=base_commit, head=head)
        out.append(
            ConflictFile(
                file=rel, hunks=shown, reason=reason, more=max(0, len(regions) - MAX_REGIONS)
            )
        )
    return tuple(out)


def _why(repo: Store, rel: str, *, commit: str | None, head: str) -> str:
    """Why a file conflicts without conflict markers in it."""
    if commit is None:
        return ""
    with repo.blob_reader() as reader:
        base = reader.read(f"{commit}^:{rel}")
        ours = reader.read(f"{head}:{rel}")
        theirs = reader.read(f"{commit}:{rel}")
    if ours is None and base is not None:
        return "the new release no longer has this file; the change modifies it"
    if theirs is None and base is not None:
        return "the change deletes this file; the new release modified it"
    if base is None:
        return "the change and the new release both add this file, with different contents"
    if any(b"\0" in data[:8000] for data in (base, ours or b"", theirs or b"")):
        return "a binary file changed on both sides"
    return "git could not merge this file (a change of file type or mode)"


# -- the result -------------------------------------------------------------------------


def _result(plan: RebasePlan, done: Sequence[_Done], *, notes: tuple[str, ...]) -> ForecastResult:
    patches: list[ForecastPatch] = []
    left_out: list[tuple[str, set[str]]] = []
    for item, planned in zip(done, plan.files, strict=True):
        entry = item.entry
        files = tuple(dict.fromkeys([*planned, *entry.files]))
        status = entry.status or PatchStatus.SKIPPED
        message = entry.message
        if item.refused is not None:
            message = (
                f"does not apply to the base {plan.base.version} ({item.refused.status}); "
                "a rebase refuses to start until it is fixed or left out of the series"
            )
            if item.refused.message:
                message += f": {item.refused.message}"
        outcome = item.outcome or item.refused
        out = ForecastPatch(
            name=entry.name,
            kind=entry.kind,
            status=status,
            files=files,
            conflicts=item.conflicts,
            risks=entry.risk,
            changes=entry.changes,
            message=message,
            edits=outcome.edits if outcome is not None else (),
            entries=outcome.entries if outcome is not None else (),
            left_out=item.refused is not None or status is PatchStatus.CONFLICT,
            refused=item.refused is not None,
            after_left_out=tuple(name for name, seen in left_out if seen & set(files)),
        )
        if out.left_out:
            left_out.append((out.name, set(files)))
        patches.append(out)
    return ForecastResult(
        base=plan.base.version,
        onto=plan.onto.version,
        patches=tuple(patches),
        starts=not plan.refused,
        notes=notes,
    )


def _in_progress(ws: Workspace) -> tuple[str, ...]:
    """What is in progress beside the forecast (which changes none of it)."""
    notes = []
    try:
        rebase = Rebaser(ws).status()
    except RebaseStateError:
        notes.append("a rebase state that cannot be read is in .patchkit/rebase (left as it is)")
    else:
        if rebase is not None:
            notes.append(
                f"a rebase onto {rebase.onto} is in progress ({rebase.state}); this forecast is "
                "of patches/ as saved, not of the rebase's worktree"
            )
    if edit_in_progress(ws.state_dir):
        notes.append(
            "an edit worktree is open; this forecast is of patches/ as saved, without its "
            "unsaved changes"
        )
    return tuple(notes)
