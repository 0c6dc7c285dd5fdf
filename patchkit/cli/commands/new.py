"""``patchkit new NAME``: an empty patch in the series (docs/authoring.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the patch file, relative to patches/ (NAME.patch)")
    parser.add_argument("--after", metavar="PATCH", help="its place (default: last)")
    parser.add_argument("-m", dest="message", metavar="TEXT", help="its Description")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def new(
    *, project: Project, name: str, after: str | None, message: str | None, as_json: bool, ui: Ui
) -> int:
    result = project.new(name, after=after, message=message)
    if as_json:
        ui.json(result)
    where = "; the edit worktree's HEAD is on it" if result.worktree else ""
    ui.text(f"patches/{name}: new, in patches/series{where}", machine=as_json)
    return EXIT_OK


COMMAND = Command(
    name="new",
    help="an empty patch (DEP-3 header) in the series after PATCH",
    add_arguments=add_arguments,
    run=new,
)
