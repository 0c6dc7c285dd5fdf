"""The `patchkit` command: a thin shell over `patchkit.Project`.

Exit codes: 0 all good; 1 finished but a patch needs attention; 2 usage error;
3 bad input or environment (PatchkitError); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from patchkit.core.model import PatchStatus, RebaseState
from patchkit.errors import PatchkitError, UsageError
from patchkit.project import Project

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130


class _LazyConsole:
    """A rich Console made on first use: a quiet run in a machine format never loads rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


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

    sub.add_parser(
        "versions", help="tracked releases, their status and whether imported"
    ).add_argument("--json", action="store_true", help="JSON on stdout")

    imp = sub.add_parser("import", help="import one release into the store")
    imp.add_argument("version")
    imp.add_argument("source", nargs="?", help="source (default: the TOML's)")
    imp.add_argument(
        "--platform", help="os/arch[/variant] for multi-arch images (default linux/amd64)"
    )
    imp.add_argument(
        "--registry-mirror", metavar="URL", help="redirect Docker Hub to this registry"
    )
    imp.add_argument(
        "--replace",
        action="store_true",
        help="the release changed upstream (re-pushed tag, rebuilt model): import over it",
    )
    imp.add_argument("--json", action="store_true", help="JSON on stdout")

    chk = sub.add_parser("check", help="series vs one release (default: base)")
    chk.add_argument("version", nargs="?")
    chk.add_argument("--json", action="store_true", help="JSON on stdout")

    mat = sub.add_parser("matrix", help="series vs every tracked, imported release")
    mat.add_argument("versions", nargs="*")
    mat.add_argument(
        "--format", choices=("table", "json", "junit", "markdown", "html"), default="table"
    )
    mat.add_argument(
        "--fail-on",
        default="conflict,missing-target",
        metavar="STATUS,...",
        help="statuses that make the exit code 1 (default: conflict,missing-target)",
    )
    mat.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes (default: one per CPU)",
    )
    mat.add_argument(
        "--no-cache", action="store_true", help="neither read nor write .patchkit/cache/matrix"
    )
    mat.add_argument(
        "--only-changed", metavar="REF", help="only patches/releases changed since this git ref"
    )
    mat.add_argument(
        "--github-matrix", action="store_true", help="print a GitHub Actions strategy.matrix"
    )
    mat.add_argument(
        "--group-size", type=int, default=1, metavar="N", help="releases per --github-matrix job"
    )
    mat.add_argument("--merge", nargs="+", metavar="RESULT.json", help="join per-job JSON results")

    reb = sub.add_parser("rebase", help="replay the series onto another release")
    group = reb.add_mutually_exclusive_group(required=True)
    group.add_argument("--onto", metavar="VERSION")
    group.add_argument("--continue", dest="cont", action="store_true", help="go on after resolving")
    group.add_argument("--skip", action="store_true", help="drop the conflicting patch and go on")
    group.add_argument("--abort", action="store_true", help="restore everything as before")
    group.add_argument("--status", action="store_true", help="show the rebase in progress")
    reb.add_argument("--json", action="store_true", help="JSON on stdout")
    reb.add_argument(
        "--diff",
        action="store_true",
        help="also show the +/- lines each patch changed (range-diff)",
    )

    bis = sub.add_parser("bisect", help="first imported release where a patch stops applying")
    bis.add_argument("patch", help="a patch file name from patches/series")
    bis.add_argument("--json", action="store_true", help="JSON on stdout")

    sub.add_parser("refresh", help="rewrite patches so they apply exactly to base")

    aud = sub.add_parser(
        "audit", help="list network listeners in the patched configs; fail on TCP loopback/wildcard"
    )
    aud.add_argument("version", nargs="?", help="release (default: base)")
    aud.add_argument(
        "--unpatched", action="store_true", help="audit the release as imported, without the series"
    )
    aud.add_argument(
        "--strict", action="store_true", help="also fail on listeners left to unverified patches"
    )
    aud.add_argument("--json", action="store_true", help="JSON on stdout")

    bld = sub.add_parser(
        "build", help="write a Docker build context: FROM the release + the patched files"
    )
    bld.add_argument("version")
    bld.add_argument(
        "--out", required=True, metavar="DIR", help="the build context directory (replaced)"
    )
    bld.add_argument("--json", action="store_true", help="JSON on stdout")

    demo = sub.add_parser("demo", help="run the whole workflow on a built-in example, offline")
    demo.add_argument("--dir", help="where to build the example project (default: a temp dir)")
    demo.add_argument("--keep", action="store_true", help="keep the temp dir")
    _global_options_after_command(sub)
    return p


