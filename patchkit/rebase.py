"""Rebase the series onto another release with git's 3-way merge, resumable from disk.

State lives in `.patchkit/rebase/state.json`, written atomically after every step, with a
byte-for-byte backup of `patches/` and `upstream-versions.toml` taken before anything starts.
Phases: `replaying` (picking patches), `stopped` (a conflict waits for a person),
`refreshing` (writing patches/, series and base). `--abort` from any phase restores the backup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diff import apply_patch
from .errors import RebaseStateError
from .files import atomic_write
from .model import (
    PatchStatus,
    RebasePatchResult,
    RebaseResult,
    RebaseState,
)
from .series import Patch, parse_patch, patch_applies_to, render_patch
from .store import MODE_FILE, Store, TreeEntry, Worktree, worktree_add, worktree_remove
from .versions import parse_versions, set_base

if TYPE_CHECKING:
    from .project import Project

__all__ = ["Rebaser", "renumber_hunks"]

SERIES_REF = "refs/patchkit/rebase/series"
REBASE_REFS = "refs/patchkit/rebase/"
_STATE_SCHEMA = 1
_MARKER = re.compile(rb"^(<{7} |>{7} |\|{7} |={7}$)", re.M)
_DIFF_NOISE = re.compile(rb"^(?:@@ .*|index .*)$", re.M)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _range(start: int, length: int) -> bytes:
    return b"%d" % start if length == 1 else b"%d,%d" % (start, length)


_HUNK_NUMBERS = re.compile(rb"^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@", re.M)


def renumber_hunks(original: bytes, header: str, offsets: Sequence[int]) -> bytes:
    """``original`` with each hunk's start lines moved by its offset; nothing else touched
    (header, section headings, count notation, every body byte stay as written)."""
    head_len = len(header.encode("utf-8", "surrogateescape"))
    moves = iter(offsets)

    def move(m: re.Match[bytes]) -> bytes:
        shift = next(moves, 0)
        old, new = int(m.group(1)), int(m.group(3))
        # A hunk at line 0 (insertion into an empty file) stays at 0.
        old_to = old + shift if old else 0
        new_to = new + shift if new else 0
        return b"@@ -%d%s +%d%s @@" % (old_to, m.group(2), new_to, m.group(4))

    return original[:head_len] + _HUNK_NUMBERS.sub(move, original[head_len:])


def _context_of(patch: Patch) -> int:
    widths = [max(h.leading_context, h.trailing_context) for fp in patch.files for h in fp.hunks]
    return max(widths) if widths else 3


def _prefixes(patch: Patch) -> tuple[str, str]:
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


class Rebaser:
    """The rebase state machine of one project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.dir = project.state_dir / "rebase"
        self.state_path = self.dir / "state.json"
        self.worktree_path = self.dir / "worktree"
        self.backup_dir = self.dir / "backup"

    # -- state ----------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.project.store

    def _load(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise RebaseStateError(
                f"{self.state_path}: unreadable rebase state ({e}); run patchkit rebase --abort"
            ) from e
        return data

    def _require(self) -> dict[str, Any]:
        state = self._load()
        if state is None:
            raise RebaseStateError("no rebase in progress (start one with: patchkit rebase --onto VERSION)")
        return state

    def _save(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_path, json.dumps(state, indent=2, sort_keys=True).encode())

    def in_progress(self) -> bool:
        return self.state_path.exists()

    def guard(self) -> None:
        """Refuse a command that would clobber a rebase in progress."""
        state = self._load()
        if state is not None:
            raise RebaseStateError(
                f"a rebase onto {state['onto']} is in progress; finish it with "
                "patchkit rebase --continue, --skip or --abort"
            )

    # -- backup ---------------------------------------------------------

    def _project_files(self) -> list[Path]:
        files = [self.project.versions_path, self.project.series_path]
        if self.project.patches_dir.is_dir():
            files += sorted(p for p in self.project.patches_dir.iterdir() if p.is_file())
        return files

    def _backup(self) -> dict[str, str | None]:
        manifest: dict[str, str | None] = {}
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        for path in self._project_files():
            rel = str(path.relative_to(self.project.root))
            if path.exists():
                data = path.read_bytes()
                digest = _sha256(data)
                target = self.backup_dir / digest
                if not target.exists():
                    atomic_write(target, data)
                manifest[rel] = digest
            else:
                manifest[rel] = None
        return manifest

    def _restore(self, manifest: dict[str, str | None]) -> None:
        for rel, digest in manifest.items():
            path = self.project.root / rel
            if digest is None:
                if path.exists():
                    path.unlink()
                continue
            data = (self.backup_dir / digest).read_bytes()
            if not path.exists() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, data)
        # Files created by an interrupted refresh that were not there before.
        if self.project.patches_dir.is_dir():
            known = set(manifest)
            for path in self.project.patches_dir.iterdir():
                rel = str(path.relative_to(self.project.root))
                if rel not in known and path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink()

    # -- building the series on base -----------------------------------------

    def _series_commits(self, base_commit: str, patches: Sequence[Patch], version: str) -> list[str | None]:
        """Commit each patch on ``base_commit`` (one commit a patch); None for a skipped one."""
        touched = {fp.path for p in patches for fp in p.files}
        entries = self.store.ls_tree(base_commit, touched)
        current: dict[str, bytes | None] = {}
        with self.store.blob_reader() as reader:
            for path in touched:
                current[path] = reader.read(f"{base_commit}:{path}")
        marks = self.dir / "marks"
        marks_of: list[int | None] = []
        with self.store.fast_import(marks=marks) as fi:
            parent = base_commit
            for patch in patches:
                if not patch_applies_to(patch, version):
                    marks_of.append(None)
                    continue
                result = apply_patch({fp.path: current[fp.path] for fp in patch.files}, patch)
                if result.status not in (PatchStatus.APPLIED, PatchStatus.OFFSET, PatchStatus.FUZZ):
                    raise RebaseStateError(f"{patch.name} does not apply to the base release ({result.status})")
                changes: dict[str, TreeEntry | None] = {}
                for fp in patch.files:
                    data = result.contents.get(fp.path, current[fp.path])
                    current[fp.path] = data
                    if data is None:
                        changes[fp.path] = None
                        entries.pop(fp.path, None)
                        continue
                    old = entries.get(fp.path)
                    mode = int(fp.new_mode, 8) if fp.new_mode else (old.mode if old else MODE_FILE)
                    entry = TreeEntry(mode=mode, blob=fi.blob(data))
                    entries[fp.path] = entry
                    changes[fp.path] = entry
                message = f"{patch.name}\n\nPatchkit-Patch: {patch.name}\n"
                marks_of.append(fi.commit_changes(SERIES_REF, changes, message, parent=parent))
                parent = f":{marks_of[-1]}"
        by_mark = {}
        for line in marks.read_text().splitlines():
            mark, _, oid = line.partition(" ")
            by_mark[int(mark[1:])] = oid
        marks.unlink()
        return [by_mark[m] if m is not None else None for m in marks_of]

    # -- start / continue / skip / abort -------------------------------------

    def start(self, onto: str) -> RebaseResult:
        project = self.project
        with project.lock():
            self.guard()
            if self.dir.exists():
                self._tidy()  # leftovers of a completed rebase that was interrupted while tidying
            vf = project.versions
            vf.release(onto)
            base = vf.base
            if onto == base:
                raise RebaseStateError(f"the series is already based on {onto}")
            base_tree = project.release_tree(base)
            project.release_tree(onto)
            base_info = self.store.release(base)
            onto_info = self.store.release(onto)
            assert base_info is not None and onto_info is not None
            series = project.series
            patches = project.patches(series)
            check = project.check(base)
            bad = [
                f"{p.name} ({p.status})"
                for p in check.patches
                if p.status not in (PatchStatus.APPLIED, PatchStatus.OFFSET, PatchStatus.FUZZ, PatchStatus.SKIPPED)
            ]
            if bad:
                raise RebaseStateError(
                    f"the series does not apply to its base {base}: {', '.join(bad)}; "
                    f"fix these first (patchkit check {base})"
                )
            del base_tree
            self.dir.mkdir(parents=True, exist_ok=True)
            backup = self._backup()
            commits = self._series_commits(base_info.commit, patches, base)
            state: dict[str, Any] = {
                "schema": _STATE_SCHEMA,
                "base": base,
                "onto": onto,
                "base_commit": base_info.commit,
                "onto_commit": onto_info.commit,
                "phase": "replaying",
                "current": 0,
                "head": onto_info.commit,
                "backup": backup,
                "patches": [
                    {
                        "name": p.name,
                        "strip": p.strip,
                        "commit": c,
                        "status": None if c else PatchStatus.SKIPPED.value,
                        "result": None,
                        "files": sorted({fp.path for fp in p.files}),
                        "conflicts": [],
                        "message": "" if c else f"Upstream-Versions excludes {base}",
                    }
                    for p, c in zip(patches, commits, strict=True)
                ],
            }
            self._save(state)
            touched = {fp.path for p in patches for fp in p.files}
            worktree_add(self.store, self.worktree_path, onto_info.commit, touched)
            return self._run(state)

    def resume(self) -> RebaseResult:
        with self.project.lock():
            state = self._require()
            wt = Worktree(self.store, self.worktree_path)
            if state["phase"] == "stopped":
                entry = state["patches"][state["current"]]
                self._check_resolved(wt, entry)
                wt.add_all()
                wt.quit_pick()
                if wt.index_matches_head():
                    entry["status"] = PatchStatus.ALREADY_APPLIED.value
                    entry["message"] = "resolved to no change"
                else:
                    entry["result"] = wt.commit(self._message(entry["name"]))
                    entry["status"] = PatchStatus.MERGED.value
                    entry["message"] = "conflict resolved by hand"
                    state["head"] = entry["result"]
                state["current"] += 1
                state["phase"] = "replaying"
                self._save(state)
            elif state["phase"] == "replaying" and self.worktree_path.exists():
                if wt.unmerged():
                    state["phase"] = "stopped"
                    self._save(state)
                    return self._result(state)
                # Interrupted between steps: redo the current one from the last good head.
                wt.quit_pick()
                wt.reset_hard(state["head"])
            elif state["phase"] == "replaying":
                touched = {f for p in state["patches"] for f in p["files"]}
                worktree_add(self.store, self.worktree_path, state["head"], touched)
            return self._run(state)

    def skip(self) -> RebaseResult:
        with self.project.lock():
            state = self._require()
            if state["phase"] != "stopped":
                raise RebaseStateError("nothing to skip: the rebase is not stopped on a conflict")
            wt = Worktree(self.store, self.worktree_path)
            wt.quit_pick()
            wt.reset_hard(state["head"])
            entry = state["patches"][state["current"]]
            entry["status"] = PatchStatus.DROPPED.value
            entry["message"] = "skipped by rebase --skip: removed from the series (file kept)"
            state["current"] += 1
            state["phase"] = "replaying"
            self._save(state)
            return self._run(state)

    def abort(self) -> RebaseResult:
        with self.project.lock():
            state = self._require()
            self._restore(state["backup"])
            result = self._result(state, final=RebaseState.ABORTED)
            self.state_path.unlink()
            self._tidy()
            return result

    def status(self) -> RebaseResult | None:
        state = self._load()
        return None if state is None else self._result(state)

    # -- the loop ---------------------------------------------------------------

    @staticmethod
    def _message(name: str) -> str:
        return f"{name}\n\nPatchkit-Patch: {name}\n"

    def _check_resolved(self, wt: Worktree, entry: dict[str, Any]) -> None:
        left: list[str] = []
        for rel in sorted(set(entry["conflicts"]) | set(wt.unmerged())):
            path = self.worktree_path / rel
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            m = _MARKER.search(data)
            if m:
                line = data.count(b"\n", 0, m.start()) + 1
                left.append(f"{rel}:{line}")
        if left:
            raise RebaseStateError(
                f"conflict markers remain in {', '.join(left)}; resolve them in "
                f"{self.worktree_path}, then run patchkit rebase --continue"
            )

    def _same_change(self, old_commit: str, new_commit: str) -> bool:
        """Whether two commits make the same diff, line numbers aside."""

        def body(commit: str) -> bytes:
            text = self.store.diff(commit + "^", commit, src_prefix="a/", dst_prefix="b/")
            # Line numbers, section headings and blob ids differ whenever the file moved.
            return _DIFF_NOISE.sub(b"", text)

        return body(old_commit) == body(new_commit)

    def _run(self, state: dict[str, Any]) -> RebaseResult:
        wt = Worktree(self.store, self.worktree_path)
        patches = state["patches"]
        while state["current"] < len(patches):
            entry = patches[state["current"]]
            if entry["commit"] is None or entry["status"] in (
                PatchStatus.SKIPPED.value,
                PatchStatus.DROPPED.value,
            ):
                state["current"] += 1
                continue
            ok, message = wt.cherry_pick(entry["commit"])
            if not ok:
                conflicts = wt.unmerged()
                if not conflicts:
                    raise RebaseStateError(f"git could not replay {entry['name']}: {message.splitlines()[-1] if message else '?'}")
                entry["status"] = PatchStatus.CONFLICT.value
                entry["conflicts"] = conflicts
                state["phase"] = "stopped"
                self._save(state)
                return self._result(state)
            wt.quit_pick()
            if wt.index_matches_head():
                entry["status"] = PatchStatus.ALREADY_APPLIED.value
                entry["message"] = "upstream already contains this change: dropped from the series"
            else:
                entry["result"] = wt.commit(self._message(entry["name"]))
                state["head"] = entry["result"]
                same = self._same_change(entry["commit"], entry["result"])
                entry["status"] = (PatchStatus.APPLIED if same else PatchStatus.MERGED).value
            state["current"] += 1
            self._save(state)
        state["phase"] = "refreshing"
        self._save(state)
        return self._finish(state)

    # -- refresh ----------------------------------------------------------------

    def _new_patch_bytes(self, patch: Patch, commit: str, original: bytes) -> bytes:
        """The patch file for ``patch`` as ``commit`` now makes it, with minimal churn.

        If the patch still applies exactly (maybe at other lines) to the commit's parent and
        gives the commit's content, only its `@@` numbers move (or nothing at all). Otherwise
        the header is kept verbatim over a fresh diff with the patch's own context width.
        """
        paths = list(dict.fromkeys(fp.path for fp in patch.files))
        with self.store.blob_reader() as reader:
            before = {p: reader.read(f"{commit}^:{p}") for p in paths}
            after = {p: reader.read(f"{commit}:{p}") for p in paths}
        exact = apply_patch(before, patch, max_fuzz=0)
        if exact.status in (PatchStatus.APPLIED, PatchStatus.OFFSET) and all(
            exact.contents.get(p, before[p]) == after[p] for p in paths
        ):
            offsets = [h.offset for f in exact.files for h in f.hunks]
            if not any(offsets):
                return original
            return renumber_hunks(original, patch.header, offsets)
        src, dst = _prefixes(patch)
        diff = self.store.diff(
            commit + "^", commit, src_prefix=src, dst_prefix=dst, context=_context_of(patch)
        )
        new = parse_patch(diff, name=patch.name, strip=patch.strip)
        return render_patch(dataclasses.replace(new, header=patch.header, name=patch.name))

    def _finish(self, state: dict[str, Any]) -> RebaseResult:
        project = self.project
        refreshed: list[str] = []
        writes: list[tuple[Path, bytes]] = []
        dropped: list[str] = []
        for entry in state["patches"]:
            status = entry["status"]
            if status in (PatchStatus.ALREADY_APPLIED.value, PatchStatus.DROPPED.value):
                dropped.append(entry["name"])
                continue
            if entry["result"] is None:
                continue
            path = project.patches_dir / entry["name"]
            original = self._backup_bytes(state, f"patches/{entry['name']}")
            # Parse the backup, not patches/: an interrupted refresh may have rewritten it.
            old = parse_patch(original, name=entry["name"], strip=entry["strip"])
            data = self._new_patch_bytes(old, entry["result"], original)
            if data != original:
                writes.append((path, data))
                refreshed.append(entry["name"])
        for path, data in writes:
            if not path.exists() or path.read_bytes() != data:
                atomic_write(path, data)
        if dropped:
            original_series = self._backup_bytes(state, "patches/series").decode("utf-8")
            from .series import parse_series

            new_series = parse_series(original_series).without(dropped).render()
            if project.series_path.read_text(encoding="utf-8") != new_series:
                atomic_write(project.series_path, new_series.encode("utf-8"))
        versions_text = self._backup_bytes(state, "upstream-versions.toml").decode("utf-8")
        new_versions = set_base(versions_text, state["onto"])
        parse_versions(new_versions)
        # Moving base is the last write: until it lands, --abort restores everything.
        atomic_write(project.versions_path, new_versions.encode("utf-8"))
        state["refreshed"] = refreshed
        state["dropped"] = dropped
        result = self._result(state, final=RebaseState.COMPLETED)
        # Removing the state file is what makes the rebase complete; the rest is tidying
        # that the next rebase redoes if it was interrupted.
        self.state_path.unlink()
        self._tidy()
        return result

    def _tidy(self) -> None:
        worktree_remove(self.store, self.worktree_path)
        self.store.delete_refs(REBASE_REFS)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _backup_bytes(self, state: dict[str, Any], rel: str) -> bytes:
        digest: str | None = state["backup"].get(rel)
        if digest is None:
            return b""
        return (self.backup_dir / digest).read_bytes()

    def refresh_to_base(self) -> tuple[str, ...]:
        """Rewrite every patch so that it applies exactly to base (no offset, no fuzz)."""
        project = self.project
        with project.lock():
            self.guard()
            vf = project.versions
            info = self.store.release(vf.base)
            project.release_tree(vf.base)
            assert info is not None
            series = project.series
            patches = project.patches(series)
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                commits = self._series_commits(info.commit, patches, vf.base)
                written: list[str] = []
                for patch, commit in zip(patches, commits, strict=True):
                    if commit is None:
                        continue
                    path = project.patches_dir / patch.name
                    original = path.read_bytes()
                    data = self._new_patch_bytes(patch, commit, original)
                    if data != original:
                        atomic_write(path, data)
                        written.append(patch.name)
            finally:
                self.store.delete_refs(REBASE_REFS)
                shutil.rmtree(self.dir, ignore_errors=True)
            return tuple(written)

    # -- results ----------------------------------------------------------------

    def _result(self, state: dict[str, Any], final: RebaseState | None = None) -> RebaseResult:
        done: list[RebasePatchResult] = []
        pending: list[str] = []
        for entry in state["patches"]:
            if entry["status"] is None:
                pending.append(entry["name"])
                continue
            done.append(
                RebasePatchResult(
                    name=entry["name"],
                    status=PatchStatus(entry["status"]),
                    files=tuple(entry["files"]),
                    conflicts=tuple(entry["conflicts"]) if entry["status"] == "conflict" else (),
                    message=entry.get("message", ""),
                )
            )
        if final is None:
            final = RebaseState.STOPPED if state["phase"] == "stopped" else RebaseState.COMPLETED
        hints: tuple[str, ...] = ()
        if final is RebaseState.STOPPED:
            hints = (
                f"resolve the conflicts in {self.worktree_path}",
                "then run: patchkit rebase --continue   (or --skip to drop this patch, --abort to undo)",
            )
        return RebaseResult(
            base=state["base"],
            onto=state["onto"],
            state=final,
            patches=tuple(done),
            pending=tuple(pending),
            worktree=str(self.worktree_path) if final is RebaseState.STOPPED else "",
            refreshed=tuple(state.get("refreshed", ())),
            dropped=tuple(state.get("dropped", ())),
            hints=hints,
        )
