"""The rebase state: a typed, versioned record and its file, ``.patchkit/rebase/state.json``.

The file is the one source of truth between the processes of a rebase (``--onto`` stops,
``--continue`` goes on, ...): it is written atomically after every step and read through
:func:`decode_state`, which migrates what older patchkits wrote (schema 1: the same fields
as an untyped dict) and refuses, in one line that says what to do, what it cannot read.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchkit.core.model import ChangeKind, ChangeLine, PatchStatus, RebasePatchResult
from patchkit.errors import RebaseStateError, RebaseStateFileError
from patchkit.files import atomic_write, checkpoint

__all__ = [
    "SCHEMA",
    "BackupManifest",
    "PatchEntry",
    "Phase",
    "RebaseStateRecord",
    "StateFile",
    "decode_state",
    "encode_state",
]

SCHEMA = 2
# What a schema-1 file was written by, for the "abort it with that version" advice.
_V1_WRITER = "patchkit 1.0"


class Phase(enum.StrEnum):
    """Where the rebase is."""

    REPLAYING = "replaying"  # picking patches onto the new release
    STOPPED = "stopped"  # a conflict waits for a person
    REFRESHING = "refreshing"  # every patch replayed: writing patches/, series and base

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupManifest:
    """The byte-for-byte backup taken before a rebase starts: project-relative path -> the
    SHA-256 naming its copy in ``.patchkit/rebase/backup/`` (``None``: the file was absent)."""

    files: tuple[tuple[str, str | None], ...] = ()

    def digest(self, rel: str) -> str | None:
        return dict(self.files).get(rel)

    def to_dict(self) -> dict[str, str | None]:
        return dict(self.files)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchEntry:
    """One change of the series and what the rebase did with it so far."""

    name: str
    kind: ChangeKind = ChangeKind.DIFF
    strip: int = 1  # the series line's -pN
    commit: str | None  # its commit on the old base; None: outside its range, not replayed
    status: PatchStatus | None = None  # None: not replayed yet
    result: str | None = None  # its commit on the new release, once made
    files: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    message: str = ""
    risk: tuple[str, ...] = ()
    changes: tuple[ChangeLine, ...] = ()

    @property
    def pending(self) -> bool:
        return self.status is None

    def to_result(self) -> RebasePatchResult:
        assert self.status is not None
        return RebasePatchResult(
            name=self.name,
            status=self.status,
            files=self.files,
            conflicts=self.conflicts if self.status is PatchStatus.CONFLICT else (),
            message=self.message,
            risk=self.risk,
            changes=self.changes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "strip": self.strip,
            "commit": self.commit,
            "status": None if self.status is None else self.status.value,
            "result": self.result,
            "files": list(self.files),
            "conflicts": list(self.conflicts),
            "message": self.message,
            "risk": list(self.risk),
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RebaseStateRecord:
    """A rebase in progress (schema 2)."""

    schema: int = SCHEMA
    base: str
    onto: str
    base_commit: str
    onto_commit: str
    phase: Phase = Phase.REPLAYING
    current: int = 0  # index in ``patches`` of the one being replayed (or stopped on)
    head: str  # the last commit made on the new release
    worktree_ready: bool = False  # recorded only once the worktree is complete
    backup: BackupManifest
    patches: tuple[PatchEntry, ...]

    @property
    def entry(self) -> PatchEntry:
        return self.patches[self.current]

    @property
    def done(self) -> bool:
        return self.current >= len(self.patches)

    @property
    def key(self) -> str:
        """Names the pair of releases, for what is computed once per rebase."""
        return f"{self.base_commit}..{self.onto_commit}"

    def with_entry(self, entry: PatchEntry, **fields: Any) -> RebaseStateRecord:
        """The record with the current entry replaced (and other fields changed)."""
        patches = (*self.patches[: self.current], entry, *self.patches[self.current + 1 :])
        return dataclasses.replace(self, patches=patches, **fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "base": self.base,
            "onto": self.onto,
            "base_commit": self.base_commit,
            "onto_commit": self.onto_commit,
            "phase": self.phase.value,
            "current": self.current,
            "head": self.head,
            "worktree_ready": self.worktree_ready,
            "backup": self.backup.to_dict(),
            "patches": [p.to_dict() for p in self.patches],
        }


# -- the codec --------------------------------------------------------------------------


def encode_state(record: RebaseStateRecord) -> bytes:
    return json.dumps(record.to_dict(), indent=2, sort_keys=True).encode("utf-8")


def decode_state(data: bytes, *, path: Path | str) -> RebaseStateRecord:
    """The record a state file holds; schema 1 is migrated. One-line
    :class:`~patchkit.errors.RebaseStateFileError` for anything else."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _corrupt(path, f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _corrupt(path, "not a JSON object")
    schema = doc.get("schema")
    if schema == SCHEMA:
        try:
            return _record(doc, version=SCHEMA)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise _corrupt(path, _why(e)) from None
    if schema == 1:
        try:
            return _record(doc, version=1)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RebaseStateFileError(
                f"{path}: a rebase state of schema 1 that this patchkit cannot migrate "
                f"({_why(e)}); abort it with the patchkit that started it ({_V1_WRITER}: "
                "patchkit rebase --abort), then start the rebase again with this one"
            ) from None
    shown = json.dumps(schema) if isinstance(schema, str | int | float | None) else "?"
    raise RebaseStateFileError(
        f"{path}: a rebase state of unknown schema {shown} (this patchkit reads 1 and "
        f"{SCHEMA}); finish or abort it with the patchkit that wrote it "
        "(patchkit rebase --continue or --abort)"
    )


