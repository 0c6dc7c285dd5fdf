"""The edit worktree of one workspace (``.patchkit/edit/``): open, save, continue, abort,
done, discard, status, and ``new``.

Each command is one process: it takes the project lock, recovers what a killed command left
(:meth:`Editor._load`), moves the state on step by step (saved after each) and returns a
record. ``patches/`` is only ever changed by one directory swap at the end of a save
(:mod:`patchkit.ops.edit.swap`) or, for ``new``, by two atomic writes (file, then series).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchkit.core.model import FAILED, SCHEMA, ChangeKind
from patchkit.core.patchfile import Patch, check_relative_path, parse_patch, render_patch
from patchkit.errors import EditStateError, NotFoundError
from patchkit.files import atomic_write, checkpoint
from patchkit.git.commits import (
    ChainStep,
    commit_chain,
    commit_diffs,
    commits_between,
    empty_commit,
    is_ancestor,
    open_worktree,
    paths_between,
    raw_changes,
    rewrite_messages,
    uncommitted_paths,
    widen_sparse,
)
from patchkit.git.objects import MODE_FILE
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree, clear_worktree
from patchkit.kinds import Change, DiffChange, kind_of
from patchkit.ops.check import apply_series
from patchkit.ops.edit import messages
from patchkit.ops.edit.series import reorder
from patchkit.ops.edit.state import (
    EditEntry,
    EditPhase,
    EditStateFile,
    EditStateRecord,
    SaveProgress,
    SwapJournal,
)
from patchkit.ops.edit.swap import build_new_set, manifest, recover, swap_in
from patchkit.ops.workspace import Workspace

__all__ = [
    "EDIT_REF",
    "EditOutcome",
    "EditStatus",
    "Editor",
    "edit_guard",
    "edit_in_progress",
]

EDIT_REF = "refs/patchkit/edit/last"  # keeps the whole chain reachable (gc)
_NL = b"\n"
_MARKER = re.compile(rb"^(<{7} |>{7} |\|{7} |={7}$)", re.M)
_INDEX_LINE = re.compile(rb"^index [0-9a-f]+\.\.[0-9a-f]+.*\n", re.M)
_HUNK_HEAD = re.compile(rb"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.M)
_FILE_HEAD = re.compile(rb"^diff --git a/(.*) b/(.*)$", re.M)


def edit_in_progress(state_dir: Path) -> bool:
    """Whether an edit worktree is open in the project whose state lives in ``state_dir``."""
    return (state_dir / "edit" / "state.json").exists()


def edit_guard(state_dir: Path, command: str) -> None:
    """Refuse ``command`` (rebase, import, refresh) while the edit worktree is open."""
    if edit_in_progress(state_dir):
        raise EditStateError(
            f"an edit worktree is open ({state_dir / 'edit' / 'worktree'}); finish it with "
            f"patchkit edit --done (or --discard) before patchkit {command}"
        )


def _rebase_guard(state_dir: Path) -> None:
    """Refuse to open while a rebase is in progress. Read here, not through ops.rebase, so
    that the rebase can import :func:`edit_guard` without an import cycle."""
    path = state_dir / "rebase" / "state.json"
    if not path.exists():
        return
    try:
        onto = str(json.loads(path.read_bytes()).get("onto", "?"))
    except (OSError, ValueError, AttributeError):
        onto = "?"
    raise EditStateError(
        f"a rebase onto {onto} is in progress; finish it with "
        "patchkit rebase --continue, --skip or --abort"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EditOutcome:
    """What an edit command did."""

    action: str  # open | save | continue | abort | done | discard | new
    worktree: str = ""
    version: str = ""
    tip: str = ""  # the patch HEAD is at
    written: tuple[str, ...] = ()  # files of patches/ rewritten or created
    created: tuple[str, ...] = ()  # new patches
    dropped: tuple[str, ...] = ()  # entries that left the series
    stopped: str = ""  # the patch whose replay conflicts (exit 1)
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "edit",
            "action": self.action,
            "worktree": self.worktree,
            "version": self.version,
            "tip": self.tip,
            "written": list(self.written),
            "created": list(self.created),
            "dropped": list(self.dropped),
            "stopped": self.stopped or None,
            "conflicts": list(self.conflicts),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EditStatus:
    """``patchkit edit --status``."""

    open: bool
    worktree: str = ""
    version: str = ""
    phase: str = ""
    tip: str = ""
    head: str = ""
    uncommitted: tuple[str, ...] = ()
    new_commits: tuple[tuple[str, str], ...] = ()  # (commit, subject)
    modified: tuple[str, ...] = ()  # patches whose commit's change differs
    stopped: str = ""
    conflicts: tuple[str, ...] = ()
    patches: tuple[tuple[str, str, str | None], ...] = ()  # (name, kind, commit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "edit",
            "action": "status",
            "open": self.open,
            "worktree": self.worktree,
            "version": self.version,
            "phase": self.phase,
            "tip": self.tip,
            "head": self.head,
            "uncommitted": list(self.uncommitted),
            "new_commits": [{"commit": c, "subject": s} for c, s in self.new_commits],
            "modified": list(self.modified),
            "stopped": {"patch": self.stopped, "conflicts": list(self.conflicts)}
            if self.stopped
            else None,
            "patches": [{"name": n, "kind": k, "commit": c} for n, k, c in self.patches],
        }


def _digest(path: Path) -> str:
    """SHA-256 of a patch file, or of an overlay directory's listing and contents."""
    if path.is_dir():
        return hashlib.sha256(json.dumps(sorted(manifest(path).items())).encode()).hexdigest()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def _normal(diff: bytes) -> bytes:
    """A diff without what moves when nothing changed: index lines, hunk line numbers."""
    return _HUNK_HEAD.sub(b"@@", _INDEX_LINE.sub(b"", diff))


