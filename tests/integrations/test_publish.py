"""Publishing for real: action/run.sh in publish mode, buildah building each context (buildah
stands in for the runner's `docker buildx`, which needs a daemon), `patchkit assemble`, skopeo
pushing by digest and then moving the tags, all against the loopback registry; the result read
back with `skopeo inspect` and imported again by patchkit.

Upstream here is made by the test: release 1.0 an index of two platforms (linux/arm64's
`etc/arch` differs), 1.1 a file the series no longer applies to, 1.2 a redis listening on
loopback TCP (the patched audit fails), 2.0 one platform. buildah and podman run one at a time
on this machine: every call holds /tmp/patchkit-podman.lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from patchkit import Project
from patchkit.ops import labels as L
from tests.conftest import PINNED_GIT_ENV, in_ci, require_tool
from tests.helpers import registry_server as rs
from tests.helpers.imagebuilder import Layer, build_oci_layout
from tests.integrations.conftest import ROOT

SCRIPT = ROOT / "action" / "run.sh"
LOCK = "/tmp/patchkit-podman.lock"
CONF = b"listen 127.0.0.1\nport 6379\n"
PATCH = """Description: no TCP for the app

--- a/etc/app.conf
+++ b/etc/app.conf
@@ -1,2 +1,2 @@
 listen 127.0.0.1
-port 6379
+port 0
"""
REMOTE = "https://git.example.org/acme/app-isolated.git"


def layer(arch: str, conf: bytes = CONF, extra: dict[str, bytes] | None = None) -> Layer:
    out = Layer().dir("etc").file("etc/app.conf", conf).file("etc/arch", arch.encode() + b"\n")
    for path, data in (extra or {}).items():
        out = out.dir(str(Path(path).parent)).file(path, data)
    return out


def needs_buildah() -> None:
    for tool in ("buildah", "skopeo", "flock"):
        require_tool(tool)
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("publishing with buildah needs root here (vfs storage, chroot isolation)")
        pytest.skip("buildah needs root here")


def tool_env(home: Path) -> dict[str, str]:
    """The environment skopeo and buildah run in: a writable home of their own."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return env


def skopeo(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, env=tool_env(home), timeout=120
    )
    assert proc.returncode == 0 or not check, proc.stderr
    return proc


def inspect(home: Path, ref: str, arch: str | None = None) -> dict[str, Any]:
    args = ["inspect", "--tls-verify=false"] + (["--override-arch", arch] if arch else [])
    doc: dict[str, Any] = json.loads(skopeo(home, *args, f"docker://{ref}").stdout)
    return doc


def raw(home: Path, ref: str) -> tuple[str, dict[str, Any]]:
    """(digest, document) of the manifest or index ``ref`` names."""
    data = skopeo(home, "inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest(), json.loads(data)


def make_project(root: Path, registry: str) -> Path:
    project = root / "project"
    (project / "patches").mkdir(parents=True)
    (project / "upstream-versions.toml").write_text(
        f'schema = 1\nbase = "1.0"\n[upstream]\nname = "app"\nimage = "{registry}/up/app"\n'
        '[[version]]\nversion = "1.0"\nstatus = "supported"\n'
        'platforms = ["linux/amd64", "linux/arm64"]\n'
        '[[version]]\nversion = "1.1"\nstatus = "supported"\n'
        '[[version]]\nversion = "1.2"\nstatus = "supported"\n'
        '[[version]]\nversion = "2.0"\nstatus = "supported"\n'
        '[[version]]\nversion = "2.1"\nstatus = "eol"\n'
    )
    (project / "patches" / "app.patch").write_text(PATCH)
    (project / "patches" / "series").write_text("app.patch\n")
    p = Project.open(project)
    for version in ("1.0", "1.1", "1.2", "2.0", "2.1"):  # the digests, recorded and committed
        p.import_release(version)
    git = {
        "cwd": project,
        "check": True,
        "capture_output": True,
        "env": {**os.environ, **PINNED_GIT_ENV},
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], **git)  # type: ignore[call-overload]
    (project / ".gitignore").write_text(".patchkit/\n")
    subprocess.run(["git", "add", "-A"], **git)  # type: ignore[call-overload]
    subprocess.run(["git", "commit", "-qm", "project"], **git)  # type: ignore[call-overload]
    subprocess.run(["git", "remote", "add", "origin", REMOTE], **git)  # type: ignore[call-overload]
    return project


