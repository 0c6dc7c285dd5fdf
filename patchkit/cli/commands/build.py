"""``patchkit build``: a Docker build context, FROM the release plus the patched files."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="the build context directory (replaced)"
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def build(*, project: Project, version: str, out: str, as_json: bool, ui: Ui) -> int:
    ctx = project.build_context(version, out)
    for warning in ctx.warnings:
        ui.warn(warning)
    if as_json:
        ui.json(ctx)
    ui.show(
        f"{out}: Dockerfile FROM {ctx.base_image}, {len(ctx.files)} file(s) in overlay/",
        machine=as_json,
    )
    return EXIT_OK


COMMAND = Command(
    name="build",
    help="write a Docker build context: FROM the release + the patched files",
    add_arguments=add_arguments,
    run=build,
)
