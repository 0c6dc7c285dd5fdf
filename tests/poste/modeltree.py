"""Materialise a model release of poste.io (patched or not) as a plain directory tree.

The tree is what the image's root filesystem would hold: the release as imported into a
patchkit store (``git archive`` of its tree), plus, when ``patched``, the overlay that
``patchkit build`` writes (exactly the files the series changes or adds, with modes).
Used by tests/poste/test_startup.py and bench/isolation/run.py; the store is cached in
``bench/.cache/poste-store`` (importing the same digest twice is free).
"""

from __future__ import annotations

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


def materialise(version: str, dest: Path, *, patched: bool, paths: tuple[str, ...] = ()) -> Path:
    """Write ``version``'s tree (only ``paths`` if given) to ``dest``; overlay the series if ``patched``."""
    project = _project()
    if version not in project.imported():
        project.import_release(version)
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
            project.build_context(version, ctx)
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
            import json

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
