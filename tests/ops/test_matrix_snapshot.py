"""The snapshot of the whole matrix: keyed by every input's bytes, the same answers as a
computation, never the answer of other inputs (docs/matrix.md, "Cache")."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from patchkit.ops.matrix import compute_matrix, snapshot
from patchkit.project import Project
from tests.ops.test_matrix import CONF, make_patch, matrix_project


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return matrix_project(tmp_path)


def _key(root: Path, versions: list[str] | None = None) -> str | None:
    return snapshot.inputs_key(
        root=str(root), store_dir=str(root / ".patchkit/store.git"), versions=versions
    )


def _wholes(root: Path) -> list[Path]:
    return sorted((root / ".patchkit/cache/matrix").glob("whole-*.txt"))


def _git(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", "--git-dir", str(root / ".patchkit/store.git"), *args],
        capture_output=True,
        check=True,
        env=env,
        text=True,
    ).stdout.strip()


def test_the_key_covers_every_input(proj: Path) -> None:
    seen = {_key(proj)}
    assert None not in seen

    def changed(what: str) -> None:
        key = _key(proj)
        assert key is not None and key not in seen, f"the key did not change with {what}"
        seen.add(key)

    patch = proj / "patches/c.patch"
    patch.write_text(
        make_patch("c.patch", "etc/third.conf", CONF, CONF.replace("opt 6\n", "opt six\n"))
    )
    changed("a patch's bytes")
    patch.chmod(0o755)
    changed("a patch's mode")
    (proj / "patches/notes.txt").write_text("not in the series\n")
    changed("a new file below patches/")
    (proj / "patches/sub").mkdir()
    changed("a new directory below patches/")
    versions = proj / "upstream-versions.toml"
    versions.write_text(versions.read_text() + "\n# a comment\n")
    changed("upstream-versions.toml")
    before = _key(proj)
    old = _git(proj, "rev-parse", "refs/patchkit/upstream/4.0")
    other = _git(proj, "rev-parse", "refs/patchkit/upstream/3.0")
    _git(proj, "update-ref", "refs/patchkit/upstream/4.0", other)
    changed("a release's commit")
    moved = _key(proj)
    _git(proj, "pack-refs", "--all")
    assert _key(proj) == moved  # the same references, packed: the same key
    _git(proj, "update-ref", "refs/patchkit/upstream/4.0", old)  # loose again, over the packed
    assert _key(proj) == before
    assert _key(proj, ["1.0"]) not in seen  # the releases asked


def test_unchanged_tells_a_rewrite_of_the_same_size(proj: Path) -> None:
    inputs = snapshot.read_inputs(
        root=str(proj), store_dir=str(proj / ".patchkit/store.git"), versions=None
    )
    assert inputs is not None and inputs.unchanged()
    patch = proj / "patches/a.patch"
    data = patch.read_bytes()
    patch.write_bytes(data.replace(b"line 6 patched", b"line 6 PATCHED"))
    assert len(patch.read_bytes()) == len(data)
    assert not inputs.unchanged()


def test_a_hit_is_the_computed_matrix_and_no_git_runs(
    proj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project.open(proj)
    first = project.matrix(jobs=1)
    assert len(_wholes(proj)) == 1
    assert first == compute_matrix(project, jobs=1, cache=False)

    def no_git(*args: object, **kwargs: object) -> object:
        raise AssertionError("a warm matrix ran git")

    monkeypatch.setattr(subprocess, "Popen", no_git)
    again = Project.open(proj).matrix(jobs=1)
    assert again == first  # trees, flags, drift with its upstream diff, blobs: all of it


def test_inputs_changed_while_computing_are_not_remembered(proj: Path) -> None:
    project = Project.open(proj)
    patch = proj / "patches/b.patch"

    def compute_while_edited() -> object:
        matrix = compute_matrix(project, jobs=1)
        patch.write_text(patch.read_text().replace("opt 8 patched", "opt 8 edited"))
        return matrix

    snapshot.cached(
        root=str(proj),
        state_dir=str(proj / ".patchkit"),
        store_dir=str(proj / ".patchkit/store.git"),
        versions=None,
        compute=compute_while_edited,  # type: ignore[arg-type]
        render=lambda m: json.dumps(m.to_dict()),
    )
    assert _wholes(proj) == []
    fresh = Project.open(proj).matrix(jobs=1)
    assert fresh == compute_matrix(project, jobs=1, cache=False)


def test_a_damaged_snapshot_is_computed_anew_and_replaced(proj: Path) -> None:
    project = Project.open(proj)
    want = project.matrix(jobs=1)
    (whole,) = _wholes(proj)
    lines = whole.read_bytes().split(b"\n")
    lines[5] = lines[5][: len(lines[5]) // 2]  # the document cut in half, the key intact
    whole.write_bytes(b"\n".join(lines))
    assert Project.open(proj).matrix(jobs=1) == want
    assert snapshot.lookup(str(proj / ".patchkit"), None, _key(proj) or "") is not None
    assert Project.open(proj).matrix(jobs=1) == want


def test_no_snapshot_for_a_symlink_below_patches(proj: Path) -> None:
    (proj / "patches/link.patch").symlink_to(proj / "patches/a.patch")
    assert _key(proj) is None
    matrix = Project.open(proj).matrix(jobs=1)
    assert _wholes(proj) == []
    assert matrix == compute_matrix(Project.open(proj), jobs=1, cache=False)


def test_every_requested_set_of_releases_has_its_snapshot(proj: Path) -> None:
    project = Project.open(proj)
    full = project.matrix(jobs=1)
    some = project.matrix(["2.0", "1.0"], jobs=1)
    assert len(_wholes(proj)) == 2
    assert some.versions == ("1.0", "2.0")
    assert project.matrix(jobs=1) == full
    assert project.matrix(["2.0", "1.0"], jobs=1) == some
