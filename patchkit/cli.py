"""The `patchkit` command: a thin shell over `patchkit.Project`.

Exit codes: 0 all good; 1 finished but a patch needs attention; 2 usage error;
3 bad input or environment (PatchkitError); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console

from . import report
from .errors import PatchkitError, UsageError
from .model import PatchStatus, RebaseState
from .project import Project

__all__ = ["main"]

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@contextlib.contextmanager
def _errors(err: Console, *, verbose: bool) -> Iterator[None]:
    """Map every failure to one line on stderr and its exit code."""
    try:
        yield
    except PatchkitError as e:
        err.print(f"patchkit: error: {e}", markup=False, highlight=False, soft_wrap=True)
        raise _Exit(e.exit_code) from e
    except KeyboardInterrupt:
        err.print("patchkit: interrupted", markup=False, highlight=False)
        raise _Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        raise _Exit(EXIT_OK) from None
    except Exception as e:
        if verbose:
            err.print_exception()
        err.print(
            f"patchkit: internal error ({type(e).__name__}: {e}); rerun with -v and report it",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise _Exit(EXIT_ERROR) from e


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="patchkit",
        description="Keep a patch series against upstream Docker image releases healthy.",
    )
    p.add_argument("--project", default=".", metavar="DIR", help="project directory (default: .)")
    p.add_argument("--store", metavar="DIR", help="git store (default: DIR/.patchkit/store.git)")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables or progress, only errors")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("versions", help="tracked releases, their status and whether imported").add_argument(
        "--json", action="store_true", help="JSON on stdout"
    )

    imp = sub.add_parser("import", help="import one release into the store")
    imp.add_argument("version")
    imp.add_argument("source", nargs="?", help="source (default: the TOML's)")
    imp.add_argument("--platform", help="os/arch[/variant] for multi-arch images (default linux/amd64)")
    imp.add_argument("--registry-mirror", metavar="URL", help="redirect Docker Hub to this registry")
    imp.add_argument("--json", action="store_true", help="JSON on stdout")

    chk = sub.add_parser("check", help="series vs one release (default: base)")
    chk.add_argument("version", nargs="?")
    chk.add_argument("--json", action="store_true", help="JSON on stdout")

    mat = sub.add_parser("matrix", help="series vs every tracked, imported release")
    mat.add_argument("versions", nargs="*")
    mat.add_argument("--format", choices=("table", "json", "junit", "markdown"), default="table")
    mat.add_argument(
        "--fail-on",
        default="conflict,missing-target",
        metavar="STATUS,...",
        help="statuses that make the exit code 1 (default: conflict,missing-target)",
    )

    reb = sub.add_parser("rebase", help="replay the series onto another release")
    group = reb.add_mutually_exclusive_group(required=True)
    group.add_argument("--onto", metavar="VERSION")
    group.add_argument("--continue", dest="cont", action="store_true", help="go on after resolving")
    group.add_argument("--skip", action="store_true", help="drop the conflicting patch and go on")
    group.add_argument("--abort", action="store_true", help="restore everything as before")
    group.add_argument("--status", action="store_true", help="show the rebase in progress")
    reb.add_argument("--json", action="store_true", help="JSON on stdout")

    sub.add_parser("refresh", help="rewrite patches so they apply exactly to base")

    demo = sub.add_parser("demo", help="run the whole workflow on a built-in example, offline")
    demo.add_argument("--dir", help="where to build the example project (default: a temp dir)")
    demo.add_argument("--keep", action="store_true", help="keep the temp dir")
    return p


def _fail_on(text: str) -> frozenset[PatchStatus]:
    out = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        try:
            out.add(PatchStatus(word))
        except ValueError:
            allowed = ", ".join(s.value for s in PatchStatus)
            raise UsageError(f"--fail-on: unknown status '{word}' (one of: {allowed})") from None
    return frozenset(out)


def _run(args: argparse.Namespace, out: Console, err: Console) -> int:
    machine = bool(getattr(args, "json", False)) or getattr(args, "format", "table") != "table"
    show = err if machine else out
    quiet = args.quiet

    def emit(renderable: Any) -> None:
        if not quiet:
            show.print(renderable)

    if args.command == "demo":
        from .demo import run_demo

        return run_demo(out=out, directory=args.dir, keep=args.keep)

    project = Project.open(args.project, store=args.store)

    if args.command == "versions":
        vf = project.versions
        imported = project.imported()
        rows = [
            {
                "version": r.version,
                "status": r.status.value,
                "base": r.version == vf.base,
                "imported": r.version in imported,
                "source": r.source or (vf.source_for(r.version) if vf.upstream.image else ""),
                "digest": r.digest,
            }
            for r in vf.releases
        ]
        if args.json:
            import json

            print(json.dumps({"schema": 1, "command": "versions", "base": vf.base, "versions": rows}, indent=2, sort_keys=True))
        else:
            emit(report.versions_table(rows))
        return EXIT_OK

    if args.command == "import":
        if args.registry_mirror:
            os.environ["PATCHKIT_REGISTRY_MIRROR"] = args.registry_mirror
        progress_cb, progress_ctx = _progress(err, enabled=not quiet and not machine and err.is_terminal)
        with progress_ctx:
            import_result = project.import_release(
                args.version, args.source, platform=args.platform, progress=progress_cb
            )
        if args.json:
            print(report.to_json(import_result))
        else:
            emit(report.import_summary(import_result))
        return EXIT_OK

    if args.command == "check":
        result = project.check(args.version)
        if args.json:
            print(report.to_json(result))
        emit(report.check_table(result))
        return EXIT_ATTENTION if result.needs_attention else EXIT_OK

    if args.command == "matrix":
        fail_on = _fail_on(args.fail_on)
        matrix = project.matrix(args.versions or None)
        if args.format == "json":
            print(report.to_json(matrix))
        elif args.format == "junit":
            sys.stdout.write(report.matrix_junit(matrix, fail_on=fail_on))
        elif args.format == "markdown":
            sys.stdout.write(report.matrix_markdown(matrix))
        if args.format == "table" or not quiet:
            emit(report.matrix_table(matrix))
        failed = any(cell.status in fail_on for cell in matrix.cells)
        return EXIT_ATTENTION if failed else EXIT_OK

    if args.command == "rebase":
        if args.onto:
            rb = project.rebase(args.onto)
        elif args.cont:
            rb = project.rebase_continue()
        elif args.skip:
            rb = project.rebase_skip()
        elif args.abort:
            rb = project.rebase_abort()
        else:
            status = project.rebase_status()
            if status is None:
                emit("no rebase in progress")
                return EXIT_OK
            rb = status
        if args.json:
            print(report.to_json(rb))
        emit(report.rebase_table(rb))
        return EXIT_ATTENTION if rb.state is RebaseState.STOPPED else EXIT_OK

    if args.command == "refresh":
        written = project.refresh()
        emit("refreshed: " + ", ".join(written) if written else "every patch already applies exactly to base")
        return EXIT_OK

    raise UsageError(f"unknown command {args.command}")


def _progress(err: Console, *, enabled: bool) -> tuple[Any, contextlib.AbstractContextManager[Any]]:
    if not enabled:
        return None, contextlib.nullcontext()
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=err, transient=True,
    )
    tasks: dict[int, Any] = {}

    def on_event(event: Any) -> None:
        layer = getattr(event, "layer", 0)
        total = getattr(event, "total", None)
        done = getattr(event, "done", getattr(event, "bytes_read", 0))
        if layer not in tasks:
            tasks[layer] = bar.add_task(f"layer {layer + 1}", total=total)
        bar.update(tasks[layer], completed=done, total=total)

    return on_event, bar


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (never raises, never prints a traceback)."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
        try:
            with _errors(err, verbose=args.verbose):
                return _run(args, out, err)
        except _Exit as e:
            return e.code
    except KeyboardInterrupt:
        err.print("patchkit: interrupted", markup=False, highlight=False)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

