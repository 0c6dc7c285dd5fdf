"""The action's ``mode: watch`` (action/run.sh -> action/upstream.py), end to end.

Real parts: the loopback docker-registry behind the token proxy, images pushed with skopeo, a
tag re-pushed with other content, a real git checkout with a bare ``origin``, real imports,
forecasts, audits, reports and a real ``patchkit rebase --onto`` on the release branch. The
``gh`` and ``git push`` commands are the only things not run: the dry-run switch prints them
(and the test runs the printed ``git push`` itself), and the second run's lookups come from
its answers file.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from patchkit import Project
from tests.conftest import require_tool
from tests.helpers import registry_server as rs
from tests.helpers.projectbuilder import numbered, udiff
from tests.integrations.conftest import ROOT, git

SCRIPT = ROOT / "action" / "run.sh"
CONF = numbered(12)
PATCH = udiff(
    "etc/app.conf", CONF, CONF.replace("line 5\n", "line 5 ours\n"), "Description: ours\n\n"
)
RELEASES = {
    "2.5.0": CONF,
    "2.5.1": CONF,
    "2.5.2": "# top 1\n# top 2\n# top 3\n" + CONF,  # the patch moves: a clean rebase refreshes it
    "2.5.3": CONF.replace("line 5\n", "line 5 upstream\n"),  # the patch's own line: a conflict
}
REPUSHED = CONF.replace("line 9\n", "line 9 re-pushed\n")  # 2.5.0, pushed again
# redis off TCP, a diff with four lines of context after its change: in 2.5.2 the second of
# them changes, which git's 3-way merge takes (the forecast is clean, the branch's audit
# passes) but applying the diff as it stands does not (the report's own audit fails).
REDIS = "bind 127.0.0.1\nprotected-mode yes\nport 6379\ntcp-backlog 511\ntimeout 0\n"
REDIS += "daemonize no\nloglevel notice\n"
REDIS_252 = REDIS.replace("timeout 0", "timeout 300")
REDIS_PATCH = "Description: redis on a unix socket\n\n" + "".join(
    difflib.unified_diff(
        REDIS.splitlines(True),
        REDIS.replace("port 6379\n", "port 0\nunixsocket /run/redis.sock\n").splitlines(True),
        "a/etc/redis/redis.conf",
        "b/etc/redis/redis.conf",
        n=4,
    )
)
TOML = """\
# the maintainer's project (a test)
schema = 1
base = "2.5.1"

[upstream]
name = "app"
image = "{image}"

[upstream.watch]
tags = '^2\\.5\\.\\d+$'
status = "testing"

[[version]]
version = "2.5.0"
status = "supported"