def _global_options_after_command(sub: Any) -> None:
    """Let `patchkit check -q` mean `patchkit -q check`: people put flags anywhere."""
    for command in sub.choices.values():
        opts = command._option_string_actions
        if "--project" not in opts:
            command.add_argument(
                "--project", default=argparse.SUPPRESS, metavar="DIR", help=argparse.SUPPRESS
            )
        if "--store" not in opts:
            command.add_argument(
                "--store", default=argparse.SUPPRESS, metavar="DIR", help=argparse.SUPPRESS
            )
        if "-q" not in opts:
            command.add_argument(
                "-q",
                "--quiet",
                action="store_true",
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )
        if "-v" not in opts:
            command.add_argument(
                "-v",
                "--verbose",
                action="store_true",
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )


def _pretty() -> bool:
    # JSON for a person (a terminal) is indented; for a pipe or a file, one line: jq reads both.
    return sys.stdout.isatty()


def _tables() -> Any:
    from patchkit.output import report  # rich tables: loaded only when a table is shown

    return report


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
    from patchkit.output import formats

    machine = bool(getattr(args, "json", False)) or getattr(args, "format", "table") != "table"
    show = err if machine else out
    quiet = args.quiet

    def emit(renderable: Any) -> None:
        if not quiet:
            show.print(renderable)

    if args.command == "demo":
        from patchkit.cli.demo import run_demo

        return run_demo(out=out, directory=args.dir, keep=args.keep)

    if args.command == "matrix" and args.merge:
        return _matrix_command(args, None, emit=emit, err=err)

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

            print(
                json.dumps(
                    {"schema": 1, "command": "versions", "base": vf.base, "versions": rows},
                    indent=2 if _pretty() else None,
                    sort_keys=True,
                )
            )
        else:
            if not quiet:  # a table is not free: build it only to show it
                emit(_tables().versions_table(rows))
        return EXIT_OK

    if args.command == "import":
        if args.registry_mirror:
            os.environ["PATCHKIT_REGISTRY_MIRROR"] = args.registry_mirror
        progress_cb, progress_ctx = _progress(
            err, enabled=not quiet and not machine and err.is_terminal
        )
        with progress_ctx:
            import_result = project.import_release(
                args.version,
                args.source,
                platform=args.platform,
                progress=progress_cb,
                replace=args.replace,
            )
        if args.json:
            print(formats.to_json(import_result, pretty=_pretty()))
        else:
            if not quiet:  # a table is not free: build it only to show it
                emit(_tables().import_summary(import_result))
        return EXIT_OK

    if args.command == "check":
        result = project.check(args.version)
        if args.json:
            print(formats.to_json(result, pretty=_pretty()))
        if not quiet:  # a table is not free: build it only to show it
            emit(_tables().check_table(result))
        return EXIT_ATTENTION if result.needs_attention else EXIT_OK

    if args.command == "matrix":
        return _matrix_command(args, project, emit=emit, err=err)

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
            print(formats.to_json(rb, pretty=_pretty()))
        if not quiet:  # a table is not free: build it only to show it
            emit(_tables().rebase_table(rb))
        if args.diff:
            for p in rb.patches:
                for change in p.changes:
                    emit(f"{p.name}: {change.render()}")
        return EXIT_ATTENTION if rb.state is RebaseState.STOPPED else EXIT_OK

    if args.command == "bisect":
        from patchkit.ops.bisect import bisect_patch, bisect_text

        found = bisect_patch(project, args.patch)
        if args.json:
            print(formats.to_json(found, pretty=_pretty()))
        emit(bisect_text(found))
        return EXIT_ATTENTION if found.needs_attention else EXIT_OK

    if args.command == "audit":
        from patchkit.audit import audit_release, render_audit

        audit = audit_release(project, args.version, patched=not args.unpatched, strict=args.strict)
        if args.json:
            print(formats.to_json(audit, pretty=_pretty()))
        if not quiet:
            show.print(render_audit(audit), markup=False, highlight=False, soft_wrap=True)
        return EXIT_ATTENTION if audit.failed else EXIT_OK

    if args.command == "build":
        ctx = project.build_context(args.version, args.out)
        for warning in ctx.warnings:
            err.print(
                f"patchkit: warning: {warning}", markup=False, highlight=False, soft_wrap=True
            )
        if args.json:
            print(formats.to_json(ctx, pretty=_pretty()))
        emit(f"{args.out}: Dockerfile FROM {ctx.base_image}, {len(ctx.files)} file(s) in overlay/")
        return EXIT_OK

    if args.command == "refresh":
        written = project.refresh()
        emit(
            "refreshed: " + ", ".join(written)
            if written
            else "every patch already applies exactly to base"
        )
        return EXIT_OK

    raise UsageError(f"unknown command {args.command}")


