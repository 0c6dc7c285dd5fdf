"""Property test of the matrix's shared computation: patch groups computed once per set of
blobs give, cell for cell, what applying the series release by release gives."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchkit.cli import main
from patchkit.core.apply import unified_diff
from patchkit.core.patchfile import Patch, render_patch
from patchkit.ops.check import check_tree
from patchkit.ops.matrix import MatrixStats, compute_matrix
from patchkit.ops.matrix.risk import merge3_bytes
from patchkit.project import Project
from tests.helpers.projectbuilder import make_project, numbered
from tests.helpers.strategies import LINE_POOL, contents

FILES = ("a.conf", "b.conf", "c.conf")
BASE = {f: numbered(12, f[0]) for f in FILES}
# Releases share some blobs and change others, so that units are shared and not shared.
RELEASES = {
    "1.0": dict(BASE),
    "2.0": {**BASE, "a.conf": BASE["a.conf"].replace("a 6\n", "a six\n")},
    "3.0": {
        **BASE,
        "a.conf": BASE["a.conf"].replace("a 6\n", "a six\n"),
        "c.conf": "top\n" + BASE["c.conf"],
    },
    "4.0": {"a.conf": BASE["a.conf"], "b.conf": BASE["b.conf"].replace("b 3\n", "b three\n")},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("m"), RELEASES, {}, base="1.0")
    for v in RELEASES:
        assert main(["-q", "--project", str(root), "import", v]) == 0
    return root


# One edit: (file, line number 1..12, new text or None to delete the line)
edits = st.tuples(
    st.sampled_from(FILES), st.integers(1, 12), st.one_of(st.none(), st.sampled_from(["x", "y"]))
)
series = st.lists(st.lists(edits, min_size=1, max_size=3), min_size=1, max_size=6)


def _patch(name: str, edit_list: list[tuple[str, int, str | None]]) -> bytes:
    files = []
    for path in sorted({e[0] for e in edit_list}):
        lines = BASE[path].splitlines(keepends=True)
        for f, n, text in edit_list:
            if f == path:
                lines[n - 1] = "" if text is None else f"{path[0]} {n} {text}\n"
        fp = unified_diff(BASE[path].encode(), "".join(lines).encode(), path)
        if fp is not None:
            files.append(fp)
    return render_patch(Patch(name=name, files=tuple(files)))


@settings(
    max_examples=int(os.environ.get("PATCHKIT_HYPOTHESIS_EXAMPLES", "150")) // 5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(series, st.booleans())
def test_shared_units_equal_release_by_release_application(
    project: Path, plan: list[list[tuple[str, int, str | None]]], limit: bool
) -> None:
    patches_dir = project / "patches"
    shutil.rmtree(patches_dir)
    patches_dir.mkdir()
    names = []
    for i, edit_list in enumerate(plan):
        data = _patch(f"p{i}.patch", edit_list)
        if limit and i == 0:
            data = b"Upstream-Versions: <3\n\n" + data  # excluded on 3.0 and 4.0
        if b"@@" not in data:
            continue
        (patches_dir / f"p{i}.patch").write_bytes(data)
        names.append(f"p{i}.patch")
    (patches_dir / "series").write_text("".join(f"{n}\n" for n in names))
    p = Project.open(project)
    stats = MatrixStats()
    matrix = compute_matrix(p, jobs=1, cache=False, stats=stats)
    assert stats.units <= stats.cells
    with p.store.blob_reader() as reader:
        for check in matrix.checks:
            expected = check_tree(
                reader,
                version=check.version,
                tree=p.release_tree(check.version),
                patches=p.patches(),
            )
            assert [(r.name, r.status, r.hunks, r.message) for r in check.patches] == [
                (r.name, r.status, r.hunks, r.message) for r in expected.patches
            ]


# The 3-way risk check on any bytes: lines split on "\n" only, so a "\r", "\f" or undecodable
# byte inside a line never moves a line boundary, and what a side did comes back byte for byte.
FORM_FEED_POOL = (*LINE_POOL, b"page\x0cbreak\n", b"\x0c\n", b"mid\rline\x0cboth\n")


@settings(max_examples=int(os.environ.get("PATCHKIT_HYPOTHESIS_EXAMPLES", "150")), deadline=None)
@given(contents(pool=FORM_FEED_POOL), contents(pool=FORM_FEED_POOL))
def test_3way_merge_of_one_changed_side_gives_that_side(base: bytes, changed: bytes) -> None:
    assert merge3_bytes(base, base, changed) == (True, changed)  # only theirs changed
    assert merge3_bytes(changed, base, base) == (True, changed)  # only ours changed
