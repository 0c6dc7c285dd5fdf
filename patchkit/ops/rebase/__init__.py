"""Rebase the series onto another release with git's 3-way merge, resumable from disk.

State lives in `.patchkit/rebase/state.json`, written atomically after every step, with a
byte-for-byte backup of `patches/` and `upstream-versions.toml` taken before anything starts.
Phases: `replaying` (picking patches), `stopped` (a conflict waits for a person),
`refreshing` (writing patches/, series and base). `--abort` from any phase restores the backup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchkit.core.apply import apply_file_patch, apply_patch, unified_diff
from patchkit.core.lines import split_lines
from patchkit.core.merge import count_runs, merge3
from patchkit.core.model import (
    ChangeLine,
    PatchStatus,
    RebasePatchResult,
    RebaseResult,
    RebaseState,
)
from patchkit.core.patchfile import (
    Hunk,
    Patch,
    introduced_words,
    parse_patch,
    patch_applies_to,
    render_patch,
    words_in,
)
from patchkit.core.rangediff import change_lines, change_present, content_change_set
from patchkit.core.versions import parse_versions, set_base
from patchkit.errors import PatchkitError, RebaseStateError
from patchkit.files import atomic_write, checkpoint
from patchkit.git.objects import MODE_FILE, BlobReader, TreeEntry
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree, worktree_add, worktree_remove

if TYPE_CHECKING:
    from patchkit.project import Project

__all__ = ["Rebaser", "renumber_hunks"]

SERIES_REF = "refs/patchkit/rebase/series"
REBASE_REFS = "refs/patchkit/rebase/"
_STATE_SCHEMA = 1
_MARKER = re.compile(rb"^(<{7} |>{7} |\|{7} |={7}$)", re.M)
_DIFF_NOISE = re.compile(rb"^(?:@@ .*|index .*)$", re.M)
# A hunk that lands this many lines away from where the old patch put it is flagged.
LARGE_OFFSET = 100
# Tried in this order when the default (histogram) 3-way merge conflicts.
_RETRY_ALGORITHMS = ("patience", "minimal")
b_nl = b"\n"


def _one_replacement(hunk: Hunk) -> tuple[list[str], list[str]] | None:
    """(removed, added) lines when the hunk is context, one run of removed lines, the lines
    that replace them, context; else None (a pure insertion has nothing to be found by)."""
    kinds = "".join(ln.kind for ln in hunk.lines)
    m = re.fullmatch(r" *(-+)(\+*) *", kinds)
    if m is None:
        return None
    removed = [ln.text for ln in hunk.lines if ln.kind == "-"]
    added = [ln.text for ln in hunk.lines if ln.kind == "+"]
    return removed, added


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
        self._newly: dict[str, dict[str, tuple[str, ...]]] = {}  # "base..onto" -> word -> paths
        self._changed: dict[str, list[str]] = {}  # "base..onto" -> files upstream changed

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
            raise RebaseStateError(
                "no rebase in progress (start one with: patchkit rebase --onto VERSION)"
            )
        return state

    def _save(self, state: dict[str, Any]) -> None:
        checkpoint("save state")
        atomic_write(self.state_path, json.dumps(state, indent=2, sort_keys=True).encode())
        checkpoint("state saved")

    def _sweep_temps(self) -> None:
        """Remove temp files an interrupted atomic write left beside the project's files."""
        for path in self._project_files():
            for tmp in path.parent.glob(f".{path.name}.*.tmp"):
                tmp.unlink(missing_ok=True)

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
            # Every file below patches/: a series may name patches in subdirectories
            # (debian/foo.patch), and those must be backed up and refreshed like the others.
            files += sorted(
                p
                for p in self.project.patches_dir.rglob("*")
                if p.is_file()
                and not p.is_symlink()
                and not (p.name.startswith(".") and p.name.endswith(".tmp"))
                and p != self.project.series_path
            )
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
                if not target.exists() or target.read_bytes() != data:
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
        # Temp files of an interrupted write that were not there before.
        self._sweep_temps()

    # -- building the series on base -----------------------------------------

    def _series_commits(
        self, base_commit: str, patches: Sequence[Patch], version: str
    ) -> list[str | None]:
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
                    raise RebaseStateError(
                        f"{patch.name} does not apply to the base release ({result.status})"
                    )
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
            self._sweep_temps()
            vf = project.versions
            vf.release(onto)
            base = vf.base
            if onto == base:
                raise RebaseStateError(f"the series is already based on {onto}")
            project.release_tree(base)
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
                if p.status
                not in (
                    PatchStatus.APPLIED,
                    PatchStatus.OFFSET,
                    PatchStatus.FUZZ,
                    PatchStatus.SKIPPED,
                )
            ]
            if bad:
                raise RebaseStateError(
                    f"the series does not apply to its base {base}: {', '.join(bad)}; "
                    f"fix these first (patchkit check {base})"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            checkpoint("backup")
            backup = self._backup()
            checkpoint("series commits")
            commits = self._series_commits(base_info.commit, patches, base)
            checkpoint("series committed")
            state: dict[str, Any] = {
                "schema": _STATE_SCHEMA,
                "base": base,
                "onto": onto,
                "base_commit": base_info.commit,
                "onto_commit": onto_info.commit,
                "phase": "replaying",
                "current": 0,
                "head": onto_info.commit,
                "worktree_ready": False,
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
                        "risk": [],
                        "changes": [],
                    }
                    for p, c in zip(patches, commits, strict=True)
                ],
            }
            self._save(state)
            self._make_worktree(state)
            return self._run(state)

    def _make_worktree(self, state: dict[str, Any]) -> None:
        """(Re)create the worktree at the recorded head; recorded as ready only once complete."""
        checkpoint("worktree")
        worktree_remove(self.store, self.worktree_path)
        touched = {f for p in state["patches"] for f in p["files"]}
        worktree_add(self.store, self.worktree_path, state["head"], touched)
        checkpoint("worktree added")
        state["worktree_ready"] = True
        self._save(state)

    def resume(self) -> RebaseResult:
        with self.project.lock():
            state = self._require()
            self._sweep_temps()
            wt = Worktree(self.store, self.worktree_path)
            if not state.get("worktree_ready", True) or not self.worktree_path.exists():
                if state["phase"] == "stopped":
                    raise RebaseStateError(
                        f"the rebase worktree {self.worktree_path} is gone; "
                        "run patchkit rebase --abort and start again"
                    )
                self._make_worktree(state)
            if state["phase"] == "stopped":
                entry = state["patches"][state["current"]]
                self._check_resolved(wt, entry)
                self._check_clean(wt, state, entry)
                checkpoint("continue: add")
                wt.add_all()
                wt.quit_pick()
                # A kill after the commit below moved HEAD: count from the recorded head.
                wt.reset_soft(state["head"])
                if wt.index_matches_head():
                    entry["status"] = PatchStatus.ALREADY_APPLIED.value
                    entry["message"] = "resolved to no change"
                else:
                    checkpoint("continue: commit")
                    entry["result"] = wt.commit(self._message(entry["name"]))
                    checkpoint("continue: committed")
                    entry["status"] = PatchStatus.MERGED.value
                    entry["message"] = "conflict resolved by hand"
                    entry["changes"] = [c.to_dict() for c in self._changes(entry, entry["result"])]
                    state["head"] = entry["result"]
                state["current"] += 1
                state["phase"] = "replaying"
                self._save(state)
            elif state["phase"] == "replaying":
                # Interrupted within a step: redo it from the last recorded head.
                checkpoint("redo step")
                wt.quit_pick()
                wt.reset_hard(state["head"])
            return self._run(state)

    def skip(self) -> RebaseResult:
        with self.project.lock():
            state = self._require()
            if state["phase"] != "stopped":
                raise RebaseStateError("nothing to skip: the rebase is not stopped on a conflict")
            wt = Worktree(self.store, self.worktree_path)
            checkpoint("skip: reset")
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
            checkpoint("abort: restore")
            self._restore(state["backup"])
            result = self._result(state, final=RebaseState.ABORTED)
            checkpoint("abort: drop state")
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

    def _check_clean(self, wt: Worktree, state: dict[str, Any], entry: dict[str, Any]) -> None:
        """Refuse --continue when files outside the stopped patch's files were changed.

        Those changes would silently become part of this patch; the person decides instead.
        """
        own = set(entry["files"]) | set(entry["conflicts"])
        stray = [p for p in wt.changed_paths(state["head"]) if p not in own]
        if stray:
            raise RebaseStateError(
                f"the rebase worktree has changes outside {entry['name']}'s files: "
                f"{', '.join(stray)}; undo them (git -C {self.worktree_path} checkout "
                f"{state['head'][:12]} -- FILE) or add those files to the patch by hand, "
                "then run patchkit rebase --continue"
            )

    def _same_change(self, old_commit: str, new_commit: str) -> bool:
        """Whether two commits make the same diff, line numbers aside."""

        def body(commit: str) -> bytes:
            text = self.store.diff(commit + "^", commit, src_prefix="a/", dst_prefix="b/")
            # Line numbers, section headings and blob ids differ whenever the file moved.
            return _DIFF_NOISE.sub(b"", text)

        return body(old_commit) == body(new_commit)

    def _old_patch(self, state: dict[str, Any], entry: dict[str, Any]) -> Patch:
        data = self._backup_bytes(state, f"patches/{entry['name']}")
        return parse_patch(data, name=entry["name"], strip=entry["strip"])

    def _blobs(self, rev: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        with self.store.blob_reader() as reader:
            return {p: reader.read(f"{rev}:{p}") for p in paths}

    def _changes(self, entry: dict[str, Any], result: str) -> tuple[ChangeLine, ...]:
        """The +/- lines in which the patch as ``result`` makes it differs from the old patch."""
        paths = entry["files"]
        old = content_change_set(
            self._blobs(entry["commit"] + "^", paths), self._blobs(entry["commit"], paths)
        )
        new = content_change_set(self._blobs(result + "^", paths), self._blobs(result, paths))
        return change_lines(old, new)

    def _risks(
        self, state: dict[str, Any], entry: dict[str, Any], head: str, result: str
    ) -> list[str]:
        """Why a clean 3-way result still deserves a look (see docs/rebase.md, "Risk")."""
        patch = self._old_patch(state, entry)
        paths = list(patch.paths)
        before = self._blobs(head, paths)
        after = self._blobs(result, paths)
        risks: list[str] = []
        fuzzy = apply_patch(before, patch)
        if fuzzy.status in (PatchStatus.APPLIED, PatchStatus.OFFSET, PatchStatus.FUZZ):
            differ = [p for p in paths if fuzzy.contents.get(p, before[p]) != after[p]]
            if differ:
                risks.append(
                    f"patch(1)-style apply and the 3-way merge give different {', '.join(differ)}"
                )
            for h in fuzzy.hunks:
                if abs(h.offset) >= LARGE_OFFSET:
                    risks.append(f"hunk {h.index} of {h.file} moved {h.offset:+d} lines")
        if change_present(patch, before):
            risks.append("upstream may already have this change (its lines are already there)")
        elsewhere = self._absorbed_elsewhere(state, patch)
        if elsewhere:
            risks.append(elsewhere)
        return risks

    def _absorbed_elsewhere(self, state: dict[str, Any], patch: Patch) -> str:
        """Distinctive words this patch adds that upstream newly has too (e.g. upstream now
        sends systemd's "READY=1" itself): it may have taken the change in another form."""
        words = introduced_words(patch)
        if not words:
            return ""
        newly = self._newly_upstream(state)
        hits = [w for w in words if w in newly]
        if not hits:
            return ""
        where = sorted({p for w in hits for p in newly[w]})
        shown = ", ".join(hits[:3]) + (f" and {len(hits) - 3} more" if len(hits) > 3 else "")
        return (
            f"upstream newly has {shown}, which this patch adds (in {', '.join(where[:3])}"
            f"{', ...' if len(where) > 3 else ''}): it may have taken this change in another form"
        )

    def _newly_upstream(self, state: dict[str, Any]) -> dict[str, tuple[str, ...]]:
        """Word -> files of the new release, for the series' introduced words that the new
        release has and the old one had nowhere. Once per process, for the whole series.

        A word new to the release can only be in a file that changed; whether the old
        release had it anywhere is one `git grep -l` for those few words.
        """
        key = f"{state['base_commit']}..{state['onto_commit']}"
        if key in self._newly:
            return self._newly[key]
        # Kept beside the state: each --continue/--skip is a new process; a lost or corrupt
        # file only costs the time to compute it again.
        cache = self.dir / "newly-upstream.json"
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            doc = json.loads(cache.read_bytes())
            if doc.get("key") == key:
                self._newly[key] = {str(w): tuple(map(str, p)) for w, p in doc["words"].items()}
                return self._newly[key]
        wanted = {
            w
            for e in state["patches"]
            if e["commit"]
            for w in introduced_words(self._old_patch(state, e))
        }
        found: dict[str, set[str]] = {}
        if wanted:
            changed = self._upstream_changed(state)
            for path, text in self._texts(state["onto_commit"], changed):
                for w in words_in(text) & wanted:
                    found.setdefault(w, set()).add(path)
        if found:
            old_files = self.store.files_with_words(state["base_commit"], sorted(found))
            for _, text in self._texts(state["base_commit"], old_files):
                for w in words_in(text) & found.keys():
                    del found[w]
        self._newly[key] = {w: tuple(sorted(paths)) for w, paths in found.items()}
        with contextlib.suppress(OSError, PatchkitError):
            atomic_write(
                cache, json.dumps({"key": key, "words": self._newly[key]}, sort_keys=True).encode()
            )
        return self._newly[key]

    def _upstream_changed(self, state: dict[str, Any]) -> list[str]:
        """Files upstream added or changed from the old base to the new release (once)."""
        key = f"{state['base_commit']}..{state['onto_commit']}"
        if key not in self._changed:
            self._changed[key] = self.store.changed_paths(
                state["base_commit"], state["onto_commit"]
            )
        return self._changed[key]

    def _texts(self, rev: str, paths: Sequence[str]) -> list[tuple[str, str]]:
        """(path, text) of the text files among ``paths`` in ``rev`` (binary ones left out)."""
        with self.store.blob_reader() as reader:
            ids = reader.blob_ids([(rev, p) for p in paths])
            blobs = reader.read_objects(sorted({i for i in ids if i}))
        out = []
        for path, oid in zip(paths, ids, strict=True):
            data = blobs.get(oid) if oid else None
            if data is not None and b"\0" not in data[:8000]:
                out.append((path, data.decode("utf-8", "surrogateescape")))
        return out

    def _upstream_has(self, state: dict[str, Any], entry: dict[str, Any], head: str) -> str:
        """Why the conflicting patch's change is already upstream, or "" if it is not."""
        patch = self._old_patch(state, entry)
        files = self._blobs(head, list(patch.paths))
        if apply_patch(files, patch, max_fuzz=0).status is PatchStatus.ALREADY_APPLIED:
            return "upstream already contains this change (the patch reverse-applies)"
        if change_present(patch, files):
            return "upstream already contains this change's lines (context differs)"
        return ""

    def _resolve_hunks(
        self,
        wt: Worktree,
        commit: str,
        head: str,
        files: Sequence[str],
        moved_from: Sequence[str],
        moves: list[str],
    ) -> tuple[list[str], int, list[str]]:
        """Redo each conflicted file with :func:`merge3`, else follow lines upstream moved to
        another file; returns (files still conflicting, adjacent pairs resolved, where the
        remaining conflicts are). ``moved_from``: files upstream changed or added (where moved
        lines can have gone); ``moves`` receives one note per hunk that followed them."""
        left: list[str] = []
        where: list[str] = []
        adjacent = 0
        with self.store.blob_reader() as reader:
            for rel in files:
                path = self.worktree_path / rel
                base = reader.read(f"{commit}^:{rel}")
                ours = reader.read(f"{head}:{rel}")
                theirs = reader.read(f"{commit}:{rel}")
                if (
                    base is None
                    or ours is None
                    or theirs is None
                    or path.is_symlink()
                    or not path.is_file()
                ):
                    left.append(rel)
                    continue
                git_regions = len(re.findall(rb"^<{7} ", path.read_bytes(), re.M))

                def lines(data: bytes) -> list[str]:
                    return split_lines(data.decode("utf-8", "surrogateescape"))

                merged = merge3(
                    lines(base), lines(ours), lines(theirs), labels=("upstream", "base", "patch")
                )
                data = "".join(merged.lines).encode("utf-8", "surrogateescape")
                # A clean merge3 result with no adjacent pair means it aligned the lines
                # differently from git, not that it found independent edits: not trusted.
                if merged.conflicts == 0 and merged.adjacent > 0:
                    path.write_bytes(data)
                    wt.add_paths([rel])
                    adjacent += merged.adjacent
                    continue
                relocated = self._follow_moved_lines(
                    reader, rel, base, ours, theirs, head, moved_from
                )
                if relocated is not None:
                    contents, notes = relocated
                    for target, new_data in contents.items():
                        dest = self.worktree_path / target
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(new_data)
                    wt.add_paths(sorted(contents))
                    moves.extend(notes)
                    continue
                left.append(rel)
                if 0 < merged.conflicts < git_regions:
                    path.write_bytes(data)  # hunk by hunk: only the truly conflicting ones stay
                    where += [f"{rel}:{n}" for n in merged.regions]
                else:
                    text = path.read_bytes()
                    where += [
                        f"{rel}:{text.count(b_nl, 0, m.start()) + 1}"
                        for m in re.finditer(rb"^<{7} ", text, re.M)
                    ]
        return left, adjacent, where

    def _follow_moved_lines(
        self,
        reader: BlobReader,
        rel: str,
        base: bytes,
        ours: bytes,
        theirs: bytes,
        head: str,
        candidates: Sequence[str],
    ) -> tuple[dict[str, bytes], list[str]] | None:
        """Upstream moved the lines a hunk edits into another file (a file split in two, a
        block moved to a new module): make the change there.

        Only for a hunk whose lines are gone from ``rel`` and found in exactly one file that
        upstream changed or added, exactly once: its whole pre-image (context and removed
        lines; applied as a hunk, no fuzz), or else its removed lines alone when the hunk is
        one replacement (those lines are replaced in place; the context there differs, which
        the note says). Every other hunk must apply exactly (maybe at other lines) to ``rel``.
        Returns the new contents by path and a note per moved hunk, or None.
        """
        fp = unified_diff(base, theirs, rel)
        if fp is None:
            return None

        def lines(data: bytes) -> list[str]:
            return split_lines(data.decode("utf-8", "surrogateescape"))

        def text_of(path: str) -> list[str] | None:
            if path not in texts:
                data = reader.read(f"{head}:{path}")
                texts[path] = lines(data) if data is not None and b"\0" not in data[:8000] else None
            return texts[path]

        here = lines(ours)
        texts: dict[str, list[str] | None] = {}
        stay: list[Hunk] = []
        moves: list[
            tuple[Hunk, str, list[str] | None, list[str]]
        ] = []  # hunk, target, removed (anchored), added
        wanted = set(candidates) - {rel}
        for hunk in fp.hunks:
            pre = list(hunk.old_lines)
            if count_runs(here, pre):
                stay.append(hunk)
                continue
            change = _one_replacement(hunk)
            if change is None or count_runs(here, change[0]):
                return None  # not one block of removed lines, or they are still here
            removed, added = change
            longest = max((ln.strip() for ln in removed), key=len)
            if len(longest) < 8:
                return None  # too little to recognise the lines elsewhere
            found = [p for p in self.store.files_containing(head, longest) if p in wanted]
            exact = [
                (p, n) for p in found if (t := text_of(p)) is not None and (n := count_runs(t, pre))
            ]
            anchored = [
                (p, n)
                for p in found
                if (t := text_of(p)) is not None and (n := count_runs(t, removed))
            ]
            if len(exact) == 1 and exact[0][1] == 1:
                moves.append((hunk, exact[0][0], None, added))
            elif len(anchored) == 1 and anchored[0][1] == 1:
                moves.append((hunk, anchored[0][0], removed, added))
            else:
                return None
        if not moves:
            return None
        out: dict[str, bytes] = {rel: ours}  # every hunk moved: upstream's file as it is
        if stay:
            kept = apply_file_patch(ours, dataclasses.replace(fp, hunks=tuple(stay)), max_fuzz=0)
            if kept.status not in (PatchStatus.APPLIED, PatchStatus.OFFSET) or kept.content is None:
                return None
            out[rel] = kept.content
        notes = []
        for hunk, target, removed_lines, added in moves:
            current = text_of(target) if target not in out else lines(out[target])
            assert current is not None
            if removed_lines is None:
                one = dataclasses.replace(fp, old_path=target, new_path=target, hunks=(hunk,))
                result = apply_file_patch(
                    "".join(current).encode("utf-8", "surrogateescape"), one, max_fuzz=0
                )
                if (
                    result.status not in (PatchStatus.APPLIED, PatchStatus.OFFSET)
                    or result.content is None
                ):
                    return None
                out[target] = result.content
                notes.append(f"a hunk of {rel} followed upstream's lines to {target}")
            else:
                at = next(
                    i
                    for i in range(len(current))
                    if current[i : i + len(removed_lines)] == removed_lines
                )
                current = [*current[:at], *added, *current[at + len(removed_lines) :]]
                out[target] = "".join(current).encode("utf-8", "surrogateescape")
                notes.append(
                    f"a hunk of {rel} followed upstream's lines to {target} (placed by the lines it "
                    "replaces, found once there; the context around them differs)"
                )
        return out, notes

    def _replay(self, wt: Worktree, state: dict[str, Any], entry: dict[str, Any]) -> bool:
        """Replay one patch onto the head; False when it stops on a conflict."""
        commit, head = entry["commit"], state["head"]
        notes: list[str] = []
        risks: list[str] = []
        checkpoint(f"pick {entry['name']}")
        ok, message = wt.pick(commit)
        if not ok and not wt.unmerged():
            raise RebaseStateError(
                f"git could not replay {entry['name']}: {message.splitlines()[-1] if message else '?'}"
            )
        for algorithm in () if ok else _RETRY_ALGORITHMS:
            wt.quit_pick()
            wt.reset_hard(head)
            checkpoint(f"pick {entry['name']} {algorithm}")
            ok, message = wt.pick(commit, algorithm=algorithm)
            if ok:
                notes.append(f"merged with the {algorithm} diff algorithm (histogram conflicted)")
                break
        if not ok:
            wt.quit_pick()
            wt.reset_hard(head)
            checkpoint(f"pick {entry['name']} again")
            wt.pick(commit)
            conflicts = wt.unmerged()
            absorbed = self._upstream_has(state, entry, head)
            if absorbed:
                wt.quit_pick()
                wt.reset_hard(head)
                entry["status"] = PatchStatus.ALREADY_APPLIED.value
                entry["message"] = absorbed + ": dropped from the series"
                entry["risk"] = [
                    "the 3-way merge conflicted; check that upstream's version is what you want"
                ]
                return True
            checkpoint(f"resolve {entry['name']}")
            moves: list[str] = []
            moved_from = self._upstream_changed(state)
            left, adjacent, where = self._resolve_hunks(
                wt, commit, head, conflicts, moved_from, moves
            )
            if left:
                entry["status"] = PatchStatus.CONFLICT.value
                entry["conflicts"] = left
                entry["message"] = (
                    f"{len(where)} conflicting hunk(s) left at {', '.join(where)}" if where else ""
                )
                return False
            if moves:
                risks.extend(f"{m}: check that it belongs there" for m in moves)
                entry["files"] = sorted(set(entry["files"]) | set(wt.changed_paths(head)))
            if adjacent:
                risks.append(
                    f"upstream changed lines right next to this patch's in {', '.join(conflicts)}; "
                    "merged as independent edits"
                )
            notes.append(f"conflicts in {', '.join(conflicts)} resolved hunk by hunk")
        wt.quit_pick()
        if wt.index_matches_head():
            entry["status"] = PatchStatus.ALREADY_APPLIED.value
            entry["message"] = "upstream already contains this change: dropped from the series"
            return True
        checkpoint(f"commit {entry['name']}")
        entry["result"] = wt.commit(self._message(entry["name"]))
        checkpoint(f"committed {entry['name']}")
        state["head"] = entry["result"]
        # Same change if the patch file itself still applies exactly (maybe at other lines)
        # and makes this commit, or if git's diffs agree line numbers aside.
        same = self._exact_offsets(self._old_patch(state, entry), entry["result"]) is not None
        same = same or self._same_change(commit, entry["result"])
        entry["status"] = (PatchStatus.APPLIED if same and not notes else PatchStatus.MERGED).value
        entry["risk"] = risks + self._risks(state, entry, head, entry["result"])
        entry["changes"] = [c.to_dict() for c in self._changes(entry, entry["result"])]
        entry["message"] = "; ".join(notes)
        return True

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
            if not self._replay(wt, state, entry):
                state["phase"] = "stopped"
                self._save(state)
                return self._result(state)
            state["current"] += 1
            self._save(state)
        state["phase"] = "refreshing"
        self._save(state)
        return self._finish(state)

    # -- refresh ----------------------------------------------------------------

    def _exact_offsets(self, patch: Patch, commit: str) -> list[int] | None:
        """Each hunk's offset if ``patch`` applies exactly (no fuzz) to ``commit``'s parent
        and makes ``commit``'s content; None otherwise."""
        paths = list(dict.fromkeys(fp.path for fp in patch.files))
        before = self._blobs(commit + "^", paths)
        after = self._blobs(commit, paths)
        exact = apply_patch(before, patch, max_fuzz=0)
        if exact.status not in (PatchStatus.APPLIED, PatchStatus.OFFSET) or any(
            exact.contents.get(p, before[p]) != after[p] for p in paths
        ):
            return None
        return [h.offset for f in exact.files for h in f.hunks]

    def _new_patch_bytes(self, patch: Patch, commit: str, original: bytes) -> bytes:
        """The patch file for ``patch`` as ``commit`` now makes it, with minimal churn.

        If the patch still applies exactly (maybe at other lines) to the commit's parent and
        gives the commit's content, only its `@@` numbers move (or nothing at all). Otherwise
        the header is kept verbatim over a fresh diff with the patch's own context width.
        """
        offsets = self._exact_offsets(patch, commit)
        if offsets is not None:
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
            from patchkit.core.series import parse_series

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
        checkpoint("finish: drop state")
        self.state_path.unlink()
        checkpoint("finish: tidy")
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
            self._sweep_temps()
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
                        checkpoint(f"refresh {patch.name}")
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
                    risk=tuple(entry.get("risk", ())),
                    changes=tuple(ChangeLine(**c) for c in entry.get("changes", ())),
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