def _per_file(diff: bytes) -> dict[str, bytes]:
    """A git diff split by file (normalised), path -> its part."""
    out: dict[str, bytes] = {}
    heads = list(_FILE_HEAD.finditer(diff))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(diff)
        out[m.group(2).decode("utf-8", "surrogateescape")] = _normal(diff[m.start() : end])
    return out


def _changed_files(new: bytes, old: bytes) -> set[str]:
    a, b = _per_file(new), _per_file(old)
    return {p for p in set(a) | set(b) if a.get(p) != b.get(p)}


def _context_of(patch: Patch) -> int:
    widths = [max(h.leading_context, h.trailing_context) for fp in patch.files for h in fp.hunks]
    return max(widths) if widths else 3


def _prefixes(patch: Patch) -> tuple[str, str]:
    """The ``a/``/``b/`` a diff's ``-pN`` strips (``-p0``: none; ``-p2``: the file's own)."""
    if patch.strip == 0:
        return "", ""
    if patch.strip == 1:
        return "a/", "b/"
    for fp in patch.files:
        for line in fp.raw_header_lines:
            if line.startswith("--- ") and "/dev/null" not in line:
                comps = line[4:].split("\t")[0].strip().split("/")
                prefix = "/".join(comps[: patch.strip]) + "/"
                return prefix, prefix
    return "a/" * patch.strip, "b/" * patch.strip


