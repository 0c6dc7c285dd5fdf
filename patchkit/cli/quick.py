"""A quiet ``patchkit matrix --format json``, run without the parser and the other commands.

This is the form CI and scripts run again and again, most often with nothing changed: then
its answer is one file (:mod:`patchkit.ops.matrix.snapshot`), and loading the parser, the
records and the engine would cost several times more than reading it. :func:`answer`
recognises one exact form of the command, quiet JSON into a pipe or a file::

    patchkit [-q] [-v] [--project DIR] [--store DIR] matrix [VERSION...] --format json
             [--fail-on STATUS,...] [-j N] [-q] [-v] [--project DIR] [--store DIR]

(options in any order, ``=``-joined values too, ``-q`` somewhere). Nothing changed: it prints
the snapshot's document, importing nothing of patchkit but that module. Else it runs the
matrix command's own function (:func:`patchkit.cli.commands.matrix.matrix`) under the same
error handler as every command (:func:`patchkit.cli.exits.run_reporting`), without building
the parser. Anything else (another command or option, an abbreviation or a value argparse
might read otherwise, a terminal on stdout) returns ``None``, and :func:`patchkit.cli.main`
runs. ``tests/cli/test_quick.py`` holds the two to the same parse and output.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MatrixArgs", "answer", "matrix_args"]

# Options taking a value, by where they may stand (argparse: global ones before the command
# too, the matrix's own only after it).
_GLOBAL_VALUES = ("--project", "--store")
_MATRIX_VALUES = ("--format", "--fail-on", "-j", "--jobs")
_FLAGS = ("-q", "--quiet", "-v", "--verbose")


class MatrixArgs:
    """What :func:`matrix_args` read: the values the full parser would give these options."""

    __slots__ = (
        "fail_on",
        "jobs",
        "output_format",
        "project_dir",
        "quiet",
        "store",
        "verbose",
        "versions",
    )

    def __init__(self) -> None:
        self.project_dir = "."
        self.store: str | None = None
        self.quiet = False
        self.verbose = False
        self.versions: list[str] = []
        self.output_format = "table"
        self.fail_on: str | None = None  # None: the default (the FAILED statuses)
        self.jobs = 0


def matrix_args(argv: Sequence[str]) -> MatrixArgs | None:
    """``argv`` read as the full parser reads it, if it is a ``matrix`` command of the form
    above (quiet or not: :func:`answer` decides); None for anything else."""
    out = MatrixArgs()
    command = False
    runs = 0  # runs of positionals after the command: argparse takes one
    last_positional = False
    i = 0
    while i < len(argv):
        token = argv[i]
        positional = False
        name, eq, value = token.partition("=")
        if token in _FLAGS:
            out.quiet = out.quiet or token in ("-q", "--quiet")
            out.verbose = out.verbose or token in ("-v", "--verbose")
        elif name in _GLOBAL_VALUES or (command and name in _MATRIX_VALUES):
            if not eq:
                if i + 1 >= len(argv):
                    return None
                i += 1
                value = argv[i]
            elif name == "-j":
                return None  # `-j=3` is not how argparse reads a short option
            if value.startswith("-") or (not value and name != "--fail-on"):
                return None  # argparse would take it for an option (or refuse it)
            if name == "--project":
                out.project_dir = value
            elif name == "--store":
                out.store = value
            elif name == "--format":
                if value != "json":
                    return None  # the only format answered here (argparse checks the others)
                out.output_format = value
            elif name == "--fail-on":
                out.fail_on = value
            else:
                if not (value.isascii() and value.isdigit()):
                    return None
                out.jobs = int(value)
        elif token.startswith("-") or not token:
            return None
        elif not command:
            if token != "matrix":
                return None
            command = True
        else:
            positional = True
            runs += not last_positional
            out.versions.append(token)
        last_positional = positional
        i += 1
    return out if command and runs <= 1 else None


def _fail_on(text: str | None, default: frozenset[str]) -> frozenset[str]:
    """``--fail-on``'s words, as ``patchkit.cli.commands.matrix.parse_fail_on`` reads them."""
    if text is None:
        return default
    return frozenset(filter(None, (w.strip() for w in text.split(","))))


def answer(argv: Sequence[str]) -> int | None:
    """The exit code of a quiet JSON matrix, its output printed; None: not that command (run
    the full command line)."""
    args = matrix_args(argv)
    if args is None or not args.quiet or args.output_format != "json" or sys.stdout.isatty():
        return None
    code = _from_snapshot(args)
    return _run(args) if code is None else code


def _from_snapshot(args: MatrixArgs) -> int | None:
    """The exit code once the snapshot's document is printed; None: no snapshot under the key."""
    from patchkit.ops.matrix import snapshot

    # As patchkit.project.Project.open finds the project and its store.
    root = os.path.realpath(args.project_dir)
    if not os.path.isfile(os.path.join(root, snapshot.VERSIONS_FILE)):
        return None
    state_dir = os.path.join(root, ".patchkit")
    store = os.path.realpath(args.store) if args.store else os.path.join(state_dir, "store.git")
    versions = args.versions or None
    key = snapshot.inputs_key(root=root, store_dir=store, versions=versions)
    found = None if key is None else snapshot.lookup(state_dir, versions, key)
    if found is None:
        return None
    fail_on = _fail_on(args.fail_on, found.failed)
    if not fail_on <= found.known:
        return None  # an unknown status: the command's own run names it
    try:
        text = found.document.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None  # a damaged snapshot: the command's own run replaces it
    try:
        # print(): the text, then a newline, through stdout's own encoding
        sys.stdout.write(text)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: not an error (patchkit.cli.exits.error_handler)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1 if found.statuses & fail_on else 0


def _run(args: MatrixArgs) -> int:
    """What :func:`patchkit.cli.main` does with these options, minus the parser."""
    from patchkit.cli.commands.matrix import DEFAULT_FAIL_ON, matrix
    from patchkit.cli.exits import run_reporting
    from patchkit.cli.ui import Ui

    ui = Ui.terminal(quiet=True)

    def run() -> int:
        return matrix(
            project_dir=args.project_dir,
            store=args.store,
            versions=args.versions,
            output_format=args.output_format,
            fail_on=DEFAULT_FAIL_ON if args.fail_on is None else args.fail_on,
            jobs=args.jobs,
            ui=ui,
        )

    return run_reporting(ui.err, ui.warn, run, verbose=args.verbose)
