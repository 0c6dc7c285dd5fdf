"""``patchkit edit [PATCH]``: the chain of commits (one per series entry, written by one
`git fast-import`) on the release and the sparse worktree on it, HEAD at PATCH's commit; or
an open worktree re-opened (HEAD moved, widened, or made again when ``patches/`` changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from patchkit.core.model import FAILED
from patchkit.core.series import Series
from patchkit.errors import EditStateError, NotFoundError
from patchkit.files import checkpoint
from patchkit.git.commits import ChainStep, commit_chain, open_worktree, uncommitted_paths
from patchkit.git.objects import MODE_FILE
from patchkit.kinds import Change
from patchkit.ops.check import SeriesOnTree, apply_series
from patchkit.ops.edit import messages
from patchkit.ops.edit.compare import digest
from patchkit.ops.edit.guard import not_busy, rebase_guard
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.recover import load
from patchkit.ops.edit.session import EDIT_REF, EditSession
from patchkit.ops.edit.state import EditEntry, EditStateRecord
from patchkit.ops.edit.worktree import settle, widen

__all__ = ["open_edit"]


def open_edit(
    s: EditSession, patch: str | None = None, *, version: str | None = None, add: Sequence[str] = ()
) -> EditOutcome:
    """Open (or re-open) the edit worktree on ``version`` (default base), HEAD at ``patch``."""
    with s.ws.lock():
        rebase_guard(s.ws.state_dir)
        record = load(s)
        if record is not None and s.worktree_path.exists():
            return _reopen(s, record, patch, version, add)
        return _build(s, patch, version=version, globs=tuple(add))


def _check_patch(series: Series, patch: str | None) -> None:
    names = series.names
    if patch is not None and patch not in names:
        raise NotFoundError(
            f"'{patch}' is not in patches/series (entries: {', '.join(names) or 'none'})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Steps:
    """The commits of the chain, for the entries in range, and what each entry touches."""

    steps: tuple[ChainStep, ...]
    files_of: tuple[tuple[str, ...], ...]  # one per change, in range or not
    notes: tuple[str, ...]


def _steps(
    changes: Sequence[Change], applied: SeriesOnTree, modes: dict[str, str], version: str
) -> _Steps:
    """One commit per change in range: what it does (``Change.apply``) over the release.
    ``modes``: path -> git mode on the release, kept up to date as the chain goes."""
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
    return _Steps(steps=tuple(steps), files_of=tuple(files_of), notes=tuple(notes))


def _build(
    s: EditSession, patch: str | None, *, version: str | None, globs: tuple[str, ...]
) -> EditOutcome:
    ws, store = s.ws, s.store
    vf = ws.versions
    base = vf.base
    version = version or base
    tree = ws.release_tree(version)
    info = store.release(version)
    assert info is not None
    series = ws.series
    _check_patch(series, patch)
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
    made = _steps(changes, applied, modes, version)
    checkpoint("edit: chain")
    commits = iter(commit_chain(store, info.commit, made.steps, ref=EDIT_REF))
    entries = tuple(
        EditEntry(
            name=c.name,
            kind=c.kind,
            strip=line.strip,
            commit=next(commits) if c.applies_to(version) else None,
            digest=digest(ws.patches_dir / c.name),
            files=files,
        )
        for c, line, files in zip(changes, series.entries, made.files_of, strict=True)
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
    s.dir.mkdir(parents=True, exist_ok=True)
    checkpoint("edit: worktree")
    sparse = set(touched) | set(extra)
    open_worktree(store, s.worktree_path, record.tip_commit, sparse, step=checkpoint)
    s.wt.git("update-ref", "-d", "ORIG_HEAD", check=False)
    s.state.save(record)
    return EditOutcome(
        action="open",
        worktree=str(s.worktree_path),
        version=version,
        tip=tip,
        notes=made.notes,
    )


def _reopen(
    s: EditSession,
    record: EditStateRecord,
    patch: str | None,
    version: str | None,
    add: Sequence[str],
) -> EditOutcome:
    not_busy(record)
    wt = s.wt
    clean = not uncommitted_paths(wt) and wt.head() == record.tip_commit
    series = s.ws.series
    _check_patch(series, patch)
    globs = tuple(dict.fromkeys([*record.globs, *add]))
    same = (
        (version is None or version == record.version)
        and tuple((e.name, e.strip) for e in record.entries)
        == tuple((e.name, e.strip) for e in series.entries)
        and all(e.digest == digest(s.ws.patches_dir / e.name) for e in record.entries)
    )
    if not clean:
        if (patch is not None and patch != record.tip) or not same:
            raise EditStateError(
                f"the edit worktree {s.worktree_path} has unsaved changes; save them "
                "first (patchkit edit --save) or drop them (patchkit edit --discard --force)"
            )
        widen(s, add)
        record = record.with_(globs=globs)
        s.state.save(record)
        return EditOutcome(
            action="open",
            worktree=str(s.worktree_path),
            version=record.version,
            tip=record.tip,
        )
    if not same:
        return _build(s, patch, version=version or record.version, globs=globs)
    with_commit = [e for e in record.entries if e.commit]
    tip = patch or (with_commit[-1].name if with_commit else "")
    if tip and record.entry(tip).commit is None:
        raise EditStateError(
            f"{tip}: outside its Upstream-Versions range on {record.version}; nothing to edit there"
        )
    record = record.with_(tip=tip, globs=globs)
    settle(s, record)
    widen(s, add)
    s.state.save(record)
    return EditOutcome(
        action="open", worktree=str(s.worktree_path), version=record.version, tip=tip
    )
