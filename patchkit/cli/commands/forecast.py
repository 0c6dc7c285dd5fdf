"""``patchkit forecast VERSION``: what a rebase onto VERSION would meet, every patch, nothing
touched (docs/rebase.md, "Forecast")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onto", metavar="VERSION", help="the release a rebase would go onto")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def forecast(*, project: Project, onto: str, as_json: bool, ui: Ui) -> int:
    """Exit 0 when a ``rebase --onto`` would go through on its own, 1 when a person is needed."""
    result = project.forecast(onto)
    if as_json:
        ui.json(result)
    ui.report(lambda report: report.forecast_table(result), machine=as_json)
    return EXIT_ATTENTION if result.needs_attention else EXIT_OK


COMMAND = Command(
    name="forecast",
    help="what a rebase onto a release would meet, every patch, nothing changed",
    add_arguments=add_arguments,
    run=forecast,
)
