"""``patchkit edit``: the edit worktree, one commit per patch (docs/authoring.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from patchkit.cli.commands import Command
from patchkit.cli.exits import EXIT_ATTENTION, EXIT_OK

if TYPE_CHECKING:
    from patchkit.cli.ui import Ui
    from patchkit.ops.edit import EditOutcome, EditStatus
    from patchkit.project import Project


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patch", nargs="?", help="the patch HEAD goes to (default: the last)")
    parser.add_argument("--version", dest="release", metavar="V", help="release (default: base)")
    parser.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="GLOB",
        help="also check out the files matching GLOB (repeatable)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--save", action="store_true", help="write the worktree back to patches/")
    group.add_argument("--done", action="store_true", help="save, then remove the worktree")
    group.add_argument("--discard", action="store_true", help="remove the worktree, no save")
    group.add_argument("--status", action="store_true", help="what the worktree holds")
    group.add_argument(
        "--continue", dest="cont", action="store_true", help="go on with a stopped save"
    )
    group.add_argument("--abort", action="store_true", help="undo a stopped save")
    parser.add_argument("--force", action="store_true", help="--discard unsaved changes too")
    parser.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")


def edit(
    *,
    project: Project,
    patch: str | None = None,
    release: str | None = None,
    add: list[str] | None = None,
    save: bool = False,
    done: bool = False,
    discard: bool = False,
    status: bool = False,
    cont: bool = False,
    abort: bool = False,
    force: bool = False,
    as_json: bool = False,
    ui: Ui,
) -> int:
    """Exit 1 when a save stops on a patch that no longer applies (markers in the worktree)."""
    from patchkit.errors import UsageError

    acting = save or done or discard or status or cont or abort
    if acting and (patch or release):
        raise UsageError("PATCH and --version open the worktree; give them without --save etc.")
    if status:
        st = project.edit_status()
        if as_json:
            ui.json(st)
        _show_status(st, ui, machine=as_json)
        return EXIT_OK
    if save:
        result = project.edit_save()
    elif done:
        result = project.edit_done()
    elif discard:
        result = project.edit_discard(force=force)
    elif cont:
        result = project.edit_continue()
    elif abort:
        result = project.edit_abort()
    else:
        result = project.edit(patch, version=release, add=add or ())
    if as_json:
        ui.json(result)
    _show(result, ui, machine=as_json)
    return EXIT_ATTENTION if result.stopped else EXIT_OK


def _show(result: EditOutcome, ui: Ui, *, machine: bool) -> None:
    for note in result.notes:
        if result.action == "open":
            ui.warn(note)
        else:
            ui.text(note, machine=True)
    if result.action == "open":
        if not machine:
            print(result.worktree)  # the path alone on stdout: cd "$(patchkit edit)"
        ui.text(f"HEAD at {result.tip or 'the release itself'}", machine=True)
        return
    created = set(result.created)
    for name in result.written:
        if name not in created:
            ui.text(f"patches/{name}: rewritten", machine=machine)
    for name in result.created:
        ui.text(f"patches/{name}: new", machine=machine)
    for name in result.dropped:
        ui.text(f"{name}: left the series (its file is kept)", machine=machine)
    if result.stopped:
        return
    if result.action in ("save", "continue", "done") and not result.written:
        ui.text("no patch changed", machine=machine)
    if result.action == "discard":
        ui.text("edit worktree removed", machine=machine)


def _show_status(st: EditStatus, ui: Ui, *, machine: bool) -> None:
    if not st.open:
        ui.text("no edit worktree is open", machine=machine)
        return
    ui.text(f"edit worktree: {st.worktree} (release {st.version})", machine=machine)
    ui.text(f"HEAD at: {st.tip or 'the release itself'}", machine=machine)
    for path in st.uncommitted:
        ui.text(f"  uncommitted: {path}", machine=machine)
    for commit, subject in st.new_commits:
        ui.text(f"  new commit: {commit[:12]} {subject}", machine=machine)
    for name in st.modified:
        ui.text(f"  modified: {name}", machine=machine)
    if st.stopped:
        ui.text(
            f"save stopped on {st.stopped}: conflicts in {', '.join(st.conflicts)}; "
            "resolve, git add, patchkit edit --continue (or --abort)",
            machine=machine,
        )
    elif st.phase != "open":
        ui.text(f"a save was interrupted ({st.phase}): run patchkit edit --save", machine=machine)


COMMAND = Command(
    name="edit",
    help="open the edit worktree (one commit per patch); --save writes it back",
    add_arguments=add_arguments,
    run=edit,
)
