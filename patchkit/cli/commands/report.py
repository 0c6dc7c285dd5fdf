"""``patchkit report VERSION``: the upgrade report, a pull request's or an issue's body
(docs/cli.md, "Keeping current")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK
from patchkit.files import atomic_write

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project

FORMATS = ("markdown", "html", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", metavar="VERSION", help="the release to report on")
    parser.add_argument(
        "--format", dest="fmt", choices=FORMATS, default="markdown", help="default: markdown"
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write it to FILE (atomically) instead of stdout"
    )


def report(*, project: Project, version: str, fmt: str, output: str | None, ui: Ui) -> int:
    """Exit 0 once the report is written, whatever it says (``forecast`` exits 1 when a
    person is needed); 3 on bad input, nothing written."""
    result = project.report(version)
    if fmt == "json":
        from patchkit.output.formats import to_json

        text = to_json(result) + "\n"
    else:
        from patchkit.output.upgrade import report_html, report_markdown

        text = report_markdown(result) if fmt == "markdown" else report_html(result)
    if output is None:
        ui.write(text)
    else:
        atomic_write(Path(output), text.encode("utf-8"))
        ui.show(f"wrote {output}", machine=True)
    return EXIT_OK


COMMAND = Command(
    name="report",
    help="the upgrade report of a release (Markdown, HTML or JSON)",
    add_arguments=add_arguments,
    run=report,
)
