"""Console entry point: as light as possible, so that Ctrl-C during start-up is clean too."""

from __future__ import annotations

import sys
from typing import Any

_default_unraisable = sys.unraisablehook


def _quiet_interrupts(unraisable: Any) -> None:
    # Ctrl-C landing in a finalizer (e.g. subprocess.Popen.__del__) is not a bug to report.
    if unraisable.exc_type is KeyboardInterrupt:
        return
    _default_unraisable(unraisable)


def main() -> int:
    sys.unraisablehook = _quiet_interrupts
    try:
        from patchkit.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("patchkit: interrupted\n")
        return 130
