"""The patched image by reference: what CI pushed is what the live proof runs.

``--push REPO``: the patched image buildah built is pushed to REPO by digest (through an OCI
layout, so the digest is the one the registry keeps: skopeo ``--preserve-digests``), the local
copy is removed, and the proof pulls ``REPO@DIGEST`` back. ``--image REF@DIGEST``: nothing is
built for the patched variant; podman pulls REF@DIGEST. Either way the result records the
reference and the digest podman resolved it to (``image_digest``). A registry on a loopback
address is spoken to over plain HTTP (the loopback test registry), any other over TLS.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIGEST_REF = re.compile(r"^(?P<repo>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")

Run = Callable[..., subprocess.CompletedProcess[str]]


def parse_ref(ref: str) -> tuple[str, str]:
    """``REPO@sha256:...`` -> (repo, digest); ValueError for anything else (a tag can move)."""
    m = DIGEST_REF.match(ref)
    if m is None:
        raise ValueError(f"--image {ref!r}: expected REGISTRY/NAME@sha256:<64 hex> (a digest)")
    return m.group("repo"), m.group("digest")


def tls_verify(repo: str) -> str:
    """``--tls-verify=false`` for a registry on a loopback address, else true."""
    host = repo.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return f"--tls-verify={'false' if loopback else 'true'}"


def push_by_digest(
    sh: Run, buildah: list[str], name: str, repo: str, work: Path, log: Callable[[str], None]
) -> str:
    """Push the local image ``name`` to ``repo`` by digest; returns ``repo@digest``."""
    layout = work / "pushed"
    digestfile = work / "pushed.digest"
    sh([*buildah, "push", "-q", "--format", "oci", "--digestfile", str(digestfile), name,
        f"oci:{layout}:patched"], timeout=1200)  # fmt: skip
    digest = digestfile.read_text().strip()
    flag = tls_verify(repo).replace("--tls-verify", "--dest-tls-verify")
    sh(["skopeo", "copy", "-q", "--preserve-digests", flag, f"oci:{layout}:patched",
        f"docker://{repo}@{digest}"], timeout=1200)  # fmt: skip
    log(f"pushed the patched image as {repo}@{digest}")
    return f"{repo}@{digest}"


def pull_by_digest(
    sh: Run, podman: list[str], ref: str, local: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """``podman pull REF@DIGEST``, tagged ``local`` for the proof; what was pulled."""
    repo, digest = parse_ref(ref)
    sh([*podman, "pull", "-q", tls_verify(repo), ref], timeout=1200)
    sh([*podman, "tag", ref, local])
    inspect = [*podman, "image", "inspect", "--format"]
    got = sh([*inspect, "{{.Digest}}", local]).stdout.strip()
    image_id = sh([*inspect, "{{.Id}}", local]).stdout.strip()
    size = sh([*inspect, "{{.Size}}", local]).stdout.strip()
    log(f"pulled {ref} (podman resolved it to {got})")
    return {
        "name": local,
        "ref": ref,
        "requested_digest": digest,
        "digest": got,
        "id": f"sha256:{image_id}",
        "bytes": int(size or 0),
        "pulled": True,
    }
