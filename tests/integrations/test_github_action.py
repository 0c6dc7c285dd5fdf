"""The reusable GitHub Action (action.yml), its script (action/run.sh) and matrix.yml.

The schemas are GitHub's, vendored in check-jsonschema (no network). The script is what the
action's steps run; here it runs locally on a sample project, with $GITHUB_OUTPUT and
$GITHUB_STEP_SUMMARY pointing at files, as the runner sets them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.helpers.projectbuilder import make_project, numbered, udiff
from tests.integrations.conftest import ROOT, venv_tool

ACTION = ROOT / "action.yml"
SCRIPT = ROOT / "action" / "run.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "matrix.yml"

CONF_10 = numbered(10)
CONF_11 = CONF_10.replace("line 5\n", "line 5 upstream\n")
OURS = udiff(
    "etc/a.conf", CONF_10, CONF_10.replace("line 5\n", "line 5 ours\n"), "Description: a\n\n"
)


def _schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_action_is_valid_for_github_actions() -> None:
    proc = _schema_check("vendor.github-actions", ACTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_schema_check_rejects_a_broken_action(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text(ACTION.read_text().replace("using: composite", "using: compost", 1))
    assert _schema_check("vendor.github-actions", broken).returncode != 0


def test_workflow_is_valid_and_fans_out_through_the_action() -> None:
    proc = _schema_check("vendor.github-workflows", WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    modes = [
        step["with"]["mode"]
        for job in jobs.values()
        for step in job["steps"]
        if step.get("uses") == "./"
    ]
    assert modes == ["plan", "part", "merge", "publish"]


def test_publishing_has_the_least_permissions_and_waits_for_the_matrix() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["permissions"] == {"contents": "read"}
    jobs = doc["jobs"]
    publish, sign = jobs["publish"], jobs["sign"]
    assert publish["needs"] == "merge" and sign["needs"] == "publish"
    assert publish["permissions"] == {"contents": "read", "packages": "write"}
    assert sign["permissions"] == {"packages": "write", "id-token": "write"}
    # only the signing job may ask for an OIDC token, and only where the repository enables it
    assert [n for n, j in jobs.items() if "id-token" in j.get("permissions", {})] == ["sign"]
    assert "vars.PATCHKIT_SIGN == 'true'" in sign["if"]
    # a pull request never publishes; a release that conflicts does not hold back the others
    assert "github.event_name != 'pull_request'" in publish["if"]
    assert "!cancelled()" in publish["if"]
    [step] = [s for s in publish["steps"] if s.get("uses") == "./"]
    assert step["with"]["builder"] == "buildx" and step["with"]["moving-tag"] == "latest"
    assert "cosign sign --yes" in sign["steps"][-1]["run"]
    assert "needs.publish.outputs.digests" in json.dumps(sign)


def test_the_action_does_what_the_hand_written_workflow_did() -> None:
    # (moved from tests/ops/test_matrix.py with the steps): import from Docker Hub, plan with
    # --github-matrix, join with --merge, summary to $GITHUB_STEP_SUMMARY
    text = SCRIPT.read_text()
    assert "--github-matrix" in text and "--merge" in text and "GITHUB_STEP_SUMMARY" in text
    assert 'import "$v"' in text  # the TOML's source: docker://<image>:<version>
    toml = (ROOT / "upstream-versions.toml").read_text()
    assert re.search(r'^image = "docker.io/analogic/poste.io"', toml, re.MULTILINE)


def test_every_input_is_used_and_every_setting_the_script_reads_is_passed() -> None:
    action = yaml.safe_load(ACTION.read_text())
    steps = action["runs"]["steps"]
    body = json.dumps(steps)
    for name in action["inputs"]:
        assert f"inputs.{name}" in body, f"input {name} is not used by any step"
    [run] = [s for s in steps if s.get("id") == "run"]
    # run.sh and what it hands over to (mode watch: action/upstream.py and its modules)
    scripts = "".join(p.read_text() for p in [SCRIPT, *sorted(SCRIPT.parent.glob("*.py"))])
    read = set(re.findall(r"\bPATCHKIT_[A-Z_]+", scripts))
    assert read <= set(run["env"]), read - set(run["env"])
    for output in action["outputs"].values():
        key = re.fullmatch(r"\$\{\{ steps\.run\.outputs\.([a-z-]+) \}\}", output["value"])
        assert key and (f'"{key.group(1)}=' in scripts or f'output("{key.group(1)}"' in scripts)


def test_script_is_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck")
    proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_upstream_workflow_runs_daily_and_on_demand_one_at_a_time_with_least_permissions() -> None:
    upstream = ROOT / ".github" / "workflows" / "upstream.yml"
    proc = _schema_check("vendor.github-workflows", upstream)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = yaml.safe_load(upstream.read_text())
    triggers = doc[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"] == [{"cron": "17 5 * * *"}]
    assert triggers["workflow_dispatch"]["inputs"]["dry-run"]["type"] == "boolean"
    assert doc["concurrency"] == {"group": "patchkit-upstream", "cancel-in-progress": False}
    assert doc["permissions"] == {}
    [job] = doc["jobs"].values()
    assert job["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
        "issues": "write",
    }
    [step] = [s for s in job["steps"] if s.get("uses") == "./"]
    assert step["with"]["mode"] == "watch"
    assert step["with"]["dry-run"] == "${{ inputs.dry-run || false }}"
    # the base (a model release) is built before the action forecasts anything onto it
    names = [s.get("name", s.get("uses")) for s in job["steps"]]
    assert names.index("build the base release (model-bookworm)") < names.index("./")


def test_workflow_schema_check_rejects_a_broken_upstream_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "upstream.yml"
    text = (ROOT / ".github" / "workflows" / "upstream.yml").read_text()
    broken.write_text(text.replace("cancel-in-progress: false", "cancel-in-progress: 3", 1))
    assert _schema_check("vendor.github-workflows", broken).returncode != 0


# --------------------------------------------------------------------------- the script, run


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """Releases 1.0 and 1.1 (dir: sources); a.patch applies on 1.0 and conflicts on 1.1."""
    return make_project(
        tmp_path,
        {"1.0": {"etc/a.conf": CONF_10}, "1.1": {"etc/a.conf": CONF_11}},
        {"a.patch": OURS},
        base="1.0",
    )


def _run(
    tmp_path: Path, project: Path, mode: str, **settings: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    outputs = tmp_path / f"output-{mode}"
    summary = tmp_path / "summary.md"
    outputs.write_text("")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "PATCHKIT_MODE": mode,
        "PATCHKIT_PROJECT": str(project),
        "PATCHKIT_OUT": str(tmp_path / "out"),
        **{f"PATCHKIT_{k.upper()}": v for k, v in settings.items()},
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return proc, values, summary.read_text() if summary.exists() else ""


def test_all_imports_checks_and_reports_in_one_job(tmp_path: Path, sample: Path) -> None:
    proc, outputs, summary = _run(tmp_path, sample, "all")
    assert proc.returncode == 0, proc.stderr  # the verdict is the action's last step
    assert outputs["failed"] == "true"
    report = Path(outputs["report-dir"])
    assert sorted(p.name for p in report.iterdir()) == [
        "matrix-junit.xml",
        "matrix.json",
        "matrix.md",
    ]
    assert summary.startswith("## patchkit matrix\n")
    assert "| patch | 1.0 | 1.1 |" in summary and "`a.patch`" in summary
    doc = json.loads((report / "matrix.json").read_text())
    cells = {(r["version"], r["patch"]): r["status"] for r in doc["results"]}
    assert cells == {("1.0", "a.patch"): "applied", ("1.1", "a.patch"): "conflict"}
    assert "<testsuite" in (report / "matrix-junit.xml").read_text()


def test_versions_format_and_fail_on_are_honoured(tmp_path: Path, sample: Path) -> None:
    proc, outputs, summary = _run(tmp_path, sample, "all", versions="1.0", format="junit,html")
    assert proc.returncode == 0, proc.stderr
    assert outputs["failed"] == "false" and "| patch | 1.0 |" in summary
    assert (Path(outputs["report-dir"]) / "matrix.html").exists()
    proc, outputs, _ = _run(tmp_path, sample, "all", fail_on="")
    assert proc.returncode == 0 and outputs["failed"] == "false", proc.stderr


def test_statuses_pick_the_tracked_releases(tmp_path: Path, sample: Path) -> None:
    toml = sample / "upstream-versions.toml"
    text = toml.read_text()
    at = text.index('version = "1.1"')  # 1.1's status, the one after its version line
    toml.write_text(text[:at] + text[at:].replace('"supported"', '"eol"', 1))
    proc, outputs, _ = _run(tmp_path, sample, "plan", statuses="supported,testing")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(outputs["matrix"]) == {"include": [{"name": "1.0", "versions": "1.0"}]}


def test_plan_parts_and_merge_give_the_same_report_as_one_job(tmp_path: Path, sample: Path) -> None:
    proc, outputs, _ = _run(tmp_path, sample, "plan", group_size="1")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(outputs["matrix"])
    assert plan == {
        "include": [{"name": "1.0", "versions": "1.0"}, {"name": "1.1", "versions": "1.1"}]
    }
    parts = tmp_path / "out" / "parts"  # where the action downloads the parts' artifacts
    parts.mkdir(parents=True)
    for job in plan["include"]:
        proc, outputs, _ = _run(
            tmp_path, sample, "part", versions=job["versions"], name=job["name"]
        )
        assert proc.returncode == 0, proc.stderr
        result = Path(outputs["result"])
        assert result.name == f"result-{job['name']}.json"
        result.rename(parts / result.name)
    proc, outputs, summary = _run(tmp_path, sample, "merge")
    assert proc.returncode == 0, proc.stderr
    assert outputs["failed"] == "true" and "| patch | 1.0 | 1.1 |" in summary
    merged = json.loads((Path(outputs["report-dir"]) / "matrix.json").read_text())
    assert {(r["version"], r["status"]) for r in merged["results"]} == {
        ("1.0", "applied"),
        ("1.1", "conflict"),
    }


def test_a_broken_patch_fails_the_step_with_patchkits_one_line_error(
    tmp_path: Path, sample: Path
) -> None:
    (sample / "patches" / "a.patch").write_text(OURS.replace("@@ -2,7 +2,7 @@", "@@ -2,3 +2,3 @@"))
    proc, outputs, _ = _run(tmp_path, sample, "all")
    assert proc.returncode == 3, proc.stderr
    assert "failed" not in outputs
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("patchkit: error:")]
    assert "patches/a.patch:" in line and "Traceback" not in proc.stderr


def test_merge_without_parts_says_so(tmp_path: Path, sample: Path) -> None:
    proc, _, _ = _run(tmp_path, sample, "merge")
    assert proc.returncode == 3 and "no part results" in proc.stderr
