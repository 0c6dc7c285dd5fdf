"""`patchkit materialize PATCH [--version V] [--replace]`: the unified diff a change makes.

The series is applied in memory up to the change on release V (default: base), then the change
itself; the diff between the two is what it makes there, for any kind. With ``replace``, the
diff is written to ``patches/NAME.patch`` (the change's header carried over, DEP-3 style) and
takes the change's place in ``series``; the edit file or overlay directory stays in
``patches/`` (out of the series) so that nothing is lost.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchkit.core.model import FAILED, SCHEMA, ChangeKind, PatchResult, PatchStatus
from patchkit.errors import PatchkitError, UsageError
from patchkit.files import atomic_write
from patchkit.kinds import DiffChange
from patchkit.kinds.base import ApplyContext
from patchkit.kinds.materialize import diff_of
from patchkit.ops.check import apply_series, tree_lister

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["MaterializeResult", "materialize", "materialized_name"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MaterializeResult:
    patch: str
    version: str
    kind: ChangeKind
    status: PatchStatus  # of the change on that release; a failed one makes no diff
    diff: bytes = b""
    replaced_by: str = ""  # with --replace: the new patch file's name
    result: PatchResult | None = None

    @property
    def needs_attention(self) -> bool:
        return self.status in FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "materialize",
            "patch": self.patch,
            "version": self.version,
            "kind": self.kind.value,
            "status": self.status.value,
            "diff": self.diff.decode("utf-8", "surrogateescape"),
            "replaced_by": self.replaced_by,
            "result": self.result.to_dict() if self.result else None,
        }


def materialized_name(name: str) -> str:
    """``webmail.edit.toml`` -> ``webmail.patch``; ``isolation/`` -> ``isolation.patch``."""
    stem = name.rstrip("/")
    stem = stem.removesuffix(".edit.toml")
    return stem if stem.endswith(".patch") else stem + ".patch"


def materialize(
    ws: Workspace, name: str, *, version: str | None = None, replace: bool = False
) -> MaterializeResult:
    """The diff ``name`` makes on ``version`` (default base); ``replace`` swaps it in."""
    changes = list(ws.changes())
    names = [c.name for c in changes]
    if name not in names:
        raise UsageError(
            f"'{name}' is not in patches/series (entries: {', '.join(names) or 'none'})"
        )
    index = names.index(name)
    change = changes[index]
    base = ws.versions.base
    version = version or base
    tree = ws.release_tree(version)
    with ws.store.blob_reader() as reader:
        earlier = apply_series(reader, version=version, tree=tree, patches=changes[:index])
        targets = change.targets(tree_lister(reader, tree, earlier.files))
        upstream = reader.read_many(tree, [p for p in targets if p not in earlier.files])
        before = {p: earlier.files[p] if p in earlier.files else upstream[p] for p in targets}
        old_modes: dict[str, str | None] = dict(reader.modes(tree, targets))
        old_modes.update({p: m for p, m in earlier.modes.items() if p in old_modes})
        base_info = ws.store.release(base) if version != base else None
        context = ApplyContext(
            base=reader.read_many(base_info.tree, targets) if base_info else None,
            symlinked=reader.symlinked(tree, targets),
        )
        outcome = change.apply(before, version=version, context=context)
    if outcome.status in FAILED or outcome.status is PatchStatus.SKIPPED:
        return MaterializeResult(
            patch=name,
            version=version,
            kind=change.kind,
            status=outcome.status,
            result=outcome.result,
        )
    after = dict(before)
    after.update(outcome.contents)
    header = change.patch_header
    new_name = materialized_name(name)
    diff = diff_of(new_name, header, before, after, old_modes=old_modes, new_modes=outcome.modes)
    replaced_by = ""
    if replace:
        if isinstance(change, DiffChange):
            raise UsageError(f"'{name}' is a diff already: nothing to replace")
        _swap_in(ws, name, new_name, diff)
        replaced_by = new_name
    return MaterializeResult(
        patch=name,
        version=version,
        kind=change.kind,
        status=outcome.status,
        diff=diff,
        replaced_by=replaced_by,
        result=outcome.result,
    )


def _swap_in(ws: Workspace, old: str, new: str, diff: bytes) -> None:
    """Write ``patches/NEW`` and put it in ``old``'s place in ``series``: both or neither."""
    target = ws.patches_dir / new
    if target.exists() or target.is_symlink():
        raise PatchkitError(
            f"patches/{new}: exists already; move it away or materialize without --replace"
        )
    with ws.lock():
        series = ws.series.with_entry_replaced(old, new)
        atomic_write(target, diff)
        try:
            atomic_write(ws.series_path, series.render().encode("utf-8"))
        except BaseException:
            with contextlib.suppress(OSError):
                target.unlink()
            raise