def _why(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"no {e.args[0]!r} field"
    return str(e) or type(e).__name__


def _corrupt(path: Path | str, why: str) -> RebaseStateFileError:
    where = Path(path).parent
    return RebaseStateFileError(
        f"{path}: corrupt rebase state ({why}); the backup of patches/ and "
        f"upstream-versions.toml is in {where / 'backup'} (files named by SHA-256); "
        f"remove {where} to give up the rebase"
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {json.dumps(value)}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {json.dumps(value)}")
    return tuple(_str(v) for v in value)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {json.dumps(value)}")
    return value


def _entry(d: Mapping[str, Any], *, version: int) -> PatchEntry:
    status = d["status"]
    # Schema 1 had no kinds (every change was a diff) and older writers left out the
    # fields that were still empty; the reader of that writer defaulted them the same way.
    kind = ChangeKind.DIFF if version == 1 else ChangeKind(d["kind"])
    return PatchEntry(
        name=_str(d["name"]),
        kind=kind,
        strip=_int(d["strip"]),
        commit=_opt_str(d["commit"]),
        status=None if status is None else PatchStatus(status),
        result=_opt_str(d.get("result")),
        files=_strs(d["files"]),
        conflicts=_strs(d.get("conflicts", [])),
        message=_str(d.get("message", "")),
        risk=_strs(d.get("risk", [])),
        changes=tuple(
            ChangeLine(file=_str(c["file"]), mark=_str(c["mark"]), text=_str(c["text"]))
            for c in d.get("changes", [])
        ),
    )


def _record(doc: Mapping[str, Any], *, version: int) -> RebaseStateRecord:
    backup = doc["backup"]
    if not isinstance(backup, dict):
        raise TypeError("backup: expected an object")
    patches = doc["patches"]
    if not isinstance(patches, list):
        raise TypeError("patches: expected a list")
    record = RebaseStateRecord(
        base=_str(doc["base"]),
        onto=_str(doc["onto"]),
        base_commit=_str(doc["base_commit"]),
        onto_commit=_str(doc["onto_commit"]),
        phase=Phase(doc["phase"]),
        current=_int(doc["current"]),
        head=_str(doc["head"]),
        # Schema-1 writers before `worktree_ready` existed made the worktree first.
        worktree_ready=bool(
            doc.get("worktree_ready", True) if version == 1 else doc["worktree_ready"]
        ),
        backup=BackupManifest(
            files=tuple((_str(k), _opt_str(v)) for k, v in sorted(backup.items()))
        ),
        patches=tuple(_entry(p, version=version) for p in patches),
    )
    if not 0 <= record.current <= len(record.patches):
        raise ValueError(f"current {record.current} is outside the {len(record.patches)} patches")
    return record


# -- the file ---------------------------------------------------------------------------


class StateFile:
    """``state.json`` of one project's rebase."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> RebaseStateRecord | None:
        """The rebase in progress, or ``None``."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise RebaseStateFileError(
                f"{self.path}: unreadable rebase state ({e.strerror})"
            ) from None
        return decode_state(data, path=self.path)

    def require(self) -> RebaseStateRecord:
        record = self.load()
        if record is None:
            raise RebaseStateError(
                "no rebase in progress (start one with: patchkit rebase --onto VERSION)"
            )
        return record

    def save(self, record: RebaseStateRecord) -> None:
        checkpoint("save state")
        atomic_write(self.path, encode_state(record))
        checkpoint("state saved")

    def remove(self) -> None:
        self.path.unlink()
