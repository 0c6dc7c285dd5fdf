"""``patchkit versions``: the tracked releases, their status, which is base, whether imported."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def versions(*, project: Project, as_json: bool, ui: Ui) -> int:
    vf = project.versions
    imported = project.imported()
    rows: list[dict[str, Any]] = [
        {
            "version": r.version,
            "status": r.status.value,
            "base": r.version == vf.base,
            "imported": r.version in imported,
            "source": r.source or (vf.source_for(r.version) if vf.upstream.image else ""),
            "digest": r.digest,
        }
        for r in vf.releases
    ]
    if as_json:
        ui.json({"schema": 1, "command": "versions", "base": vf.base, "versions": rows})
    else:
        ui.report(lambda report: report.versions_table(rows))
    return EXIT_OK


COMMAND = Command(
    name="versions",
    help="tracked releases, their status and whether imported",
    add_arguments=add_arguments,
    run=versions,
)
