"""One module per ``patchkit`` command; ``patchkit.cli.main.COMMANDS`` is the table over them.

Each module holds a plain function that does the command, taking keyword arguments only
(never an argparse Namespace, so a test calls it directly), an ``add_arguments(parser)`` that
declares its options, and ``COMMAND``, the table entry tying the two to a name.

The function's keyword arguments are its options' argparse ``dest`` names, plus any of these,
which the dispatcher provides when the function names them:

- ``ui``: :class:`patchkit.cli.ui.Ui` (consoles, ``-q``, JSON and text on stdout);
- ``project``: the :class:`patchkit.Project` of ``--project``/``--store``, opened (an error
  opening it is the command's error: one line, exit 3);
- ``project_dir``, ``store``: the ``--project``/``--store`` values, for a command that opens
  the project only sometimes (``matrix --merge`` needs no store);
- ``parser``: the whole argparse parser (``completion`` generates scripts from it).

It returns the exit code (:mod:`patchkit.cli.exits`) and raises a ``PatchkitError`` (from
:mod:`patchkit.errors`) for bad input: the dispatcher prints it as one line.

Adding a command, say ``lint``:

1. ``patchkit/cli/commands/lint.py``::

       def add_arguments(parser: argparse.ArgumentParser) -> None:
           parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")

       def lint(*, project: Project, as_json: bool, ui: Ui) -> int:
           result = project.lint()          # the work is the library's (Project), not the CLI's
           if as_json:
               ui.json(result)              # adds "patchkit": version, like every JSON document
           ui.report(lambda report: report.lint_table(result), machine=as_json)
           return EXIT_ATTENTION if result.failed else EXIT_OK

       COMMAND = Command(name="lint", help="...", add_arguments=add_arguments, run=lint)

2. Add ``lint.COMMAND`` to ``COMMANDS`` in ``patchkit/cli/main.py`` (that order is ``--help``'s).
3. docs/cli.md: its line in the synopsis and any exit code; docs/json.md: its JSON.
4. Tests: ``tests/cli/test_commands.py`` calls ``lint(...)`` directly; ``tests/cli/test_main.py``
   checks every table entry's parameters against its parser, and ``test_completion.py`` that
   the shell completion offers it, without being edited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse

__all__ = ["CONTEXT", "Command"]

# The names the dispatcher fills in when a command function asks for them (see above).
CONTEXT = frozenset({"ui", "project", "project_dir", "store", "parser", "verbose"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One row of the dispatch table."""

    name: str  # what people type: `patchkit NAME`
    help: str  # the one line in `patchkit --help`
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[..., int]  # keyword arguments only: its options' dests + CONTEXT names
