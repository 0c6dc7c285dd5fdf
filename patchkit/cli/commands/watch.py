"""``patchkit watch``: the image's tags through ``[upstream.watch]``: new, re-pushed, vanished."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK
from patchkit.cli.ui import progress

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply",
        action="store_true",
        help="add the new releases to upstream-versions.toml (the rules' status, their digests)",
    )
    parser.add_argument(
        "--import",
        dest="import_releases",
        action="store_true",
        help="also import the new releases (implies --apply)",
    )
    parser.add_argument(
        "--registry-mirror", metavar="URL", help="redirect Docker Hub to this registry"
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def watch(
    *,
    project: Project,
    apply: bool,
    import_releases: bool,
    registry_mirror: str | None,
    as_json: bool,
    ui: Ui,
) -> int:
    if registry_mirror:
        # The registry client reads it (docs/registry.md); the option is its CLI spelling.
        os.environ["PATCHKIT_REGISTRY_MIRROR"] = registry_mirror
    on_event, bar = progress(ui.err, enabled=not ui.quiet and not as_json and ui.err.is_terminal)
    with bar:
        result = project.watch(apply=apply, import_releases=import_releases, progress=on_event)
    if as_json:
        ui.json(result)
    if not ui.quiet:
        from patchkit.output.watch import watch_table

        ui.show(watch_table(result), machine=as_json)
    return EXIT_ATTENTION if result.attention else EXIT_OK


COMMAND = Command(
    name="watch",
    help="the registry's tags through [upstream.watch]: new, re-pushed, vanished releases",
    add_arguments=add_arguments,
    run=watch,
)
