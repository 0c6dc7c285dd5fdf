"""Test helpers for registry pulls: a real ``docker-registry`` on loopback, a tiny image builder
that pushes through the registry upload API, and an auth proxy (Bearer tokens, fault injection,
cross-host blob redirects) of the tests' own in front of the real registry.

Everything listens on 127.0.0.0/8 only.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REGISTRY_BIN = "docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


# --- the real registry -------------------------------------------------------------------------


@dataclass
class Registry:
    """A running registry: ``address`` is host:port; ``root`` its storage dir when we know it."""

    address: str
    root: Path | None
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def blob_path(self, digest: str) -> Path:
        assert self.root is not None
        hexd = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def registry_config(root: Path, port: int) -> str:
    # loopback only, no auth, filesystem storage; the same config .ci/registry.sh writes
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: patchkit-tests\n"
    )


def wait_ready(
    address: str, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    host, port = address.rsplit(":", 1)
    while True:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/v2/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"registry at {address} did not answer /v2/ within {timeout}s")
        time.sleep(0.1)


def start_registry(workdir: Path) -> Registry:
    binary = shutil.which(REGISTRY_BIN)
    if binary is None:
        raise FileNotFoundError(REGISTRY_BIN)
    root = workdir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(registry_config(root, port))
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    reg = Registry(address=f"127.0.0.1:{port}", root=root, proc=proc)
    try:
        wait_ready(reg.address, proc=proc)
    except BaseException:
        reg.stop()
        raise
    return reg


# --- building and pushing images ---------------------------------------------------------------


def layer_tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A deterministic gzip'd tar of regular files; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


@dataclass
class Image:
    """One single-platform image: manifest bytes plus every blob it references."""

    manifest: bytes
    media_type: str
    config: bytes
    layers: list[bytes]
    platform: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, *self.layers]

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest),
            **extra,
        }


def build_image(
    layers: list[dict[str, bytes]], *, platform: str = "linux/amd64", docker: bool = False
) -> Image:
    os_name, arch, *variant = platform.split("/")
    blobs, diff_ids = (
        zip(*(layer_tar_gz(files) for files in layers), strict=True) if layers else ((), ())
    )
    config_doc: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "config": {},
    }
    if variant:
        config_doc["variant"] = variant[0]
    config = json.dumps(config_doc, sort_keys=True).encode()
    layer_type = DOCKER_LAYER_GZ if docker else OCI_LAYER_GZ
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [{"mediaType": layer_type, "digest": sha256(b), "size": len(b)} for b in blobs],
    }
    return Image(
        manifest=json.dumps(manifest, indent=2).encode(),
        media_type=media_type,
        config=config,
        layers=list(blobs),
        platform=platform,
    )


def attestation_for(image: Image) -> tuple[Image, dict[str, Any]]:
    """A BuildKit-style attestation manifest for ``image`` and its index entry (platform unknown/unknown)."""
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": []}).encode()
    config = json.dumps(
        {
            "architecture": "unknown",
            "os": "unknown",
            "rootfs": {"type": "layers", "diff_ids": [sha256(statement)]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {
                "mediaType": "application/vnd.in-toto+json",
                "digest": sha256(statement),
                "size": len(statement),
            }
        ],
    }
    att = Image(
        manifest=json.dumps(manifest).encode(),
        media_type=OCI_MANIFEST,
        config=config,
        layers=[statement],
        platform="unknown/unknown",
    )
    entry = att.descriptor(
        platform={"architecture": "unknown", "os": "unknown"},
        annotations={
            "vnd.docker.reference.digest": image.digest,
            "vnd.docker.reference.type": "attestation-manifest",
        },
    )
    return att, entry


def build_index(
    images: list[Image], *, attest: bool = True, docker: bool = False
) -> tuple[bytes, list[Image]]:
    """An index over ``images`` (attestations first, to prove they are skipped); returns (index, all children)."""
    entries: list[dict[str, Any]] = []
    children: list[Image] = []
    if attest:
        for image in images:
            att, entry = attestation_for(image)
            entries.append(entry)
            children.append(att)
    for image in images:
        os_name, arch, *variant = image.platform.split("/")
        plat: dict[str, Any] = {"architecture": arch, "os": os_name}
        if variant:
            plat["variant"] = variant[0]
        entries.append(image.descriptor(platform=plat))
        children.append(image)
    media = DOCKER_LIST if docker else OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": media, "manifests": entries}
    return json.dumps(index, indent=2).encode(), children


def build_index_of(
    entries: list[tuple[Image, dict[str, Any]]], *, docker: bool = False
) -> tuple[bytes, list[Image]]:
    """An index listing each image, in order, with exactly the descriptor fields given.

    ``fields`` is what goes beside mediaType/digest/size (``platform``, ``annotations``);
    leave ``platform`` out for an entry without one. Returns (index, children to push).
    """
    manifests = [image.descriptor(**fields) for image, fields in entries]
    media = DOCKER_LIST if docker else OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": media, "manifests": manifests}
    return json.dumps(index, indent=2).encode(), [image for image, _ in entries]


def _conn(address: str) -> http.client.HTTPConnection:
    host, port = address.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def push_blob(address: str, repo: str, data: bytes) -> str:
    digest = sha256(data)
    conn = _conn(address)
    conn.request("POST", f"/v2/{repo}/blobs/uploads/")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 202, (resp.status, repo)
    loc = urllib.parse.urlsplit(resp.getheader("Location") or "")
    query = loc.query + ("&" if loc.query else "") + urllib.parse.urlencode({"digest": digest})
    conn.request(
        "PUT",
        f"{loc.path}?{query}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201, (resp.status, repo, digest)
    conn.close()
    return digest


def push_manifest(address: str, repo: str, ref: str, data: bytes, media_type: str) -> str:
    conn = _conn(address)
    conn.request(
        "PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": media_type}
    )
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 201, (resp.status, body)
    conn.close()
    return sha256(data)


def push_image(address: str, repo: str, tag: str | None, image: Image) -> str:
    for blob in image.blobs:
        push_blob(address, repo, blob)
    return push_manifest(address, repo, tag or image.digest, image.manifest, image.media_type)


def push_index(
    address: str, repo: str, tag: str, index: bytes, children: list[Image], *, docker: bool = False
) -> str:
    for child in children:
        push_image(address, repo, None, child)
    return push_manifest(address, repo, tag, index, DOCKER_LIST if docker else OCI_INDEX)


def delete_manifest(address: str, repo: str, digest: str) -> None:
    """The registry's delete API: the manifest (and every tag on it) goes."""
    conn = _conn(address)
    conn.request("DELETE", f"/v2/{repo}/manifests/{digest}")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 202, (resp.status, body)
    conn.close()


