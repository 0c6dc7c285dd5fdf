"""Rebase the series onto another release with git's 3-way merge, resumable from disk.

State lives in `.patchkit/rebase/state.json` (:mod:`.state`), written atomically after every
step, with a byte-for-byte backup of `patches/` and `upstream-versions.toml` (:mod:`.backup`)
taken before anything starts. Phases: `replaying` (picking changes, :mod:`.replay`, with
:mod:`.resolve` when git conflicts and :mod:`.risk` when it does not), `stopped` (a conflict
waits for a person), `refreshing` (writing patches/ (:mod:`.refresh`), series and base).
`--abort` from any phase restores the backup. The state machine: :mod:`.rebaser`.
"""

from __future__ import annotations

from patchkit.ops.rebase.rebaser import Rebaser
from patchkit.ops.rebase.refresh import renumber_hunks
from patchkit.ops.rebase.state import (
    SCHEMA,
    BackupManifest,
    PatchEntry,
    Phase,
    RebaseStateRecord,
    decode_state,
    encode_state,
)

__all__ = [
    "SCHEMA",
    "BackupManifest",
    "PatchEntry",
    "Phase",
    "RebaseStateRecord",
    "Rebaser",
    "decode_state",
    "encode_state",
    "renumber_hunks",
]
