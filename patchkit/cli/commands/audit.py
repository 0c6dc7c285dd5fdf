"""``patchkit audit``: network listeners and connections in the (patched) configs (docs/audit.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", nargs="?", help="release (default: base)")
    parser.add_argument(
        "--unpatched", action="store_true", help="audit the release as imported, without the series"
    )
    parser.add_argument(
        "--strict", action="store_true", help="also fail on unverified listeners and connections"
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def audit(
    *,
    project: Project,
    version: str | None = None,
    unpatched: bool = False,
    strict: bool = False,
    as_json: bool = False,
    ui: Ui,
) -> int:
    """Exit 1 when a listener or a connection fails the policy."""
    from patchkit.audit import render_audit

    result = project.audit(version, patched=not unpatched, strict=strict)
    if as_json:
        ui.json(result)
    ui.text(render_audit(result), machine=as_json)
    return EXIT_ATTENTION if result.failed else EXIT_OK


COMMAND = Command(
    name="audit",
    help="list listeners and connections in the patched configs; fail on TCP loopback/wildcard",
    add_arguments=add_arguments,
    run=audit,
)