[[version]]
version = "2.5.1"
status = "supported"
"""
PR_TITLE = "app 2.5.2: track the release, rebase the series onto it"
ISSUE_TITLE = "app 2.5.3: a person is needed for the upgrade"
REPUSH_TITLE = "app 2.5.0 was re-pushed upstream"
LOOKUP_PR = (
    "gh pr list --head patchkit/upstream-2.5.2 --state all "
    "--json number,state,title,body,url --limit 20"
)
LOOKUP_ISSUES = (
    "gh issue list --label patchkit-upstream --state all "
    "--json number,state,title,body,url --limit 500"
)
LOOKUP_LABELS = "gh label list --json name --limit 500"


def image(tag: str, conf: str) -> rs.Image:
    redis = REDIS_252 if tag == "2.5.2" else REDIS
    files = {"etc/app.conf": conf, "etc/tag": tag, "etc/redis/redis.conf": redis}
    return rs.build_image(
        [{"etc/os-release": b"ID=test\n"}, {k: v.encode() for k, v in files.items()}]
    )


def push(registry: rs.Registry, repo: str, tag: str, conf: str, tmp: Path) -> str:
    layout = tmp / "layouts" / f"{tag}-{len(conf)}"
    img = image(tag, conf)
    rs.write_oci_layout(layout, img, "x")
    rs.skopeo_copy(f"oci:{layout}:x", f"docker://{registry.address}/{repo}:{tag}", tmp)
    return img.digest


@dataclass
class Scene:
    checkout: Path  # the maintainer's repository, as actions/checkout leaves it
    project: Path  # its patchkit project: checkout/image
    out: Path
    recorded: str  # 2.5.0's digest before the re-push
    current: str  # and after


@pytest.fixture
def scene(registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path) -> Scene:
    require_tool("skopeo")
    digests = {tag: push(registry, repo, tag, conf, tmp_path) for tag, conf in RELEASES.items()}
    push(registry, repo, "latest", CONF, tmp_path)  # not a release: the rules leave it out
    checkout = tmp_path / "checkout"
    project = checkout / "image"
    (project / "patches").mkdir(parents=True)
    (project / "upstream-versions.toml").write_text(TOML.format(image=f"{proxy.address}/{repo}"))
    (project / "patches" / "series").write_text("app.patch\nredis.patch\n")
    (project / "patches" / "app.patch").write_text(PATCH)
    (project / "patches" / "redis.patch").write_text(REDIS_PATCH)
    (checkout / ".gitignore").write_text(".patchkit/\n")
    (checkout / "README.md").write_text("the patched image\n")
    for version in ("2.5.0", "2.5.1"):  # what an earlier run (or a person) imported
        Project.open(project).import_release(version)
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "origin.git")
    git(checkout, "init", "-q", "-b", "main")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "the project")
    git(checkout, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(checkout, "push", "-q", "origin", "main")
    current = push(registry, repo, "2.5.0", REPUSHED, tmp_path)
    return Scene(
        checkout=checkout,
        project=project,
        out=tmp_path / "out",
        recorded=digests["2.5.0"],
        current=current,
    )


def run_watch(
    scene: Scene, tmp: Path, **settings: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    outputs = tmp / "github-output"
    outputs.write_text("")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
        "PATCHKIT_MODE": "watch",
        "PATCHKIT_PROJECT": "image",
        "PATCHKIT_OUT": str(scene.out),
        **settings,
    }
    proc = subprocess.run(
        [require_tool("bash"), str(SCRIPT)],
        env=env,
        cwd=scene.checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return proc, values


def commands(values: dict[str, str]) -> list[str]:
    lines = Path(values["commands"]).read_text().splitlines()
    return [line for line in lines if not line.startswith("#")]


def test_a_run_opens_a_pull_request_an_issue_and_a_repush_issue_then_updates_them(
    scene: Scene, tmp_path: Path
) -> None:
    proc, values = run_watch(scene, tmp_path, PATCHKIT_GH_DRY_RUN="1")
    assert proc.returncode == 0, proc.stderr
    assert values["new"] == "2.5.2 2.5.3" and values["clean"] == "2.5.2"
    assert values["repushed"] == "2.5.0" and values["vanished"] == ""
    results = {r["version"]: r for r in json.loads(values["results"])}
    assert results["2.5.2"]["action"] == "pull-request" and results["2.5.2"]["clean"]
    assert results["2.5.3"] == {
        "version": "2.5.3",
        "clean": False,
        "forecast_clean": False,
        "audit": "passed",
        "action": "issue",
        "branch": None,
        "report": str(scene.out / "upstream" / "2.5.3" / "report.md"),
    }
    up = scene.out / "upstream"
    assert values["reports"] == f"{up}/2.5.2/report.md {up}/2.5.3/report.md"
    for version in ("2.5.2", "2.5.3"):
        assert {p.name for p in (up / version).iterdir()} == {
            "body.md",
            "report.md",
            "report.json",
            "report.html",
        }

    # -- the release branch: HEAD + the release, the series rebased onto it
    commit = git(scene.checkout, "rev-parse", "patchkit/upstream-2.5.2").strip()
    main = git(scene.checkout, "rev-parse", "main").strip()
    assert git(scene.checkout, "rev-parse", f"{commit}^").strip() == main
    assert git(scene.checkout, "diff", "--name-only", main, commit).split() == [
        "image/patches/app.patch",
        "image/patches/redis.patch",  # merged: refreshed onto 2.5.2's context
        "image/upstream-versions.toml",
    ]
    toml = git(scene.checkout, "show", f"{commit}:image/upstream-versions.toml")
    assert 'base = "2.5.2"' in toml and '"2.5.3"' not in toml
    entry = toml.split('version = "2.5.2"', 1)[1]
    tracked = Project.open(scene.project).versions.release("2.5.2")
    assert entry.split("\n")[1:4] == [
        'status = "testing"',
        f'tag-digest = "{tracked.tag_digest}"',
        f'digest = "{tracked.digest}"',
    ]
    patch = git(scene.checkout, "show", f"{commit}:image/patches/app.patch")
    assert patch.startswith("Description: ours\n") and "@@ -5,7 +5,7 @@" in patch
    assert "-line 5\n+line 5 ours\n" in patch
    message = git(scene.checkout, "log", "-1", "--format=%B", commit)
    assert message.startswith("patchkit: app 2.5.2\n") and "Patchkit-Upstream: 2.5.2" in message

    # -- the exact commands a real run would run, in order
    pr_body, issue_body = up / "2.5.2" / "body.md", up / "2.5.3" / "body.md"
    repush_body = up / "repushed-2.5.0" / "body.md"
    assert commands(values) == [
        LOOKUP_PR,
        f"git push --force-with-lease=refs/heads/patchkit/upstream-2.5.2: origin "
        f"{commit}:refs/heads/patchkit/upstream-2.5.2",
        shlex.join(
            [
                "gh",
                "pr",
                "create",
                "--base",
                "main",
                "--head",
                "patchkit/upstream-2.5.2",
                "--title",
                PR_TITLE,
                "--body-file",
                str(pr_body),
            ]
        ),
        LOOKUP_ISSUES,
        LOOKUP_LABELS,
        "gh label create patchkit-upstream --color 5319e7 "
        "--description 'patchkit: an upstream release that needs a person'",
        shlex.join(
            [
                "gh",
                "issue",
                "create",
                "--title",
                ISSUE_TITLE,
                "--body-file",
                str(issue_body),
                "--label",
                "patchkit-upstream",
            ]
        ),
        shlex.join(
            [
                "gh",
                "issue",
                "create",
                "--title",
                REPUSH_TITLE,
                "--body-file",
                str(repush_body),
                "--label",
                "patchkit-upstream",
            ]
        ),
    ]
    assert f"dry run: {LOOKUP_PR}  (nothing found)" in proc.stderr

    # -- the bodies: the report (with a line of the workflow's own)
    report = (up / "2.5.2" / "report.md").read_text()
    body = pr_body.read_text()
    assert body.startswith("<!-- patchkit-report app 2.5.2 -->\n") and body.startswith(report)
    footer = body[len(report) :]
    assert "base 2.5.1 → 2.5.2" in footer and "the audit of the result passed" in footer
    # the report audited the series as it stands (redis.patch left out: redis on TCP)
    assert "- **Audit of the patched release**: FAILED" in report
    assert "the report's audit (failed) applies the series as it stands on 2.5.2" in footer
    assert "timeout 300" in git(scene.checkout, "show", f"{commit}:image/patches/redis.patch")
    body = issue_body.read_text()
    assert body.startswith((up / "2.5.3" / "report.md").read_text())
    resolve, release = body.index("### What a person must resolve"), body.index("### The release")
    assert resolve < release  # the conflicts first
    conflict = body[resolve:release]
    assert "app.patch" in conflict and "line 5 upstream" in conflict and "line 5 ours" in conflict
    assert "a rebase would stop on app.patch" in body
    body = repush_body.read_text()
    assert body.startswith("<!-- patchkit-repushed app 2.5.0 -->\n")
    assert f"| recorded | `{scene.recorded}` |" in body
    assert f"| current | `{scene.current}` |" in body
    assert "-line 9\n+line 9 re-pushed\n" in body
    # the tracked release was not touched: its recorded digest stays, the store's tree too
    assert Project.open(scene.project).versions.release("2.5.0").tag_digest == scene.recorded
    assert (
        "line 9 re-pushed" not in Project.open(scene.project).show("2.5.0", "etc/app.conf").decode()
    )

    summary = (tmp_path / "summary.md").read_text()
    assert "| 2.5.2 | clean | passed | pull-request `patchkit/upstream-2.5.2` |" in summary
    assert "| 2.5.3 | needs a person | passed | issue |" in summary

    # The printed push is a real command: run it, as the real run would have.
    push_line = commands(values)[1]
    subprocess.run(shlex.split(push_line), cwd=scene.checkout, check=True, capture_output=True)
    assert (
        git(scene.checkout, "ls-remote", "origin", "patchkit/upstream-2.5.2").split()[0] == commit
    )

    # -- the next day's run: a fresh checkout (main moved on), the PR and issues exist
    git(scene.checkout, "checkout", "-q", "--", "image/upstream-versions.toml")
    (scene.checkout / "README.md").write_text("the patched image, and more\n")
    git(scene.checkout, "commit", "-q", "-am", "main moves on")
    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps(
            {
                LOOKUP_PR: [
                    {"number": 7, "state": "OPEN", "title": PR_TITLE, "body": "old", "url": "u"}
                ],
                LOOKUP_ISSUES: [
                    {"number": 5, "state": "CLOSED", "title": "x", "body": "unrelated"},
                    {  # an earlier run's: 2.5.2 needed a person then, it is clean now
                        "number": 6,
                        "state": "OPEN",
                        "title": "app 2.5.2: a person is needed for the upgrade",
                        "body": "<!-- patchkit-report app 2.5.2 -->\nold",
                        "url": "u",
                    },
                    {
                        "number": 8,
                        "state": "OPEN",
                        "title": ISSUE_TITLE,
                        "body": "<!-- patchkit-report app 2.5.3 -->\nold",
                        "url": "u",
                    },
                    {
                        "number": 9,
                        "state": "OPEN",
                        "title": REPUSH_TITLE,
                        "body": repush_body.read_text(),
                        "url": "u",
                    },
                ],
                LOOKUP_LABELS: [{"name": "patchkit-upstream"}],
            }
        )
    )
    proc, values = run_watch(
        scene, tmp_path, PATCHKIT_GH_DRY_RUN="true", PATCHKIT_GH_ANSWERS=str(answers)
    )
    assert proc.returncode == 0, proc.stderr
    again = git(scene.checkout, "rev-parse", "patchkit/upstream-2.5.2").strip()
    assert again != commit
    assert (
        git(scene.checkout, "rev-parse", f"{again}^").strip()
        == git(scene.checkout, "rev-parse", "main").strip()
    )
    assert commands(values) == [
        LOOKUP_PR,
        f"git push --force-with-lease=refs/heads/patchkit/upstream-2.5.2:{commit} origin "
        f"{again}:refs/heads/patchkit/upstream-2.5.2",
        shlex.join(["gh", "pr", "edit", "7", "--title", PR_TITLE, "--body-file", str(pr_body)]),
        LOOKUP_ISSUES,
        "gh issue close 6 --comment "
        "'2.5.2 is clean now: the pull request from `patchkit/upstream-2.5.2` tracks it.'",
        shlex.join(
            ["gh", "issue", "edit", "8", "--title", ISSUE_TITLE, "--body-file", str(issue_body)]
        ),
        # 9 already says all this: nothing to update
    ]
    assert "issue #9 says this already" in proc.stderr


def test_a_persons_commit_a_closed_pull_request_and_a_failing_gh(
    scene: Scene, tmp_path: Path
) -> None:
    # Without the switch, gh is run: here it is not installed (PATH: the venv and git only).
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("git", "dirname"):  # what run.sh and patchkit run besides Python
        (tools / tool).symlink_to(require_tool(tool))
    proc, values = run_watch(scene, tmp_path, PATH=f"{Path(sys.executable).parent}:{tools}")
    assert proc.returncode == 3
    failed = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert failed == [
        f"patchkit action: error: {version}: gh is not installed here (GitHub's runners have "
        "gh and git; PATCHKIT_GH_DRY_RUN=1 prints the commands instead)"
        for version in ("2.5.2", "2.5.3", "2.5.0 (re-pushed)")
    ]
    assert values["new"] == "2.5.2 2.5.3" and "Traceback" not in proc.stderr
    assert [r["action"] for r in json.loads(values["results"])] == ["failed", "failed"]
    commit = git(scene.checkout, "rev-parse", "patchkit/upstream-2.5.2").strip()

    # A person pushes a fix onto the release branch: the workflow's next run leaves it.
    git(scene.checkout, "checkout", "-q", "--", "image/upstream-versions.toml")
    git(scene.checkout, "checkout", "-q", "patchkit/upstream-2.5.2")
    fix = scene.checkout / "image" / "patches" / "app.patch"
    fix.write_text(fix.read_text().replace("Description: ours", "Description: ours, fixed"))
    git(scene.checkout, "commit", "-q", "-am", "A person's fix")
    git(scene.checkout, "push", "-q", "origin", "HEAD:refs/heads/patchkit/upstream-2.5.2")
    git(scene.checkout, "checkout", "-q", "main")
    (scene.checkout / "README.md").write_text("main moves on\n")
    git(scene.checkout, "commit", "-q", "-am", "main moves on")
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({LOOKUP_PR: [{"number": 7, "state": "OPEN", "body": ""}]}))
    proc, values = run_watch(
        scene, tmp_path, PATCHKIT_GH_DRY_RUN="1", PATCHKIT_GH_ANSWERS=str(answers)
    )
    assert proc.returncode == 0, proc.stderr
    assert "has commits that are not the workflow's" in proc.stderr
    assert commands(values)[:2] == [
        LOOKUP_PR,
        shlex.join(
            [
                "gh",
                "pr",
                "edit",
                "7",
                "--title",
                PR_TITLE,
                "--body-file",
                str(scene.out / "upstream" / "2.5.2" / "body.md"),
            ]
        ),
    ]  # no push: the pull request's text is still brought up to date
    assert git(scene.checkout, "rev-parse", "patchkit/upstream-2.5.2").strip() != commit

    # A person closed the pull request: left closed, nothing pushed or opened for it.
    git(scene.checkout, "checkout", "-q", "--", "image/upstream-versions.toml")
    answers.write_text(json.dumps({LOOKUP_PR: [{"number": 7, "state": "CLOSED", "body": ""}]}))
    proc, values = run_watch(
        scene, tmp_path, PATCHKIT_GH_DRY_RUN="1", PATCHKIT_GH_ANSWERS=str(answers)
    )
    assert proc.returncode == 0, proc.stderr
    assert "pull request #7 was closed by a person: left alone" in proc.stderr
    assert commands(values)[:2] == [LOOKUP_PR, LOOKUP_ISSUES]  # then 2.5.3's issue
    assert json.loads(values["results"])[0]["action"] == "left-alone"


def test_a_dirty_checkout_and_a_bad_switch_are_one_line(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "image" / "patches").mkdir(parents=True)
    (checkout / "image" / "upstream-versions.toml").write_text(TOML.format(image="127.0.0.1:1/x"))
    (checkout / "image" / "patches" / "series").write_text("")
    git(checkout, "init", "-q", "-b", "main")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "the project")
    scene = Scene(
        checkout=checkout, project=checkout / "image", out=tmp_path / "out", recorded="", current=""
    )
    proc, _ = run_watch(scene, tmp_path, PATCHKIT_GH_DRY_RUN="maybe")
    assert proc.returncode == 2
    assert proc.stderr == (
        "patchkit action: error: PATCHKIT_GH_DRY_RUN='maybe': use 1/true or 0/false\n"
    )
    (checkout / "image" / "patches" / "series").write_text("new.patch\n")
    proc, _ = run_watch(scene, tmp_path, PATCHKIT_GH_DRY_RUN="1")
    assert proc.returncode == 3
    [line] = proc.stderr.splitlines()
    assert line.startswith("patchkit action: error: image: upstream-versions.toml or patches/")
