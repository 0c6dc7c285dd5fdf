"""The edit state: a typed, versioned record in ``.patchkit/edit/state.json`` (written
atomically after every step), the one source of truth between ``patchkit edit`` processes.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchkit.core.model import ChangeKind
from patchkit.errors import EditStateError
from patchkit.files import atomic_write, checkpoint

__all__ = [
    "SCHEMA",
    "EditEntry",
    "EditPhase",
    "EditStateFile",
    "EditStateRecord",
    "SaveProgress",
    "SwapJournal",
]

SCHEMA = 1


class EditPhase(enum.StrEnum):
    OPEN = "open"  # the worktree is open; nothing in progress
    SAVING = "saving"  # a save is amending/replaying in the worktree
    STOPPED = "stopped"  # a replayed patch conflicts: the person resolves, --continue/--abort
    WRITING = "writing"  # the new patches/ is being swapped in (see ``swap``)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class EditEntry:
    """One series entry and its commit in the worktree."""

    name: str
    kind: ChangeKind = ChangeKind.DIFF
    strip: int = 1
    commit: str | None  # None: outside its Upstream-Versions range on this release
    digest: str  # SHA-256 of its file in patches/ when the commit was made
    files: tuple[str, ...] = ()  # what it reads or writes on the release

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "strip": self.strip,
            "commit": self.commit,
            "digest": self.digest,
            "files": list(self.files),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveProgress:
    """A save under way in the worktree: enough to redo it or put the worktree back."""

    before: str  # HEAD before the save
    dirty: bool  # whether there were uncommitted changes (abort gives them back)
    amended: str  # the commit holding HEAD's patch with those changes (== before if clean)
    picks: tuple[str, ...] = ()  # the later commits still to replay, in order
    head: str = ""  # the last commit of the replay so far
    stopped_on: str = ""  # the patch whose replay conflicts
    conflicts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "dirty": self.dirty,
            "amended": self.amended,
            "picks": list(self.picks),
            "head": self.head,
            "stopped_on": self.stopped_on,
            "conflicts": list(self.conflicts),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapJournal:
    """The last step of a save: ``temp`` (the complete new patches/) swaps with patches/.

    ``manifest`` is the new set (path relative to patches/ -> SHA-256): patches/ equal to it
    means the swap happened. ``entries``/``tip`` are the record to adopt then."""

    temp: str
    old: str  # where the fallback (no RENAME_EXCHANGE) moves the old set first
    manifest: tuple[tuple[str, str], ...]
    entries: tuple[EditEntry, ...]
    tip: str
    written: tuple[str, ...] = ()  # the files the save rewrote or created

    def to_dict(self) -> dict[str, Any]:
        return {
            "temp": self.temp,
            "old": self.old,
            "manifest": dict(self.manifest),
            "entries": [e.to_dict() for e in self.entries],
            "tip": self.tip,
            "written": list(self.written),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EditStateRecord:
    """An open edit worktree (schema 1)."""

    schema: int = SCHEMA
    version: str  # the release the worktree is on
    base_commit: str  # that release's commit in the store
    entries: tuple[EditEntry, ...]
    tip: str  # the entry HEAD is at when nothing is in progress ("": the release itself)
    globs: tuple[str, ...] = ()  # the --add globs, kept for re-opening
    phase: EditPhase = EditPhase.OPEN
    save: SaveProgress | None = None
    swap: SwapJournal | None = None

    def entry(self, name: str) -> EditEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    @property
    def tip_commit(self) -> str:
        """The commit HEAD is at when the worktree is as patchkit left it."""
        if not self.tip:
            return self.base_commit
        commit = self.entry(self.tip).commit
        return commit or self.base_commit

    def with_(self, **fields: Any) -> EditStateRecord:
        return dataclasses.replace(self, **fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "version": self.version,
            "base_commit": self.base_commit,
            "entries": [e.to_dict() for e in self.entries],
            "tip": self.tip,
            "globs": list(self.globs),
            "phase": self.phase.value,
            "save": self.save.to_dict() if self.save else None,
            "swap": self.swap.to_dict() if self.swap else None,
        }


# -- the codec --------------------------------------------------------------------------


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {json.dumps(v)}")
    return v


def _strs(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise TypeError(f"expected a list, got {json.dumps(v)}")
    return tuple(_str(x) for x in v)


def _entry(d: Mapping[str, Any]) -> EditEntry:
    strip = d["strip"]
    if not isinstance(strip, int) or isinstance(strip, bool):
        raise TypeError("strip: expected an integer")
    commit = d["commit"]
    return EditEntry(
        name=_str(d["name"]),
        kind=ChangeKind(d["kind"]),
        strip=strip,
        commit=None if commit is None else _str(commit),
        digest=_str(d["digest"]),
        files=_strs(d["files"]),
    )


def _save(d: Mapping[str, Any] | None) -> SaveProgress | None:
    if d is None:
        return None
    return SaveProgress(
        before=_str(d["before"]),
        dirty=bool(d["dirty"]),
        amended=_str(d["amended"]),
        picks=_strs(d["picks"]),
        head=_str(d["head"]),
        stopped_on=_str(d["stopped_on"]),
        conflicts=_strs(d["conflicts"]),
    )


def _swap(d: Mapping[str, Any] | None) -> SwapJournal | None:
    if d is None:
        return None
    manifest = d["manifest"]
    if not isinstance(manifest, dict):
        raise TypeError("manifest: expected an object")
    return SwapJournal(
        temp=_str(d["temp"]),
        old=_str(d["old"]),
        manifest=tuple((_str(k), _str(v)) for k, v in sorted(manifest.items())),
        entries=tuple(_entry(e) for e in d["entries"]),
        tip=_str(d["tip"]),
        written=_strs(d["written"]),
    )


def encode_state(record: EditStateRecord) -> bytes:
    return json.dumps(record.to_dict(), indent=2, sort_keys=True).encode("utf-8")


def decode_state(data: bytes, *, path: Path) -> EditStateRecord:
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        if doc.get("schema") != SCHEMA:
            raise EditStateError(
                f"{path}: an edit state of schema {json.dumps(doc.get('schema'))} (this patchkit "
                f"reads {SCHEMA}); finish it with the patchkit that wrote it"
            )
        return EditStateRecord(
            version=_str(doc["version"]),
            base_commit=_str(doc["base_commit"]),
            entries=tuple(_entry(e) for e in doc["entries"]),
            tip=_str(doc["tip"]),
            globs=_strs(doc["globs"]),
            phase=EditPhase(doc["phase"]),
            save=_save(doc["save"]),
            swap=_swap(doc["swap"]),
        )
    except EditStateError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        why = f"no {e.args[0]!r} field" if isinstance(e, KeyError) else str(e)
        raise EditStateError(
            f"{path}: corrupt edit state ({why}); patches/ is untouched: "
            "run patchkit edit --discard --force to drop the worktree"
        ) from None


class EditStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> EditStateRecord | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise EditStateError(f"{self.path}: unreadable edit state ({e.strerror})") from None
        return decode_state(data, path=self.path)

    def save(self, record: EditStateRecord) -> None:
        checkpoint("edit: save state")
        atomic_write(self.path, encode_state(record))
        checkpoint("edit: state saved")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
