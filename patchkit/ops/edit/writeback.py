"""The end of a save: from the worktree's final chain, the new entries, the patch files whose
change differs (a diff's header, ``-pN`` and context width kept), new patches from commits
without a trailer, and ``series`` in the chain's order; all swapped into ``patches/`` at once
(:mod:`patchkit.ops.edit.swap`), journalled first so a kill is rolled forward or back.
"""

from __future__ import annotations

import dataclasses
import hashlib

from patchkit.core.model import ChangeKind
from patchkit.core.patchfile import (
    Patch,
    context_width,
    diff_prefixes,
    parse_patch,
    render_patch,
)
from patchkit.errors import NotFoundError
from patchkit.files import checkpoint
from patchkit.git.commits import commit_diffs, rewrite_messages
from patchkit.kinds import Change, DiffChange
from patchkit.ops.edit import messages
from patchkit.ops.edit.compare import changed_files, per_file
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.series import reorder
from patchkit.ops.edit.session import EDIT_REF, EditSession
from patchkit.ops.edit.state import EditEntry, EditPhase, EditStateRecord, SwapJournal
from patchkit.ops.edit.swap import build_new_set, manifest, swap_in
from patchkit.ops.edit.worktree import chain as chain_of
from patchkit.ops.edit.worktree import settle

__all__ = ["write"]


def write(s: EditSession, record: EditStateRecord, *, action: str = "save") -> EditOutcome:
    """From the worktree's final chain: the new entries, files and series; swapped in."""
    save = record.save
    assert save is not None
    ws, store = s.ws, s.store
    # What a kill before the swap goes back to: the commits as the replay left them
    # (the trailers given below are given again, to the same commit ids).
    redo = record
    chain = chain_of(s, record, save.head)
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
                if changed_files(cd.diff, old):
                    data = _rediff(s, entry, parents[0], commit)
                    path = ws.patches_dir / entry.name
                    if not path.exists() or path.read_bytes() != data:
                        writes[entry.name] = data
            files = tuple(dict.fromkeys([*entry.files, *per_file(cd.diff)]))
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
            data = _render(s, name, 1, header, parents[0], commit, context=3)
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
                files=tuple(per_file(cd.diff)),
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
            temp=str(s.temp),
            old=str(s.old),
            manifest=tuple(sorted(wanted.items())),
            entries=final.entries,
            tip=tip,
            written=written,
        )
        s.state.save(redo.with_(phase=EditPhase.WRITING, swap=journal))
        build_new_set(ws.patches_dir, s.temp, writes)
        swap_in(ws.patches_dir, s.temp, s.old)
    # HEAD onto the (re-trailered) tip before the state says the save is over: a kill
    # in between is recovered from the journal, which settles HEAD again.
    settle(s, final)
    checkpoint("edit: adopt")
    s.state.save(final)
    store.git("update-ref", EDIT_REF, save.head)
    return EditOutcome(
        action=action,
        worktree=str(s.worktree_path),
        version=record.version,
        tip=tip,
        written=written,
        created=tuple(created),
        dropped=tuple(dropped),
    )


def _rediff(s: EditSession, entry: EditEntry, parent: str, commit: str) -> bytes:
    """A changed diff: its header byte for byte over the commit's diff, rendered with its
    own ``-pN`` prefixes and context width; a format-patch signature kept."""
    original = (s.ws.patches_dir / entry.name).read_bytes()
    change = _change(s, entry.name)
    assert isinstance(change, DiffChange)
    patch = change.patch
    header = patch.header
    if not patch.files and header and not header.endswith("\n\n"):
        header += "\n" if header.endswith("\n") else "\n\n"  # a patch new made: no diff yet
    data = _render(
        s, entry.name, patch.strip, header, parent, commit, context=context_width(patch),
        prefixes=diff_prefixes(patch),
    )  # fmt: skip
    return data + messages.signature_tail(original)


def _render(
    s: EditSession,
    name: str,
    strip: int,
    header: str,
    parent: str,
    commit: str,
    *,
    context: int,
    prefixes: tuple[str, str] = ("a/", "b/"),
) -> bytes:
    diff = s.store.diff(
        parent, commit, src_prefix=prefixes[0], dst_prefix=prefixes[1], context=context
    )
    if not diff.strip():
        return render_patch(Patch(name=name, strip=strip, header=header))
    new = parse_patch(diff, name=name, strip=strip)
    return render_patch(dataclasses.replace(new, header=header, name=name))


def _change(s: EditSession, name: str) -> Change:
    for change in s.ws.changes():
        if change.name == name:
            return change
    raise NotFoundError(f"'{name}' is not in patches/series")
