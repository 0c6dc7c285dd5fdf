"""The live proof's image by reference (bench/isolation/byref.py, run.py --image/--push): a
small image built by buildah, pushed by digest to the loopback registry and pulled back by
podman, in storage of the test's own (the proof itself runs in .ci/run)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.imagebuilder import Layer, build_oci_layout
from tests.integrations.conftest import ROOT
from tests.integrations.test_publish import LOCK, needs_buildah, tool_env

sys.path.insert(0, str(ROOT / "bench" / "isolation"))
import byref  # type: ignore[import-not-found]

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        (f"127.0.0.1:5000/iso/patched@{DIGEST}", True),
        (f"ghcr.io/acme/poste-isolated@{DIGEST}", True),
        ("ghcr.io/acme/poste-isolated:2.5.24", False),  # a tag can move
        (f"ghcr.io/acme/poste-isolated:2.5.24@sha256:{'a' * 63}", False),
    ],
)
def test_only_a_digest_reference_is_taken(ref: str, ok: bool) -> None:
    if ok:
        assert byref.parse_ref(ref)[1] == DIGEST
    else:
        with pytest.raises(ValueError, match="expected REGISTRY/NAME@sha256"):
            byref.parse_ref(ref)


def test_plain_http_only_for_loopback() -> None:
    assert byref.tls_verify("127.0.0.1:5000/x") == "--tls-verify=false"
    assert byref.tls_verify("localhost:5000/x") == "--tls-verify=false"
    assert byref.tls_verify("[::1]:5000/x") == "--tls-verify=false"
    assert byref.tls_verify("ghcr.io/acme/x") == "--tls-verify=true"


def test_run_py_refuses_a_tag_and_the_tree_engine(capsys: pytest.CaptureFixture[str]) -> None:
    run = [sys.executable, str(ROOT / "bench" / "isolation" / "run.py")]
    proc = subprocess.run(
        [*run, "--engine", "podman", "--image", "x:1"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "a digest" in proc.stderr
    proc = subprocess.run([*run, "--image", f"x@{DIGEST}"], capture_output=True, text=True)
    assert proc.returncode == 2 and "need --engine podman" in proc.stderr


def test_pushed_by_digest_and_pulled_back_by_digest(tmp_path: Path, registry: Any) -> None:
    needs_buildah()
    env = tool_env(tmp_path / "home")
    run = Path(tempfile.mkdtemp(prefix="pk-byref-"))  # podman: a runroot under 50 characters
    storage = ["--root", str(tmp_path / "storage"), "--runroot", str(run),
               "--storage-driver", "vfs"]  # fmt: skip
    buildah, podman = ["buildah", *storage], ["podman", *storage]
    layout = build_oci_layout(tmp_path / "img", [Layer().dir("etc").file("etc/x", b"x\n")], tag="1")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Containerfile").write_text(
        f"FROM oci:{layout.path}:1\nLABEL proof=byref\n"
    )

    def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        check = kw.pop("check", True)
        proc = subprocess.run(["flock", LOCK, *cmd], capture_output=True, text=True, env=env, **kw)
        assert proc.returncode == 0 or not check, proc.stderr
        return proc

    try:
        sh([*buildah, "bud", "--isolation", "chroot", "-q", "-t", "localhost/byref:patched",
            str(tmp_path / "ctx")], timeout=600)  # fmt: skip
        logs: list[str] = []
        ref = byref.push_by_digest(
            sh, buildah, "localhost/byref:patched", f"{registry.address}/byref/patched",
            tmp_path, logs.append,
        )  # fmt: skip
        _, digest = byref.parse_ref(ref)
        sh([*podman, "rmi", "-f", "localhost/byref:patched"])
        got = byref.pull_by_digest(sh, podman, ref, "localhost/byref:pulled", logs.append)
        assert got["digest"] == got["requested_digest"] == digest and got["pulled"]
        label = sh([*podman, "image", "inspect", "--format", "{{.Labels.proof}}",
                    "localhost/byref:pulled"]).stdout.strip()  # fmt: skip
        assert label == "byref"
        # what the registry holds under that digest is what was pulled
        raw = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
            capture_output=True, env=env, check=True,
        ).stdout  # fmt: skip
        assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == digest
    finally:
        subprocess.run(["rm", "-rf", str(tmp_path / "storage"), str(run)], check=False)
