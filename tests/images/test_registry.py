"""docker:// sources against a real Debian docker-registry on loopback (no mocks of the registry)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchkit.errors import DigestMismatchError, PatchkitError, RegistryError, SourceError
from patchkit.images.base import ImagePlan
from patchkit.images.registry import (
    InvalidReferenceError,
    RegistryRef,
    RetryPolicy,
    open_registry_image,
    parse_reference,
)
from patchkit.images.registry.auth import parse_challenge, token_from_reply, token_url
from tests.helpers import registry_server as rs

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=10)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHKIT_OFFLINE", "1")
    monkeypatch.delenv("PATCHKIT_REGISTRY_MIRROR", raising=False)


@pytest.fixture
def blob_host(registry: rs.Registry) -> Iterator[rs.BlobHost]:
    yield from rs.start_blob_host(registry.address)


def simple_image(tag_text: str = "one") -> rs.Image:
    return rs.build_image(
        [
            {"etc/os-release": b"ID=test\n", "bin/sh": b"#!fake\n"},
            {"etc/app.conf": f"value={tag_text}\n".encode()},
        ]
    )


def read_layers(plan: ImagePlan) -> list[bytes]:
    out = []
    for layer in plan.layers:
        with layer.open() as stream:
            out.append(stream.read())
    return out


# --- parse_reference ---------------------------------------------------------------------------

HUB = "registry-1.docker.io"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("docker://ubuntu", HUB, "library/ubuntu", "latest", None),
        ("ubuntu:22.04", HUB, "library/ubuntu", "22.04", None),
        ("docker://analogic/poste.io:2.5.24", HUB, "analogic/poste.io", "2.5.24", None),
        ("docker://docker.io/analogic/poste.io", HUB, "analogic/poste.io", "latest", None),
        ("docker://docker.io/redis", HUB, "library/redis", "latest", None),
        ("docker://index.docker.io/library/redis:7", HUB, "library/redis", "7", None),
        (f"docker://redis@{DIGEST}", HUB, "library/redis", None, DIGEST),
        (f"docker://redis:7@{DIGEST}", HUB, "library/redis", "7", DIGEST),
        ("docker://127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
        ("docker://localhost/a/b/c:v1", "localhost", "a/b/c", "v1", None),
        ("docker://ghcr.io/org/img:1.0-rc_2", "ghcr.io", "org/img", "1.0-rc_2", None),
        ("docker://[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
        ("docker://my-reg.example:443/a__b/c-d.e:T", "my-reg.example:443", "a__b/c-d.e", "T", None),
    ],
)
def test_parse_reference_normalises_like_docker(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse_reference(text) == RegistryRef(
        registry=registry, repository=repository, tag=tag, digest=digest
    )


@pytest.mark.parametrize(
    "text",
    [
        "docker://",
        "docker://UPPER/case",
        "docker://app@sha256:short",
        "docker://app@md5:" + "0" * 32,
        "docker://app:bad/tag",
        "docker://app:-leadingdash",
        "docker://a//b",
        "docker://../etc",
        "docker://127.0.0.1:5000/",
    ],
)
def test_parse_reference_rejects_malformed_names(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert isinstance(info.value, SourceError) and isinstance(info.value, ValueError)
    assert info.value.exit_code == 3 and "\n" not in str(info.value)


def test_reference_string_round_trips_and_shows_docker_io() -> None:
    ref = parse_reference("docker://analogic/poste.io:2.5.24")
    assert str(ref) == "docker://docker.io/analogic/poste.io:2.5.24"
    assert parse_reference(str(ref)) == ref
    assert ref.pinned(DIGEST) == f"docker://docker.io/analogic/poste.io@{DIGEST}"


# --- Bearer auth rules, without I/O ----------------------------------------------------------


def test_challenge_parsing_handles_quotes_and_case() -> None:
    scheme, params = parse_challenge(
        'Bearer Realm="http://127.0.0.1:1/token",service=reg,scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "http://127.0.0.1:1/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }


def test_token_url_keeps_the_realm_query_and_defaults_the_scope() -> None:
    url = token_url({"realm": "https://auth.example/token?x=1", "service": "s"}, "lib/app")
    assert not isinstance(url, str)
    assert url.geturl() == (
        "https://auth.example/token?x=1&scope=repository%3Alib%2Fapp%3Apull&service=s"
    )
    assert token_url({}, "app") == "Bearer challenge without a realm"
    assert token_url({"realm": "file:///etc/passwd"}, "app") == "Bearer realm is not an HTTP URL"


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (b'{"token": "t1"}', "t1"),
        (b'{"access_token": "t2"}', "t2"),
        (b'{"token": ""}', None),
        (b'{"token": 5}', None),
        (b"[]", None),
        (b"not json", None),
    ],
)
def test_token_reply(body: bytes, token: str | None) -> None:
    assert token_from_reply(body) == token


# --- pulls from the real registry --------------------------------------------------------------


def test_pull_by_tag_streams_verified_layers_with_diff_ids(
    registry: rs.Registry, repo: str
) -> None:
    image = simple_image()
    digest = rs.push_image(registry.address, repo, "1.0", image)
    with open_registry_image(f"docker://{registry.address}/{repo}:1.0", retry=FAST) as plan:
        assert plan.digest == digest
        assert plan.source == f"docker://{registry.address}/{repo}@{digest}"
        assert plan.config_digest == rs.sha256(image.config)
        assert plan.platform == "linux/amd64"
        assert [layer.digest for layer in plan.layers] == [rs.sha256(b) for b in image.layers]
        assert [layer.size for layer in plan.layers] == [len(b) for b in image.layers]
        assert {layer.media_type for layer in plan.layers} == {rs.OCI_LAYER_GZ}
        assert read_layers(plan) == image.layers
        for layer, blob in zip(plan.layers, image.layers, strict=True):
            assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()


def test_pull_by_digest_needs_no_tag(registry: rs.Registry, repo: str) -> None:
    image = simple_image("digest")
    digest = rs.push_image(registry.address, repo, "t", image)
    with open_registry_image(f"docker://{registry.address}/{repo}@{digest}", retry=FAST) as plan:
        assert plan.digest == digest
        assert read_layers(plan) == image.layers


def test_pull_docker_schema2_manifest_and_manifest_list(registry: rs.Registry, repo: str) -> None:
    amd = rs.build_image([{"a": b"amd"}], docker=True)
    arm = rs.build_image([{"a": b"arm"}], platform="linux/arm/v7", docker=True)
    index, children = rs.build_index([amd, arm], attest=False, docker=True)
    rs.push_index(registry.address, repo, "multi", index, children, docker=True)
    with open_registry_image(
        f"docker://{registry.address}/{repo}:multi", platform="linux/arm/v7", retry=FAST
    ) as plan:
        assert plan.digest == arm.digest
        assert plan.platform == "linux/arm/v7"
        assert plan.layers[0].media_type == rs.DOCKER_LAYER_GZ
        assert read_layers(plan) == arm.layers


@pytest.fixture
def multiarch(registry: rs.Registry, repo: str) -> tuple[str, str, rs.Image, rs.Image]:
    amd = rs.build_image([{"arch": b"amd64"}, {"top": b"x"}])
    arm = rs.build_image([{"arch": b"arm64"}], platform="linux/arm64/v8")
    index, children = rs.build_index([amd, arm], attest=True)
    index_digest = rs.push_index(registry.address, repo, "multi", index, children)
    return f"docker://{registry.address}/{repo}", index_digest, amd, arm


def test_index_defaults_to_linux_amd64_and_skips_attestations(
    multiarch: tuple[str, str, rs.Image, rs.Image],
) -> None:
    base, _, amd, _ = multiarch
    with open_registry_image(f"{base}:multi", retry=FAST) as plan:
        assert plan.digest == amd.digest
        assert plan.source == f"{base}@{amd.digest}"
        assert read_layers(plan) == amd.layers


@pytest.mark.parametrize("platform", ["linux/arm64", "linux/arm64/v8"])
def test_index_picks_requested_platform(
    multiarch: tuple[str, str, rs.Image, rs.Image], platform: str
) -> None:
    base, _, _, arm = multiarch
    with open_registry_image(f"{base}:multi", platform=platform, retry=FAST) as plan:
        assert plan.digest == arm.digest
        assert plan.platform == "linux/arm64/v8"
        assert read_layers(plan) == arm.layers


def test_index_pulled_by_its_digest_resolves_the_platform_manifest(
    multiarch: tuple[str, str, rs.Image, rs.Image],
) -> None:
    base, index_digest, _, arm = multiarch
    with open_registry_image(f"{base}@{index_digest}", platform="linux/arm64", retry=FAST) as plan:
        assert plan.digest == arm.digest


def test_index_without_the_platform_lists_what_it_offers(
    multiarch: tuple[str, str, rs.Image, rs.Image],
) -> None:
    base, _, _, _ = multiarch
    with (
        pytest.raises(RegistryError) as info,
        open_registry_image(f"{base}:multi", platform="linux/s390x", retry=FAST),
    ):
        pass
    msg = str(info.value)
    assert "linux/s390x" in msg and "linux/amd64" in msg and "linux/arm64/v8" in msg
    assert "unknown" not in msg and "\n" not in msg


ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


@pytest.mark.parametrize(
    "att_platform",
    [{"os": "unknown", "architecture": "unknown"}, {"os": "linux", "architecture": "amd64"}, None],
)
def test_index_skips_annotated_attestations_whatever_their_platform(
    registry: rs.Registry, repo: str, att_platform: dict[str, str] | None
) -> None:
    # a real, pullable image in the attestation's place: picking it would show
    decoy = rs.build_image([{"att": uuid.uuid4().bytes}])
    amd = rs.build_image([{"arch": b"amd64"}])
    fields: dict[str, object] = {
        "annotations": {**ATTESTATION, "vnd.docker.reference.digest": amd.digest}
    }
    if att_platform is not None:
        fields["platform"] = att_platform
    index, children = rs.build_index_of(
        [(decoy, fields), (amd, {"platform": {"os": "linux", "architecture": "amd64"}})]
    )
    rs.push_index(registry.address, repo, "att", index, children)
    base = f"docker://{registry.address}/{repo}"
    with open_registry_image(f"{base}:att", retry=FAST) as plan:
        assert plan.digest == amd.digest
        assert read_layers(plan) == amd.layers
    with (
        pytest.raises(RegistryError) as info,
        open_registry_image(f"{base}:att", platform="linux/s390x", retry=FAST),
    ):
        pass
    assert "offers: linux/amd64)" in str(info.value) and "unknown" not in str(info.value)


def test_index_unknown_platform_without_annotation_is_listed_never_defaulted(
    registry: rs.Registry, repo: str
) -> None:
    odd = rs.build_image([{"odd": uuid.uuid4().bytes}], platform="unknown/unknown")
    amd = rs.build_image([{"arch": b"amd64"}])
    index, children = rs.build_index_of(
        [
            (odd, {"platform": {"os": "unknown", "architecture": "unknown"}}),
            (amd, {"platform": {"os": "linux", "architecture": "amd64"}}),
        ]
    )
    rs.push_index(registry.address, repo, "odd", index, children)
    base = f"docker://{registry.address}/{repo}"
    with open_registry_image(f"{base}:odd", retry=FAST) as plan:
        assert plan.digest == amd.digest
    with (
        pytest.raises(RegistryError, match=r"offers: linux/amd64, unknown/unknown\)"),
        open_registry_image(f"{base}:odd", platform="linux/s390x", retry=FAST),
    ):
        pass
    with open_registry_image(f"{base}:odd", platform="unknown/unknown", retry=FAST) as plan:
        assert plan.digest == odd.digest


def test_unknown_tag_is_a_one_line_registry_error(registry: rs.Registry, repo: str) -> None:
    rs.push_image(registry.address, repo, "exists", simple_image())
    ref = f"docker://{registry.address}/{repo}:nope"
    with pytest.raises(RegistryError) as info, open_registry_image(ref, retry=FAST):
        pass
    msg = str(info.value)
    assert msg.startswith(ref) and f"HEAD /v2/{repo}/manifests/nope" in msg and "404" in msg
    assert "\n" not in msg and info.value.exit_code == 3


def test_corrupt_layer_on_registry_disk_fails_digest_check_at_eof(
    registry: rs.Registry, repo: str
) -> None:
    if registry.root is None:
        pytest.skip("PATCHKIT_TEST_REGISTRY_ROOT not set: cannot reach the registry's storage")
    image = rs.build_image([{"unique": uuid.uuid4().bytes * 100}])
    rs.push_image(registry.address, repo, "bad", image)
    blob = registry.blob_path(rs.sha256(image.layers[0]))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the digest can tell
    blob.write_bytes(bytes(data))
    with open_registry_image(f"docker://{registry.address}/{repo}:bad", retry=FAST) as plan:
        stream = plan.layers[0].open()
        with pytest.raises(DigestMismatchError) as info:
            while stream.read(1000):
                pass
    msg = str(info.value)
    assert rs.sha256(image.layers[0]) in msg and f"/v2/{repo}/blobs/" in msg and "\n" not in msg


def test_corrupt_config_on_registry_disk_fails_before_any_layer(
    registry: rs.Registry, repo: str
) -> None:
    if registry.root is None:
        pytest.skip("PATCHKIT_TEST_REGISTRY_ROOT not set: cannot reach the registry's storage")
    image = rs.build_image([{"unique": uuid.uuid4().bytes}])
    rs.push_image(registry.address, repo, "badcfg", image)
    path = registry.blob_path(rs.sha256(image.config))
    path.write_bytes(path.read_bytes().replace(b'"os": "linux"', b'"os": "Linux"'))
    with (
        pytest.raises(DigestMismatchError, match="config digest mismatch"),
        open_registry_image(f"docker://{registry.address}/{repo}:badcfg", retry=FAST),
    ):
        pass


def test_mirror_env_redirects_docker_hub_to_the_local_registry(
    registry: rs.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"x{uuid.uuid4().hex[:10]}"
    image = simple_image("mirror")
    digest = rs.push_image(registry.address, f"library/{name}", "1", image)
    monkeypatch.setenv("PATCHKIT_REGISTRY_MIRROR", f"http://{registry.address}")
    with open_registry_image(f"docker://docker.io/library/{name}:1", retry=FAST) as plan:
        assert plan.digest == digest
        assert plan.source == f"docker://docker.io/library/{name}@{digest}"
        assert read_layers(plan) == image.layers


def test_mirror_argument_accepts_bare_loopback_host(registry: rs.Registry) -> None:
    name = f"x{uuid.uuid4().hex[:10]}"
    digest = rs.push_image(registry.address, f"library/{name}", "1", simple_image())
    with open_registry_image(f"{name}:1", mirror=registry.address, retry=FAST) as plan:
        assert plan.digest == digest


def test_mirror_does_not_apply_to_other_registries(
    registry: rs.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATCHKIT_REGISTRY_MIRROR", f"http://{registry.address}")
    with (
        pytest.raises(RegistryError, match=r"refusing to contact ghcr\.io"),
        open_registry_image("docker://ghcr.io/org/app:1", retry=FAST),
    ):
        pass


def test_offline_refuses_docker_hub_without_a_mirror() -> None:
    with (
        pytest.raises(RegistryError) as info,
        open_registry_image("docker://ubuntu:22.04", retry=FAST),
    ):
        pass
    assert "refusing to contact registry-1.docker.io" in str(info.value)
    assert "PATCHKIT_OFFLINE" in str(info.value)


def test_unreachable_registry_is_reported_after_bounded_retries() -> None:
    port = rs.free_port()
    with (
        pytest.raises(RegistryError, match="registry unreachable") as info,
        open_registry_image(f"docker://127.0.0.1:{port}/app:1", retry=FAST),
    ):
        pass
    assert "\n" not in str(info.value)


def test_image_pushed_by_skopeo_from_an_oci_layout_pulls_identically(
    registry: rs.Registry, repo: str, tmp_path: Path
) -> None:
    if shutil.which("skopeo") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("skopeo is not installed")
        pytest.skip("skopeo is not installed")
    image = simple_image("skopeo")
    rs.write_oci_layout(tmp_path / "layout", image, "v1")
    # skopeo keeps auth and policy files under $HOME, which the suite makes unwritable
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [
            "skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
            f"oci:{tmp_path / 'layout'}:v1", f"docker://{registry.address}/{repo}:v1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open_registry_image(f"docker://{registry.address}/{repo}:v1", retry=FAST) as plan:
        assert [layer.diff_id for layer in plan.layers] == json.loads(image.config)["rootfs"][
            "diff_ids"
        ]
        assert read_layers(plan) == image.layers


# --- Bearer tokens, redirects, retries through the tests' own auth proxy -----------------------


def test_bearer_token_flow_asks_for_pull_scope_once(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    image = simple_image("auth")
    rs.push_image(registry.address, repo, "1", image)
    with open_registry_image(f"docker://{proxy.address}/{repo}:1", retry=FAST) as plan:
        assert read_layers(plan) == image.layers
    assert proxy.state.token_requests == [{"scope": f"repository:{repo}:pull", "service": "test"}]
    # the first request is anonymous; everything after the token carries it
    assert proxy.state.log[0][2] is False
    assert all(had_auth for method, path, had_auth in proxy.state.log[2:] if path != "/token")


def test_tag_resolves_by_head_and_manifests_are_fetched_by_digest_only(
    registry: rs.Registry,
    proxy: rs.Proxy,
    multiarch: tuple[str, str, rs.Image, rs.Image],
    repo: str,
) -> None:
    _, index_digest, amd, _ = multiarch
    with open_registry_image(f"docker://{proxy.address}/{repo}:multi", retry=FAST) as plan:
        assert plan.digest == amd.digest
    manifest_requests = proxy.manifest_requests()
    assert [(m, p) for m, p in manifest_requests if m == "GET" and p.endswith("/multi")] == []
    assert ("HEAD", f"/v2/{repo}/manifests/multi") in manifest_requests
    assert {p for m, p in manifest_requests if m == "GET"} == {
        f"/v2/{repo}/manifests/{index_digest}",
        f"/v2/{repo}/manifests/{amd.digest}",
    }


def test_blob_redirect_to_another_host_does_not_carry_the_token(
    registry: rs.Registry, proxy: rs.Proxy, blob_host: rs.BlobHost, repo: str
) -> None:
    image = simple_image("redirect")
    rs.push_image(registry.address, repo, "1", image)
    proxy.state.redirect_blobs_to = blob_host.address
    with open_registry_image(f"docker://{proxy.address}/{repo}:1", retry=FAST) as plan:
        assert read_layers(plan) == image.layers
    assert blob_host.address.startswith("127.0.0.2:")
    seen_paths = [path for path, _ in blob_host.seen]
    assert f"/v2/{repo}/blobs/{rs.sha256(image.config)}" in seen_paths
    assert all(f"/v2/{repo}/blobs/{rs.sha256(b)}" in seen_paths for b in image.layers)
    assert [auth for _, auth in blob_host.seen] == [None] * len(blob_host.seen)


@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {"Retry-After": "0"}), (503, {}), (500, {}), (502, {"Retry-After": "1000"})],
)
def test_transient_errors_on_manifest_and_blob_are_retried(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, status: int, headers: dict[str, str]
) -> None:
    image = simple_image("retry")
    rs.push_image(registry.address, repo, "1", image)
    proxy.state.faults += [
        rs.Fault("HEAD", r"/manifests/1$", status, headers),
        rs.Fault("GET", r"/manifests/sha256:", status, headers),
        rs.Fault("GET", r"/blobs/", status, headers),
        rs.Fault("GET", r"/blobs/", status, headers),
    ]
    with open_registry_image(f"docker://{proxy.address}/{repo}:1", retry=FAST) as plan:
        assert read_layers(plan) == image.layers
    assert proxy.state.faults == []


def test_persistent_503_gives_up_after_bounded_tries(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    rs.push_image(registry.address, repo, "1", simple_image())
    proxy.state.faults += [rs.Fault("HEAD", r"/manifests/1$", 503) for _ in range(10)]
    with (
        pytest.raises(RegistryError, match=r"kept failing after 4 tries \(HEAD .*HTTP 503"),
        open_registry_image(f"docker://{proxy.address}/{repo}:1", retry=FAST),
    ):
        pass
    assert len(proxy.state.faults) == 6


def test_basic_auth_challenge_says_credentials_are_needed(registry: rs.Registry, repo: str) -> None:
    for proxy in rs.start_proxy(registry.address, require_auth=False):
        proxy.state.faults.append(
            rs.Fault("HEAD", r"/manifests/", 401, {"WWW-Authenticate": 'Basic realm="registry"'})
        )
        with (
            pytest.raises(RegistryError, match="needs credentials") as info,
            open_registry_image(f"docker://{proxy.address}/{repo}:1", retry=FAST),
        ):
            pass
        assert isinstance(info.value, PatchkitError) and info.value.exit_code == 3


def test_errors_after_authentication_never_show_the_token(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    rs.push_image(registry.address, repo, "1", simple_image())
    with (
        pytest.raises(RegistryError) as info,
        open_registry_image(f"docker://{proxy.address}/{repo}:missing", retry=FAST),
    ):
        pass
    assert proxy.state.tokens
    assert not any(token in str(info.value) for token in proxy.state.tokens)


def test_progress_reports_every_layer_byte(registry: rs.Registry, repo: str) -> None:
    image = simple_image("progress")
    rs.push_image(registry.address, repo, "1", image)
    seen: dict[str, int] = {}

    def progress(digest: str, nbytes: int) -> None:
        seen[digest] = seen.get(digest, 0) + nbytes

    with open_registry_image(
        f"docker://{registry.address}/{repo}:1", progress=progress, retry=FAST
    ) as plan:
        read_layers(plan)
    assert seen == {rs.sha256(b): len(b) for b in image.layers}


def test_streams_left_open_are_closed_when_the_block_ends(registry: rs.Registry, repo: str) -> None:
    rs.push_image(registry.address, repo, "1", simple_image("close"))
    with open_registry_image(f"docker://{registry.address}/{repo}:1", retry=FAST) as plan:
        stream = plan.layers[0].open()
        stream.read(1)
    assert stream.closed


def test_open_image_dispatches_docker_sources_here_with_the_mirror(registry: rs.Registry) -> None:
    from patchkit.images import open_image
    from patchkit.images.source import parse_source

    name = f"x{uuid.uuid4().hex[:10]}"
    image = simple_image("dispatch")
    digest = rs.push_image(registry.address, f"library/{name}", "2", image)
    with open_image(
        parse_source(f"docker://{name}:2"), mirror=f"http://{registry.address}"
    ) as plan:
        assert plan.source == f"docker://docker.io/library/{name}@{digest}"
        assert read_layers(plan) == image.layers
