"""``patchkit rebase``: replay the series onto another release (docs/rebase.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK
from patchkit.core.model import RebaseState

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.core.model import RebaseResult
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--onto", metavar="VERSION")
    group.add_argument("--continue", dest="cont", action="store_true", help="go on after resolving")
    group.add_argument("--skip", action="store_true", help="drop the conflicting patch and go on")
    group.add_argument("--abort", action="store_true", help="restore everything as before")
    group.add_argument("--status", action="store_true", help="show the rebase in progress")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")
    parser.add_argument(
        "--diff",
        action="store_true",
        help="also show the +/- lines each patch changed (range-diff)",
    )


def rebase(
    *,
    project: Project,
    onto: str | None = None,
    cont: bool = False,
    skip: bool = False,
    abort: bool = False,
    status: bool = False,
    as_json: bool = False,
    diff: bool = False,
    ui: Ui,
) -> int:
    """One of ``onto``/``cont``/``skip``/``abort``/``status``; exit 1 when stopped on a conflict."""
    result: RebaseResult | None
    if onto:
        result = project.rebase(onto)
    elif cont:
        result = project.rebase_continue()
    elif skip:
        result = project.rebase_skip()
    elif abort:
        result = project.rebase_abort()
    else:
        result = project.rebase_status()
        if result is None:
            ui.show("no rebase in progress", machine=as_json)
            return EXIT_OK
    if as_json:
        ui.json(result)
    ui.report(lambda report: report.rebase_table(result), machine=as_json)
    if diff:
        for p in result.patches:
            for change in p.changes:
                ui.show(f"{p.name}: {change.render()}", machine=as_json)
    return EXIT_ATTENTION if result.state is RebaseState.STOPPED else EXIT_OK


COMMAND = Command(
    name="rebase",
    help="replay the series onto another release",
    add_arguments=add_arguments,
    run=rebase,
)
