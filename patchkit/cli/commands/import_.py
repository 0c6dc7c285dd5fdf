"""``patchkit import``: one release into the store (``import`` is a keyword: the module is ``import_``)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK
from patchkit.cli.ui import progress

if TYPE_CHECKING:
    from collections.abc import Sequence

    from patchkit.cli.ui import Ui
    from patchkit.project import Project


class _Verbose(argparse.Action):
    """``import -v``: the global ``-v`` (tracebacks), and the zlib the import used named
    (``patchkit -v import`` too: the command asks the dispatcher for ``verbose``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        namespace.verbose = True
        setattr(namespace, self.dest, True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version")
    parser.add_argument("source", nargs="?", help="source (default: the TOML's)")
    parser.add_argument(
        "--platform", help="os/arch[/variant] for multi-arch images (default linux/amd64)"
    )
    parser.add_argument(
        "--registry-mirror", metavar="URL", help="redirect Docker Hub to this registry"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="the release changed upstream (re-pushed tag, rebuilt model): import over it",
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")
    parser.add_argument(
        "-v",
        "--verbose",
        dest="show_zlib",
        action=_Verbose,
        nargs=0,
        default=False,
        help="tracebacks for internal errors; name the zlib implementation used (stderr)",
    )


def import_release(
    *,
    project: Project,
    version: str,
    source: str | None,
    platform: str | None,
    registry_mirror: str | None,
    replace: bool,
    as_json: bool,
    ui: Ui,
    show_zlib: bool = False,
    verbose: bool = False,
) -> int:
    if registry_mirror:
        # The registry client reads it (docs/registry.md); the option is its CLI spelling.
        os.environ["PATCHKIT_REGISTRY_MIRROR"] = registry_mirror
    on_event, bar = progress(ui.err, enabled=not ui.quiet and not as_json and ui.err.is_terminal)
    with bar:
        result = project.import_release(
            version, source, platform=platform, progress=on_event, replace=replace
        )
    if (show_zlib or verbose) and result.zlib and not ui.quiet:
        # stderr, so that `import -v --json` still gives JSON alone on stdout
        ui.err.print(f"zlib: {result.zlib}", markup=False, highlight=False)
    if as_json:
        ui.json(result)
    else:
        ui.report(lambda report: report.import_summary(result))
    return EXIT_OK


COMMAND = Command(
    name="import",
    help="import one release into the store",
    add_arguments=add_arguments,
    run=import_release,
)
