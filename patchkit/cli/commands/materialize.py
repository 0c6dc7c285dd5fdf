"""``patchkit materialize``: the unified diff an edit or overlay makes on a release."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patch", help="a series entry (NAME.edit.toml, DIR/ or NAME.patch)")
    parser.add_argument("--version", dest="release", metavar="V", help="release (default: base)")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="write NAME.patch and put it in the entry's place in patches/series",
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def materialize(
    *, project: Project, patch: str, release: str | None, replace: bool, as_json: bool, ui: Ui
) -> int:
    """Exit 1 when the change fails on that release (no diff to show)."""
    result = project.materialize(patch, release, replace=replace)
    if as_json:
        ui.json(result)
    elif result.diff and not replace:
        sys.stdout.buffer.write(result.diff)
        sys.stdout.flush()
    if result.needs_attention and result.result is not None:
        ui.text(
            f"{patch}: {result.status} on {result.version}: {result.result.message}", machine=True
        )
        return EXIT_ATTENTION
    if replace and result.replaced_by:
        ui.text(f"patches/{result.replaced_by} replaces {patch} in patches/series", machine=as_json)
    return EXIT_OK


COMMAND = Command(
    name="materialize",
    help="the unified diff an edit or overlay makes (--replace: swap it into the series)",
    add_arguments=add_arguments,
    run=materialize,
)
