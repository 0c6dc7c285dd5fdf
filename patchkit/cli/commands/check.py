"""``patchkit check``: the series against one release (default: base)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", nargs="?")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def check(*, project: Project, version: str | None, as_json: bool, ui: Ui) -> int:
    """Exit 1 when a patch needs attention (conflict, missing-target, fuzz)."""
    result = project.check(version)
    if as_json:
        ui.json(result)
    ui.report(lambda report: report.check_table(result), machine=as_json)
    return EXIT_ATTENTION if result.needs_attention else EXIT_OK


COMMAND = Command(
    name="check",
    help="series vs one release (default: base)",
    add_arguments=add_arguments,
    run=check,
)
