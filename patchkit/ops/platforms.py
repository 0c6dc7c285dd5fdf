"""The platforms of a multi-platform release (`platforms = [...]` in the TOML).

Each platform is imported into a tree of its own: the first platform under the release's
label (so every single-platform command reads it unchanged), each other one under its
platform label, ``<version>@<os>-<arch>[-<variant>]`` (:func:`core.versions.platform_label`).
`check` checks each platform whose tree differs from every platform before it and reports
the others as ``same_as`` the platform they share a tree with; `matrix` adds a column for each
differing platform (:func:`matrix_labels`); `build` writes a context per platform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from patchkit.core.model import CheckResult, PlatformCheck
from patchkit.core.versions import Release, VersionsFile
from patchkit.errors import NotImportedError
from patchkit.git.objects import BlobReader
from patchkit.git.store import Store
from patchkit.kinds import Change
from patchkit.ops.check import apply_series

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["PlatformTree", "check_platforms", "matrix_labels", "platform_trees"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformTree:
    """One platform of a release, as imported."""

    platform: str
    label: str  # the store label: the release's for the first platform
    tree: str
    same_as: str | None = None  # an earlier platform with the identical tree


def platform_trees(store: Store, release: Release) -> tuple[PlatformTree, ...]:
    """Every platform of ``release`` with its tree (empty for a single-platform release).

    NotImportedError names the platforms not imported (``patchkit import VERSION`` imports
    them all)."""
    out: list[PlatformTree] = []
    missing = []
    seen: dict[str, str] = {}  # tree -> first platform with it
    for platform, label in release.platform_labels():
        info = store.release(label)
        if info is None:
            missing.append(platform)
            continue
        out.append(
            PlatformTree(
                platform=platform, label=label, tree=info.tree, same_as=seen.get(info.tree)
            )
        )
        seen.setdefault(info.tree, platform)
    if missing:
        raise NotImportedError(
            f"version '{release.version}': platform(s) {', '.join(missing)} not imported yet; "
            f"run: patchkit import {release.version}"
        )
    return tuple(out)


def check_platforms(
    ws: Workspace,
    first: CheckResult,
    reader: BlobReader,
    changes: Sequence[Change],
) -> CheckResult:
    """``first`` (the check of the release's first platform) with every platform added:
    each other platform checked on its own tree unless an earlier platform has the same."""
    vf = ws.versions
    release = vf.release(first.version)
    if not release.platforms:
        return first
    trees = platform_trees(ws.store, release)
    base_trees = _base_trees(ws.store, vf)
    checks: list[PlatformCheck] = []
    for pt in trees:
        result = None
        if pt.same_as is None and pt.label != release.version:
            base_tree = base_trees.get(pt.platform, base_trees.get(""))
            checked = apply_series(  # release ranges read the release's version
                reader,
                version=release.version,
                tree=pt.tree,
                patches=changes,
                base_tree=base_tree if base_tree != pt.tree else None,
            ).check
            result = replace(checked, version=pt.label)
        checks.append(
            PlatformCheck(
                platform=pt.platform,
                label=pt.label,
                tree=pt.tree,
                same_as=pt.same_as,
                check=result,
            )
        )
    return replace(first, platforms=tuple(checks))


def _base_trees(store: Store, vf: VersionsFile) -> Mapping[str, str]:
    """The base release's tree per platform ("" for its own label): `upstream-changed` on a
    platform compares with the same platform of base where base has it."""
    base = vf.release(vf.base)
    out: dict[str, str] = {}
    info = store.release(base.version)
    if info is not None:
        out[""] = info.tree
    for platform, label in base.platform_labels():
        pinfo = store.release(label)
        if pinfo is not None:
            out[platform] = pinfo.tree
    return out


def matrix_labels(
    releases: Sequence[Release], trees: Mapping[str, tuple[str, str]]
) -> dict[str, list[str]]:
    """For each multi-platform release among ``releases``: the platform labels that get a
    matrix column of their own (imported, with a tree no earlier platform of it has)."""
    out: dict[str, list[str]] = {}
    for rel in releases:
        seen = {trees[rel.version][1]} if rel.version in trees else set()
        for _platform, label in rel.platform_labels()[1:]:
            entry = trees.get(label)
            if entry is None or entry[1] in seen:
                continue
            seen.add(entry[1])
            out.setdefault(rel.version, []).append(label)
    return out
