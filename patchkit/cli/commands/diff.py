"""``patchkit diff V1 V2``: what upstream changed between two imported releases."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="V1", help="the older release")
    parser.add_argument("new", metavar="V2", help="the newer release")
    parser.add_argument("paths", metavar="PATH", nargs="*", help="only these image paths")
    parser.add_argument("--touched", action="store_true", help="only files the series touches")
    parser.add_argument("--stat", action="store_true", help="a diffstat instead of the diff")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def diff(
    *,
    project: Project,
    old: str,
    new: str,
    paths: list[str],
    touched: bool,
    stat: bool,
    as_json: bool,
    ui: Ui,
) -> int:
    result = project.diff(old, new, paths, touched=touched, stat=stat)
    if as_json:
        ui.json(result)
    else:
        ui.write(result.text)
    return EXIT_OK


COMMAND = Command(
    name="diff",
    help="what upstream changed between two imported releases",
    add_arguments=add_arguments,
    run=diff,
)
