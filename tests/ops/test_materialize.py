"""materialize: the diff of an edit or overlay, equal (by `git apply`) to what the change does."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from patchkit import Project
from patchkit.core.model import PatchStatus
from patchkit.errors import PatchkitError, UsageError
from patchkit.kinds.edit import load_edit
from patchkit.kinds.materialize import diff_of
from tests.helpers.projectbuilder import make_project


def git_apply(root: Path, diff: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "apply", "--unsafe-paths", "-"], cwd=root, input=diff, capture_output=True
    )


def write(root: Path, files: Mapping[str, bytes | None]) -> None:
    for path, data in files.items():
        if data is not None:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)


def read_all(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


line = st.text(alphabet="ab =;#\t", min_size=0, max_size=10)
body = st.lists(line, max_size=12).map(lambda ls: "".join(x + "\n" for x in ls))
ops = st.sampled_from(
    [
        'replace = "a"\nwith = "xy"\ncount = ">=1"',
        'replace = "b =\\n"\nwith = "B\\n"\ncount = "1..50"',
        "replace = '(a+) (b)'\nwith = '\\2\\1'\nregex = true\ncount = \">=1\"",
        'delete = "#"\ncount = ">=1"',
        'delete-from = "a"\ndelete-to = ";"',
        'insert-after = "b"\nlines = ["new line", ""]\ncount = ">=1"',
        'insert-before = "="\nlines = ["above"]\ncount = ">=1"',
        'append = "tail = 1\\n"',
        'prepend = "# head\\n"',
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(body, min_size=1, max_size=3), op=ops, no_newline=st.booleans())
def test_materialized_diff_applied_by_git_equals_the_edit_result(
    texts: list[str], op: str, no_newline: bool
) -> None:
    files: dict[str, bytes | None] = {f"etc/f{i}.conf": t.encode() for i, t in enumerate(texts)}
    if no_newline and texts[0]:
        files["etc/f0.conf"] = texts[0].encode().rstrip(b"\n")
    change = load_edit(f'[[edit]]\nfiles = "etc/*.conf"\n{op}\n'.encode(), name="e.edit.toml")
    outcome = change.apply(dict(files), version="1")
    event(outcome.status.value)
    if outcome.status is not PatchStatus.APPLIED:
        return
    after = dict(files)
    after.update(outcome.contents)
    diff = diff_of("e.patch", change.patch_header, files, after)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, files)
        done = git_apply(root, diff)
        assert done.returncode == 0, done.stderr.decode() + diff.decode()
        assert read_all(root) == {p: d for p, d in after.items() if d is not None}


PLUGINS = "status_http\nrcpt_to.in_host_list\n"


def project(tmp_path: Path) -> Path:
    root = make_project(
        tmp_path,
        {"1.0": {"opt/haraka-smtp/config/plugins": PLUGINS, "bin/tool": "#!/bin/sh\necho 1\n"}},
        {
            "plugins.edit.toml": 'description = "Our plugins."\nupstream-versions = ">=1.0"\n'
            '[[edit]]\nfiles = "opt/haraka-smtp/config/plugins"\ninsert-after = "status_http"\n'
            'lines = ["bind_hostname"]\n',
            "tools/bin/tool": "#!/bin/sh\necho 2\n",
            "tools/usr/local/bin/new": "#!/bin/sh\necho new\n",
        },
        base="1.0",
        series="# ours\ntools/  # whole files\nplugins.edit.toml\n",
    )
    (root / "patches/tools/usr/local/bin/new").chmod(0o755)
    Project.open(root).import_release("1.0")
    return root


def test_materialize_prints_the_diff_with_the_header_carried_over(tmp_path: Path) -> None:
    proj = Project.open(project(tmp_path))
    result = proj.materialize("plugins.edit.toml")
    text = result.diff.decode()
    assert text.startswith("Description: Our plugins.\nUpstream-Versions: >=1.0\n\n")
    assert "+bind_hostname\n" in text and result.status is PatchStatus.APPLIED
    overlay = proj.materialize("tools/").diff.decode()
    assert "new file mode 100755" in overlay and "+echo 2" in overlay


def test_materialize_replace_swaps_the_patch_into_the_series_and_checks_the_same(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    proj = Project.open(root)
    before = proj.check()
    result = proj.materialize("plugins.edit.toml", replace=True)
    assert result.replaced_by == "plugins.patch"
    assert (root / "patches/series").read_text() == "# ours\ntools/  # whole files\nplugins.patch\n"
    assert (root / "patches/plugins.edit.toml").exists()  # kept, out of the series
    after = proj.check()
    assert [p.status for p in after.patches] == [p.status for p in before.patches]
    overlay = proj.materialize("tools/", replace=True)
    assert overlay.replaced_by == "tools.patch"
    assert [p.status for p in proj.check().patches] == [PatchStatus.APPLIED, PatchStatus.APPLIED]


def test_materialize_refuses_to_clobber_and_unknown_names(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "patches/plugins.patch").write_text("mine\n")
    series = (root / "patches/series").read_bytes()
    proj = Project.open(root)
    with pytest.raises(PatchkitError, match="exists already"):
        proj.materialize("plugins.edit.toml", replace=True)
    assert (root / "patches/series").read_bytes() == series
    assert (root / "patches/plugins.patch").read_text() == "mine\n"
    with pytest.raises(UsageError, match="not in patches/series"):
        proj.materialize("nope.edit.toml")
