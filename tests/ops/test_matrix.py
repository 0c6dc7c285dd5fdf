"""The matrix: same answers as check, cached, parallel, flags, drift, fan-out, merge, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from patchkit.cli import main
from patchkit.core.apply import unified_diff
from patchkit.core.merge import merge3
from patchkit.core.model import PatchStatus
from patchkit.core.patchfile import Patch, render_patch
from patchkit.ops.check import check_tree
from patchkit.ops.matrix import MatrixStats, compute_matrix, github_matrix
from patchkit.project import Project
from tests.conftest import require_tool
from tests.helpers.projectbuilder import make_project, numbered


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def make_patch(name: str, path: str, old: str, new: str, *, context: int = 3) -> str:
    fp = unified_diff(old.encode(), new.encode(), path, context=context)
    assert fp is not None
    return render_patch(Patch(name=name, files=(fp,))).decode()


BASE = numbered(12)
CONF = numbered(12, "opt")
PATCHES = {
    # exact on 1.0; 30 lines lower on 2.0 (large offset); conflicts on 3.0 and 4.0
    "a.patch": make_patch(
        "a.patch", "etc/app.conf", BASE, BASE.replace("line 6\n", "line 6 patched\n")
    ),
    # one context line each side: fuzz 1 on 2.0, where upstream changed the line above
    "b.patch": make_patch(
        "b.patch", "etc/other.conf", CONF, CONF.replace("opt 8\n", "opt 8 patched\n"), context=1
    ),
    # three context lines: fuzz on 3.0 where upstream changed the outermost context line
    "c.patch": make_patch(
        "c.patch", "etc/third.conf", CONF, CONF.replace("opt 6\n", "opt 6 patched\n")
    ),
}
RELEASES = {
    "1.0": {"etc/app.conf": BASE, "etc/other.conf": CONF, "etc/third.conf": CONF},
    "2.0": {
        "etc/app.conf": "x\n" * 30 + BASE,
        "etc/other.conf": CONF.replace("opt 7\n", "opt seven\n"),
        "etc/third.conf": CONF,
    },
    "3.0": {
        "etc/app.conf": BASE.replace("line 6\n", "line six\n"),
        "etc/other.conf": CONF,
        "etc/third.conf": CONF.replace("opt 3\n", "opt three\n"),
    },
    "4.0": {"etc/app.conf": BASE.replace("line 6\n", "line six\n"), "etc/third.conf": CONF},
}


def matrix_project(tmp_path: Path) -> Path:
    """The four releases and three patches above, imported."""
    root = make_project(tmp_path, RELEASES, PATCHES, base="1.0")
    for v in RELEASES:
        assert main(["-q", "--project", str(root), "import", v]) == 0
    return root


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return matrix_project(tmp_path)


def statuses(doc: dict[str, object]) -> dict[tuple[str, str], str]:
    results = doc["results"]
    assert isinstance(results, list)
    return {(r["version"], r["patch"]): r["status"] for r in results}


def test_matrix_gives_the_answers_of_check_for_every_release(proj: Path) -> None:
    project = Project.open(proj)
    matrix = project.matrix(jobs=1, cache=False)
    assert matrix.versions == ("1.0", "2.0", "3.0", "4.0")
    with project.store.blob_reader() as reader:
        for check in matrix.checks:
            expected = check_tree(
                reader,
                version=check.version,
                tree=project.release_tree(check.version),
                patches=project.patches(),
            )
            assert [(p.name, p.status, p.hunks) for p in check.patches] == [
                (p.name, p.status, p.hunks) for p in expected.patches
            ]
    got = {(c.version, c.patch): c.status.value for c in matrix.cells}
    assert got[("2.0", "a.patch")] == "offset"
    assert got[("2.0", "b.patch")] == "fuzz"
    assert got[("3.0", "a.patch")] == "conflict"
    assert got[("4.0", "b.patch")] == "missing-target"


def test_releases_that_share_a_patch_groups_blobs_share_its_computation(proj: Path) -> None:
    # a: app.conf is one blob on 3.0 and 4.0; b: other.conf the same on 1.0 and 3.0 (absent
    # on 4.0); c: third.conf the same on 1.0, 2.0 and 4.0. 12 cells, 3 + 3 + 2 distinct units.
    stats = MatrixStats()
    shared = compute_matrix(Project.open(proj), jobs=1, cache=False, stats=stats)
    assert (stats.cells, stats.computed, stats.units) == (12, 12, 8)
    # The skip message names each release even where the computation was shared.
    text = (proj / "patches/c.patch").read_text()
    (proj / "patches/c.patch").write_text("Upstream-Versions: <3\n" + text)
    skipped = compute_matrix(Project.open(proj), jobs=1, cache=False)
    msg = {c.version: p.message for c in skipped.checks for p in c.patches if p.name == "c.patch"}
    assert "excludes 4.0" in msg["4.0"] and "excludes 3.0" in msg["3.0"]
    assert skipped.status("1.0", "c.patch") is shared.status("1.0", "c.patch")
    assert [c.status for c in shared.cells if c.patch != "c.patch"] == [
        c.status for c in skipped.cells if c.patch != "c.patch"
    ]


def test_risk_flags_compare_fuzz_and_large_offsets_with_a_3way_merge(proj: Path) -> None:
    matrix = Project.open(proj).matrix(jobs=1, cache=False)
    flags = {(c.version, c.patch): c.flags for c in matrix.cells}
    assert flags[("2.0", "a.patch")] == ("large-offset", "3way-ok")
    # upstream changed the line right above the patched one: git's 3-way merge conflicts
    assert flags[("2.0", "b.patch")] == ("3way-conflict",)
    # upstream changed a line three lines away: fuzz and 3-way agree
    assert matrix.status("3.0", "c.patch") is not None
    assert flags[("3.0", "c.patch")] == ("3way-ok",)
    assert flags[("1.0", "a.patch")] == ()


@pytest.mark.parametrize("inner", ["\r", "\x0c"])
def test_a_carriage_return_or_form_feed_inside_a_line_is_part_of_that_line(
    tmp_path: Path, inner: str
) -> None:
    # Line 7 holds a \r or \f. Upstream changes its start, right above the line the patch
    # edits (applied with fuzz 1): the 3-way merge must see the two changes touch neighbouring
    # lines and conflict, as for b.patch. Split by str.splitlines, line 7 became two lines,
    # the unchanged tail of it stood between the two changes, and the merge looked clean.
    conf = CONF.replace("opt 7\n", f"opt 7{inner}tail\n")
    patched = conf.replace("opt 8\n", "opt 8 patched\n")
    upstream = conf.replace(f"opt 7{inner}", f"opt seven{inner}")
    root = make_project(
        tmp_path,
        {"1": {"etc/other.conf": conf}, "2": {"etc/other.conf": upstream}},
        {"b.patch": make_patch("b.patch", "etc/other.conf", conf, patched, context=1)},
        base="1",
    )
    for v in ("1", "2"):
        assert main(["-q", "--project", str(root), "import", v]) == 0
    matrix = Project.open(root).matrix(jobs=1, cache=False)
    assert matrix.status("1", "b.patch") is PatchStatus.APPLIED
    assert matrix.status("2", "b.patch") is PatchStatus.FUZZ
    assert matrix.result("2", "b.patch").flags == ("3way-conflict",)  # type: ignore[union-attr]
    # What str.splitlines made of it: the same merge, clean.
    old_split = [t.splitlines(keepends=True) for t in (conf, upstream, patched)]
    assert merge3(*old_split).conflicts == 0


def test_drift_names_first_failing_release_and_changed_upstream_files(proj: Path) -> None:
    matrix = Project.open(proj).matrix(jobs=1, cache=False)
    drift = {d.patch: d for d in matrix.drift}
    a = drift["a.patch"]
    assert (a.first_bad, a.last_good, a.versions, a.files) == (
        "3.0",
        "2.0",
        ("3.0", "4.0"),
        ("etc/app.conf",),
    )
    assert "-line 6\n+line six\n" in a.upstream_diff
    b = drift["b.patch"]
    assert (b.first_bad, b.last_good, b.status.value) == ("4.0", "3.0", "missing-target")
    assert b.files == ("etc/other.conf",)


def test_warm_cache_recomputes_nothing_and_an_edit_only_what_follows_it(proj: Path) -> None:
    project = Project.open(proj)
    cold, warm = MatrixStats(), MatrixStats()
    first = compute_matrix(project, jobs=1, stats=cold)
    second = compute_matrix(project, jobs=1, stats=warm)
    assert (cold.computed, cold.cached) == (12, 0)
    assert (warm.computed, warm.cached) == (0, 12)
    assert first.to_dict() == second.to_dict()
    # Editing the last patch: the earlier cells of each release come from the cache.
    (proj / "patches/c.patch").write_text(
        make_patch("c.patch", "etc/third.conf", CONF, CONF.replace("opt 9\n", "opt 9 patched\n"))
    )
    edited = MatrixStats()
    compute_matrix(project, jobs=1, stats=edited)
    assert (edited.computed, edited.cached) == (4, 8)
    # Editing the first patch changes every later key: application is cumulative.
    (proj / "patches/a.patch").write_text(
        make_patch("a.patch", "etc/app.conf", BASE, BASE.replace("line 7\n", "line 7 patched\n"))
    )
    again = MatrixStats()
    result = compute_matrix(project, jobs=1, stats=again)
    assert (again.computed, again.cached) == (12, 0)
    fresh = compute_matrix(project, jobs=1, cache=False)
    assert result.to_dict() == fresh.to_dict()


def test_a_patch_group_with_an_edited_patch_is_recomputed_whole_from_its_files(
    tmp_path: Path,
) -> None:
    # b.patch edits the line a.patch wrote: only correct if a's change is applied first, so the
    # group {a, b} (they share a file) is recomputed whole; c.patch's group stays cached.
    one = BASE.replace("line 6\n", "line 6 patched\n")
    two = one.replace("line 6 patched\n", "line 6 patched twice\n")
    root = make_project(
        tmp_path,
        {"1": {"etc/app.conf": BASE, "etc/third.conf": CONF}},
        {
            "a.patch": make_patch("a.patch", "etc/app.conf", BASE, one),
            "c.patch": make_patch(
                "c.patch", "etc/third.conf", CONF, CONF.replace("opt 9\n", "opt 9 patched\n")
            ),
            "b.patch": make_patch("b.patch", "etc/app.conf", one, two),
        },
        base="1",
    )
    assert main(["-q", "--project", str(root), "import", "1"]) == 0
    project = Project.open(root)
    compute_matrix(project, jobs=1)
    (root / "patches/b.patch").write_text(
        make_patch("b.patch", "etc/app.conf", one, one + "tail\n")
    )
    stats = MatrixStats()
    m = compute_matrix(project, jobs=1, stats=stats)
    assert (stats.cached, stats.computed) == (1, 2)
    assert m.status("1", "b.patch") is not None and m.status("1", "b.patch").value == "applied"  # type: ignore[union-attr]
    assert m.to_dict() == compute_matrix(project, jobs=1, cache=False).to_dict()


def test_corrupt_cache_entry_warns_and_recomputes(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(proj)]
    code, out, _ = run(capsys, *p, "matrix", "--format", "json")
    entries = sorted((proj / ".patchkit/cache/matrix").glob("*.json"))
    assert len(entries) == 4
    entries[0].write_bytes(b"{not json")
    doc = json.loads(entries[1].read_text())
    key = next(iter(doc["cells"]))
    doc["cells"][key]["status"] = "bogus"
    entries[1].write_text(json.dumps(doc))
    # The snapshot of the whole matrix would answer without reading the cells: gone.
    for whole in (proj / ".patchkit/cache/matrix").glob("whole-*.txt"):
        whole.unlink()
    code2, out2, err2 = run(capsys, *p, "matrix", "--format", "json")
    assert code2 == code == 1
    assert json.loads(out2) == json.loads(out)
    assert "warning: cache entry" in err2 and "corrupt" in err2
    # Rewritten whole: the next run is quiet.
    assert "warning" not in run(capsys, *p, "matrix", "--format", "json")[2]


def test_a_cache_that_cannot_be_written_warns_and_the_answers_stand(proj: Path) -> None:
    (proj / ".patchkit/cache").mkdir(parents=True)
    (proj / ".patchkit/cache/matrix").write_text("a file where the cache directory goes\n")
    warnings: list[str] = []
    matrix = compute_matrix(Project.open(proj), jobs=1, warn=warnings.append)
    assert matrix.to_dict() == compute_matrix(Project.open(proj), jobs=1, cache=False).to_dict()
    assert len(warnings) == 4 and all("cannot write cache entry" in w for w in warnings)
    assert all(w.endswith("; results are still right") for w in warnings)


def test_every_kind_of_change_gets_the_answers_of_check(tmp_path: Path) -> None:
    # A diff, an overlay (its apply context: symlinks, the base release's files) and an edit
    # whose globs match files on each release: cells through the Change protocol only.
    from tests.ops.test_check_kinds import project as all_kinds_project

    project = Project.open(all_kinds_project(tmp_path))
    want = {v: project.check(v).to_dict()["patches"] for v in ("1.0", "2.0")}
    for jobs, cache in ((1, False), (1, True), (1, True), (2, False)):
        stats = MatrixStats()
        matrix = compute_matrix(project, jobs=jobs, cache=cache, stats=stats)
        assert {c.version: c.to_dict()["patches"] for c in matrix.checks} == want
    assert stats.workers == 2
    assert matrix.status("2.0", "haraka.edit.toml") is PatchStatus.CONFLICT


def test_parallel_workers_give_the_same_answers(proj: Path) -> None:
    project = Project.open(proj)
    stats = MatrixStats()
    parallel = compute_matrix(project, jobs=2, cache=False, stats=stats)
    assert stats.workers == 2
    assert parallel.to_dict() == compute_matrix(project, jobs=1, cache=False).to_dict()


def test_unknown_or_unimported_release_is_one_line_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, RELEASES, PATCHES, base="1.0")
    main(["-q", "--project", str(root), "import", "1.0"])
    capsys.readouterr()
    code, _, err = run(capsys, "--project", str(root), "matrix", "9.9")
    assert code == 3 and "'9.9' is not tracked" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--project", str(root), "matrix", "1.0", "2.0", "3.0")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "2.0, 3.0" in err and "patchkit import 2.0 && patchkit import 3.0" in err


def test_fail_on_decides_the_exit_code(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = ["--project", str(proj), "-q", "matrix"]
    assert run(capsys, *p)[0] == 1
    assert run(capsys, *p, "1.0", "2.0")[0] == 0
    assert run(capsys, *p, "1.0", "2.0", "--fail-on", "fuzz")[0] == 1
    assert run(capsys, *p, "--fail-on", "skipped")[0] == 0


def test_junit_failures_carry_the_conflicting_hunk_and_the_drift(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--project", str(proj), "-q", "matrix", "--format", "junit")
    assert code == 1
    import xml.etree.ElementTree as ET

    suites = ET.fromstring(out)
    assert [s.get("name") for s in suites] == ["1.0", "2.0", "3.0", "4.0"]
    three = suites[2]
    case = next(c for c in three if c.get("name") == "a.patch")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "conflict"
    assert "-line 6\n+line 6 patched\n" in (failure.text or "")
    assert "fails since 3.0 (last applied on 2.0); upstream changed: etc/app.conf" in (
        failure.text or ""
    )


def test_markdown_is_compact_with_details_collapsed(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--project", str(proj), "-q", "matrix", "--format", "markdown")
    lines = out.splitlines()
    assert lines[0] == "| patch | 1.0 | 2.0 | 3.0 | 4.0 |"
    assert "| `a.patch` | ✓ | ↕ | ✗ | ✗ |" in lines
    assert "| `b.patch` | ✓ | ~! | ✓ | ? |" in lines
    assert "<details>" in out and "```diff\n@@ " in out


def test_github_matrix_lists_tracked_releases_one_job_or_groups(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--project", str(proj), "matrix", "--github-matrix")
    assert code == 0
    assert json.loads(out) == {"include": [{"name": v, "versions": v} for v in RELEASES]}
    _, out, _ = run(
        capsys, "--project", str(proj), "matrix", "--github-matrix", "--group-size", "3"
    )
    assert json.loads(out)["include"] == [
        {"name": "1.0..3.0", "versions": "1.0 2.0 3.0"},
        {"name": "4.0", "versions": "4.0"},
    ]
    assert github_matrix([], group_size=2) == {"include": []}


def test_merge_joins_per_job_results_into_the_whole(
    proj: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(proj), "-q", "matrix", "--format", "json"]
    _, whole, _ = run(capsys, *p)
    parts = []
    for v in ("4.0", "1.0", "2.0", "3.0"):
        f = tmp_path / f"r-{v}.json"
        f.write_text(run(capsys, *p, v)[1])
        parts.append(str(f))
    code, merged, _ = run(
        capsys, "--project", str(proj), "-q", "matrix", "--format", "json", "--merge", *parts
    )
    assert code == 1
    got, want = json.loads(merged), json.loads(whole)
    assert got["results"] == want["results"] and got["versions"] == want["versions"]
    # Drift is attributed over the merged releases; the diff text needs both releases in one job.
    assert [(d["patch"], d["first_bad"], d["last_good"], d["files"]) for d in got["drift"]] == [
        (d["patch"], d["first_bad"], d["last_good"], d["files"]) for d in want["drift"]
    ]
    # Any format renders a merge, and no project is needed for it.
    code, md, _ = run(
        capsys,
        "--project",
        str(tmp_path / "nowhere"),
        "-q",
        "matrix",
        "--format",
        "markdown",
        "--merge",
        *parts,
    )
    assert code == 1 and "| `a.patch` | ✓ | ↕ | ✗ | ✗ |" in md


def test_merge_refuses_other_schema_or_other_series(
    proj: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(proj), "-q", "matrix", "--format", "json"]
    one = tmp_path / "one.json"
    one.write_text(run(capsys, *p, "1.0")[1])
    doc = json.loads(one.read_text())
    other_schema = tmp_path / "schema2.json"
    other_schema.write_text(json.dumps({**doc, "schema": 2}))
    code, _, err = run(capsys, *p[:-2], "--merge", str(one), str(other_schema))
    assert code == 3 and "schema 2" in err and len(err.strip().splitlines()) == 1
    (proj / "patches/series").write_text("a.patch\nb.patch\n")
    two = tmp_path / "two.json"
    two.write_text(run(capsys, *p, "2.0")[1])
    code, _, err = run(capsys, *p[:-2], "--merge", str(one), str(two))
    assert code == 3 and "another series" in err and len(err.strip().splitlines()) == 1


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_only_changed_limits_to_changed_patches_or_releases(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(proj), "-q", "matrix", "--format", "json", "--only-changed", "HEAD"]
    code, _, err = run(capsys, *p)
    assert code == 3 and "not in a git repository" in err and len(err.strip().splitlines()) == 1
    (proj / ".gitignore").write_text(".patchkit/\n")
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-q", "-m", "start")
    doc = json.loads(run(capsys, *p)[1])
    assert doc["patches"] == [] and doc["versions"] == []
    assert run(capsys, *p[:-1], "no-such-ref")[0] == 3
    # A patch edited (not yet committed): that patch on every release.
    (proj / "patches/c.patch").write_text(
        make_patch("c.patch", "etc/third.conf", CONF, CONF.replace("opt 9\n", "opt 9 patched\n"))
    )
    doc = json.loads(run(capsys, *p)[1])
    assert doc["patches"] == ["c.patch"] and doc["versions"] == list(RELEASES)
    _git(proj, "commit", "-q", "-am", "edit c")
    # A release entry changed: that release with every patch.
    toml = proj / "upstream-versions.toml"
    toml.write_text(
        toml.read_text().replace(
            'version = "3.0"\nstatus = "supported"', 'version = "3.0"\nstatus = "testing"'
        )
    )
    doc = json.loads(run(capsys, *p)[1])
    assert doc["versions"] == ["3.0"] and doc["patches"] == list(PATCHES)
    _, out, _ = run(
        capsys, "--project", str(proj), "matrix", "--github-matrix", "--only-changed", "HEAD"
    )
    assert json.loads(out) == {"include": [{"name": "3.0", "versions": "3.0"}]}


WORKFLOW = Path(__file__).resolve().parents[2] / ".github/workflows/matrix.yml"


def _linter() -> str:
    beside = Path(sys.executable).parent / "check-jsonschema"  # the test extras' venv
    return str(beside) if beside.exists() else require_tool("check-jsonschema")


def test_workflow_is_valid_for_github_actions() -> None:
    tool = _linter()
    proc = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # What its steps do moved into action.yml / action/run.sh with them: asserted in
    # tests/integrations/test_github_action.py.


def test_workflow_linter_rejects_a_broken_workflow(tmp_path: Path) -> None:
    tool = _linter()
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    proc = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        check=False,
    )
    assert proc.returncode != 0
