#!/usr/bin/env python3
"""Live isolation proof of the poste.io patch set, on a model release.

    python bench/isolation/run.py [--engine none|podman] [--model model-bookworm]
                                  [--instances 2] [--json [OUT.json]] [--keep]

--engine none (the default, what .ci/run has always run; tree.py): the model's real
    daemons, unpatched and patched, started from a tree in one network namespace; one
    instance's listeners are listed. --json prints the JSON on stdout.
--engine podman (live.py): the images built by buildah (FROM the model release's OCI
    layout; patched = `patchkit build`'s context), two containers side by side with host
    networking in one namespace standing for the host, each item of the verdict measured.
    --json OUT.json writes the result there (--json alone: stdout). Needs the Debian
    packages of bench/isolation/setup.sh.
    The patched image by reference (byref.py): --image REF@DIGEST pulls it from a registry
    by digest instead of building it; --push REPO builds it, pushes it to REPO by digest and
    pulls it back, so the proof runs what the registry holds. The JSON records image_ref and
    image_digest.

Exit 0 when the verdict holds, 1 when it does not, 77 when it cannot run here (not root,
no namespaces, no engine, model not built), with the reason on one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODELS = ("model-bookworm", "model-trixie")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=("none", "podman"), default="none")
    p.add_argument("--model", default="model-bookworm", choices=MODELS)
    p.add_argument("--instances", type=int, default=2, help="podman: instances side by side (2)")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="OUT.json",
        help="write the result as JSON (to stdout without a file name)",
    )
    p.add_argument(
        "--project",
        type=Path,
        default=None,
        help="podman: the patchkit project whose series is built (default: this checkout)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="podman, development only: keep images and storage (no system reset)",
    )
    p.add_argument(
        "--image",
        metavar="REF@DIGEST",
        help="podman: the patched image to prove, pulled by digest (nothing built for it)",
    )
    p.add_argument(
        "--push",
        metavar="REPO",
        help="podman: push the patched image to REPO by digest and prove what is pulled back",
    )
    args = p.parse_args(argv)
    if (args.image or args.push) and args.engine != "podman":
        p.error("--image and --push need --engine podman")
    if args.image and args.push:
        p.error("--image and --push exclude each other")
    if args.image:
        import byref

        try:
            byref.parse_ref(args.image)
        except ValueError as e:
            p.error(str(e))
    if args.engine == "none":
        import tree

        if args.json not in (None, "-"):
            p.error("--engine none prints its JSON on stdout: use --json without a file name")
        return tree.main(args.model, args.json is not None)
    import live

    return live.main(
        args.model, args.instances, args.json, args.keep, args.project, args.image, args.push
    )


if __name__ == "__main__":
    sys.exit(main())
