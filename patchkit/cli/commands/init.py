"""``patchkit init``: a new project in a directory that has none."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", help="the upstream image, e.g. docker.io/analogic/poste.io")
    parser.add_argument(
        "--version",
        dest="release",
        nargs="+",
        metavar=("V", "SOURCE"),
        help="the first release (the base), and optionally its source",
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def init(
    *, project_dir: str, image: str | None, release: list[str] | None, as_json: bool, ui: Ui
) -> int:
    from patchkit.errors import UsageError
    from patchkit.ops.init import init_project

    release = release or []
    if len(release) > 2:
        raise UsageError("--version takes V and optionally one SOURCE")
    version = release[0] if release else None
    source = release[1] if len(release) > 1 else None
    result = init_project(Path(project_dir).resolve(), image=image, version=version, source=source)
    if as_json:
        ui.json(result)
    ui.text(f"created {', '.join(result.written)} in {result.root}", machine=as_json)
    return EXIT_OK


COMMAND = Command(
    name="init",
    help="start a project: upstream-versions.toml and patches/series in an empty directory",
    add_arguments=add_arguments,
    run=init,
)
