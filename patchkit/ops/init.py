"""`patchkit init`: a new project in a directory that has none.

Writes ``upstream-versions.toml`` (the image and a first release, which is the base),
``patches/series`` (empty but for a comment) and a ``.patchkit/`` line in ``.gitignore``
(appended, or the file created). Refuses when either project file exists: it never overwrites.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchkit.core.model import SCHEMA
from patchkit.core.versions import parse_versions
from patchkit.errors import ConfigError, PatchkitError, UsageError
from patchkit.files import atomic_write

__all__ = ["InitResult", "init_project"]

VERSIONS_FILE = "upstream-versions.toml"
SERIES_FILE = "patches/series"

SERIES_TEXT = """\
# The patch series, applied in this order (quilt format): one change a line.
#   NAME.patch       a unified diff (optional -pN after the name)
#   NAME.edit.toml   pattern edits with asserted match counts
#   DIR/             an overlay: every file under patches/DIR/ placed at that path
# Start one with: patchkit new NAME   (then: patchkit edit)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class InitResult:
    root: str
    written: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "init",
            "root": self.root,
            "written": list(self.written),
        }


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these characters


def init_project(
    root: Path, *, image: str | None = None, version: str | None = None, source: str | None = None
) -> InitResult:
    """Create the project files under ``root`` (created if missing)."""
    if not version:
        raise UsageError("init needs --version V: the first release, which becomes the base")
    if not image and not source:
        raise UsageError("init needs --image IMAGE or a SOURCE for the first release")
    for rel in (VERSIONS_FILE, SERIES_FILE):
        if (root / rel).exists() or (root / rel).is_symlink():
            raise ConfigError(f"{root / rel}: exists already; patchkit init never overwrites")
    name = (image or version).rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0] or "upstream"
    lines = [
        "# Upstream releases this patch series tracks (docs/toml.md).",
        "schema = 1",
        f"base = {_toml_string(version)}  # the release the files in patches/ apply to exactly",
        "",
        "[upstream]",
        f"name = {_toml_string(name)}",
    ]
    if image:
        lines.append(f"image = {_toml_string(image)}  # default source: docker://<image>:<version>")
    lines += ["", "[[version]]", f"version = {_toml_string(version)}", 'status = "supported"']
    if source:
        lines.append(f"source = {_toml_string(source)}")
    text = "\n".join(lines) + "\n"
    parse_versions(
        text, path=VERSIONS_FILE
    )  # a bad label or image is refused before anything is written
    written: list[str] = []
    try:
        (root / "patches").mkdir(parents=True, exist_ok=True)
        atomic_write(root / SERIES_FILE, SERIES_TEXT.encode())
        written.append(SERIES_FILE)
        ignore = root / ".gitignore"
        old = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
        if ".patchkit/" not in {ln.strip() for ln in old.splitlines()}:
            sep = "" if not old or old.endswith("\n") else "\n"
            atomic_write(ignore, (old + sep + ".patchkit/\n").encode("utf-8"))
            written.append(".gitignore")
        # Last: the file that makes a directory a project.
        atomic_write(root / VERSIONS_FILE, text.encode("utf-8"))
        written.append(VERSIONS_FILE)
    except (OSError, PatchkitError) as e:
        with contextlib.suppress(OSError):
            if SERIES_FILE in written:
                (root / SERIES_FILE).unlink()
        if isinstance(e, PatchkitError):
            raise
        raise PatchkitError(f"{root}: cannot create the project ({e.strerror})") from e
    return InitResult(root=str(root), written=tuple(written))
