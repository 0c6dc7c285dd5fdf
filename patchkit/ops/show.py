"""`patchkit show VERSION:PATH [--patched]` and `patchkit diff V1 V2 [PATH...] [--touched] [--stat]`.

Both read the store directly (no checkout): a file of an imported release, with or without the
series applied in memory; and what upstream changed between two imported releases, for every
file, the paths given, or only the files the series touches (``--touched``: exact paths of
diffs and overlays, and what edit globs match on either release).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchkit.core.model import SCHEMA, ReleaseInfo
from patchkit.errors import NotFoundError, UsageError
from patchkit.ops.check import apply_series, tree_lister

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["UpstreamDiff", "parse_version_path", "show_file", "upstream_diff"]


def parse_version_path(spec: str) -> tuple[str, str]:
    """``VERSION:PATH`` (the path image-root relative; a leading ``/`` is dropped)."""
    version, sep, path = spec.partition(":")
    path = path.lstrip("/")
    if not sep or not version or not path:
        raise UsageError(f"'{spec}': give VERSION:PATH, e.g. 2.5.24:etc/redis/redis.conf")
    return version, path


def show_file(ws: Workspace, version: str, path: str, *, patched: bool = False) -> bytes:
    """The bytes of ``path`` in release ``version``; ``patched``: with the series applied."""
    path = path.lstrip("/")
    tree = ws.release_tree(version)
    with ws.store.blob_reader() as reader:
        if patched:
            applied = apply_series(reader, version=version, tree=tree, patches=ws.changes())
            if path in applied.files:
                data = applied.files[path]
                if data is None:
                    raise NotFoundError(f"{version}:{path}: the series deletes this file")
                return data
        data = reader.read(f"{tree}:{path}")
    if data is None:
        raise NotFoundError(f"{version}:{path}: no such file in the imported release")
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamDiff:
    """What upstream changed between two releases."""

    old: str
    new: str
    files: tuple[tuple[str, str], ...]  # (A | M | D | T, path)
    text: str  # the unified diff, or the --stat table

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "diff",
            "from": self.old,
            "to": self.new,
            "files": [{"path": p, "status": s} for s, p in self.files],
            "diff": self.text,
        }


def upstream_diff(
    ws: Workspace,
    old: str,
    new: str,
    paths: Sequence[str] = (),
    *,
    touched: bool = False,
    stat: bool = False,
) -> UpstreamDiff:
    """Upstream's change from release ``old`` to ``new`` (both imported)."""
    old_info, new_info = (_release(ws, v) for v in (old, new))
    selected: list[str] | None = [p.lstrip("/") for p in paths] if paths else None
    if touched:
        wanted: set[str] = set()
        changes = ws.changes()
        with ws.store.blob_reader() as reader:
            for tree in (old_info.tree, new_info.tree):
                lister = tree_lister(reader, tree, {})
                for change in changes:
                    wanted.update(change.targets(lister))
        selected = sorted(wanted if selected is None else wanted & set(selected))
    store = ws.store
    files = store.diff_names(old_info.commit, new_info.commit, selected)
    text = store.diff(
        old_info.commit,
        new_info.commit,
        src_prefix=f"{old}/",
        dst_prefix=f"{new}/",
        paths=selected,
        stat=stat,
    )
    return UpstreamDiff(
        old=old, new=new, files=tuple(files), text=text.decode("utf-8", "surrogateescape")
    )


def _release(ws: Workspace, version: str) -> ReleaseInfo:
    ws.release_tree(version)  # UnknownVersionError / NotImportedError, one line each
    info = ws.store.release(version)
    assert info is not None
    return info
