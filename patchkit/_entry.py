"""Console entry point: as light as possible, so that Ctrl-C during start-up is clean too."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from .cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("patchkit: interrupted\n")
        return 130
