"""``patchkit assemble``: the per-platform builds of a release as one OCI layout, one tag."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="the OCI layout to write (replaced)")
    parser.add_argument(
        "sources", nargs="+", metavar="LAYOUT", help="built images: oci:PATH[:REF], one a platform"
    )
    parser.add_argument("--tag", required=True, help="the ref name OUT gives the result")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def assemble(*, out: str, sources: list[str], tag: str, as_json: bool, ui: Ui) -> int:
    from patchkit.images.assemble import assemble_layout

    result = assemble_layout(Path(out), tag, sources)
    if as_json:
        ui.json(result)
    ui.text(
        f"oci:{out}:{tag} = {result.digest} ({', '.join(result.platforms)}"
        + (f"; {result.attestations} attestation(s)" if result.attestations else "")
        + ")",
        machine=as_json,
    )
    return EXIT_OK


COMMAND = Command(
    name="assemble",
    help="one OCI layout and tag for a release's per-platform images (publishing)",
    add_arguments=add_arguments,
    run=assemble,
)
