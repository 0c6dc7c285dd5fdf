"""Build maintainer projects for tests: releases as `dir:` trees, a series, the TOML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

Files = Mapping[str, str | bytes]


def write_tree(root: Path, files: Files) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        os.chmod(path, 0o755 if data.startswith(b"#!") else 0o644)
    return root


def make_project(
    tmp: Path,
    releases: Mapping[str, Files],
    patches: Mapping[str, str],
    *,
    base: str,
    series: str | None = None,
) -> Path:
    """A project under ``tmp/project`` whose releases are `dir:` trees under ``tmp/upstream``."""
    project = tmp / "project"
    (project / "patches").mkdir(parents=True, exist_ok=True)
    lines = ["# test project", "schema = 1", f'base = "{base}"', "", "[upstream]", 'name = "test"', ""]
    for version, files in releases.items():
        tree = write_tree(tmp / "upstream" / version, files)
        lines += ["[[version]]", f'version = "{version}"', 'status = "supported"', f'source = "dir:{tree}"', ""]
    (project / "upstream-versions.toml").write_text("\n".join(lines))
    for name, text in patches.items():
        (project / "patches" / name).write_text(text)
    (project / "patches" / "series").write_text(
        series if series is not None else "".join(f"{name}\n" for name in patches)
    )
    return project


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the .patchkit state, path -> bytes."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] == ".patchkit":
            continue
        if path.is_file():
            out[str(rel)] = path.read_bytes()
    return out


def numbered(n: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1))
