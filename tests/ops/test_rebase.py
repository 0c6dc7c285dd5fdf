from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit import PatchStatus, Project, RebaseState
from patchkit.cli import main
from patchkit.errors import LockedError, NotImportedError, PatchkitError, RebaseStateError
from patchkit.files import project_lock
from tests.helpers.projectbuilder import (
    C11,
    PATCHES,
    make_project,
    numbered,
    rebase_scenario,
    snapshot,
    udiff,
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return rebase_scenario(tmp_path)


def test_check_on_base_applies_everything(project: Project) -> None:
    result = project.check()
    assert [p.status for p in result.patches] == [PatchStatus.APPLIED] * 4


def test_check_on_new_release_classifies_each_patch(project: Project) -> None:
    result = project.check("1.1")
    statuses = {p.name: p.status for p in result.patches}
    assert statuses == {
        "a.patch": PatchStatus.OFFSET,
        "d.patch": PatchStatus.FUZZ,
        "b.patch": PatchStatus.ALREADY_APPLIED,
        "c.patch": PatchStatus.CONFLICT,
    }
    (hunk,) = result.patches[0].hunks
    assert hunk.offset == 5


def test_rebase_stops_on_conflict_with_markers_and_table(project: Project) -> None:
    before = snapshot(project.root)
    result = project.rebase("1.1")
    assert result.state is RebaseState.STOPPED
    statuses = {p.name: p.status for p in result.patches}
    assert statuses == {
        "a.patch": PatchStatus.APPLIED,
        "d.patch": PatchStatus.MERGED,
        "b.patch": PatchStatus.ALREADY_APPLIED,
        "c.patch": PatchStatus.CONFLICT,
    }
    assert result.patches[-1].conflicts == ("etc/c.conf",)
    text = (Path(result.worktree) / "etc/c.conf").read_text()
    assert "<<<<<<<" in text and ">>>>>>>" in text
    # Nothing in the project changed while stopped.
    assert snapshot(project.root) == before


def test_continue_refuses_while_markers_remain(project: Project) -> None:
    project.rebase("1.1")
    with pytest.raises(RebaseStateError, match=r"conflict markers remain in etc/c.conf:\d+"):
        project.rebase_continue()


def test_continue_after_resolution_refreshes_and_moves_base(project: Project) -> None:
    result = project.rebase("1.1")
    (Path(result.worktree) / "etc/c.conf").write_text(
        C11.replace("line 4 theirs\n", "line 4 theirs+ours\n")
    )
    done = project.rebase_continue()
    assert done.state is RebaseState.COMPLETED
    assert done.dropped == ("b.patch",)
    assert set(done.refreshed) == {"a.patch", "d.patch", "c.patch"}
    root = project.root
    # Comments and -p options survive; the already-applied patch left the series, its file stays.
    assert (
        root / "patches/series"
    ).read_text() == "# our series\na.patch\n# d merges\nd.patch -p1\nc.patch\n"
    assert (root / "patches/b.patch").exists()
    assert project.versions.base == "1.1"
    # a.patch: only the hunk position moved; header and body otherwise byte-identical.
    old_a, new_a = PATCHES["a.patch"], (root / "patches/a.patch").read_text()
    changed = [
        (o, n) for o, n in zip(old_a.splitlines(), new_a.splitlines(), strict=True) if o != n
    ]
    assert changed == [("@@ -2,7 +2,7 @@", "@@ -7,7 +7,7 @@")]
    assert "line 4 theirs+ours" in (root / "patches/c.patch").read_text()
    assert (root / "patches/c.patch").read_text().startswith("Description: c\n\n")
    # The refreshed series applies exactly to the new base.
    assert [p.status for p in project.check().patches] == [PatchStatus.APPLIED] * 3
    assert not (project.state_dir / "rebase").exists()


def test_skip_drops_the_conflicting_patch_and_keeps_its_file(project: Project) -> None:
    project.rebase("1.1")
    done = project.rebase_skip()
    assert done.state is RebaseState.COMPLETED
    assert set(done.dropped) == {"b.patch", "c.patch"}
    assert "c.patch" not in (project.root / "patches/series").read_text()
    assert (project.root / "patches/c.patch").read_text() == PATCHES["c.patch"]


def test_abort_restores_everything_byte_for_byte(project: Project) -> None:
    before = snapshot(project.root)
    project.rebase("1.1")
    aborted = project.rebase_abort()
    assert aborted.state is RebaseState.ABORTED
    assert snapshot(project.root) == before
    assert not (project.state_dir / "rebase").exists()
    # And a fresh rebase can start again.
    assert project.rebase("1.1").state is RebaseState.STOPPED


def test_commands_that_would_clobber_a_rebase_are_refused(project: Project) -> None:
    project.rebase("1.1")
    with pytest.raises(RebaseStateError, match="in progress"):
        project.rebase("1.1")
    with pytest.raises(RebaseStateError, match="in progress"):
        project.refresh()
    with pytest.raises(RebaseStateError, match="in progress"):
        project.import_release("1.1")
    # Reading is fine while stopped.
    assert project.check("1.1").patches


def test_no_rebase_in_progress(project: Project) -> None:
    for call in (project.rebase_continue, project.rebase_skip, project.rebase_abort):
        with pytest.raises(RebaseStateError, match="no rebase in progress"):
            call()


def test_series_that_does_not_apply_to_base_is_reported_before_starting(project: Project) -> None:
    (project.root / "patches/c.patch").write_text(
        udiff("etc/c.conf", C11, C11.replace("line 4 theirs\n", "x\n"), "Description: broken\n\n")
    )
    with pytest.raises(
        RebaseStateError, match=r"does not apply to its base 1.0: c.patch \(conflict\)"
    ):
        project.rebase("1.1")
    assert not (project.state_dir / "rebase").exists()


def test_rebase_onto_unimported_release_names_the_import_command(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"1.0": {"x": "a\n"}, "2.0": {"x": "b\n"}}, {}, base="1.0")
    p = Project.open(root)
    p.import_release("1.0")
    with pytest.raises(NotImportedError, match=r"run: patchkit import 2\.0"):
        p.rebase("2.0")


