"""``patchkit matrix``: the series against every tracked, imported release (docs/matrix.md).

Computes (or, with ``--merge``, joins per-job results), renders in the asked format and
exits 1 when a cell has a status named by ``--fail-on``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK
from patchkit.core.model import FAILED, PatchStatus
from patchkit.errors import PatchkitError, UsageError

if TYPE_CHECKING:
    import argparse

    from patchkit.cli.ui import Ui
    from patchkit.core.model import Matrix
    from patchkit.project import Project

FORMATS = ("table", "json", "junit", "markdown", "html")
# `--fail-on`'s default: the statuses of a change that could not be made.
DEFAULT_FAIL_ON = ",".join(s.value for s in PatchStatus if s in FAILED)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("versions", nargs="*")
    parser.add_argument("--format", dest="output_format", choices=FORMATS, default="table")
    parser.add_argument(
        "--fail-on",
        default=DEFAULT_FAIL_ON,
        metavar="STATUS,...",
        help=f"statuses that make the exit code 1 (default: {DEFAULT_FAIL_ON})",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes (default: one per CPU)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="neither read nor write .patchkit/cache/matrix"
    )
    parser.add_argument(
        "--only-changed", metavar="REF", help="only patches/releases changed since this git ref"
    )
    parser.add_argument(
        "--github-matrix", action="store_true", help="print a GitHub Actions strategy.matrix"
    )
    parser.add_argument(
        "--group-size", type=int, default=1, metavar="N", help="releases per --github-matrix job"
    )
    parser.add_argument(
        "--merge", nargs="+", metavar="RESULT.json", help="join per-job JSON results"
    )


def parse_fail_on(text: str) -> frozenset[PatchStatus]:
    """``conflict,fuzz`` -> the statuses; an unknown word is a usage error (exit 2)."""
    out = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        try:
            out.add(PatchStatus(word))
        except ValueError:
            allowed = ", ".join(s.value for s in PatchStatus)
            raise UsageError(f"--fail-on: unknown status '{word}' (one of: {allowed})") from None
    return frozenset(out)


def matrix(
    *,
    project_dir: str,
    store: str | None,
    versions: Sequence[str] = (),
    output_format: str = "table",
    fail_on: str = DEFAULT_FAIL_ON,
    jobs: int = 0,
    no_cache: bool = False,
    only_changed: str | None = None,
    github_matrix: bool = False,
    group_size: int = 1,
    merge: Sequence[str] | None = None,
    ui: Ui,
) -> int:
    """The project is opened here, not by the dispatcher: ``--merge`` needs none."""
    from patchkit.project import Project

    statuses = parse_fail_on(fail_on)
    if merge:
        if versions or github_matrix or only_changed:
            raise UsageError(
                "--merge takes result files only (no VERSION, --github-matrix, --only-changed)"
            )
        result = _merged(merge, project_dir=project_dir, store=store)
    else:
        project = Project.open(project_dir, store=store)
        if github_matrix:
            ui.write(_github_matrix(project, versions, only_changed, group_size) + "\n")
            return EXIT_OK
        result = _computed(project, versions, only_changed, jobs=jobs, cache=not no_cache, ui=ui)
    _render(result, output_format, fail_on=statuses, ui=ui)
    failed = any(cell.status in statuses for cell in result.cells)
    return EXIT_ATTENTION if failed else EXIT_OK


def _merged(paths: Sequence[str], *, project_dir: str, store: str | None) -> Matrix:
    from patchkit.ops import matrix as matrix_ops
    from patchkit.project import Project

    order = None
    # The project, when there is one, gives the release order; without it PEP 440 order.
    with contextlib.suppress(PatchkitError):
        order = [r.version for r in Project.open(project_dir, store=store).versions.ordered()]
    parts = matrix_ops.load_results(paths)
    return matrix_ops.merge_matrices(parts, names=[str(p) for p in paths], order=order)


def _changed(project: Project, ref: str | None) -> tuple[set[str] | None, set[str] | None]:
    """(patches, releases) to limit the matrix to; None: no limit."""
    if not ref:
        return None, None
    from patchkit.ops import matrix as matrix_ops

    changed_p, changed_r = matrix_ops.changed_since(project, ref)
    # Changed patches are checked on every release, changed releases with every patch.
    return (None if changed_r else changed_p), (None if changed_p else changed_r)


def _github_matrix(
    project: Project, versions: Sequence[str], only_changed: str | None, group_size: int
) -> str:
    """GitHub's own document (a ``strategy.matrix``), not a patchkit result: no schema, no version."""
    import json

    from patchkit.ops import matrix as matrix_ops

    _, releases = _changed(project, only_changed)
    vf = project.versions
    labels = [r.version for r in vf.ordered() if not versions or r.version in versions]
    for label in versions:
        vf.release(label)  # an untracked VERSION is an error naming it
    if releases is not None:
        labels = [v for v in labels if v in releases]
    return json.dumps(matrix_ops.github_matrix(labels, group_size=group_size), sort_keys=True)


def _computed(
    project: Project,
    versions: Sequence[str],
    only_changed: str | None,
    *,
    jobs: int,
    cache: bool,
    ui: Ui,
) -> Matrix:
    patches, releases = _changed(project, only_changed)
    wanted = list(versions) or None
    if releases is not None:
        imported = project.imported()
        wanted = [v for v in (wanted or project.versions.labels) if v in releases and v in imported]
    if wanted == []:
        from patchkit.core.model import Matrix

        return Matrix(versions=(), patches=(), checks=())
    result = project.matrix(wanted, jobs=jobs, cache=cache, warn=ui.warn)
    if patches is not None:
        from patchkit.ops import matrix as matrix_ops

        result = matrix_ops.limit(result, patches=patches, versions=None)
    return result


def _render(result: Matrix, output_format: str, *, fail_on: frozenset[PatchStatus], ui: Ui) -> None:
    from patchkit.output import formats

    if output_format == "json":
        ui.json(result)
    elif output_format == "junit":
        ui.write(formats.matrix_junit(result, fail_on=fail_on))
    elif output_format == "markdown":
        ui.write(formats.matrix_markdown(result))
    elif output_format == "html":
        from patchkit.output.html import matrix_html

        ui.write(matrix_html(result))
    ui.report(lambda report: report.matrix_table(result), machine=output_format != "table")


COMMAND = Command(
    name="matrix",
    help="series vs every tracked, imported release",
    add_arguments=add_arguments,
    run=matrix,
)
