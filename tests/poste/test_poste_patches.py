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


# poste.io's own files: no model release has them, so these report missing-target there.
POSTE_ONLY = {
    "webmail-hostname.edit.toml",
    "healthcheck-sockets.edit.toml",
    "poste-redis-statistics-socket.edit.toml",
    "clear-idle-connections-socket.edit.toml",
    "admin-quarantine-msmtp-host.edit.toml",
    "admin-rspamc-socket.edit.toml",
    "admin-predis-socket.edit.toml",
    "sieve-rspamc-socket.edit.toml",
    "haraka-dovecot-quota-socket.edit.toml",
}
NGINX_LISTEN = "nginx-listen-hostname.edit.toml"
UNVERIFIED = "fixture shapes only (POSTE.md); unverified against a real poste.io release"


def _expected_failures(models: Project, label: str) -> dict[str, str]:
    # The model's nginx templates are stand-ins in poste.io 2.5.x's structure (POSTE.md: its
    # port placeholders, `listen [::]:`, auth_request and `.auth` to nginx itself on
    # localhost), so the nginx edits apply there as on poste.io.
    https = models.show(label, "etc/nginx/sites-enabled.templates/https")
    assert b"listen __HTTP_PORT__;" in https and b"https://localhost:__HTTPS_PORT__/" in https
    return dict.fromkeys(POSTE_ONLY, "missing-target")


@pytest.mark.parametrize("label", LABELS)
def test_every_change_for_a_model_file_applies_and_poste_only_ones_miss_their_target(
    models: Project, label: str
) -> None:
    result = models.check(label)
    failed = {p.name: p.status.value for p in result.patches if p.needs_attention}
    assert failed == _expected_failures(models, label)
    assert {p.status.value for p in result.patches if p.name not in failed} == {"applied"}
    for p in result.patches:
        if p.status.value == "missing-target":
            assert {e.reason for e in p.edits} == {"too-few-files"}, p.name
    # Never skipped in silence: the only skips are by a release range naming real releases.
    assert not [p.name for p in result.patches if p.status.value == "skipped"]


def test_every_change_says_what_it_was_verified_against(models: Project) -> None:
    for change in models.changes():
        header = change.patch_header
        assert "Verified:" in header, change.name
        if change.name in POSTE_ONLY:
            assert f"Verified: {UNVERIFIED}" in header, change.name
        else:
            assert "model-bookworm, model-trixie" in header.replace("\n ", " "), change.name


def test_the_series_uses_each_kind_for_what_it_fits(models: Project) -> None:
    kinds = {c.name: c.kind.value for c in models.changes()}
    assert kinds["nginx-default-site.patch"] == "diff"  # Debian's own link: its text is known
    assert {n for n, k in kinds.items() if k == "overlay"} == {
        "rspamd-worker-sockets/",
        "dovecot-local-conf/",
        "haraka-redis-ini/",
        "startup-bind-hostname/",
        "haraka-outbound-ip-helo/",
        "haraka-local-own-addresses/",
    }
    assert POSTE_ONLY | {NGINX_LISTEN} <= {n for n, k in kinds.items() if k == "edit"}
    assert "nginx-listen-placeholders.patch" not in kinds  # the invented diff left the series


