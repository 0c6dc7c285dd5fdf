"""``patchkit demo``: the whole workflow on a built-in example, offline (the example: cli/demo.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        dest="directory",
        metavar="DIR",
        help="where to build the example project (default: a temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")


def demo(*, directory: str | None = None, keep: bool = False, ui: Ui) -> int:
    from patchkit.cli.demo import run_demo

    return run_demo(out=ui.out, directory=directory, keep=keep)


COMMAND = Command(
    name="demo",
    help="run the whole workflow on a built-in example, offline",
    add_arguments=add_arguments,
    run=demo,
)
