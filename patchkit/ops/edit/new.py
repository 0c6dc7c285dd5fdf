"""``patchkit new NAME``: an empty diff (DEP-3 header) written to ``patches/`` and put in the
series after a patch; when the worktree is open, an empty commit for it and HEAD moved there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from patchkit.core.model import ChangeKind
from patchkit.core.patchfile import check_relative_path
from patchkit.errors import EditStateError, NotFoundError
from patchkit.files import atomic_write, checkpoint
from patchkit.git.commits import empty_commit
from patchkit.kinds import kind_of
from patchkit.ops.edit import messages
from patchkit.ops.edit.guard import not_busy
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.recover import load
from patchkit.ops.edit.series import reorder
from patchkit.ops.edit.session import EditSession
from patchkit.ops.edit.state import EditEntry
from patchkit.ops.edit.worktree import settle, unsaved

__all__ = ["new"]


def _check_name(name: str) -> None:
    problem = check_relative_path(name)
    if problem:
        raise EditStateError(f"'{name}': {problem}; name the patch relative to patches/")
    if kind_of(name) is not ChangeKind.DIFF or name == "series":
        raise EditStateError(
            f"'{name}': patchkit new makes a diff (NAME.patch); write an edit or overlay "
            "in patches/ by hand"
        )


def new(
    s: EditSession, name: str, *, after: str | None = None, message: str | None = None
) -> EditOutcome:
    """``patches/NAME`` (``Description: message``) in the series after ``after`` (default:
    last); its commit and HEAD in the worktree when it is open (and clean)."""
    ws = s.ws
    with ws.lock():
        _check_name(name)
        path = ws.patches_dir / name
        series = ws.series
        if path.exists() or path.is_symlink() or name in series.names:
            raise EditStateError(f"patches/{name} exists already; choose another name")
        if after is not None and after not in series.names:
            raise NotFoundError(
                f"'{after}' is not in patches/series (entries: {', '.join(series.names) or 'none'})"
            )
        record = load(s)
        wt_open = record is not None and s.worktree_path.exists()
        if record is not None and wt_open:
            not_busy(record)
            lost = unsaved(s, record)
            if lost or s.wt.head() != record.tip_commit:
                raise EditStateError(
                    f"the edit worktree has {lost or 'HEAD moved off its patch'}; "
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
            return EditOutcome(action="new", tip=name, created=(name,), written=(name, "series"))
        entries = list(record.entries)
        prev = [e for e in entries[: min(at, len(entries))] if e.commit]
        parent = prev[-1].commit if prev and prev[-1].commit else record.base_commit
        subject, body = messages.subject_body(header, name)
        commit = empty_commit(s.store, parent, messages.commit_message(name, subject, body))
        entries.insert(
            at,
            EditEntry(name=name, commit=commit, digest=hashlib.sha256(data).hexdigest()),
        )
        record = record.with_(entries=tuple(entries), tip=name)
        s.state.save(record)
        settle(s, record)
        return EditOutcome(
            action="new",
            worktree=str(s.worktree_path),
            version=record.version,
            tip=name,
            created=(name,),
            written=(name, "series"),
        )
