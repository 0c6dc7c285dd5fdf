"""``patchkit edit`` / ``patchkit new`` through the CLI: exit codes, stdout, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from patchkit.cli import main
from tests.ops.edit.conftest import build_project, files, git


@pytest.fixture(scope="module")
def _tmpl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("edit-cli")
    build_project(tmp)
    return tmp


@pytest.fixture
def root(_tmpl: Path, tmp_path: Path) -> Path:
    shutil.copytree(_tmpl, tmp_path / "t", symlinks=True)
    return tmp_path / "t" / "project"


def run(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_loop(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(root, capsys, "edit", "c.patch")
    assert code == 0
    wt = Path(out.strip())
    assert wt == root / ".patchkit/edit/worktree" and "HEAD at c.patch" in err
    (wt / "etc/c.conf").write_text((wt / "etc/c.conf").read_text() + "sea 11\n")
    code, out, _ = run(root, capsys, "edit", "--status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["uncommitted"] == ["etc/c.conf"] and doc["patchkit"]
    code, out, _ = run(root, capsys, "edit", "--save")
    assert code == 0 and "patches/c.patch: rewritten" in out
    code, out, _ = run(root, capsys, "new", "d.patch", "-m", "Dee")
    assert code == 0 and "patches/d.patch: new" in out
    assert git(wt, "log", "-1", "--format=%s").strip() == "Dee"
    code, out, _ = run(root, capsys, "edit", "--done")
    assert code == 0 and not wt.exists()
    code, out, _ = run(root, capsys, "edit", "--status")
    assert "no edit worktree is open" in out


def test_stopped_save_exits_1(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(root, capsys, "edit", "a.patch")
    wt = Path(out.strip())
    path = wt / "etc/a.conf"
    path.write_text(path.read_text().replace("line 9\n", "line 9 first\n"))
    code, out, err = run(root, capsys, "edit", "--save")
    assert code == 1 and "a2.patch no longer applies" in err
    code, out, err = run(root, capsys, "edit", "--continue")
    assert code == 3 and err.count("\n") == 1 and "conflict markers left" in err
    code, _, _ = run(root, capsys, "edit", "--abort")
    assert code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("edit", "nope.patch"),
        ("new", "../escape.patch"),
        ("new", "a.patch"),
        ("new", "x.patch", "--after", "nope.patch"),
        ("edit", "--save"),  # nothing open
        ("edit", "--discard"),
    ],
)
def test_bad_input_is_one_line_exit_3(
    root: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    before = files(root / "patches")
    code, _out, err = run(root, capsys, *args)
    assert code == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert files(root / "patches") == before


def test_discard_dirty_needs_force(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(root, capsys, "edit")
    wt = Path(out.strip())
    (wt / "etc/c.conf").write_text("x\n")
    code, _, err = run(root, capsys, "edit", "--discard")
    assert code == 3 and "--discard --force" in err
    code, _, _ = run(root, capsys, "edit", "--discard", "--force")
    assert code == 0 and not wt.exists()


def test_rebase_refused_while_editing_and_back(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(root, capsys, "edit")
    code, _, err = run(root, capsys, "import", "1.0")
    assert code == 3 and "edit worktree is open" in err
    run(root, capsys, "edit", "--discard")
    code, _, _ = run(root, capsys, "rebase", "--onto", "1.1")
    assert code in (0, 1)
    code, _, err = run(root, capsys, "edit")
    assert code == 3 and "rebase onto 1.1 is in progress" in err
