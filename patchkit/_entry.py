"""Console entry point: as light as possible, so that Ctrl-C during start-up is clean too."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

_default_unraisable = sys.unraisablehook


def _quiet_interrupts(unraisable: Any) -> None:
    # Ctrl-C landing in a finalizer (e.g. subprocess.Popen.__del__) is not a bug to report.
    if unraisable.exc_type is KeyboardInterrupt:
        return
    _default_unraisable(unraisable)


def _quick(argv: list[str]) -> int | None:
    """A quiet JSON matrix, run without the parser (patchkit.cli.quick); None for every other
    command line."""
    from patchkit.cli.quick import answer

    return answer(argv)


def main() -> int:
    sys.unraisablehook = _quiet_interrupts
    try:
        code = _quick(sys.argv[1:])
        if code is not None:
            return code
        from patchkit.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("patchkit: interrupted\n")
        return 130