def test_second_process_gets_a_clear_lock_error(project: Project) -> None:
    with (
        project_lock(project.state_dir),
        pytest.raises(LockedError, match="another patchkit process"),
    ):
        Project.open(project.root).rebase("1.1")


def test_cli_rebase_exit_codes_and_json(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(project.root)
    assert main(["--project", root, "rebase", "--onto", "1.1", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["command"] == "rebase" and doc["state"] == "stopped"
    assert doc["patches"][-1]["conflicts"] == ["etc/c.conf"]
    assert main(["--project", root, "rebase", "--continue"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("patchkit: error: conflict markers remain") and err.count("\n") == 1
    assert main(["--project", root, "rebase", "--abort"]) == 0


def test_refresh_fixes_offsets_against_base(tmp_path: Path) -> None:
    base = numbered(20)
    moved = "".join(f"top {i}\n" for i in range(3)) + base
    patch = udiff("f", base, base.replace("line 9\n", "line 9 x\n"), "Description: keep me\n\n")
    root = make_project(tmp_path, {"1": {"f": moved}}, {"p.patch": patch}, base="1")
    p = Project.open(root)
    p.import_release("1")
    assert p.check().patches[0].status is PatchStatus.OFFSET
    assert p.refresh() == ("p.patch",)
    assert p.check().patches[0].status is PatchStatus.APPLIED
    assert (root / "patches/p.patch").read_text().startswith("Description: keep me\n\n--- a/f")
    assert p.refresh() == ()


# -- fidelity: adjacent edits, absorbed patches, risk, range-diff -------------------------

H10 = 'head\n/* socket */\n#define SOCK "run/ldapi"\n\n/* tail */\nend\n'
H11 = 'head\n/* socket */\n#ifndef SOCK\n#define SOCK "run/ldapi"\n#endif\n\n/* tail */\nend\n'
H_PATCH = udiff(
    "h.h", H10, H10.replace('"run/ldapi"', '"run/slapd/ldapi"'), "Description: move socket\n\n"
)


def _two_release_project(
    tmp_path: Path, v10: dict[str, str], v11: dict[str, str], patches: dict[str, str]
) -> Project:
    root = make_project(tmp_path, {"1.0": v10, "1.1": v11}, patches, base="1.0")
    p = Project.open(root)
    p.import_release("1.0")
    p.import_release("1.1")
    return p


def test_adjacent_upstream_insertions_merge_with_a_risk_flag(tmp_path: Path) -> None:
    p = _two_release_project(tmp_path, {"h.h": H10}, {"h.h": H11}, {"h.patch": H_PATCH})
    done = p.rebase("1.1")
    assert done.state is RebaseState.COMPLETED
    (r,) = done.patches
    assert r.status is PatchStatus.MERGED
    assert "resolved hunk by hunk" in r.message
    assert any("right next to" in risk for risk in r.risk)
    text = (p.root / "patches/h.patch").read_text()
    assert '+#define SOCK "run/slapd/ldapi"' in text and " #ifndef SOCK" in text
    assert [c.render() for c in r.changes] == []  # same +/- lines: only context moved
    assert p.check().patches[0].status is PatchStatus.APPLIED


def test_adjacent_replacements_stay_a_conflict(tmp_path: Path) -> None:
    v11 = H10.replace("/* socket */", "/* the socket */")
    p = _two_release_project(tmp_path, {"h.h": H10}, {"h.h": v11}, {"h.patch": H_PATCH})
    stopped = p.rebase("1.1")
    assert stopped.state is RebaseState.STOPPED
    assert stopped.patches[0].conflicts == ("h.h",)


def test_only_truly_conflicting_hunks_keep_markers(tmp_path: Path) -> None:
    base = numbered(40)
    ours = base.replace("line 5\n", "line 5 upstream\n").replace("line 29\n", "line 29 upstream\n")
    mine = base.replace("line 5\n", "line 5 mine\n").replace("line 30\n", "line 30 mine\n")
    # git conflicts on both regions (line 5 overlaps, line 29/30 are adjacent replacements)
    # unless hunk by hunk; an insertion next to ours is independent.
    mine = mine.replace("line 20\n", "line 20 mine\n")
    ours = ours.replace("line 20\n", "#if X\nline 20\n#endif\n")
    p = _two_release_project(
        tmp_path, {"f": base}, {"f": ours}, {"f.patch": udiff("f", base, mine)}
    )
    stopped = p.rebase("1.1")
    assert stopped.state is RebaseState.STOPPED
    text = (Path(stopped.worktree) / "f").read_text()
    assert "#if X\nline 20 mine\n#endif\n" in text  # adjacent, independent: resolved
    assert text.count("<<<<<<<") == 2
    assert "conflicting hunk(s) left at" in stopped.patches[0].message


def test_conflicting_patch_whose_change_upstream_took_elsewhere_is_already_applied(
    tmp_path: Path,
) -> None:
    base = numbered(20)
    patched = base.replace("line 10\n", "line 10\nadded by us\n")
    upstream = base.replace("line 10\n", "line 10 reworded\nadded by us\n")
    p = _two_release_project(
        tmp_path, {"f": base}, {"f": upstream}, {"f.patch": udiff("f", base, patched)}
    )
    done = p.rebase("1.1")
    assert done.state is RebaseState.COMPLETED
    (r,) = done.patches
    assert r.status is PatchStatus.ALREADY_APPLIED and "already contains" in r.message
    assert r.risk  # a conflict became a drop: say so
    assert done.dropped == ("f.patch",)


def test_range_diff_shows_only_changed_plus_minus_lines(project: Project) -> None:
    result = project.rebase("1.1")
    (Path(result.worktree) / "etc/c.conf").write_text(
        C11.replace("line 4 theirs\n", "line 4 theirs+ours\n")
    )
    done = project.rebase_continue()
    by_name = {p.name: p for p in done.patches}
    assert by_name["a.patch"].changes == ()  # moved 5 lines: no change shown
    assert [c.render() for c in by_name["c.patch"].changes] == [
        "etc/c.conf: --line 4",
        "etc/c.conf: +-line 4 theirs",
        "etc/c.conf: -+line 4 ours",
        "etc/c.conf: ++line 4 theirs+ours",
    ]
    doc = done.to_dict()
    c_doc = next(p for p in doc["patches"] if p["name"] == "c.patch")
    assert c_doc["changes"][0] == {"file": "etc/c.conf", "mark": "--", "text": "line 4"}
    assert "risk" in c_doc


def test_large_offset_is_a_risk(tmp_path: Path) -> None:
    base = numbered(30)
    moved = numbered(150, "new") + base
    patch = udiff("f", base, base.replace("line 15\n", "line 15 x\n"))
    p = _two_release_project(tmp_path, {"f": base}, {"f": moved}, {"f.patch": patch})
    done = p.rebase("1.1")
    (r,) = done.patches
    assert r.status is PatchStatus.APPLIED
    assert r.risk == ("hunk 1 of f moved +150 lines",)


MAIN10 = "int main(void)\n{\n\tlisten_all();\n\tserve();\n}\n"
NOTIFY_PATCH = udiff(
    "main.c",
    MAIN10,
    MAIN10.replace(
        "\tserve();\n", '#ifdef HAVE_SYSTEMD\n\tsd_notify(0, "READY=1");\n#endif\n\tserve();\n'
    ),
)
PORT11 = 'void\nplatform_post_listen(void)\n{\n\tnotify_socket_send("READY=1");\n}\n'


def test_a_patch_whose_words_upstream_newly_has_elsewhere_applies_with_a_risk(
    tmp_path: Path,
) -> None:
    # Upstream 1.1 sends systemd's READY=1 itself, from another file: the patch still applies
    # cleanly (nothing near its lines changed), but a person should look.
    p = _two_release_project(
        tmp_path,
        {"main.c": MAIN10, "port.c": "/* nothing yet */\n"},
        {"main.c": MAIN10, "port.c": PORT11},
        {"notify.patch": NOTIFY_PATCH},
    )
    (r,) = p.rebase("1.1").patches
    assert r.status is PatchStatus.APPLIED
    (risk,) = r.risk
    assert risk.startswith('upstream newly has "READY=1", which this patch adds (in port.c)')


def test_words_upstream_had_already_or_still_lacks_are_no_risk(tmp_path: Path) -> None:
    # "READY=1" was upstream in 1.0 already (not new), HAVE_SYSTEMD/sd_notify are nowhere.
    p = _two_release_project(
        tmp_path,
        {"main.c": MAIN10, "port.c": PORT11},
        {"main.c": "/* 1.1 */\n" + MAIN10, "port.c": PORT11 + "/* more */\n"},
        {"notify.patch": NOTIFY_PATCH},
    )
    (r,) = p.rebase("1.1").patches
    assert r.status is PatchStatus.APPLIED and r.risk == ()


MAKE10 = (
    "hardlink_CFLAGS = $(AM_CFLAGS)\nendif\n\nif BUILD_LSFD\nbin_PROGRAMS += lsfd\n"
    "MANPAGES += misc-utils/lsfd.1\nlsfd_SOURCES = lsfd.c\nendif\n\nif BUILD_NEXT\nnext = 1\nendif\n"
)
# 1.1 moves the lsfd block to its own file, and changes the lines around it on the way.
MAKE11 = "hardlink_CFLAGS = $(AM_CFLAGS)\nendif\n\nif BUILD_NEXT\nnext = 1\nendif\n"
LSFD11 = "if BUILD_LSFD\n\nlsfd.c: errnos.h\n\nbin_PROGRAMS += lsfd\nMANPAGES += lsfd-cmd/lsfd.1\nlsfd_SOURCES = lsfd.c\nendif\n"
MOVE_PATCH = udiff(
    "Makemodule.am", MAKE10, MAKE10.replace("bin_PROGRAMS += lsfd", "usrbin_exec_PROGRAMS += lsfd")
)


def test_a_hunk_follows_lines_upstream_moved_to_another_file(tmp_path: Path) -> None:
    p = _two_release_project(
        tmp_path,
        {"Makemodule.am": MAKE10},
        {"Makemodule.am": MAKE11, "lsfd-cmd/Makemodule.am": LSFD11},
        {"lsfd-usrbin.patch": "Description: install lsfd into /usr/bin\n\n" + MOVE_PATCH},
    )
    done = p.rebase("1.1")
    assert done.state is RebaseState.COMPLETED
    (r,) = done.patches
    assert r.status is PatchStatus.MERGED
    assert any("followed upstream's lines to lsfd-cmd/Makemodule.am" in risk for risk in r.risk)
    text = (p.root / "patches/lsfd-usrbin.patch").read_text()
    assert text.startswith("Description: install lsfd into /usr/bin\n")
    assert "+++ b/lsfd-cmd/Makemodule.am" in text and "+usrbin_exec_PROGRAMS += lsfd" in text
    assert "Makemodule.am\n" not in text.replace(
        "lsfd-cmd/Makemodule.am\n", ""
    )  # nothing left for the old file
    assert p.check("1.1").patches[0].status is PatchStatus.APPLIED


def test_lines_found_in_two_files_do_not_move_a_hunk(tmp_path: Path) -> None:
    p = _two_release_project(
        tmp_path,
        {"Makemodule.am": MAKE10},
        {"Makemodule.am": MAKE11, "lsfd-cmd/Makemodule.am": LSFD11, "other/Makemodule.am": LSFD11},
        {"lsfd-usrbin.patch": MOVE_PATCH},
    )
    done = p.rebase("1.1")
    assert done.state is RebaseState.STOPPED
    assert done.patches[0].status is PatchStatus.CONFLICT
    p.rebase_abort()


def test_patches_in_subdirectories_are_backed_up_refreshed_and_restored(tmp_path: Path) -> None:
    # quilt series may name patches below patches/ (Debian's debian/..., upstream/...).
    p = _two_release_project(tmp_path, {"h.h": H10}, {"h.h": H11}, {"debian/h.patch": H_PATCH})
    done = p.rebase("1.1")
    assert done.state is RebaseState.COMPLETED and done.patches[0].status is PatchStatus.MERGED
    text = (p.root / "patches/debian/h.patch").read_text()
    assert text != H_PATCH and text.startswith("Description: move socket\n")
    assert p.check("1.1").patches[0].status is PatchStatus.APPLIED
    # A stopped rebase keeps a byte-for-byte backup of nested patches too.
    q = _two_release_project(
        tmp_path / "q",
        {"main.c": MAIN10},
        {"main.c": MAIN10.replace("serve();", "serve(1);")},
        {"debian/notify.patch": NOTIFY_PATCH},
    )
    before = (q.root / "patches/debian/notify.patch").read_bytes()
    stopped = q.rebase("1.1")
    assert stopped.state is RebaseState.STOPPED
    (q.root / "patches/debian/notify.patch").write_bytes(b"clobbered\n")
    q.rebase_abort()
    assert (q.root / "patches/debian/notify.patch").read_bytes() == before


def test_continue_refuses_changes_outside_the_stopped_patch(project: Project) -> None:
    result = project.rebase("1.1")
    wt = Path(result.worktree)
    (wt / "etc/c.conf").write_text(C11)
    (wt / "etc/a.conf").write_text("edited by mistake\n")
    with pytest.raises(RebaseStateError, match=r"changes outside c\.patch's files: etc/a\.conf"):
        project.rebase_continue()
    assert (wt / "etc/a.conf").read_text() == "edited by mistake\n"  # nothing lost


def test_unknown_target_version_is_one_line_exit_3(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project.root), "rebase", "--onto", "9.9"]) == 3
    err = capsys.readouterr().err
    assert "9.9" in err and err.count("\n") == 1


def test_refresh_output_is_deterministic_without_timestamps_or_index(project: Project) -> None:
    result = project.rebase("1.1")
    (Path(result.worktree) / "etc/c.conf").write_text(
        C11.replace("line 4 theirs\n", "line 4 theirs+ours\n")
    )
    project.rebase_continue()
    text = (project.root / "patches/c.patch").read_text()
    assert "\nindex " not in text and "\t20" not in text
    assert text.startswith("Description: c\n\n")
    before = {p.name: p.read_bytes() for p in (project.root / "patches").iterdir()}
    assert project.refresh() == ()  # nothing to change: no file is rewritten
    assert {p.name: p.read_bytes() for p in (project.root / "patches").iterdir()} == before


def test_a_patch_that_only_moved_is_applied_not_merged(tmp_path: Path) -> None:
    """More context available around the hunk in the new release is not a change."""
    patch = "--- etc/x\n+++ etc/x\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    root = make_project(
        tmp_path,
        {"1": {"etc/x": "a\nb\nc\n"}, "2": {"etc/x": "z\na\nb\nc\n"}},
        {"p0.patch": patch},
        base="1",
        series="p0.patch -p0\n",
    )
    p = Project.open(root)
    p.import_release("1")
    p.import_release("2")
    done = p.rebase("2")
    assert [r.status for r in done.patches] == [PatchStatus.APPLIED]
    assert (root / "patches/p0.patch").read_text() == patch.replace(
        "@@ -1,3 +1,3 @@", "@@ -2,3 +2,3 @@"
    )


def test_edits_and_overlays_rebase_through_the_change_protocol(tmp_path: Path) -> None:
    """Nothing in the rebase is diff-only but the diff's own refresh: an edit and an overlay
    are committed, replayed and classified like a diff, and their files left as they are."""
    plugins = "# plugins\nstatus_http\nrcpt_to.in_host_list\n"
    edit = (
        'description = "after status_http"\n[[edit]]\nfiles = "etc/plugins"\n'
        'insert-after = "status_http"\nlines = ["bind_hostname"]\n'
    )
    base = numbered(20)
    p = _two_release_project(
        tmp_path,
        {"etc/plugins": plugins, "etc/f": base, "etc/http.ini": "[main]\n"},
        {"etc/plugins": plugins, "etc/f": "top\n" + base, "etc/http.ini": "[main]\n"},
        {
            "x.patch": udiff("etc/f", base, base.replace("line 9\n", "line 9 x\n")),
            "p.edit.toml": edit,
            "sockets/etc/http.ini": "[main]\nlisten=/run/http.sock\n",
        },
    )
    (p.root / "patches/series").write_text("x.patch\np.edit.toml\nsockets/\n")
    before = {
        n: (p.root / "patches" / n).read_bytes() for n in ("p.edit.toml", "sockets/etc/http.ini")
    }
    done = p.rebase("1.1")
    assert done.state is RebaseState.COMPLETED
    assert [(r.name, r.status) for r in done.patches] == [
        ("x.patch", PatchStatus.APPLIED),
        ("p.edit.toml", PatchStatus.APPLIED),
        ("sockets/", PatchStatus.APPLIED),
    ]
    assert done.refreshed == ("x.patch",) and done.dropped == ()
    assert {n: (p.root / "patches" / n).read_bytes() for n in before} == before
    assert p.versions.base == "1.1"
    assert [r.status for r in p.check().patches] == [PatchStatus.APPLIED] * 3


def test_an_edit_that_no_longer_matches_stops_the_rebase_and_continues_once_fixed(
    tmp_path: Path,
) -> None:
    """Edits are re-evaluated on the new release: a no-match stops like a conflict; the
    person fixes the edit file in patches/ and --continue evaluates it again."""
    edit = (
        '[[edit]]\nfiles = "healthcheck/nginx.sh"\nreplace = "http://127.0.0.1"\n'
        "with = 'http://$(hostname)'\n"
    )
    p = _two_release_project(
        tmp_path,
        {"healthcheck/nginx.sh": "curl http://127.0.0.1/\n"},
        {"healthcheck/nginx.sh": "curl http://localhost/\n"},
        {"h.edit.toml": edit},
    )
    (p.root / "patches/series").write_text("h.edit.toml\n")
    original = {
        n: (p.root / n).read_bytes()
        for n in ("patches/h.edit.toml", "patches/series", "upstream-versions.toml")
    }
    stopped = p.rebase("1.1")
    assert stopped.state is RebaseState.STOPPED
    (entry,) = stopped.patches
    assert entry.status is PatchStatus.CONFLICT and "no-match" in entry.message
    assert "fix patches/h.edit.toml" in entry.message
    aborted = p.rebase_abort()
    assert aborted.state is RebaseState.ABORTED
    assert {n: (p.root / n).read_bytes() for n in original} == original
    # again, and this time fix the edit file and go on
    assert p.rebase("1.1").state is RebaseState.STOPPED
    (p.root / "patches/h.edit.toml").write_text(
        edit.replace("http://127.0.0.1", "http://localhost")
    )
    done = p.rebase_continue()
    assert done.state is RebaseState.COMPLETED
    assert [(r.name, r.status) for r in done.patches] == [("h.edit.toml", PatchStatus.APPLIED)]
    assert p.versions.base == "1.1"
    assert p.show("1.1", "healthcheck/nginx.sh", patched=True) == b"curl http://$(hostname)/\n"


def test_an_edit_can_be_skipped_when_it_stops(tmp_path: Path) -> None:
    edit = '[[edit]]\nfiles = "etc/x"\ndelete = "gone"\n'
    p = _two_release_project(
        tmp_path, {"etc/x": "a\ngone\n"}, {"etc/x": "a\n"}, {"x.edit.toml": edit}
    )
    (p.root / "patches/series").write_text("x.edit.toml\n")
    assert p.rebase("1.1").state is RebaseState.STOPPED
    done = p.rebase_skip()
    assert done.state is RebaseState.COMPLETED and done.dropped == ("x.edit.toml",)
    assert (p.root / "patches/series").read_text() == ""


def test_the_rebase_worktree_is_sparse_and_refused_while_an_edit_is_open(tmp_path: Path) -> None:
    edit = '[[edit]]\nfiles = "etc/x"\ndelete = "gone"\n'
    p = _two_release_project(
        tmp_path,
        {"etc/x": "a\ngone\n", "etc/untouched": "u\n"},
        {"etc/x": "a\n", "etc/untouched": "u\n"},
        {"x.edit.toml": edit},
    )
    (p.root / "patches/series").write_text("x.edit.toml\n")
    stopped = p.rebase("1.1")
    worktree = Path(stopped.worktree)
    assert (worktree / "etc/x").is_file()
    assert not (worktree / "etc/untouched").exists()  # only what the series touches
    p.rebase_abort()
    p.edit()
    with pytest.raises(PatchkitError, match="edit worktree is open"):
        p.rebase("1.1")
