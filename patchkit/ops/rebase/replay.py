"""Replaying one change (its commit on the old base) onto the new release with git's 3-way
merge, trying harder before it stops (other diff algorithms, already upstream?, hunk by hunk,
moved lines: docs/rebase.md, "Replay"), and classifying the result."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from patchkit.core.model import FAILED, ChangeKind, PatchResult, PatchStatus
from patchkit.errors import RebaseStateError
from patchkit.files import checkpoint
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree
from patchkit.kinds import Change
from patchkit.kinds.base import ApplyContext
from patchkit.ops.check import tree_lister
from patchkit.ops.rebase.refresh import exact_result
from patchkit.ops.rebase.resolve import resolve_conflicts
from patchkit.ops.rebase.risk import (
    UpstreamDelta,
    range_diff,
    risks,
    same_change,
    upstream_has,
)
from patchkit.ops.rebase.series import commit_message
from patchkit.ops.rebase.state import PatchEntry, RebaseStateRecord

__all__ = ["Step", "reevaluate", "replay", "replay_step"]

# Tried in this order when the default (histogram) 3-way merge conflicts.
_RETRY_ALGORITHMS = ("patience", "minimal")


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One change replayed: its entry now, the new head, whether it stopped on a conflict."""

    entry: PatchEntry
    head: str
    stopped: bool = False
    outcome: PatchResult | None = None  # a re-evaluated change's result (its edits, its files)


def replay_step(
    store: Store,
    wt: Worktree,
    record: RebaseStateRecord,
    change: Change,
    *,
    delta: UpstreamDelta,
    newly: Callable[[], Mapping[str, tuple[str, ...]]],
) -> Step:
    """Replay the current entry: a diff with git's 3-way merge (``change``: the diff as it was
    before the rebase), any other kind re-evaluated (``change``: as ``patches/`` has it now)."""
    if record.entry.kind is ChangeKind.DIFF:
        return replay(store, wt, record, change, delta=delta, newly=newly)
    return reevaluate(store, wt, record, change)


def replay(
    store: Store,
    wt: Worktree,
    record: RebaseStateRecord,
    old: Change,
    *,
    delta: UpstreamDelta,
    newly: Callable[[], Mapping[str, tuple[str, ...]]],
) -> Step:
    """Replay the current entry (``old``: its change as the backup has it) onto the head."""
    entry, head = record.entry, record.head
    commit = entry.commit
    assert commit is not None
    notes: list[str] = []
    risk: list[str] = []
    files = entry.files
    checkpoint(f"pick {entry.name}")
    ok, message = wt.pick(commit)
    if not ok and not wt.unmerged():
        last = message.splitlines()[-1] if message else "?"
        raise RebaseStateError(f"git could not replay {entry.name}: {last}")
    for algorithm in () if ok else _RETRY_ALGORITHMS:
        wt.quit_pick()
        wt.reset_hard(head)
        checkpoint(f"pick {entry.name} {algorithm}")
        ok, message = wt.pick(commit, algorithm=algorithm)
        if ok:
            notes.append(f"merged with the {algorithm} diff algorithm (histogram conflicted)")
            break
    if not ok:
        wt.quit_pick()
        wt.reset_hard(head)
        checkpoint(f"pick {entry.name} again")
        wt.pick(commit)
        conflicts = wt.unmerged()
        absorbed = upstream_has(store, old, head=head, version=record.base)
        if absorbed:
            wt.quit_pick()
            wt.reset_hard(head)
            dropped = dataclasses.replace(
                entry,
                status=PatchStatus.ALREADY_APPLIED,
                message=absorbed + ": dropped from the series",
                risk=(
                    "the 3-way merge conflicted; check that upstream's version is what you want",
                ),
            )
            return Step(entry=dropped, head=head)
        checkpoint(f"resolve {entry.name}")
        res = resolve_conflicts(
            store, wt, commit=commit, head=head, files=conflicts, moved_from=delta.changed()
        )
        if res.left:
            where = res.where
            stopped = dataclasses.replace(
                entry,
                status=PatchStatus.CONFLICT,
                conflicts=res.left,
                message=f"{len(where)} conflicting hunk(s) left at {', '.join(where)}"
                if where
                else "",
            )
            return Step(entry=stopped, head=head, stopped=True)
        if res.moves:
            risk.extend(f"{m}: check that it belongs there" for m in res.moves)
            files = tuple(sorted(set(files) | set(wt.changed_paths(head))))
        if res.adjacent:
            risk.append(
                f"upstream changed lines right next to this patch's in {', '.join(conflicts)}; "
                "merged as independent edits"
            )
        notes.append(f"conflicts in {', '.join(conflicts)} resolved hunk by hunk")
    wt.quit_pick()
    if wt.index_matches_head():
        empty = dataclasses.replace(
            entry,
            files=files,
            status=PatchStatus.ALREADY_APPLIED,
            message="upstream already contains this change: dropped from the series",
        )
        return Step(entry=empty, head=head)
    checkpoint(f"commit {entry.name}")
    result = wt.commit(commit_message(entry.name))
    checkpoint(f"committed {entry.name}")
    # Same change if the change itself still applies exactly (maybe at other lines) and
    # makes this commit, or if git's diffs agree line numbers aside.
    same = exact_result(store, old, result, version=record.base) is not None
    same = same or same_change(store, commit, result)
    risk += risks(store, old, head=head, result=result, version=record.base, newly=newly)
    made = dataclasses.replace(
        entry,
        files=files,
        result=result,
        status=PatchStatus.APPLIED if same and not notes else PatchStatus.MERGED,
        risk=tuple(risk),
        changes=range_diff(store, files, commit=commit, result=result),
        message="; ".join(notes),
    )
    return Step(entry=made, head=result)


