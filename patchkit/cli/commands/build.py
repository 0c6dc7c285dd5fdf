"""``patchkit build``: a Docker build context, FROM the release plus the patched files."""

from __future__ import annotations

import argparse
import datetime
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
    parser.add_argument(
        "--created",
        metavar="TIME",
        help="add the org.opencontainers.image.created label: an RFC 3339 time, or 'now' "
        "(default none: the same project gives the same context)",
    )
    parser.add_argument(
        "--source",
        dest="label_source",
        metavar="URL",
        help="the org.opencontainers.image.source label (default: the checkout's origin remote)",
    )
    parser.add_argument(
        "--revision",
        metavar="COMMIT",
        help="the org.opencontainers.image.revision label (default: the checkout's HEAD)",
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def build(
    *,
    project: Project,
    version: str,
    out: str,
    as_json: bool,
    ui: Ui,
    created: str | None = None,
    label_source: str | None = None,
    revision: str | None = None,
) -> int:
    if created == "now":  # the clock is read here, at the edge: the library takes a value
        created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ctx = project.build_context(
        version, out, created=created, source=label_source, revision=revision
    )
    for warning in ctx.warnings:
        ui.warn(warning)
    if as_json:
        ui.json(ctx)
    for c in ctx.contexts or (ctx,):
        where = f"{out}/{c.platform.replace('/', '-')}" if ctx.contexts and c.platform else out
        ui.text(
            f"{where}: Dockerfile FROM {c.base_image}, {len(c.files)} file(s) in overlay/",
            machine=as_json,
        )
    return EXIT_OK


COMMAND = Command(
    name="build",
    help="write a Docker build context: FROM the release + the patched files",
    add_arguments=add_arguments,
    run=build,
)
