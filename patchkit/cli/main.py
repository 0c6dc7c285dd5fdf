"""The ``patchkit`` command: build the parser from one table, dispatch to one function.

``COMMANDS`` is the table; each entry comes from ``patchkit/cli/commands/<name>.py`` (that
package's docstring says how to add one). ``main`` parses, opens the project when the
command's function asks for it, calls the function with keyword arguments and maps every
failure to one line and an exit code (:mod:`patchkit.cli.exits`).
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from patchkit.cli.commands import CONTEXT, Command
from patchkit.cli.commands import assemble as assemble_cmd
from patchkit.cli.commands import audit as audit_cmd
from patchkit.cli.commands import bisect as bisect_cmd
from patchkit.cli.commands import build as build_cmd
from patchkit.cli.commands import check as check_cmd
from patchkit.cli.commands import completion as completion_cmd
from patchkit.cli.commands import demo as demo_cmd
from patchkit.cli.commands import diff as diff_cmd
from patchkit.cli.commands import edit as edit_cmd
from patchkit.cli.commands import forecast as forecast_cmd
from patchkit.cli.commands import import_ as import_cmd
from patchkit.cli.commands import init as init_cmd
from patchkit.cli.commands import lint as lint_cmd
from patchkit.cli.commands import materialize as materialize_cmd
from patchkit.cli.commands import matrix as matrix_cmd
from patchkit.cli.commands import new as new_cmd
from patchkit.cli.commands import rebase as rebase_cmd
from patchkit.cli.commands import refresh as refresh_cmd
from patchkit.cli.commands import report as report_cmd
from patchkit.cli.commands import show as show_cmd
from patchkit.cli.commands import versions as versions_cmd
from patchkit.cli.commands import watch as watch_cmd
from patchkit.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE, run_reporting
from patchkit.cli.ui import Ui
from patchkit.errors import UsageError
from patchkit.output.formats import patchkit_version

__all__ = ["COMMANDS", "GLOBAL_OPTIONS", "build_parser", "dispatch", "main"]

# The dispatch table, in `patchkit --help` order. A new command: one line here.
COMMANDS: Mapping[str, Command] = {
    c.name: c
    for c in (
        init_cmd.COMMAND,
        versions_cmd.COMMAND,
        import_cmd.COMMAND,
        watch_cmd.COMMAND,
        check_cmd.COMMAND,
        lint_cmd.COMMAND,
        matrix_cmd.COMMAND,
        rebase_cmd.COMMAND,
        forecast_cmd.COMMAND,
        report_cmd.COMMAND,
        bisect_cmd.COMMAND,
        refresh_cmd.COMMAND,
        materialize_cmd.COMMAND,
        show_cmd.COMMAND,
        diff_cmd.COMMAND,
        edit_cmd.COMMAND,
        new_cmd.COMMAND,
        audit_cmd.COMMAND,
        build_cmd.COMMAND,
        assemble_cmd.COMMAND,
        demo_cmd.COMMAND,
        completion_cmd.COMMAND,
    )
}

# The dests of the options every command takes (before or after its name); not passed on.
GLOBAL_OPTIONS = ("project_dir", "store", "quiet", "verbose")


def build_parser(commands: Mapping[str, Command] = COMMANDS) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="patchkit",
        description="Keep a patch series against upstream Docker image releases healthy.",
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"patchkit {patchkit_version()}",
        help="show patchkit's version and exit",
    )
    p.add_argument(
        "--project",
        dest="project_dir",
        default=".",
        metavar="DIR",
        help="project directory (default: .)",
    )
    p.add_argument("--store", metavar="DIR", help="git store (default: DIR/.patchkit/store.git)")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables or progress, only errors")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands.values():
        parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(parser)
        _global_options_after_command(parser)
    return p


def _global_options_after_command(command: argparse.ArgumentParser) -> None:
    """Let `patchkit check -q` mean `patchkit -q check`: people put flags anywhere.

    Hidden from the command's --help (the main --help lists them); SUPPRESS as default so
    that, not given after the command, the value given before it stays.
    """
    opts = command._option_string_actions
    if "--project" not in opts:
        command.add_argument(
            "--project",
            dest="project_dir",
            default=argparse.SUPPRESS,
            metavar="DIR",
            help=argparse.SUPPRESS,
        )
    if "--store" not in opts:
        command.add_argument(
            "--store", default=argparse.SUPPRESS, metavar="DIR", help=argparse.SUPPRESS
        )
    if "-q" not in opts:
        command.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    if "-v" not in opts:
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )


def dispatch(
    command: Command,
    options: Mapping[str, Any],
    *,
    ui: Ui,
    project_dir: str = ".",
    store: str | None = None,
    parser: argparse.ArgumentParser | None = None,
    verbose: bool = False,
) -> int:
    """Call ``command.run`` with its options and the CONTEXT names its signature asks for."""
    context: dict[str, Callable[[], Any]] = {
        "ui": lambda: ui,
        "project": lambda: _open_project(project_dir, store),
        "project_dir": lambda: project_dir,
        "store": lambda: store,
        "parser": lambda: parser if parser is not None else build_parser(),
        "verbose": lambda: verbose,  # -v, before or after the command's name
    }
    kwargs = dict(options)
    for name in inspect.signature(command.run).parameters:
        if name in CONTEXT and name not in kwargs:
            kwargs[name] = context[name]()
    return command.run(**kwargs)


def _open_project(project_dir: str, store: str | None) -> Any:
    from patchkit.project import Project

    return Project.open(project_dir, store=store)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (never raises, never prints a traceback)."""
    try:
        parser = build_parser()
        try:
            args = vars(parser.parse_args(argv))
        except SystemExit as e:  # --help, --version, or a usage error argparse printed
            return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
        ui = Ui.terminal(quiet=args.pop("quiet"))
        verbose = args.pop("verbose")
        project_dir, store = args.pop("project_dir"), args.pop("store")
        name = args.pop("command")

        def run() -> int:
            if name not in COMMANDS:
                raise UsageError(f"unknown command {name}")
            return dispatch(
                COMMANDS[name],
                args,
                ui=ui,
                project_dir=project_dir,
                store=store,
                parser=parser,
                verbose=verbose,
            )

        # The library warns (e.g. a corrupt cache entry, recomputed); people get one line.
        return run_reporting(ui.err, ui.warn, run, verbose=verbose)
    except KeyboardInterrupt:  # Ctrl-C while parsing, before the handler is in place
        sys.stderr.write("patchkit: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
