"""How commands talk to people and machines: the two consoles, JSON and text on stdout, progress.

Only the CLI owns a Console (``patchkit.output`` builds renderables, the library never prints).
Machine output (JSON, JUnit, Markdown, HTML) goes to stdout; a command that writes it shows its
table on stderr instead, so ``patchkit check --json > r.json`` keeps the file clean.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["LazyConsole", "Ui", "progress"]


class LazyConsole:
    """A rich Console made on first use: a quiet run in a machine format never loads rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ui:
    """What a command function is given to show things: stdout/stderr consoles and ``-q``.

    Tests make one over ``Console(file=io.StringIO(), ...)`` and call a command directly.
    """

    out: Console
    err: Console
    quiet: bool = False

    @classmethod
    def terminal(cls, *, quiet: bool = False) -> Ui:
        """The consoles of a real run: stdout and stderr, no highlighting of numbers and paths."""
        return cls(
            out=cast("Console", LazyConsole(highlight=False)),
            err=cast("Console", LazyConsole(stderr=True, highlight=False)),
            quiet=quiet,
        )

    def show(self, renderable: RenderableType, *, machine: bool = False) -> None:
        """Show something to a person: stdout, or stderr when ``machine`` output owns stdout.

        Nothing with ``-q``.
        """
        if not self.quiet:
            (self.err if machine else self.out).print(renderable)

    def report(self, build: Callable[[Any], RenderableType], *, machine: bool = False) -> None:
        """Show ``build(patchkit.output.report)``: the table is built, and rich loaded, only if shown.

        >>> ui.report(lambda report: report.check_table(result), machine=as_json)  # doctest: +SKIP
        """
        if self.quiet:
            return
        from patchkit.output import report

        self.show(build(report), machine=machine)

    def text(self, line: str, *, machine: bool = False) -> None:
        """One plain line for a person (no rich markup: patch names and paths are shown as is)."""
        if not self.quiet:
            console = self.err if machine else self.out
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        """``patchkit: warning: ...`` on stderr, also with ``-q``."""
        self.err.print(
            f"patchkit: warning: {message}", markup=False, highlight=False, soft_wrap=True
        )

    def json(self, record: Any | Mapping[str, Any]) -> None:
        """The record (or document) as JSON on stdout: indented on a terminal, one line else."""
        from patchkit.output.formats import to_json

        # JSON for a person (a terminal) is indented; for a pipe or a file, one line: jq reads both.
        print(to_json(record, pretty=sys.stdout.isatty()))

    def write(self, text: str) -> None:
        """Machine text (JUnit, Markdown, HTML, a GitHub matrix) on stdout, as is."""
        sys.stdout.write(text)


def progress(err: Console, *, enabled: bool) -> tuple[Any, contextlib.AbstractContextManager[Any]]:
    """A callback for ``patchkit.images.ProgressEvent`` drawing one bar per layer, and its bar.

    Disabled (a pipe, ``-q``, machine output): no callback and a no-op context.
    """
    if not enabled:
        return None, contextlib.nullcontext()
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[int, Any] = {}

    def on_event(event: Any) -> None:
        # patchkit.images.ProgressEvent: layer (1-based), layers, read/total bytes of the blob.
        layer = getattr(event, "layer", 1)
        layers = getattr(event, "layers", 0)
        total = getattr(event, "total", None)
        read = getattr(event, "read", 0)
        if layer not in tasks:
            label = f"layer {layer}/{layers}" if layers else f"layer {layer}"
            if getattr(event, "cached", False):
                label += " (cached)"
            tasks[layer] = bar.add_task(label, total=total)
        if getattr(event, "done", False) and total is None:
            total = read
        bar.update(tasks[layer], completed=read, total=total)

    return on_event, bar