def _matrix_command(
    args: argparse.Namespace, project: Project | None, *, emit: Any, err: Console
) -> int:
    """`matrix`: compute (or --merge), then render in the asked format; exit per --fail-on."""
    import json

    from patchkit.ops import matrix as matrix_mod
    from patchkit.output import formats

    fail_on = _fail_on(args.fail_on)

    def warn(message: str) -> None:
        err.print(f"patchkit: warning: {message}", markup=False, highlight=False, soft_wrap=True)

    if args.merge:
        if args.versions or args.github_matrix or args.only_changed:
            raise UsageError(
                "--merge takes result files only (no VERSION, --github-matrix, --only-changed)"
            )
        order = None
        with contextlib.suppress(PatchkitError):
            order = [
                r.version for r in Project.open(args.project, store=args.store).versions.ordered()
            ]
        parts = matrix_mod.load_results(args.merge)
        matrix = matrix_mod.merge_matrices(parts, names=[str(p) for p in args.merge], order=order)
    else:
        assert project is not None
        patches: set[str] | None = None
        releases: set[str] | None = None
        if args.only_changed:
            changed_p, changed_r = matrix_mod.changed_since(project, args.only_changed)
            # Changed patches are checked on every release, changed releases with every patch.
            patches = None if changed_r else changed_p
            releases = None if changed_p else changed_r
        if args.github_matrix:
            vf = project.versions
            labels = [
                r.version for r in vf.ordered() if not args.versions or r.version in args.versions
            ]
            for label in args.versions:
                vf.release(label)
            if releases is not None:
                labels = [v for v in labels if v in releases]
            print(
                json.dumps(
                    matrix_mod.github_matrix(labels, group_size=args.group_size), sort_keys=True
                )
            )
            return EXIT_OK
        versions = list(args.versions) or None
        if releases is not None:
            imported = project.imported()
            versions = [
                v for v in (versions or project.versions.labels) if v in releases and v in imported
            ]
        if versions == []:
            from patchkit.core.model import Matrix

            matrix = Matrix(versions=(), patches=(), checks=())
        else:
            matrix = project.matrix(versions, jobs=args.jobs, cache=not args.no_cache, warn=warn)
        if patches is not None:
            matrix = matrix_mod.limit(matrix, patches=patches, versions=None)
    if args.format == "json":
        print(formats.to_json(matrix, pretty=_pretty()))
    elif args.format == "junit":
        sys.stdout.write(formats.matrix_junit(matrix, fail_on=fail_on))
    elif args.format == "markdown":
        sys.stdout.write(formats.matrix_markdown(matrix))
    elif args.format == "html":
        from patchkit.output.html import matrix_html

        sys.stdout.write(matrix_html(matrix))
    if not args.quiet:  # a table of every cell is not free: build it only to show it
        emit(_tables().matrix_table(matrix))
    failed = any(cell.status in fail_on for cell in matrix.cells)
    return EXIT_ATTENTION if failed else EXIT_OK


def _progress(err: Console, *, enabled: bool) -> tuple[Any, contextlib.AbstractContextManager[Any]]:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (never raises, never prints a traceback)."""
    out = cast("Console", _LazyConsole(highlight=False))
    err = cast("Console", _LazyConsole(stderr=True, highlight=False))
    with warnings.catch_warnings():
        # The library warns (e.g. a corrupt cache entry, recomputed); people get one line.
        warnings.showwarning = lambda message, *_args, **_kw: err.print(
            f"patchkit: warning: {message}", markup=False, highlight=False, soft_wrap=True
        )
        return _main(argv, out, err)


def _main(argv: Sequence[str] | None, out: Console, err: Console) -> int:
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
