"""``patchkit completion bash|zsh``: a shell completion script, generated from the parser (shtab).

Generated, not written by hand, so a new command or option is completed without anyone
remembering to: ``eval "$(patchkit completion bash)"`` (docs/cli.md has the install lines).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui

SHELLS = ("bash", "zsh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def completion(*, shell: str, parser: argparse.ArgumentParser, ui: Ui) -> int:
    ui.write(completion_script(parser, shell))
    return EXIT_OK


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell``; ends with a newline.

    Options whose metavar is ``DIR`` complete directories and ``*.json`` ones files: the
    hint is read from the parser, so a new ``--x DIR`` option gets it too.
    """
    import shtab  # only this command needs it

    for each in _parsers(parser):
        for action in each._actions:
            metavar = action.metavar if isinstance(action.metavar, str) else ""
            if metavar == "DIR":
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
            elif metavar.endswith(".json"):
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    script: str = shtab.complete(parser, shell=shell)
    return script if script.endswith("\n") else script + "\n"


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and every subcommand's parser."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_parsers(sub))
    return found


COMMAND = Command(
    name="completion",
    help="print a bash or zsh completion script generated from this parser",
    add_arguments=add_arguments,
    run=completion,
)