def push_upstream(root: Path, home: Path, registry: str) -> dict[str, str]:
    """Upstream's tags in the registry; returns tag -> the digest it points to."""
    images: dict[str, list[Layer] | dict[str, list[Layer]]] = {
        "1.0": {"linux/amd64": [layer("amd64")], "linux/arm64": [layer("arm64")]},
        "1.1": [layer("amd64", b"listen 127.0.0.1\nport 6380\n")],
        "1.2": [layer("amd64", extra={"etc/redis/redis.conf": b"bind 127.0.0.1\nport 6379\n"})],
        "2.0": [layer("amd64")],
        "2.1": [layer("amd64")],
    }
    tags = {}
    for tag, layers in images.items():
        built = build_oci_layout(root / f"up-{tag}", layers, tag=tag, nested=True)
        skopeo(home, "copy", "-q", "--all", "--preserve-digests", "--dest-tls-verify=false",
               built.source, f"docker://{registry}/up/app:{tag}")  # fmt: skip
        tags[tag] = raw(home, f"{registry}/up/app:{tag}")[0]
    return tags


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    outputs: dict[str, str]
    summary: str


def publish(root: Path, project: Path, image: str, name: str, **settings: str) -> Run:
    outputs, summary = root / f"output-{name}", root / f"summary-{name}.md"
    outputs.write_text("")
    env = {
        **tool_env(root / "home"),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "PATCHKIT_MODE": "publish",
        "PATCHKIT_PROJECT": str(project),
        "PATCHKIT_OUT": str(root / f"out-{name}"),
        "PATCHKIT_IMAGE": image,
        "PATCHKIT_BUILDER": "buildah",
        "PATCHKIT_TLS_VERIFY": "false",
        "PATCHKIT_BUILDAH_ROOT": str(root / "buildah"),
        **{f"PATCHKIT_{k.upper()}": v for k, v in settings.items()},
    }
    for key in ("GITHUB_SHA", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL"):
        env.pop(key, None)
    proc = subprocess.run(
        ["flock", LOCK, "bash", str(SCRIPT)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return Run(proc, values, summary.read_text() if summary.exists() else "")


@dataclass
class Published:
    root: Path
    home: Path
    registry: str
    image: str
    project: Path
    upstream: dict[str, str]
    first: Run
    second: Run


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, registry: Any) -> Iterator[Published]:
    needs_buildah()
    root = tmp_path_factory.mktemp("publish")
    home = root / "home"
    upstream = push_upstream(root, home, registry.address)
    project = make_project(root, registry.address)
    image = f"{registry.address}/pub/app"
    first = publish(root, project, image, "first")
    second = publish(root, project, image, "second")  # the same project again
    yield Published(root, home, registry.address, image, project, upstream, first, second)
    subprocess.run(["rm", "-rf", str(root / "buildah")], check=False)


def published_digests(run: Run) -> dict[str, str]:
    return {p["version"]: p["digest"] for p in json.loads(run.outputs["published"])}


def test_each_clean_release_is_pushed_and_tagged(published: Published) -> None:
    run = published.first
    assert run.proc.returncode == 0, run.proc.stderr
    pushed = json.loads(run.outputs["published"])
    assert [(p["version"], p["tags"]) for p in pushed] == [
        ("1.0", ["1.0"]),
        ("2.0", ["2.0", "latest"]),
    ]
    for p in pushed:
        for tag in p["tags"]:
            assert raw(published.home, f"{published.image}:{tag}")[0] == p["digest"]
    assert run.outputs["digests"] == " ".join(f"{published.image}@{p['digest']}" for p in pushed)
    assert "## patchkit publish:" in run.summary and "(buildah)" in run.summary


def test_nothing_is_pushed_for_a_release_that_is_not_clean(published: Published) -> None:
    skipped = {s["version"]: s["reason"] for s in json.loads(published.first.outputs["skipped"])}
    assert skipped == {
        "1.1": "series does not apply cleanly (patchkit check 1.1)",
        "1.2": "patched audit fails (patchkit audit 1.2)",
    }  # 2.1 is eol: not asked for
    for tag in ("1.1", "1.2", "2.1"):
        proc = skopeo(published.home, "inspect", "--tls-verify=false", "--raw",
                      f"docker://{published.image}:{tag}", check=False)  # fmt: skip
        assert proc.returncode != 0 and "manifest unknown" in proc.stderr.lower(), proc.stderr


def test_every_label_and_the_base_digest(published: Published) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=published.project, capture_output=True, text=True
    ).stdout.strip()
    fingerprint = L.series_fingerprint_of(Project.open(published.project))
    for version, arch in (("1.0", "amd64"), ("1.0", "arm64"), ("2.0", None)):
        doc = inspect(published.home, f"{published.image}:{version}", arch)
        assert doc["Architecture"] == (arch or "amd64")
        labels = {k: v for k, v in doc["Labels"].items() if k != "io.buildah.version"}
        assert labels == {
            L.BASE_NAME: f"{published.registry}/up/app:{version}",
            # what the upstream tag pointed to: the index for 1.0, for both platforms
            L.BASE_DIGEST: published.upstream[version],
            L.VERSION: version,
            L.SOURCE: "https://git.example.org/acme/app-isolated",
            L.REVISION: head,
            L.PATCHKIT_VERSION: __import__("patchkit").__version__,
            L.SERIES: fingerprint,
        }
        assert doc["Created"].startswith("1970-01-01")  # reproducible: no clock in the image


def test_the_two_platform_index_is_reassembled_from_the_patched_builds(
    published: Published, tmp_path: Path
) -> None:
    digest, index = raw(published.home, f"{published.image}:1.0")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    # What a user pulls, imported by patchkit again, platform by platform: upstream's tree
    # with the series applied.
    toml = (
        'schema = 1\nbase = "1.0"\n[upstream]\nname = "check"\n'
        f'[[version]]\nversion = "1.0"\nsource = "docker://{published.image}@{digest}"\n'
        'platforms = ["linux/amd64", "linux/arm64"]\n'
    )
    again = tmp_path / "again"
    (again / "patches").mkdir(parents=True)
    (again / "upstream-versions.toml").write_text(toml)
    p = Project.open(again)
    p.import_release("1.0")
    assert p.show("1.0", "etc/app.conf") == b"listen 127.0.0.1\nport 0\n"
    assert p.show("1.0", "etc/arch") == b"amd64\n"
    info = p.store.release("1.0@linux-arm64")
    assert info is not None
    with p.store.blob_reader() as reader:
        assert reader.read(f"{info.tree}:etc/arch") == b"arm64\n"
        assert reader.read(f"{info.tree}:etc/app.conf") == b"listen 127.0.0.1\nport 0\n"


def test_publishing_the_same_project_again_gives_the_same_digests(published: Published) -> None:
    assert published.second.proc.returncode == 0, published.second.proc.stderr
    assert published_digests(published.second) == published_digests(published.first)


def test_a_failed_push_leaves_the_tags_where_they_were(
    published: Published, tmp_path: Path
) -> None:
    own = rs.start_registry(tmp_path / "registry")
    try:
        home = tmp_path / "home"
        upstream = push_upstream(tmp_path, home, own.address)
        assert upstream
        project = make_project(tmp_path, own.address)
        image = f"{own.address}/pub/app"
        run = publish(tmp_path, project, image, "ok", versions="2.0")
        assert run.proc.returncode == 0, run.proc.stderr
        before = raw(home, f"{image}:2.0")[0]
        assert raw(home, f"{image}:latest")[0] == before
        # a new series (a new digest), and a registry that refuses every write from now on
        (project / "patches" / "app.patch").write_text(PATCH.replace("port 0", "port 1"))
        own.stop()
        config = tmp_path / "registry" / "config.yml"
        config.write_text(
            config.read_text().replace(
                "  delete:\n    enabled: true\n",
                "  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: true\n",
            )
        )
        log = (tmp_path / "registry" / "readonly.log").open("wb")
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
        own = rs.Registry(address=own.address, root=own.root, proc=proc)
        rs.wait_ready(own.address, proc=proc)
        run = publish(tmp_path, project, image, "refused", versions="2.0")
        assert run.proc.returncode != 0
        assert "published" not in run.outputs
        assert raw(home, f"{image}:2.0")[0] == before  # the tags never moved
        assert raw(home, f"{image}:latest")[0] == before
    finally:
        own.stop()
