"""The poste.io patch set against the model releases built from real components.

The models come from `python bench/model/build.py` (Debian + npm; cached under
bench/.cache/models). Without them these tests skip, and fail under CI=true, where
.ci/run builds them first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.audit import Verdict, audit_release
from patchkit.cli import main
from tests.conftest import in_ci
from tests.helpers.imagebuilder import Layer, build_oci_layout

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("PATCHKIT_MODELS", ROOT / "bench" / ".cache" / "models"))
LABELS = ("model-bookworm", "model-trixie")
# Every port POSTE.md names: public ones and the internal localhost ones.
POSTE_PORTS = {
    25,
    80,
    110,
    143,
    443,
    465,
    587,
    993,
    995,
    4190,
    6379,
    11332,
    11333,
    11334,
    11380,
    11381,
    13001,
}


def _copy_project(tmp: Path) -> Path:
    project = tmp / "project"
    project.mkdir()
    shutil.copy(ROOT / "upstream-versions.toml", project)
    shutil.copytree(ROOT / "patches", project / "patches")
    return project


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Project:
    missing = [label for label in LABELS if not (MODELS / label / "index.json").is_file()]
    if missing:
        msg = f"model layouts missing ({', '.join(missing)}): run python bench/model/build.py"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    project = _copy_project(tmp_path_factory.mktemp("poste"))
    for label in LABELS:
        assert (
            main(
                ["--project", str(project), "-q", "import", label, f"oci:{MODELS / label}:{label}"]
            )
            == 0
        )
    return Project.open(project)


@pytest.mark.parametrize("label", LABELS)
def test_every_patch_for_a_model_file_applies_and_the_rest_is_skipped_as_unverified(
    models: Project, label: str
) -> None:
    result = models.check(label)
    assert not result.needs_attention, [(p.name, p.status.value, p.message) for p in result.patches]
    skipped = {p.name for p in result.patches if p.status.value == "skipped"}
    assert skipped == {"nginx-listen-placeholders.patch"}
    for patch in models.patches():
        verified = "offline-unverifiable" not in patch.header
        assert verified == (patch.name not in skipped)


@pytest.mark.parametrize("label", LABELS)
def test_audit_finds_every_poste_port_unpatched_and_none_patched(
    models: Project, label: str
) -> None:
    before = audit_release(models, label, patched=False)
    assert before.failed and not before.problems
    assert {x.port for x in before.listeners if x.verdict.value == "forbidden"} >= POSTE_PORTS
    after = audit_release(models, label)
    assert not after.failed, [x for x in after.listeners if x.verdict.value == "forbidden"]
    assert after.count(Verdict.FORBIDDEN) == 0
    # What is left open is only what the unverifiable nginx patch would change.
    assert {x.file for x in after.listeners if x.verdict.value == "unverified"} == {
        "etc/nginx/sites-enabled.templates/https",
        "etc/nginx/sites-enabled.templates/no-https",
    }
    assert audit_release(models, label, strict=True).failed


def test_rebase_from_bookworm_to_trixie_completes(models: Project, tmp_path: Path) -> None:
    project = tmp_path / "rebase"
    shutil.copytree(models.root, project, ignore=shutil.ignore_patterns(".patchkit"))
    store = models.store_dir
    assert (
        main(
            [
                "--project",
                str(project),
                "--store",
                str(store),
                "rebase",
                "--onto",
                "model-trixie",
                "--json",
            ]
        )
        == 0
    )
    text = (project / "upstream-versions.toml").read_text()
    assert 'base = "model-trixie"' in text
    assert main(["--project", str(project), "--store", str(store), "check", "model-trixie"]) == 0


def test_a_patch_whose_target_is_absent_reports_missing_target(
    models: Project, tmp_path: Path
) -> None:
    project = tmp_path / "absent"
    shutil.copytree(models.root, project, ignore=shutil.ignore_patterns(".patchkit"))
    patch = (project / "patches" / "redis-unix-socket.patch").read_text()
    (project / "patches" / "redis-unix-socket.patch").write_text(
        patch.replace("etc/redis/redis.conf", "etc/redis/6379.conf")
    )
    result = Project.open(project, store=models.store_dir).check("model-bookworm")
    assert result.patches[0].status.value == "missing-target" and result.needs_attention


def test_relative_oci_source_in_the_toml_is_relative_to_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "p"
    (project / "patches").mkdir(parents=True)
    build_oci_layout(project / "layouts" / "m", [Layer().file("etc/a.conf", b"a\n")], tag="m1")
    (project / "upstream-versions.toml").write_text(
        'schema = 1\nbase = "m1"\n[upstream]\nname = "t"\n'
        '[[version]]\nversion = "m1"\nstatus = "model"\nsource = "oci:layouts/m:m1"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["--project", str(project), "-q", "import", "m1"]) == 0
    # A model's digest stays in the store, not in the TOML (its Debian suite moves).
    assert "digest" not in (project / "upstream-versions.toml").read_text()


def test_model_build_without_its_tools_says_what_it_needed_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/model/build.py"),
            "--out",
            str(tmp_path / "out"),
            "--only",
            "model-trixie",
        ],
        env={"PATH": str(empty), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "model build: error: apt-get not found (needed: Debian trixie package lists"
    )
    assert len([ln for ln in lines if "error" in ln]) == 1


def test_model_stamp_records_its_components(models: Project) -> None:
    info = json.loads((MODELS / "model-trixie.json").read_text())
    assert info["suite"] == "trixie" and info["components"]["haraka"][0].startswith("Haraka 3.1.")
