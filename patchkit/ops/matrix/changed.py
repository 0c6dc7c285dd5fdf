"""``--only-changed REF``: which patches and releases changed since a commit of the project."""

from __future__ import annotations

from typing import TYPE_CHECKING

from patchkit.core.series import parse_series
from patchkit.core.versions import parse_versions
from patchkit.errors import MatrixError, PatchkitError, StoreError
from patchkit.git.project_repo import ProjectRepo

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["changed_since"]


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


def changed_since(ws: Workspace, ref: str) -> tuple[set[str], set[str]]:
    """(patch names, release labels) changed since ``ref`` in the project's git repository.

    A patch changed when its file differs from ``ref`` (committed or not) or it moved
    in the series; a release when its ``[[version]]`` entry differs or is new.
    """
    try:
        return _changed_since(ws, ref)
    except StoreError as e:  # git cannot run at all
        raise MatrixError(str(e)) from e


def _changed_since(ws: Workspace, ref: str) -> tuple[set[str], set[str]]:
    root = ws.root
    repo = ProjectRepo.find(root)
    if repo is None:
        raise MatrixError(f"--only-changed: {root} is not in a git repository")
    if not repo.has_commit(ref):
        raise MatrixError(f"--only-changed: no commit '{ref}' in the git repository of {root}")
    changed_files = repo.changed_since(ref)
    if changed_files is None:
        raise MatrixError(f"--only-changed: git diff against '{ref}' failed")
    changed_files |= repo.untracked("patches")

    series = ws.series
    patches = {e.name for e in series.entries if f"patches/{e.name}" in changed_files}
    old_series_text = _text(repo.read_at(ref, "patches/series"))
    if old_series_text is not None and "patches/series" in changed_files:
        try:
            before = parse_series(old_series_text).entries
        except PatchkitError:
            before = ()
        position = {e.name: (i, e.strip) for i, e in enumerate(before)}
        for i, e in enumerate(series.entries):
            if position.get(e.name) != (i, e.strip):
                patches.add(e.name)
    elif old_series_text is None:
        patches |= set(series.names)

    old_toml = _text(repo.read_at(ref, "upstream-versions.toml"))
    try:
        old_vf = parse_versions(old_toml) if old_toml is not None else None
    except PatchkitError:
        old_vf = None
    old_entries = {r.version: r.to_dict() for r in old_vf.releases} if old_vf else {}
    releases = {
        r.version for r in ws.versions.releases if old_entries.get(r.version) != r.to_dict()
    }
    return patches, releases