class Editor:
    """The edit worktree of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.dir = ws.state_dir / "edit"
        self.state = EditStateFile(self.dir / "state.json")
        self.worktree_path = self.dir / "worktree"
        parent = ws.patches_dir.parent
        self.temp = parent / f".{ws.patches_dir.name}.patchkit-new"
        self.old = parent / f".{ws.patches_dir.name}.patchkit-old"

    @property
    def store(self) -> Store:
        return self.ws.store

    @property
    def wt(self) -> Worktree:
        return Worktree(self.store, self.worktree_path)

    # -- recovery ---------------------------------------------------------------------

    def _load(self) -> EditStateRecord | None:
        """The state, after finishing or undoing a swap a kill interrupted."""
        record = self.state.load()
        if record is None:
            if self.temp.exists() or self.old.exists():
                recover(self.ws.patches_dir, self.temp, self.old, manifest(self.ws.patches_dir))
            return None
        if self.worktree_path.exists():
            self.wt.drop_stale_locks()
        if record.phase is EditPhase.WRITING and record.swap is not None:
            swap = record.swap
            done = recover(self.ws.patches_dir, self.temp, self.old, dict(swap.manifest))
            if done:
                record = record.with_(
                    entries=swap.entries, tip=swap.tip, phase=EditPhase.OPEN, save=None, swap=None
                )
                self.state.save(record)
                self._settle(record)
            else:
                record = record.with_(phase=EditPhase.SAVING, swap=None)
                self.state.save(record)
        elif self.temp.exists() or self.old.exists():
            recover(self.ws.patches_dir, self.temp, self.old, manifest(self.ws.patches_dir))
        return record

    def _require(self) -> EditStateRecord:
        record = self._load()
        if record is None:
            raise EditStateError("no edit worktree is open (open one with: patchkit edit [PATCH])")
        if not self.worktree_path.exists():
            raise EditStateError(
                f"the edit worktree {self.worktree_path} is gone; run patchkit edit --discard"
            )
        return record

    def _settle(self, record: EditStateRecord) -> None:
        """HEAD back on the tip, ORIG_HEAD forgotten (it tells a rebase/reset since)."""
        wt = self.wt
        checkpoint("edit: checkout tip")
        if wt.head() != record.tip_commit:
            wt.git("checkout", "-q", "--detach", record.tip_commit)
        wt.git("update-ref", "-d", "ORIG_HEAD", check=False)
        files = {f for e in record.entries for f in e.files}
        widen_sparse(wt, files)

    # -- open -------------------------------------------------------------------------

    def open(
        self, patch: str | None = None, *, version: str | None = None, add: Sequence[str] = ()
    ) -> EditOutcome:
        ws = self.ws
        with ws.lock():
            _rebase_guard(ws.state_dir)
            record = self._load()
            if record is not None and self.worktree_path.exists():
                return self._reopen(record, patch, version, add)
            return self._build(patch, version=version, globs=tuple(add))

    def _build(
        self, patch: str | None, *, version: str | None, globs: tuple[str, ...]
    ) -> EditOutcome:
        ws, store = self.ws, self.store
        vf = ws.versions
        base = vf.base
        version = version or base
        tree = ws.release_tree(version)
        info = store.release(version)
        assert info is not None
        series = ws.series
        if patch is not None and patch not in series.names:
            raise NotFoundError(
                f"'{patch}' is not in patches/series (entries: {', '.join(series.names) or 'none'})"
            )
        changes = list(ws.changes(series))
        base_info = store.release(base) if version != base else None
        with store.blob_reader() as reader:
            applied = apply_series(
                reader,
                version=version,
                tree=tree,
                patches=changes,
                base_tree=base_info.tree if base_info else None,
            )
            touched = sorted(set(applied.original) | set(applied.files))
            modes = {p: m for p, m in reader.modes(tree, touched).items() if m}
            extra = reader.list_paths(tree, list(globs)) if globs else []
        steps: list[ChainStep] = []
        notes: list[str] = []
        files_of: list[tuple[str, ...]] = []
        for change, outcome in zip(changes, applied.outcomes, strict=True):
            files_of.append(tuple(dict.fromkeys([*outcome.result.files, *outcome.contents])))
            if not change.applies_to(version):
                continue
            if outcome.status in FAILED:
                notes.append(
                    f"{change.name}: {outcome.status} on {version}; its commit is empty "
                    f"({outcome.result.message or 'see patchkit check ' + version})"
                )
            tree_changes: dict[str, tuple[int, bytes] | None] = {}
            for path, data in outcome.contents.items():
                mode_text = outcome.modes.get(path) or modes.get(path)
                mode = int(mode_text, 8) if mode_text else MODE_FILE
                if data is None:
                    tree_changes[path] = None
                    modes.pop(path, None)
                else:
                    tree_changes[path] = (mode, data)
                    modes[path] = f"{mode:06o}"
            subject, body = messages.subject_body(change.patch_header, change.name)
            steps.append(
                ChainStep(
                    message=messages.commit_message(change.name, subject, body),
                    changes=tree_changes,
                )
            )
        checkpoint("edit: chain")
        commits = iter(commit_chain(store, info.commit, steps, ref=EDIT_REF))
        entries = tuple(
            EditEntry(
                name=c.name,
                kind=c.kind,
                strip=line.strip,
                commit=next(commits) if c.applies_to(version) else None,
                digest=_digest(ws.patches_dir / c.name),
                files=files,
            )
            for c, line, files in zip(changes, series.entries, files_of, strict=True)
        )
        with_commit = [e for e in entries if e.commit]
        if patch is not None and entries and entries[series.names.index(patch)].commit is None:
            raise EditStateError(
                f"{patch}: outside its Upstream-Versions range on {version}; nothing to edit there"
            )
        tip = patch or (with_commit[-1].name if with_commit else "")
        record = EditStateRecord(
            version=version, base_commit=info.commit, entries=entries, tip=tip, globs=globs
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        checkpoint("edit: worktree")
        sparse = set(touched) | set(extra)
        open_worktree(store, self.worktree_path, record.tip_commit, sparse, step=checkpoint)
        self.wt.git("update-ref", "-d", "ORIG_HEAD", check=False)
        self.state.save(record)
        return EditOutcome(
            action="open",
            worktree=str(self.worktree_path),
            version=version,
            tip=tip,
            notes=tuple(notes),
        )

    def _reopen(
        self,
        record: EditStateRecord,
        patch: str | None,
        version: str | None,
        add: Sequence[str],
    ) -> EditOutcome:
        self._not_busy(record)
        wt = self.wt
        clean = not uncommitted_paths(wt) and wt.head() == record.tip_commit
        series = self.ws.series
        if patch is not None and patch not in series.names:
            raise NotFoundError(
                f"'{patch}' is not in patches/series (entries: {', '.join(series.names) or 'none'})"
            )
        globs = tuple(dict.fromkeys([*record.globs, *add]))
        same = (
            (version is None or version == record.version)
            and tuple((e.name, e.strip) for e in record.entries)
            == tuple((e.name, e.strip) for e in series.entries)
            and all(e.digest == _digest(self.ws.patches_dir / e.name) for e in record.entries)
        )
        if not clean:
            if (patch is not None and patch != record.tip) or not same:
                raise EditStateError(
                    f"the edit worktree {self.worktree_path} has unsaved changes; save them "
                    "first (patchkit edit --save) or drop them (patchkit edit --discard --force)"
                )
            self._widen(record, add)
            record = record.with_(globs=globs)
            self.state.save(record)
            return EditOutcome(
                action="open",
                worktree=str(self.worktree_path),
                version=record.version,
                tip=record.tip,
            )
        if not same:
            return self._build(patch, version=version or record.version, globs=globs)
        with_commit = [e for e in record.entries if e.commit]
        tip = patch or (with_commit[-1].name if with_commit else "")
        if tip and record.entry(tip).commit is None:
            raise EditStateError(
                f"{tip}: outside its Upstream-Versions range on {record.version}; "
                "nothing to edit there"
            )
        record = record.with_(tip=tip, globs=globs)
        self._settle(record)
        self._widen(record, add)
        self.state.save(record)
        return EditOutcome(
            action="open", worktree=str(self.worktree_path), version=record.version, tip=tip
        )

    def _widen(self, record: EditStateRecord, globs: Sequence[str]) -> None:
        if not globs:
            return
        with self.store.blob_reader() as reader:
            paths = reader.list_paths(self.wt.head(), list(globs))
        widen_sparse(self.wt, paths)

    def _not_busy(self, record: EditStateRecord) -> None:
        if record.phase is EditPhase.STOPPED and record.save is not None:
            raise EditStateError(
                f"the save is stopped on {record.save.stopped_on} (conflict in "
                f"{', '.join(record.save.conflicts) or 'the worktree'}); resolve it, git add, "
                "then patchkit edit --continue, or patchkit edit --abort"
            )
        if record.phase is not EditPhase.OPEN:
            raise EditStateError(
                "a save was interrupted; run patchkit edit --save again, or patchkit edit --abort"
            )

    # -- save -------------------------------------------------------------------------

    def save(self) -> EditOutcome:
        with self.ws.lock():
            record = self._require()
            if record.phase is EditPhase.STOPPED:
                self._not_busy(record)
            if record.phase is EditPhase.OPEN:
                record = self._begin_save(record)
            if record.phase is EditPhase.SAVING:
                record = self._replay(record)
            if record.phase is EditPhase.STOPPED:
                return self._stopped(record)
            return self._write(record)

    def cont(self) -> EditOutcome:
        with self.ws.lock():
            record = self._require()
            if record.phase is EditPhase.OPEN:
                raise EditStateError(
                    "nothing to continue: no save is stopped (patchkit edit --save)"
                )
            if record.phase is EditPhase.STOPPED:
                record = self._take_resolution(record)
            if record.phase is EditPhase.SAVING:
                record = self._replay(record)
            if record.phase is EditPhase.STOPPED:
                return self._stopped(record)
            return self._write(record, action="continue")

    def abort(self) -> EditOutcome:
        with self.ws.lock():
            record = self._require()
            if record.phase is EditPhase.OPEN or record.save is None:
                return EditOutcome(
                    action="abort",
                    worktree=str(self.worktree_path),
                    version=record.version,
                    tip=record.tip,
                    notes=("no save in progress: nothing to abort",),
                )
            self._undo_save(record.save)
            record = record.with_(phase=EditPhase.OPEN, save=None, swap=None)
            self.state.save(record)
            return EditOutcome(
                action="abort",
                worktree=str(self.worktree_path),
                version=record.version,
                tip=record.tip,
            )

    def _undo_save(self, save: SaveProgress) -> None:
        wt = self.wt
        checkpoint("edit: abort")
        wt.git("cherry-pick", "--abort", check=False)
        wt.quit_pick()
        wt.reset_hard(save.amended)
        if save.dirty:
            wt.git("reset", "-q", "--mixed", save.before)  # the changes uncommitted again
        else:
            wt.reset_hard(save.before)

    def _git_path(self, name: str) -> Path:
        path = Path(self.wt.git("rev-parse", "--git-path", name).stdout.decode().strip())
        return path if path.is_absolute() else self.worktree_path / path

    def _names_of(self, commit: str) -> list[str]:
        return messages.trailers(commit_diffs(self.store, [commit])[commit].message)

    def _git_busy(self) -> str:
        """What git operation of the person's is under way in the worktree ("" if none)."""
        busy = (
            ("rebase-merge", "a git rebase"),
            ("rebase-apply", "a git rebase or am"),
            ("CHERRY_PICK_HEAD", "a git cherry-pick"),
            ("MERGE_HEAD", "a git merge"),
            ("REVERT_HEAD", "a git revert"),
        )
        args = [a for name, _ in busy for a in ("--git-path", name)]
        out = self.wt.git("rev-parse", *args).stdout.decode().splitlines()
        for line, (_, what) in zip(out, busy, strict=True):
            path = Path(line)
            if (path if path.is_absolute() else self.worktree_path / path).exists():
                return what
        return ""

    def _chain(self, record: EditStateRecord, head: str) -> list[tuple[str, tuple[str, ...]]]:
        if not is_ancestor(self.store, record.base_commit, head):
            raise EditStateError(
                f"the edit worktree's HEAD ({head[:12]}) is not a commit on release "
                f"{record.version}; move it back (git checkout {record.tip_commit[:12]}) or "
                "patchkit edit --discard --force"
            )
        chain = commits_between(self.store, record.base_commit, head)
        for commit, parents in chain:
            if len(parents) != 1:
                raise EditStateError(
                    f"commit {commit[:12]} in the edit worktree is a merge; the series is a "
                    "line of commits (git rebase it away first)"
                )
        return chain

    def _begin_save(self, record: EditStateRecord) -> EditStateRecord:
        wt = self.wt
        busy = self._git_busy()
        if busy:
            raise EditStateError(
                f"{busy} is in progress in {self.worktree_path}; finish or abort it first"
            )
        head = wt.head()
        chain = self._chain(record, head)
        dirty = uncommitted_paths(wt)
        originals = {e.name: e for e in record.entries if e.commit}
        diffs = commit_diffs(
            self.store, [c for c, _ in chain] + [e.commit for e in originals.values() if e.commit]
        )
        by_name = {e.name: e for e in record.entries}
        only_other = self._only_edit_or_overlay(record)
        seen: dict[str, str] = {}
        for commit, _parents in chain:
            names = messages.trailers(diffs[commit].message)
            for n in names:
                if n not in by_name:
                    raise EditStateError(
                        f"commit {commit[:12]}: {messages.TRAILER}: {n} names no patch of this "
                        "series; remove the trailer to make it a new patch"
                    )
                if n in seen:
                    raise EditStateError(
                        f"commits {seen[n][:12]} and {commit[:12]} both say "
                        f"{messages.TRAILER}: {n}; squash or drop one (git rebase -i)"
                    )
                seen[n] = commit
            entry = by_name[names[0]] if names else None
            if entry is not None and entry.commit == commit:
                continue
            old = diffs[entry.commit].diff if entry is not None and entry.commit else b""
            changed = _changed_files(diffs[commit].diff, old)
            if entry is not None and not changed:
                continue
            self._refuse_other_kinds(entry, changed, only_other)
            if entry is not None and entry.digest != _digest(self.ws.patches_dir / entry.name):
                raise EditStateError(
                    f"patches/{entry.name} changed on disk since the worktree was made, and its "
                    "commit changed too; keep one (patchkit edit --discard --force, or put the "
                    "file back) and save again"
                )
        if dirty:
            if head == record.base_commit:
                raise EditStateError(
                    f"HEAD is release {record.version} itself: commit your change (git commit) "
                    "to make it a new patch"
                )
            names = messages.trailers(diffs[head].message)
            self._refuse_other_kinds(by_name[names[0]] if names else None, set(dirty), only_other)
        # Which entries come after HEAD (replayed) and which the person removed (dropped).
        in_chain = set(seen)
        tip_index = record.names.index(record.tip) if record.tip else -1
        moved = [i for i, e in enumerate(record.entries) if e.commit == head]
        if moved and not self._orig_head():
            tip_index = moved[-1]  # HEAD moved (git checkout) onto another patch of the chain
        later = [e for e in record.entries[tip_index + 1 :] if e.commit and e.name not in in_chain]
        amended = head
        if dirty:
            checkpoint("edit: amend")
            # Only the paths status named: `add -A .` would walk every index entry.
            wt.git("add", "-A", "--sparse", "--", *[":(literal)" + p for p in dirty])
            wt.git("commit", "-q", "--amend", "--no-verify", "--allow-empty", "--no-edit")
            amended = wt.head()
            checkpoint("edit: amended")
        picks: list[str] = []
        parent = amended
        for i, e in enumerate(later):
            assert e.commit is not None
            if diffs[e.commit].parents[:1] != (parent,):
                picks = [x.commit for x in later[i:] if x.commit]
                break
            parent = e.commit
        save = SaveProgress(
            before=head, dirty=bool(dirty), amended=amended, picks=tuple(picks), head=parent
        )
        record = record.with_(phase=EditPhase.SAVING, save=save)
        self.state.save(record)
        return record

    def _orig_head(self) -> bool:
        return (
            self.wt.git("rev-parse", "--verify", "--quiet", "ORIG_HEAD", check=False).returncode
            == 0
        )

    def _only_edit_or_overlay(self, record: EditStateRecord) -> dict[str, list[EditEntry]]:
        """File -> the edits/overlays touching it, for files no diff of the series touches."""
        diff_files = {f for e in record.entries if e.kind is ChangeKind.DIFF for f in e.files}
        out: dict[str, list[EditEntry]] = {}
        for e in record.entries:
            if e.kind is not ChangeKind.DIFF:
                for f in e.files:
                    if f not in diff_files:
                        out.setdefault(f, []).append(e)
        return out

    def _refuse_other_kinds(
        self, entry: EditEntry | None, changed: set[str], only_other: Mapping[str, list[EditEntry]]
    ) -> None:
        if entry is not None and entry.kind is not ChangeKind.DIFF:
            shown = sorted(changed)[0] if changed else "a file"
            raise EditStateError(
                f"{shown}: changed in the worktree in the commit of {entry.name}, an {entry.kind}; "
                f"change patches/{entry.name} instead (or patchkit materialize --replace "
                f"{entry.name} first)"
            )
        for path in sorted(changed):
            owners = only_other.get(path)
            if owners:
                owner = owners[-1]
                raise EditStateError(
                    f"{path}: only patches/{owner.name} ({owner.kind}) changes this file; change "
                    f"patches/{owner.name} instead (or patchkit materialize --replace "
                    f"{owner.name} first)"
                )

    def _replay(self, record: EditStateRecord) -> EditStateRecord:
        """Replay the later patches onto the amended one; redone from ``save.head`` (where
        ``save.picks`` go) after a kill.

        A patch none of whose files differ between its old parent and its new one is
        replayed without a merge (its blobs over the new parent: what the 3-way merge gives
        then), all of them in one `git fast-import`, the worktree untouched. From the first
        that overlaps, `git cherry-pick` in the worktree (git's 3-way; markers on conflict).
        """
        save = record.save
        assert save is not None
        if not save.picks:
            return record
        if not save.stopped_on:
            record = self._replay_disjoint(record)
            save = record.save
            assert save is not None
            if not save.picks:
                return record
        wt = self.wt
        checkpoint("edit: replay")
        wt.git("cherry-pick", "--quit", check=False)
        wt.reset_hard(save.head)
        return self._pick(record, list(save.picks))

    def _replay_disjoint(self, record: EditStateRecord) -> EditStateRecord:
        save = record.save
        assert save is not None
        store = self.store
        picks = list(save.picks)
        diffs = commit_diffs(store, picks)
        changes = raw_changes(store, picks)
        differ = paths_between(store, diffs[picks[0]].parents[0], save.head)
        steps: list[ChainStep] = []
        for commit in picks:
            touched = set(changes[commit])
            if touched & differ:
                break
            steps.append(ChainStep(message=diffs[commit].message, changes=changes[commit]))
        if not steps:
            return record
        checkpoint("edit: replay without merge")
        made = commit_chain(store, save.head, steps, ref=EDIT_REF)
        record = record.with_(
            save=dataclasses.replace(save, head=made[-1], picks=tuple(picks[len(made) :]))
        )
        self.state.save(record)
        return record

    def _pick(self, record: EditStateRecord, picks: list[str]) -> EditStateRecord:
        save = record.save
        assert save is not None
        wt = self.wt
        proc = wt.git(
            "-c",
            "merge.conflictStyle=zdiff3",
            "-c",
            "core.editor=true",
            "cherry-pick",
            "--allow-empty",
            "--keep-redundant-commits",
            *picks,
            check=False,
        )
        checkpoint("edit: replayed")
        return self._after_pick(record, proc.returncode == 0)

    def _after_pick(self, record: EditStateRecord, ok: bool) -> EditStateRecord:
        save = record.save
        assert save is not None
        wt = self.wt
        head = wt.head()
        if ok:
            record = record.with_(
                save=dataclasses.replace(save, picks=(), head=head, stopped_on="")
            )
            self.state.save(record)
            return record
        stopped = wt.git("rev-parse", "--verify", "--quiet", "CHERRY_PICK_HEAD", check=False)
        commit = stopped.stdout.decode().strip()
        if not commit:
            raise EditStateError(
                "git cherry-pick failed in the edit worktree without a conflict; "
                "patchkit edit --abort puts the worktree back"
            )
        names = messages.trailers(commit_diffs(self.store, [commit])[commit].message)
        rest = save.picks[save.picks.index(commit) :] if commit in save.picks else save.picks
        record = record.with_(
            phase=EditPhase.STOPPED,
            save=dataclasses.replace(
                save,
                picks=tuple(rest),
                head=head,
                stopped_on=names[0] if names else commit[:12],
                conflicts=tuple(wt.unmerged()),
            ),
        )
        self.state.save(record)
        return record

    def _take_resolution(self, record: EditStateRecord) -> EditStateRecord:
        save = record.save
        assert save is not None
        wt = self.wt
        left: list[str] = []
        for rel in sorted(set(save.conflicts) | set(wt.unmerged())):
            path = self.worktree_path / rel
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                m = _MARKER.search(data)
                if m:
                    left.append(f"{rel}:{data.count(_NL, 0, m.start()) + 1}")
        if left:
            raise EditStateError(
                f"conflict markers left in {', '.join(left)}; resolve them, git add, then "
                "patchkit edit --continue (or patchkit edit --abort)"
            )
        checkpoint("edit: resolve")
        wt.add_all()
        if (
            not self._git_path("CHERRY_PICK_HEAD").exists()
            and not self._git_path("sequencer").exists()
        ):
            # The person committed the resolution (or quit the pick): pick what is left,
            # leaving out what the chain has already.
            done = set()
            for commit, _ in self._chain(record, wt.head()):
                done.update(messages.trailers(commit_diffs(self.store, [commit])[commit].message))
            picks = [c for c in save.picks if not set(self._names_of(c)) & done]
            record = record.with_(
                phase=EditPhase.SAVING,
                save=dataclasses.replace(save, picks=tuple(picks), head=wt.head()),
            )
            self.state.save(record)
            return self._replay(record)
        proc = wt.git(
            "-c", "core.editor=true", "-c", "merge.conflictStyle=zdiff3",
            "cherry-pick", "--continue", check=False,
        )  # fmt: skip
        record = record.with_(phase=EditPhase.SAVING)
        return self._after_pick(record, proc.returncode == 0)

    def _stopped(self, record: EditStateRecord) -> EditOutcome:
        save = record.save
        assert save is not None
        return EditOutcome(
            action="save",
            worktree=str(self.worktree_path),
            version=record.version,
            tip=record.tip,
            stopped=save.stopped_on,
            conflicts=save.conflicts,
            notes=(
                f"{save.stopped_on} no longer applies after your change: resolve the conflicts "
                f"in {self.worktree_path}, git add, then patchkit edit --continue "
                "(or patchkit edit --abort)",
            ),
        )

    def _write(self, record: EditStateRecord, *, action: str = "save") -> EditOutcome:
        """From the worktree's final chain: the new entries, files and series; swapped in."""
        save = record.save
        assert save is not None
        ws, store = self.ws, self.store
        # What a kill before the swap goes back to: the commits as the replay left them
        # (the trailers given below are given again, to the same commit ids).
        redo = record
        chain = self._chain(record, save.head)
        by_name = {e.name: e for e in record.entries}
        originals = [e.commit for e in record.entries if e.commit]
        diffs = commit_diffs(store, [c for c, _ in chain] + originals)
        series = ws.series
        taken = set(series.names) | {p.name for p in ws.patches_dir.iterdir()} | {"series"}
        new_entries: list[EditEntry] = []
        writes: dict[str, bytes] = {}
        created: list[str] = []
        dropped: list[str] = []
        tip = ""
        new_messages: dict[str, str] = {}
        for commit, parents in chain:
            cd = diffs[commit]
            names = messages.trailers(cd.message)
            dropped.extend(names[1:])
            if names:
                entry = by_name[names[0]]
                if entry.commit != commit and entry.kind is ChangeKind.DIFF:
                    old = diffs[entry.commit].diff if entry.commit else b""
                    if _changed_files(cd.diff, old):
                        data = self._rediff(entry, parents[0], commit)
                        path = ws.patches_dir / entry.name
                        if not path.exists() or path.read_bytes() != data:
                            writes[entry.name] = data
                files = tuple(dict.fromkeys([*entry.files, *_per_file(cd.diff)]))
                digest = (
                    hashlib.sha256(writes[entry.name]).hexdigest()
                    if entry.name in writes
                    else entry.digest
                )
                new = dataclasses.replace(entry, commit=commit, files=files, digest=digest)
            else:
                subject, body = messages.split_message(cd.message)
                name = messages.slug_name(subject or commit[:12], taken)
                taken.add(name)
                header = messages.new_patch_header(subject or name, body)
                data = self._render(name, 1, header, parents[0], commit, context=3)
                writes[name] = data
                created.append(name)
                # Its commit gets the trailer, so that it is this patch from now on.
                new_messages[commit] = messages.commit_message(name, subject or name, body)
                new = EditEntry(
                    name=name,
                    kind=ChangeKind.DIFF,
                    strip=1,
                    commit=commit,
                    digest=hashlib.sha256(data).hexdigest(),
                    files=tuple(_per_file(cd.diff)),
                )
            new_entries.append(new)
            if commit == save.amended:
                tip = new.name
        if new_messages:
            checkpoint("edit: trailers")
            moved = rewrite_messages(store, [(c, p[0]) for c, p in chain], new_messages)
            new_entries = [
                dataclasses.replace(e, commit=moved.get(e.commit, e.commit)) if e.commit else e
                for e in new_entries
            ]
            save = dataclasses.replace(
                save,
                amended=moved.get(save.amended, save.amended),
                head=moved.get(save.head, save.head),
            )
        in_new = {e.name for e in new_entries}
        tip_index = record.names.index(record.tip) if record.tip in record.names else -1
        for i, e in enumerate(record.entries):
            if e.commit is None:
                # Outside its range on this release: stays where it was, after the entry
                # before it (or first).
                prev = [x.name for x in record.entries[:i] if x.name in in_new]
                at = [x.name for x in new_entries].index(prev[-1]) + 1 if prev else 0
                new_entries.insert(at, e)
                in_new.add(e.name)
            elif e.name not in in_new and e.name not in dropped:
                dropped.append(e.name)
        del tip_index
        new_series = reorder(series, [e.name for e in new_entries])
        # Only the strip of entries kept matters: a new entry is -p1 (a/ b/ prefixes).
        text = new_series.render()
        if text != series.render():
            writes["series"] = text.encode("utf-8")
        written = tuple(sorted(writes))
        final = record.with_(
            entries=tuple(new_entries), tip=tip, phase=EditPhase.OPEN, save=None, swap=None
        )
        if writes:
            wanted = manifest(ws.patches_dir)
            for rel, data in writes.items():
                flag = "+x" if wanted.get(rel, "").endswith("+x") else ""
                wanted[rel] = hashlib.sha256(data).hexdigest() + flag
            journal = SwapJournal(
                temp=str(self.temp),
                old=str(self.old),
                manifest=tuple(sorted(wanted.items())),
                entries=final.entries,
                tip=tip,
                written=written,
            )
            self.state.save(redo.with_(phase=EditPhase.WRITING, swap=journal))
            build_new_set(ws.patches_dir, self.temp, writes)
            swap_in(ws.patches_dir, self.temp, self.old)
        # HEAD onto the (re-trailered) tip before the state says the save is over: a kill
        # in between is recovered from the journal, which settles HEAD again.
        self._settle(final)
        checkpoint("edit: adopt")
        self.state.save(final)
        store.git("update-ref", EDIT_REF, save.head)
        return EditOutcome(
            action=action,
            worktree=str(self.worktree_path),
            version=record.version,
            tip=tip,
            written=written,
            created=tuple(created),
            dropped=tuple(dropped),
        )

    def _rediff(self, entry: EditEntry, parent: str, commit: str) -> bytes:
        """A changed diff: its header byte for byte over the commit's diff, rendered with its
        own ``-pN`` prefixes and context width; a format-patch signature kept."""
        original = (self.ws.patches_dir / entry.name).read_bytes()
        change = self._change(entry.name)
        assert isinstance(change, DiffChange)
        patch = change.patch
        header = patch.header
        if not patch.files and header and not header.endswith("\n\n"):
            header += "\n" if header.endswith("\n") else "\n\n"  # a patch new made: no diff yet
        data = self._render(
            entry.name, patch.strip, header, parent, commit, context=_context_of(patch),
            prefixes=_prefixes(patch),
        )  # fmt: skip
        return data + messages.signature_tail(original)

    def _render(
        self,
        name: str,
        strip: int,
        header: str,
        parent: str,
        commit: str,
        *,
        context: int,
        prefixes: tuple[str, str] = ("a/", "b/"),
    ) -> bytes:
        diff = self.store.diff(
            parent, commit, src_prefix=prefixes[0], dst_prefix=prefixes[1], context=context
        )
        if not diff.strip():
            return render_patch(Patch(name=name, strip=strip, header=header))
        new = parse_patch(diff, name=name, strip=strip)
        return render_patch(dataclasses.replace(new, header=header, name=name))

    def _change(self, name: str) -> Change:
        for change in self.ws.changes():
            if change.name == name:
                return change
        raise NotFoundError(f"'{name}' is not in patches/series")

    # -- done, discard, status ----------------------------------------------------------

    def done(self) -> EditOutcome:
        result = self.save()
        if result.stopped:
            return result
        with self.ws.lock():
            self._remove()
        return dataclasses.replace(result, action="done", worktree="")

    def discard(self, *, force: bool = False) -> EditOutcome:
        with self.ws.lock():
            try:
                record = self._load()
            except EditStateError:
                if not force:
                    raise
                record = None
            if record is None and not self.dir.exists():
                raise EditStateError("no edit worktree is open (nothing to discard)")
            if not force and record is not None and self.worktree_path.exists():
                unsaved = self._unsaved(record)
                if unsaved:
                    raise EditStateError(
                        f"the edit worktree has {unsaved}; save them (patchkit edit --save) or "
                        "drop them with patchkit edit --discard --force"
                    )
            self._remove()
            return EditOutcome(action="discard", version=record.version if record else "")

    def _unsaved(self, record: EditStateRecord) -> str:
        if record.phase is not EditPhase.OPEN:
            return "a save in progress"
        wt = self.wt
        dirty = uncommitted_paths(wt)
        head = wt.head()
        what = []
        if dirty:
            what.append(f"{len(dirty)} uncommitted file{'s' * (len(dirty) != 1)}")
        if head not in {e.commit for e in record.entries} | {record.base_commit}:
            what.append("commits patchkit did not make")
        return " and ".join(what)

    def _remove(self) -> None:
        checkpoint("edit: remove worktree")
        clear_worktree(self.store, self.worktree_path)
        self.store.git("update-ref", "-d", EDIT_REF, check=False)
        checkpoint("edit: remove state")
        self.state.remove()
        shutil.rmtree(self.dir, ignore_errors=True)

    def status(self) -> EditStatus:
        with self.ws.lock():
            record = self._load()
        if record is None:
            return EditStatus(open=False)
        if not self.worktree_path.exists():
            return EditStatus(
                open=True, version=record.version, phase=record.phase.value, tip=record.tip
            )
        wt = self.wt
        head = wt.head()
        uncommitted = tuple(uncommitted_paths(wt))
        new_commits: list[tuple[str, str]] = []
        modified: list[str] = []
        if is_ancestor(self.store, record.base_commit, head):
            chain = commits_between(self.store, record.base_commit, head)
            by_name = {e.name: e for e in record.entries}
            diffs = commit_diffs(
                self.store, [c for c, _ in chain] + [e.commit for e in record.entries if e.commit]
            )
            for commit, _ in chain:
                names = messages.trailers(diffs[commit].message)
                if not names:
                    new_commits.append((commit, messages.split_message(diffs[commit].message)[0]))
                    continue
                e = by_name.get(names[0])
                if e is None or e.commit == commit or e.commit is None:
                    continue
                if _changed_files(diffs[commit].diff, diffs[e.commit].diff):
                    modified.append(e.name)
        if uncommitted and head != record.base_commit:
            names = messages.trailers(commit_diffs(self.store, [head])[head].message)
            if names and names[0] not in modified:
                modified.append(names[0])
        tip = record.tip
        for e in record.entries:
            if e.commit == head:
                tip = e.name
        save = record.save
        return EditStatus(
            open=True,
            worktree=str(self.worktree_path),
            version=record.version,
            phase=record.phase.value,
            tip=tip,
            head=head,
            uncommitted=uncommitted,
            new_commits=tuple(new_commits),
            modified=tuple(modified),
            stopped=save.stopped_on if save and record.phase is EditPhase.STOPPED else "",
            conflicts=save.conflicts if save and record.phase is EditPhase.STOPPED else (),
            patches=tuple((e.name, e.kind.value, e.commit) for e in record.entries),
        )

    # -- new --------------------------------------------------------------------------

    def new(
        self, name: str, *, after: str | None = None, message: str | None = None
    ) -> EditOutcome:
        ws = self.ws
        with ws.lock():
            problem = check_relative_path(name)
            if problem:
                raise EditStateError(f"'{name}': {problem}; name the patch relative to patches/")
            if kind_of(name) is not ChangeKind.DIFF or name == "series":
                raise EditStateError(
                    f"'{name}': patchkit new makes a diff (NAME.patch); write an edit or overlay "
                    "in patches/ by hand"
                )
            path = ws.patches_dir / name
            series = ws.series
            if path.exists() or path.is_symlink() or name in series.names:
                raise EditStateError(f"patches/{name} exists already; choose another name")
            if after is not None and after not in series.names:
                raise NotFoundError(
                    f"'{after}' is not in patches/series "
                    f"(entries: {', '.join(series.names) or 'none'})"
                )
            record = self._load()
            wt_open = record is not None and self.worktree_path.exists()
            if record is not None and wt_open:
                self._not_busy(record)
                unsaved = self._unsaved(record)
                if unsaved or self.wt.head() != record.tip_commit:
                    raise EditStateError(
                        f"the edit worktree has {unsaved or 'HEAD moved off its patch'}; "
                        "save first (patchkit edit --save)"
                    )
            names = list(series.names)
            at = names.index(after) + 1 if after is not None else len(names)
            names.insert(at, name)
            text = (message or Path(name).name.removesuffix(".patch")).strip()
            header = messages.new_patch_header(*(text.partition("\n")[::2]))
            data = header.rstrip("\n").encode("utf-8") + b"\n"
            path.parent.mkdir(parents=True, exist_ok=True)
            checkpoint("new: patch file")
            atomic_write(path, data)
            try:
                atomic_write(ws.series_path, reorder(series, names).render().encode("utf-8"))
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            if record is None or not wt_open:
                return EditOutcome(
                    action="new", tip=name, created=(name,), written=(name, "series")
                )
            entries = list(record.entries)
            prev = [e for e in entries[: min(at, len(entries))] if e.commit]
            parent = prev[-1].commit if prev and prev[-1].commit else record.base_commit
            subject, body = messages.subject_body(header, name)
            commit = empty_commit(self.store, parent, messages.commit_message(name, subject, body))
            entries.insert(
                at,
                EditEntry(name=name, commit=commit, digest=hashlib.sha256(data).hexdigest()),
            )
            record = record.with_(entries=tuple(entries), tip=name)
            self.state.save(record)
            self._settle(record)
            return EditOutcome(
                action="new",
                worktree=str(self.worktree_path),
                version=record.version,
                tip=name,
                created=(name,),
                written=(name, "series"),
            )
