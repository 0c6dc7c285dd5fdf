"""The rebase state machine of one workspace: start, continue, skip, abort, status (and
``refresh``, which shares its machinery).

Each command is one process: it reads the state record, moves it on step by step (saving
it after every step, so that a kill anywhere is resumable or abortable), and returns a
:class:`~patchkit.core.model.RebaseResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
from collections.abc import Mapping

from patchkit.core.model import (
    NOT_TRIED,
    ChangeKind,
    PatchStatus,
    RebaseResult,
    RebaseState,
)
from patchkit.errors import RebaseStateError
from patchkit.files import checkpoint
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree, clear_worktree, worktree_add
from patchkit.kinds import Change, load_change
from patchkit.ops.edit import edit_guard
from patchkit.ops.rebase.backup import ProjectBackup
from patchkit.ops.rebase.plan import plan_rebase
from patchkit.ops.rebase.refresh import refresh_to_base, write_rebased
from patchkit.ops.rebase.replay import replay_step
from patchkit.ops.rebase.risk import UpstreamDelta, introduced, range_diff
from patchkit.ops.rebase.series import commit_message, series_commits
from patchkit.ops.rebase.state import PatchEntry, Phase, RebaseStateRecord, StateFile
from patchkit.ops.workspace import Workspace

__all__ = ["REBASE_REFS", "Rebaser"]

REBASE_REFS = "refs/patchkit/rebase/"
_MARKER = re.compile(rb"^(<{7} |>{7} |\|{7} |={7}$)", re.M)
_NL = b"\n"


class Rebaser:
    """The rebase of one workspace (``.patchkit/rebase/``)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.dir = ws.state_dir / "rebase"
        self.state = StateFile(self.dir / "state.json")
        self.worktree_path = self.dir / "worktree"
        self.backup = ProjectBackup(ws, self.dir / "backup")
        self._delta: UpstreamDelta | None = None
        self._old: dict[str, Change] = {}

    @property
    def store(self) -> Store:
        return self.ws.store

    def guard(self) -> None:
        """Refuse a command that would clobber a rebase in progress."""
        record = self.state.load()
        if record is not None:
            raise RebaseStateError(
                f"a rebase onto {record.onto} is in progress; finish it with "
                "patchkit rebase --continue, --skip or --abort"
            )

    # -- the commands -----------------------------------------------------------------

    def start(self, onto: str) -> RebaseResult:
        ws = self.ws
        with ws.lock():
            self.guard()
            edit_guard(ws.state_dir, "rebase")  # the edit worktree holds unsaved work
            if self.dir.exists():
                self._tidy()  # leftovers of a rebase interrupted while starting or tidying
            self.backup.sweep_temps()
            plan = plan_rebase(ws, onto)
            if plan.refused:
                raise RebaseStateError(plan.refusal())
            self.dir.mkdir(parents=True, exist_ok=True)
            self._drop_stale_ref_locks()
            checkpoint("backup")
            backup = self.backup.take()
            checkpoint("series commits")
            commits = series_commits(
                self.store,
                plan.changes,
                base_commit=plan.base.commit,
                version=plan.base.version,
                marks=self.dir / "marks",
            )
            checkpoint("series committed")
            record = RebaseStateRecord(
                base=plan.base.version,
                onto=onto,
                base_commit=plan.base.commit,
                onto_commit=plan.onto.commit,
                head=plan.onto.commit,
                backup=backup,
                patches=plan.entries(commits),
            )
            self.state.save(record)
            return self._run(self._make_worktree(record))

    def resume(self) -> RebaseResult:
        with self.ws.lock():
            record = self.state.require()
            self.backup.sweep_temps()
            wt = Worktree(self.store, self.worktree_path)
            if not record.worktree_ready or not self.worktree_path.exists():
                if record.phase is Phase.STOPPED:
                    raise RebaseStateError(
                        f"the rebase worktree {self.worktree_path} is gone; "
                        "run patchkit rebase --abort and start again"
                    )
                record = self._make_worktree(record)
            wt.drop_stale_locks()
            if record.phase is Phase.STOPPED:
                record = self._take_resolution(wt, record)
            elif record.phase is Phase.REPLAYING:
                # Interrupted within a step: redo it from the last recorded head.
                checkpoint("redo step")
                wt.quit_pick()
                wt.reset_hard(record.head)
            return self._run(record)

    def skip(self) -> RebaseResult:
        with self.ws.lock():
            record = self.state.require()
            if record.phase is not Phase.STOPPED:
                raise RebaseStateError("nothing to skip: the rebase is not stopped on a conflict")
            wt = Worktree(self.store, self.worktree_path)
            wt.drop_stale_locks()
            checkpoint("skip: reset")
            wt.quit_pick()
            wt.reset_hard(record.head)
            entry = dataclasses.replace(
                record.entry,
                status=PatchStatus.DROPPED,
                message="skipped by rebase --skip: removed from the series (file kept)",
            )
            record = record.with_entry(entry, current=record.current + 1, phase=Phase.REPLAYING)
            self.state.save(record)
            return self._run(record)

    def abort(self) -> RebaseResult:
        with self.ws.lock():
            record = self.state.load()
            if record is None:
                if self.dir.exists():
                    # Killed while starting (nothing in the project changed yet) or while
                    # tidying a finished rebase: clear what is left, worktree included.
                    self._tidy()
                record = self.state.require()  # "no rebase in progress"
            checkpoint("abort: restore")
            self.backup.restore(record.backup)
            result = self._result(record, final=RebaseState.ABORTED)
            checkpoint("abort: drop state")
            self.state.remove()
            self._tidy()
            return result

    def status(self) -> RebaseResult | None:
        record = self.state.load()
        return None if record is None else self._result(record)

    def refresh_to_base(self) -> tuple[str, ...]:
        """Rewrite every change so that it applies exactly to base (no offset, no fuzz)."""
        with self.ws.lock():
            self.guard()
            self.backup.sweep_temps()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._drop_stale_ref_locks()
            try:
                return refresh_to_base(self.ws, self.store, marks=self.dir / "marks")
            finally:
                self.store.delete_refs(REBASE_REFS)
                shutil.rmtree(self.dir, ignore_errors=True)

    # -- the steps --------------------------------------------------------------------

    def _make_worktree(self, record: RebaseStateRecord) -> RebaseStateRecord:
        """(Re)create the worktree at the recorded head; recorded as ready only once complete."""
        checkpoint("worktree")
        touched = {f for entry in record.patches for f in entry.files}
        worktree_add(self.store, self.worktree_path, record.head, touched, step=checkpoint)
        checkpoint("worktree added")
        record = dataclasses.replace(record, worktree_ready=True)
        self.state.save(record)
        return record

    def _run(self, record: RebaseStateRecord) -> RebaseResult:
        wt = Worktree(self.store, self.worktree_path)
        while not record.done:
            entry = record.entry
            if entry.commit is None or entry.status in NOT_TRIED:
                record = dataclasses.replace(record, current=record.current + 1)
                continue
            # A diff is merged as it was; edits and overlays say what to do: done anew.
            change = (
                self._old_change(record, entry)
                if entry.kind is ChangeKind.DIFF
                else self._current_change(entry)
            )
            step = replay_step(
                self.store,
                wt,
                record,
                change,
                delta=self._upstream(record),
                newly=functools.partial(self._newly, record),
            )
            if step.stopped:
                record = record.with_entry(step.entry, phase=Phase.STOPPED)
                self.state.save(record)
                return self._result(record)
            record = record.with_entry(step.entry, head=step.head, current=record.current + 1)
            self.state.save(record)
        record = dataclasses.replace(record, phase=Phase.REFRESHING)
        self.state.save(record)
        return self._finish(record)

    def _take_resolution(self, wt: Worktree, record: RebaseStateRecord) -> RebaseStateRecord:
        """``--continue`` on a stop: the worktree's changes become the resolved change."""
        entry = record.entry
        if entry.kind is not ChangeKind.DIFF:
            # Its file in patches/ is what the person fixed: evaluate it again from the head.
            checkpoint("continue: evaluate again")
            wt.quit_pick()
            wt.reset_hard(record.head)
            return dataclasses.replace(record, phase=Phase.REPLAYING)
        self._check_resolved(wt, entry)
        self._check_clean(wt, record, entry)
        checkpoint("continue: add")
        wt.add_all()
        wt.quit_pick()
        # A kill after the commit below moved HEAD: count from the recorded head.
        wt.reset_soft(record.head)
        head = record.head
        if wt.index_matches_head():
            entry = dataclasses.replace(
                entry, status=PatchStatus.ALREADY_APPLIED, message="resolved to no change"
            )
        else:
            assert entry.commit is not None
            checkpoint("continue: commit")
            head = wt.commit(commit_message(entry.name))
            checkpoint("continue: committed")
            entry = dataclasses.replace(
                entry,
                result=head,
                status=PatchStatus.MERGED,
                message="conflict resolved by hand",
                changes=range_diff(self.store, entry.files, commit=entry.commit, result=head),
            )
        record = record.with_entry(
            entry, head=head, current=record.current + 1, phase=Phase.REPLAYING
        )
        self.state.save(record)
        return record

    def _finish(self, record: RebaseStateRecord) -> RebaseResult:
        """Refresh patches/, drop emptied changes from the series, move base (last)."""
        refreshed, dropped = write_rebased(
            self.ws, self.store, record, self.backup, old=lambda e: self._old_change(record, e)
        )
        result = self._result(
            record, final=RebaseState.COMPLETED, refreshed=refreshed, dropped=dropped
        )
        # Removing the state file is what makes the rebase complete; the rest is tidying
        # that the next rebase redoes if it was interrupted.
        checkpoint("finish: drop state")
        self.state.remove()
        checkpoint("finish: tidy")
        self._tidy()
        return result

    def _tidy(self) -> None:
        clear_worktree(self.store, self.worktree_path)
        self._drop_stale_ref_locks()
        self.store.delete_refs(REBASE_REFS)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _drop_stale_ref_locks(self) -> None:
        """Lock files of the rebase's own refs that a git killed mid-update left (fast-import
        of the series, say): git refuses to update those refs again while they exist. Ours:
        only a process holding the project lock writes them."""
        refs = self.store.path / REBASE_REFS
        if refs.is_dir():
            for lock in refs.rglob("*.lock"):
                lock.unlink(missing_ok=True)

    # -- helpers ----------------------------------------------------------------------

    def _rel_patch(self, name: str) -> str:
        return str((self.ws.patches_dir / name).relative_to(self.ws.root))

    def _old_change(self, record: RebaseStateRecord, entry: PatchEntry) -> Change:
        """The change as it was before the rebase.

        A change kept in one file is parsed from the backup (patches/ may have been edited
        or half refreshed since). A directory (an overlay) is not one file of the backup;
        a rebase never rewrites one, so it is read from patches/.
        """
        if entry.name not in self._old:
            rel = self._rel_patch(entry.name)
            if record.backup.digest(rel) is not None:
                data = self.backup.original(record.backup, rel)
                self._old[entry.name] = load_change(data, name=entry.name, strip=entry.strip)
            else:
                for change in self.ws.changes():
                    self._old.setdefault(change.name, change)
                if entry.name not in self._old:
                    raise RebaseStateError(
                        f"patches/{entry.name} is gone or left the series during the rebase; "
                        "put it back, or run patchkit rebase --abort"
                    )
        return self._old[entry.name]

    def _current_change(self, entry: PatchEntry) -> Change:
        """The change as patches/ has it now (an edit or overlay the person may have fixed
        during a stop); every call reads it anew."""
        for change in self.ws.changes():
            if change.name == entry.name:
                return change
        raise RebaseStateError(
            f"{entry.name} left patches/series during the rebase; put it back, or run "
            "patchkit rebase --abort"
        )

    def _upstream(self, record: RebaseStateRecord) -> UpstreamDelta:
        if self._delta is None or self._delta.key != record.key:
            self._delta = UpstreamDelta(
                self.store,
                base_commit=record.base_commit,
                onto_commit=record.onto_commit,
                cache=self.dir / "newly-upstream.json",
            )
        return self._delta

    def _newly(self, record: RebaseStateRecord) -> Mapping[str, tuple[str, ...]]:
        """Words the series introduces that upstream newly has, with where (once a rebase)."""
        wanted = (
            w for e in record.patches if e.commit for w in introduced(self._old_change(record, e))
        )
        return self._upstream(record).newly(wanted)

    def _check_resolved(self, wt: Worktree, entry: PatchEntry) -> None:
        left: list[str] = []
        for rel in sorted(set(entry.conflicts) | set(wt.unmerged())):
            path = self.worktree_path / rel
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            m = _MARKER.search(data)
            if m:
                left.append(f"{rel}:{data.count(_NL, 0, m.start()) + 1}")
        if left:
            raise RebaseStateError(
                f"conflict markers remain in {', '.join(left)}; resolve them in "
                f"{self.worktree_path}, then run patchkit rebase --continue"
            )

    def _check_clean(self, wt: Worktree, record: RebaseStateRecord, entry: PatchEntry) -> None:
        """Refuse --continue when files outside the stopped change's files were changed.

        Those changes would silently become part of this change; the person decides instead.
        """
        own = set(entry.files) | set(entry.conflicts)
        stray = [p for p in wt.changed_paths(record.head) if p not in own]
        if stray:
            raise RebaseStateError(
                f"the rebase worktree has changes outside {entry.name}'s files: "
                f"{', '.join(stray)}; undo them (git -C {self.worktree_path} checkout "
                f"{record.head[:12]} -- FILE) or add those files to the patch by hand, "
                "then run patchkit rebase --continue"
            )

    def _result(
        self,
        record: RebaseStateRecord,
        final: RebaseState | None = None,
        *,
        refreshed: list[str] | None = None,
        dropped: list[str] | None = None,
    ) -> RebaseResult:
        if final is None:
            final = RebaseState.STOPPED if record.phase is Phase.STOPPED else RebaseState.COMPLETED
        hints: tuple[str, ...] = ()
        if final is RebaseState.STOPPED:
            hints = (
                f"resolve the conflicts in {self.worktree_path}",
                "then run: patchkit rebase --continue   (or --skip to drop this patch, --abort to undo)",
            )
        return RebaseResult(
            base=record.base,
            onto=record.onto,
            state=final,
            patches=tuple(e.to_result() for e in record.patches if not e.pending),
            pending=tuple(e.name for e in record.patches if e.pending),
            worktree=str(self.worktree_path) if final is RebaseState.STOPPED else "",
            refreshed=tuple(refreshed or ()),
            dropped=tuple(dropped or ()),
            hints=hints,
        )
