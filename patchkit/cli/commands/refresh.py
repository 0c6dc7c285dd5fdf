"""``patchkit refresh``: rewrite patches so that they apply exactly to base."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def refresh(*, project: Project, ui: Ui) -> int:
    written = project.refresh()
    if written:
        ui.show("refreshed: " + ", ".join(written))
    else:
        ui.show("every patch already applies exactly to base")
    return EXIT_OK


COMMAND = Command(
    name="refresh",
    help="rewrite patches so they apply exactly to base",
    add_arguments=add_arguments,
    run=refresh,
)