def skopeo_copy(src: str, dst: str, home: Path) -> None:
    """``skopeo copy SRC DST`` to a plain-HTTP loopback registry (auth and policy under ``home``)."""
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    env["XDG_CONFIG_HOME"] = str(home)
    proc = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", src, dst],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr


def add_to_oci_layout(path: Path, image: Image, tag: str | None) -> None:
    """One more image in the layout ``write_oci_layout`` made, named ``tag`` (None: unnamed)."""
    blobs = path / "blobs" / "sha256"
    for data in [*image.blobs, image.manifest]:
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    index = json.loads((path / "index.json").read_text())
    names = {"org.opencontainers.image.ref.name": tag} if tag else None
    index["manifests"].append(image.descriptor(**({"annotations": names} if names else {})))
    (path / "index.json").write_text(json.dumps(index))


def write_oci_layout(path: Path, image: Image, tag: str) -> None:
    """An OCI image layout holding ``image`` under ``tag`` (what skopeo reads as oci:PATH:TAG)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in [*image.blobs, image.manifest]:
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    desc = image.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))


# --- the auth proxy ----------------------------------------------------------------------------


@dataclass
class Fault:
    """Answer the next request matching ``method`` and ``path_re`` with ``status`` instead of forwarding."""

    method: str
    path_re: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProxyState:
    upstream: str
    require_auth: bool = True
    redirect_blobs_to: str | None = None  # "127.0.0.2:PORT" of a BlobHost
    tokens: dict[str, str] = field(default_factory=dict)  # token -> repository
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, bool]] = field(
        default_factory=list
    )  # (method, path, had Authorization)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Debian's docker-registry 2.8 ignores `n=` and `last=` (pagination came in distribution
    # 3): with ``page_size``, the proxy pages tags/list as distribution 3 and Docker Hub do
    # (lexical order, `Link: <...>; rel="next"`), relative links or, with ``absolute_links``,
    # absolute ones.
    page_size: int | None = None
    absolute_links: bool = False
    link_override: str | None = None  # the next page's Link header, as is (hostile links)
    drop_digest: bool = False  # answer without Docker-Content-Digest (registries that omit it)
    # called with (method, path?query) before a request is forwarded (e.g. to stop the registry)
    on_request: Callable[[str, str], None] | None = None
    # seconds each request waits before it is answered: a stand-in for a registry's round trip
    delay: float = 0.0


_REPO_RE = re.compile(r"^/v2/(?P<repo>.+?)/(?:manifests|blobs|tags)/")


def _forward(
    upstream: str, method: str, path: str, headers: dict[str, str]
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = _conn(upstream)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    keep = (
        "content-type",
        "content-length",
        "docker-content-digest",
        "location",
        "docker-distribution-api-version",
    )
    return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() in keep], body


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            self.send_header(k, v)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        auth = self.headers.get("Authorization")
        with st.lock:
            st.log.append((self.command, url.path, auth is not None))
        if st.delay:
            time.sleep(st.delay)
        if url.path == "/token":
            return self._token(urllib.parse.parse_qs(url.query))
        match = _REPO_RE.match(url.path)
        repo = match.group("repo") if match else None
        if st.require_auth:
            token = auth.removeprefix("Bearer ") if auth and auth.startswith("Bearer ") else None
            granted = st.tokens.get(token) if token else None
            if granted is None or (repo is not None and granted != repo):
                host, port = self.server.server_address[:2]
                realm = f"http://{host!s}:{port}/token"
                scope = f',scope="repository:{repo}:pull"' if repo else ""
                challenge = f'Bearer realm="{realm}",service="test"{scope}'
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                return self._reply(
                    401,
                    [("WWW-Authenticate", challenge), ("Content-Type", "application/json")],
                    body,
                )
        with st.lock:
            for fault in st.faults:
                if fault.method == self.command and re.search(fault.path_re, url.path):
                    st.faults.remove(fault)
                    return self._reply(fault.status, list(fault.headers.items()), b"")
        if st.redirect_blobs_to and self.command == "GET" and "/blobs/" in url.path:
            target = f"http://{st.redirect_blobs_to}{url.path}?X-Signature=abc"
            return self._reply(307, [("Location", target)], b"")
        if st.on_request is not None:
            st.on_request(self.command, self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() == "range"}
        accept = self.headers.get_all("Accept") or []  # clients may send several Accept lines
        if accept:
            headers["Accept"] = ", ".join(accept)
        forward_path = url.path if url.path.endswith("/tags/list") else self.path
        try:
            status, out_headers, body = _forward(st.upstream, self.command, forward_path, headers)
        except OSError:  # the registry behind is gone: drop the connection, as it would
            self.close_connection = True
            return None
        if st.drop_digest:
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "docker-content-digest"]
        if url.path.endswith("/tags/list") and status == 200 and st.page_size is not None:
            return self._page(url, body)
        self._reply(status, out_headers, body)

    def _page(self, url: urllib.parse.SplitResult, body: bytes) -> None:
        st = self.server.state
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        doc = json.loads(body)
        tags = sorted(doc.get("tags") or [])
        size = min(int(query.get("n", st.page_size or 0)), st.page_size or 0) or len(tags)
        if "last" in query:
            tags = [t for t in tags if t > query["last"]]
        page, rest = tags[:size], tags[size:]
        headers = [("Content-Type", "application/json")]
        if rest:
            q = urllib.parse.urlencode({"last": page[-1], "n": size})
            target = f"{url.path}?{q}"
            if st.absolute_links:
                host, port = self.server.server_address[:2]
                target = f"http://{host!s}:{port}{target}"
            headers.append(("Link", st.link_override or f'<{target}>; rel="next"'))
        out = json.dumps({"name": doc.get("name"), "tags": page}).encode()
        self._reply(200, headers, out)

    def _token(self, query: dict[str, list[str]]) -> None:
        st = self.server.state
        flat = {k: v[0] for k, v in query.items()}
        with st.lock:
            st.token_requests.append(flat)
        match = re.fullmatch(r"repository:(.+):pull", flat.get("scope", ""))
        if flat.get("service") != "test" or match is None:
            return self._reply(400, [], b'{"details":"bad scope or service"}')
        token = secrets.token_hex(16)
        with st.lock:
            st.tokens[token] = match.group(1)
        self._reply(
            200,
            [("Content-Type", "application/json")],
            json.dumps({"access_token": token, "expires_in": 300}).encode(),
        )


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    state: ProxyState


class _BlobHostHandler(BaseHTTPRequestHandler):
    """Another loopback host:port that serves blobs (like a CDN); records the Authorization it saw."""

    server: _BlobHostServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.seen.append((url.path, self.headers.get("Authorization")))
        status, headers, body = _forward(self.server.upstream, "GET", url.path, {})
        self.send_response(status)
        for k, v in headers:
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _BlobHostServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream: str
    seen: list[tuple[str, str | None]]


@dataclass
class Proxy:
    address: str
    state: ProxyState
    server: _ProxyServer

    def manifest_requests(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.state.log if "/manifests/" in p]


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


@dataclass
class BlobHost:
    address: str
    server: _BlobHostServer

    @property
    def seen(self) -> list[tuple[str, str | None]]:
        return self.server.seen


def start_proxy(
    upstream: str, *, require_auth: bool = True, host: str = "127.0.0.1"
) -> Iterator[Proxy]:
    server = _ProxyServer((host, 0), _ProxyHandler)
    server.state = ProxyState(upstream=upstream, require_auth=require_auth)
    _serve(server)
    try:
        yield Proxy(address=f"{host}:{server.server_address[1]}", state=server.state, server=server)
    finally:
        server.shutdown()
        server.server_close()


def start_blob_host(upstream: str, host: str = "127.0.0.2") -> Iterator[BlobHost]:
    server = _BlobHostServer((host, 0), _BlobHostHandler)
    server.upstream, server.seen = upstream, []
    _serve(server)
    try:
        yield BlobHost(address=f"{host}:{server.server_address[1]}", server=server)
    finally:
        server.shutdown()
        server.server_close()


def registry_from_env() -> Registry | None:
    """The registry ``.ci/registry.sh`` started, if any."""
    address = os.environ.get("PATCHKIT_TEST_REGISTRY")
    if not address:
        return None
    root = os.environ.get("PATCHKIT_TEST_REGISTRY_ROOT")
    reg = Registry(address=address, root=Path(root) if root else None)
    wait_ready(address, timeout=5)
    return reg