def reevaluate(store: Store, wt: Worktree, record: RebaseStateRecord, change: Change) -> Step:
    """Replay a change that is not a diff (an edit, an overlay) by applying it anew.

    Such a change says what to do, not which lines it met: it is re-evaluated on the new
    release (its globs, anchors and counts against upstream's new files), never 3-way merged.
    A no-match or over-match stops the rebase like a conflict; the person fixes the change's
    file in ``patches/`` and runs ``--continue`` (which evaluates it again), or ``--skip``s.
    """
    entry, head = record.entry, record.head
    checkpoint(f"evaluate {entry.name}")
    with store.blob_reader() as reader:
        targets = change.targets(tree_lister(reader, head, {}))
        before = reader.read_many(head, targets)
        context = ApplyContext(
            base=reader.read_many(record.base_commit, targets),
            symlinked=reader.symlinked(head, targets),
        )
        outcome = change.apply(before, version=record.onto, context=context)
    result = outcome.result
    files = tuple(dict.fromkeys([*entry.files, *targets]))
    if outcome.status in FAILED:
        stopped = dataclasses.replace(
            entry,
            files=files,
            status=PatchStatus.CONFLICT,
            conflicts=(),
            message=f"{result.message}; fix patches/{entry.name}, then patchkit rebase "
            "--continue (or --skip)",
        )
        return Step(entry=stopped, head=head, stopped=True, outcome=result)
    if outcome.status is PatchStatus.SKIPPED:
        return Step(
            entry=dataclasses.replace(entry, status=PatchStatus.SKIPPED, message=result.message),
            head=head,
            outcome=result,
        )
    if not outcome.contents:
        empty = dataclasses.replace(
            entry,
            files=files,
            status=PatchStatus.ALREADY_APPLIED,
            message="upstream already has what this change makes: dropped from the series",
        )
        return Step(entry=empty, head=head, outcome=result)
    wt.reset_hard(head)
    for path, data in outcome.contents.items():
        target = wt.path / path
        if data is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if outcome.modes.get(path) == "100755" else 0o644)
    wt.add_paths(outcome.contents)
    checkpoint(f"commit {entry.name}")
    made_commit = wt.commit(commit_message(entry.name))
    checkpoint(f"committed {entry.name}")
    made = dataclasses.replace(
        entry,
        files=files,
        result=made_commit,
        status=PatchStatus.APPLIED,
        risk=tuple(
            f"{flag}: upstream changed a file this change replaces" for flag in result.flags
        ),
        message="re-evaluated on the new release",
    )
    return Step(entry=made, head=made_commit, outcome=result)