@pytest.mark.parametrize("label", LABELS)
def test_the_cli_check_exits_1_for_exactly_those(
    models: Project, label: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["--project", str(models.root), "check", label, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    failed = {p["name"]: p["status"] for p in doc["patches"] if p["status"] != "applied"}
    assert failed == _expected_failures(models, label)


@pytest.mark.parametrize("label", LABELS)
def test_audit_finds_every_poste_port_unpatched_and_none_patched(
    models: Project, label: str
) -> None:
    before = audit_release(models, label, patched=False)
    assert before.failed and not before.problems
    assert {x.port for x in before.listeners if x.verdict.value == "forbidden"} >= POSTE_PORTS
    after = audit_release(models, label)
    forbidden = [x for x in after.listeners if x.verdict.value == "forbidden"]
    assert not after.failed, forbidden
    assert after.count(Verdict.FORBIDDEN) == 0
    assert not after.problems


# The loopback clients the models hold (their components' own defaults and the model layer's
# poste.io settings): (component, file). Written generally: a model that gains clients (the
# stand-in templates' `.auth` subrequest, issue 20) keeps these and adds its own.
MODEL_LOOPBACK_CLIENTS = {
    ("rspamd", "etc/rspamd/local.d/redis.conf"),  # redis servers 127.0.0.1:6379
    ("rspamd", "etc/rspamd/local.d/statistic.conf"),  # the bayes classifier's redis
    ("rspamd", "etc/rspamd/worker-proxy.inc"),  # the proxy's upstream, localhost:11333
    ("haraka", "opt/haraka-smtp/config/rspamd.ini"),  # localhost:11333
    ("haraka", "opt/haraka-submission/config/rspamd.ini"),
    ("haraka", "opt/haraka-smtp/config/redis.ini"),  # absent: the plugin's 127.0.0.1:6379
    ("haraka", "opt/haraka-submission/config/redis.ini"),
    ("nginx", "etc/nginx/sites-enabled.templates/https"),  # 127.0.0.1:11334, 127.0.0.1:$1
    ("nginx", "etc/nginx/sites-enabled.templates/no-https"),
}


@pytest.mark.parametrize("label", LABELS)
def test_audit_lists_the_loopback_clients_unpatched_and_none_patched(
    models: Project, label: str
) -> None:
    before = audit_release(models, label, patched=False)
    loopback = [c for c in before.connections if c.verdict is Verdict.FORBIDDEN]
    assert {(c.component, c.file) for c in loopback} >= MODEL_LOOPBACK_CLIENTS
    assert all("loopback" in c.reason for c in loopback)
    assert {c.host for c in loopback} <= {"127.0.0.1", "localhost"}
    defaults = {(c.file, c.port) for c in loopback if c.origin == "default"}
    assert ("opt/haraka-smtp/config/redis.ini", 6379) in defaults
    after = audit_release(models, label)
    bad = [c for c in after.connections if c.verdict in (Verdict.FORBIDDEN, Verdict.PROBLEM)]
    assert not bad, bad
    # every client is still there, now on a socket (or the hostname)
    assert {(c.component, c.file) for c in after.connections} >= MODEL_LOOPBACK_CLIENTS - {
        ("rspamd", "etc/rspamd/worker-proxy.inc")  # replaced from override.d
    }
    assert ("rspamd", "etc/rspamd/override.d/worker-proxy.inc") in {
        (c.component, c.file) for c in after.connections
    }


def _without(project: Path, names: set[str]) -> None:
    """Drop ``names`` from the project's series (their files stay in patches/)."""
    series = project / "patches" / "series"
    kept = [
        ln for ln in series.read_text().splitlines() if ln.split("#", 1)[0].strip() not in names
    ]
    series.write_text("\n".join(kept) + "\n")


def test_rebase_refuses_while_the_base_lacks_poste_only_targets(
    models: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "refuse"
    shutil.copytree(models.root, project, ignore=shutil.ignore_patterns(".patchkit"))
    argv = ["--project", str(project), "--store", str(models.store_dir)]
    assert main([*argv, "rebase", "--onto", "model-trixie"]) == 3
    assert "does not apply to its base model-bookworm" in capsys.readouterr().err


def test_rebase_from_bookworm_to_trixie_completes(models: Project, tmp_path: Path) -> None:
    # A series must apply to its base before a rebase: on the models that is the series
    # without the changes for poste.io's own files.
    project = tmp_path / "rebase"
    shutil.copytree(models.root, project, ignore=shutil.ignore_patterns(".patchkit"))
    _without(project, set(_expected_failures(models, "model-bookworm")))
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
    patch = (project / "patches" / "redis-no-tcp.edit.toml").read_text()
    (project / "patches" / "redis-no-tcp.edit.toml").write_text(
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
