"""Materialise a model release of poste.io (patched or not) as a plain directory tree.

The tree is what the image's root filesystem would hold: the release as imported into a
patchkit store (``git archive`` of its tree), plus, when ``patched``, the overlay that
``patchkit build`` writes (exactly the files the series changes or adds, with modes).

A model release lacks poste.io's own files, so the changes for them are ``missing-target``
there (``patchkit build`` leaves them out on a model release, listing them in ``left_out``).
The model's nginx templates are stand-ins in poste.io's shape, so the nginx edits apply.
The patched tree is therefore built from the series without the changes that cannot apply to
this model: :func:`left_out` names them, and tests/poste/test_poste_patches.py asserts exactly
which they are, so nothing is left out in silence.
Used by tests/poste/test_startup.py and bench/isolation/run.py; the store is cached in
``bench/.cache/poste-store`` and follows the models as rebuilt (importing the same digest
again is free).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from patchkit import Project

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "bench" / ".cache" / "models"
STORE = REPO / "bench" / ".cache" / "poste-store"
LABELS = ("model-bookworm", "model-trixie")


def available_models() -> list[str]:
    """Model releases whose OCI layout bench/model/build.py has written."""
    return [label for label in LABELS if (MODELS / label / "index.json").is_file()]


def _project() -> Project:
    return Project.open(REPO, store=STORE)


def _current(version: str) -> Project:
    """The project, its store holding ``version`` as bench/model/build.py last made it: a
    rebuilt model replaces the one imported before (an unchanged digest costs nothing)."""
    project = _project()
    project.import_release(version, replace=True)
    return project


def left_out(version: str) -> dict[str, str]:
    """The changes of the series that cannot apply to ``version``: name -> status."""
    project = _current(version)
    return {p.name: p.status.value for p in project.check(version).patches if p.needs_attention}


def _buildable(project: Project, version: str, tmp: Path) -> Project:
    """``project``, or a copy of it (same store) whose series leaves out :func:`left_out`."""
    skip = left_out(version)
    if not skip:
        return project
    copy = tmp / "project"
    (copy / "patches").mkdir(parents=True)
    shutil.copy(REPO / "upstream-versions.toml", copy)
    for entry in (REPO / "patches").iterdir():
        if entry.name == "series":
            continue
        if entry.is_dir():
            shutil.copytree(entry, copy / "patches" / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, copy / "patches" / entry.name)
    kept = [
        line
        for line in (REPO / "patches" / "series").read_text().splitlines()
        if line.split("#", 1)[0].strip().split(" ")[0] not in skip
    ]
    (copy / "patches" / "series").write_text("\n".join(kept) + "\n")
    return Project.open(copy, store=STORE)


def materialise(version: str, dest: Path, *, patched: bool, paths: tuple[str, ...] = ()) -> Path:
    """Write ``version``'s tree (only ``paths`` if given) to ``dest``; overlay the series if ``patched``."""
    project = _current(version)
    tree = project.release_tree(version)
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(
        ["git", "--git-dir", str(STORE), "archive", "--format=tar", tree, *paths],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive of {version} failed")
    if patched:
        with tempfile.TemporaryDirectory(prefix="patchkit-ctx-") as tmp:
            ctx = Path(tmp) / "ctx"
            _buildable(project, version, Path(tmp)).build_context(version, ctx)
            overlay = ctx / "overlay"
            for src in sorted(overlay.rglob("*")):
                rel = src.relative_to(overlay)
                if paths and not any(
                    str(rel) == p or str(rel).startswith(p.rstrip("/") + "/") for p in paths
                ):
                    continue
                target = dest / rel
                if src.is_dir() and not src.is_symlink():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    target.unlink()
                shutil.copy2(src, target, follow_symlinks=False)
            for rel in json.loads((ctx / "patchkit-build.json").read_text()).get("deleted", []):
                gone = dest / str(rel).lstrip("/")
                if gone.is_symlink() or gone.is_file():
                    gone.unlink()
    return dest


def series_names() -> list[str]:
    """The patch names of patches/series, in order."""
    names = []
    for line in (REPO / "patches" / "series").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    return names


if __name__ == "__main__":  # python tests/poste/modeltree.py VERSION DEST [--unpatched]
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = materialise(args[0], Path(args[1]), patched="--unpatched" not in sys.argv)
    print(os.fspath(out))
