"""``patchkit bisect``: the first imported release where a patch stops applying."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patch", help="a patch file name from patches/series")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def bisect(*, project: Project, patch: str, as_json: bool, ui: Ui) -> int:
    """Exit 1 when the patch fails on some imported release."""
    from patchkit.ops.bisect import bisect_text

    found = project.bisect(patch)
    if as_json:
        ui.json(found)
    ui.show(bisect_text(found), machine=as_json)
    return EXIT_ATTENTION if found.needs_attention else EXIT_OK


COMMAND = Command(
    name="bisect",
    help="first imported release where a patch stops applying",
    add_arguments=add_arguments,
    run=bisect,
)
