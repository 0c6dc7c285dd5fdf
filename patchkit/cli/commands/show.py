"""``patchkit show VERSION:PATH``: a file of an imported release, from the store."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="VERSION:PATH", help="e.g. 2.5.24:etc/redis/redis.conf")
    parser.add_argument("--patched", action="store_true", help="with the series applied")


def show(*, project: Project, spec: str, patched: bool) -> int:
    from patchkit.ops.show import parse_version_path

    version, path = parse_version_path(spec)
    sys.stdout.buffer.write(project.show(version, path, patched=patched))
    sys.stdout.flush()
    return EXIT_OK


COMMAND = Command(
    name="show",
    help="a file of an imported release (--patched: with the series applied)",
    add_arguments=add_arguments,
    run=show,
)
