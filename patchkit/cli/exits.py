"""Exit codes, and the one place that turns a failure into one line on stderr and its code.

0 all good; 1 finished but a patch needs attention; 2 usage error; 3 bad input or environment
(a PatchkitError: its ``exit_code``); 130 interrupted. docs/cli.md documents them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from patchkit.errors import PatchkitError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_ATTENTION",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Outcome",
    "error_handler",
    "run_reporting",
]

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130


@dataclass(slots=True)
class Outcome:
    """The exit code of the block run under :func:`error_handler` (set by the block or by it).

    Mutable on purpose: a context manager cannot return a value, so the block and the
    handler both write the code here.
    """

    code: int = EXIT_OK


@contextlib.contextmanager
def error_handler(err: Console, *, verbose: bool = False) -> Iterator[Outcome]:
    """Run the block; map every failure to one line on ``err`` and its exit code.

    A PatchkitError is its one-line message and ``exit_code``; Ctrl-C is 130; a closed pipe
    (``patchkit matrix | head``) is not an error; anything else is an internal error: one line
    (and the traceback with ``-v``), exit 3. Never re-raises, so no traceback reaches a person.

    >>> with error_handler(err) as outcome:             # doctest: +SKIP
    ...     outcome.code = command(...)
    >>> sys.exit(outcome.code)                          # doctest: +SKIP
    """
    outcome = Outcome()
    try:
        yield outcome
    except PatchkitError as e:
        err.print(f"patchkit: error: {e}", markup=False, highlight=False, soft_wrap=True)
        outcome.code = e.exit_code
    except KeyboardInterrupt:
        err.print("patchkit: interrupted", markup=False, highlight=False)
        outcome.code = EXIT_INTERRUPTED
    except BrokenPipeError:
        outcome.code = EXIT_OK
    except Exception as e:
        if verbose:
            err.print_exception()
        err.print(
            f"patchkit: internal error ({type(e).__name__}: {e}); rerun with -v and report it",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        outcome.code = EXIT_ERROR


def run_reporting(
    err: Console, warn: Callable[[str], None], run: Callable[[], int], *, verbose: bool = False
) -> int:
    """``run()``'s exit code, under :func:`error_handler`, the library's warnings (a corrupt
    cache entry, recomputed...) shown through ``warn`` as one line each: how every command runs."""
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_args, **_kw: warn(str(message))
        with error_handler(err, verbose=verbose) as outcome:
            outcome.code = run()
    return outcome.code
