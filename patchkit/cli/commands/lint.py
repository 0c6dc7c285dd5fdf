"""``patchkit lint``: parse the TOML, the series and every file it names, without a store.

What the ``patchkit-lint`` pre-commit hook runs (docs/pre-commit.md). Every problem is one
``patchkit: error: FILE:LINE: ...`` line on stderr (warnings likewise, also with ``-q``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def lint(*, project: Project, as_json: bool, ui: Ui) -> int:
    """Exit 1 when a file has an error (warnings alone: 0)."""
    from patchkit.ops.lint import lint_project

    result = lint_project(project)
    for problem in result.problems:
        # The same line an error stopping any other command prints, one per problem.
        ui.err.print(
            f"patchkit: {problem.severity}: {problem}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        ui.json(result)
    errors, warnings = len(result.errors), len(result.warnings)
    counts = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    ui.text(f"lint: {len(result.files)} files read, {counts}", machine=as_json)
    return EXIT_OK if result.ok else EXIT_ATTENTION


COMMAND = Command(
    name="lint",
    help="parse the TOML, the series and every patch and edit it names (no store needed)",
    add_arguments=add_arguments,
    run=lint,
)
