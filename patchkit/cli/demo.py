"""`patchkit demo`: the whole workflow on a small generated example, offline.

The example image ("demo-mail", releases 1.0 and 1.1) is made up here, in two real OCI
image layouts; its files only resemble a mail server's and are not poste.io's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

from patchkit.core.model import PatchStatus, RebaseState
from patchkit.output import report
from patchkit.project import Project

__all__ = ["build_demo_project", "run_demo", "write_oci_layout"]

Layer = dict[str, bytes | str | None]  # path -> file content, "->target" symlink, None whiteout

REDIS_10 = """\
# demo-mail 1.0: redis settings (example file written for patchkit's demo)
bind 127.0.0.1
protected-mode yes
port 6379
tcp-backlog 511
timeout 0
daemonize no
loglevel notice
databases 16
"""

REDIS_11 = """\
# demo-mail 1.1: redis settings (example file written for patchkit's demo)
# 1.1 adds comments at the top, so every line below moved.
#
bind 127.0.0.1
protected-mode yes
port 6379
tcp-backlog 511
timeout 300
daemonize no
loglevel notice
databases 16
"""

HEALTH_10 = """\
#!/bin/sh
# demo-mail health check for redis
redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG
"""

HEALTH_11 = """\
#!/bin/sh
# demo-mail health check for redis
redis-cli -s /var/run/redis/redis.sock ping | grep -q PONG
"""

NGINX_10 = """\
server {
    listen 80;
    listen [::]:80;
    server_name _;
    root /opt/www;
}
"""

NGINX_11 = """\
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;
    root /opt/www;
}
"""

PATCHES = {
    "redis-unix-socket.patch": """\
Description: redis listens on a unix socket only, not on TCP 6379
 Moves the internal redis listener off localhost TCP so two containers can share a host.
Forwarded: not-needed

--- a/etc/redis/redis.conf
+++ b/etc/redis/redis.conf
@@ -2,7 +2,9 @@
 bind 127.0.0.1
 protected-mode yes
-port 6379
+port 0
+unixsocket /var/run/redis/redis.sock
+unixsocketperm 770
 tcp-backlog 511
 timeout 0
 daemonize no
 loglevel notice
""",
    "healthcheck-socket.patch": """\
Description: the redis health check talks to the unix socket

--- a/healthcheck/redis.sh
+++ b/healthcheck/redis.sh
@@ -1,3 +1,3 @@
 #!/bin/sh
 # demo-mail health check for redis
-redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG
+redis-cli -s /var/run/redis/redis.sock ping | grep -q PONG
""",
    "nginx-listen-placeholder.patch": """\
Description: nginx listens on the hostname's addresses, filled in at start

--- a/etc/nginx/sites-enabled/default
+++ b/etc/nginx/sites-enabled/default
@@ -1,6 +1,5 @@
 server {
-    listen 80;
-    listen [::]:80;
+    listen __LISTEN_HTTP__;
     server_name _;
     root /opt/www;
 }
""",
}

# An edit (pattern-anchored, with an asserted count) and an overlay (whole files we own):
# the other two kinds of change a series holds (docs/kinds.md).
EDIT_NAME = "www-footer.edit.toml"
EDIT = """\
description = "The welcome page says which instance served it."

[[edit]]
files = "opt/www/{index,status}.html"
expect-files = ">=1"
append = "<p>served by the isolated demo-mail</p>\\n"
"""

OVERLAY_NAME = "isolation/"
OVERLAY = {
    "etc/cont-init.d/25-bind-hostname.sh": "#!/bin/sh\n# demo: fill in the hostname's addresses at start\nexit 0\n",
    ".overlay.toml": 'description = "Our start-up script, copied whole into the image."\n',
}

VERSIONS_TOML = """\
# Example project made by `patchkit demo`. Not poste.io: a made-up "demo-mail" image.
schema = 1
base = "1.0"   # the release the files in patches/ apply to exactly

[upstream]
name = "demo-mail"

[[version]]
version = "1.0"
status = "supported"
source = "oci:{root}/images/demo-mail-1.0:1.0"

[[version]]
version = "1.1"
status = "testing"
source = "oci:{root}/images/demo-mail-1.1:1.1"
"""


def _tar_layer(files: Layer) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            value = files[path]
            if value is None:
                info = tarfile.TarInfo("/".join([*parts[:-1], ".wh." + parts[-1]]))
                tar.addfile(info, io.BytesIO(b""))
            elif isinstance(value, str) and value.startswith("->"):
                info = tarfile.TarInfo(path)
                info.type = tarfile.SYMTYPE
                info.linkname = value[2:]
                tar.addfile(info)
            else:
                data = value.encode() if isinstance(value, str) else value
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o755 if data.startswith(b"#!") else 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest


def write_oci_layout(layout: Path, layers: list[Layer], *, tag: str) -> str:
    """Write a single-platform OCI image layout with gzip layers; return the manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for files in layers:
        raw = _tar_layer(files)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        packed = gzip.compress(raw, mtime=0)
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _blob(layout, packed),
                "size": len(packed),
            }
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _blob(layout, config),
                "size": len(config),
            },
            "layers": descriptors,
        },
        sort_keys=True,
    ).encode()
    digest = _blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
    return digest


def build_demo_project(root: Path) -> Path:
    """Write the example project (two OCI layouts; a series of three diffs, an overlay and an
    edit) under ``root``."""
    base_layer: Layer = {
        "etc/redis/redis.conf": REDIS_10,
        "healthcheck/redis.sh": HEALTH_10,
        "etc/nginx/sites-enabled/default": NGINX_10,
        "opt/www/index.html": "<h1>demo-mail</h1>\n",
        "etc/motd": "demo-mail 1.0\n",
    }
    write_oci_layout(root / "images" / "demo-mail-1.0", [base_layer], tag="1.0")
    # 1.1 = the same lower layer plus an upper layer that changes, adds and deletes files.
    upper: Layer = {
        "etc/redis/redis.conf": REDIS_11,
        "healthcheck/redis.sh": HEALTH_11,
        "etc/nginx/sites-enabled/default": NGINX_11,
        "etc/motd": None,
        "etc/issue": "demo-mail 1.1\n",
    }
    write_oci_layout(root / "images" / "demo-mail-1.1", [base_layer, upper], tag="1.1")
    project = root / "project"
    (project / "patches").mkdir(parents=True, exist_ok=True)
    (project / "upstream-versions.toml").write_text(VERSIONS_TOML.format(root=root))
    for name, text in PATCHES.items():
        (project / "patches" / name).write_text(text)
    (project / "patches" / EDIT_NAME).write_text(EDIT)
    for rel, text in OVERLAY.items():
        path = project / "patches" / OVERLAY_NAME / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if text.startswith("#!") else 0o644)
    names = [*PATCHES, OVERLAY_NAME, EDIT_NAME]
    (project / "patches" / "series").write_text(
        "# applied in this order: three diffs, an overlay, an edit\n"
        + "".join(f"{name}\n" for name in names)
    )
    return project


def run_demo(*, out: Console, directory: str | None = None, keep: bool = False) -> int:
    """Build the example, then import, check, matrix and rebase it; print every report."""
    tmp = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="patchkit-demo-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        root = build_demo_project(tmp)
        project = Project.open(root)
        out.print(
            Rule(
                "patchkit demo: a made-up 'demo-mail' image, two releases, five changes of three kinds"
            )
        )
        out.print(f"project: {root}")
        for version in ("1.0", "1.1"):
            out.print(f"$ patchkit import {version}")
            out.print(report.import_summary(project.import_release(version)))
        out.print("$ patchkit check 1.0")
        out.print(report.check_table(project.check("1.0")))
        out.print("$ patchkit matrix")
        matrix = project.matrix()
        out.print(report.matrix_table(matrix))
        out.print("$ patchkit rebase --onto 1.1")
        result = project.rebase("1.1")
        out.print(report.rebase_table(result))
        if result.state is RebaseState.STOPPED:
            # Resolve as a person would: keep upstream's default_server, use our placeholder.
            conflicted = Path(result.worktree) / "etc/nginx/sites-enabled/default"
            conflicted.write_text(
                NGINX_11.replace(
                    "    listen 80 default_server;\n    listen [::]:80 default_server;\n",
                    "    listen __LISTEN_HTTP__ default_server;\n",
                )
            )
            out.print("(the demo resolves the conflict in the worktree as a person would)")
            out.print("$ patchkit rebase --continue")
            result = project.rebase_continue()
            out.print(report.rebase_table(result))
        out.print("$ patchkit check 1.1")
        final = project.check("1.1")
        out.print(report.check_table(final))
        out.print(f"$ patchkit materialize {EDIT_NAME} --version 1.1")
        out.print(
            project.materialize(EDIT_NAME, "1.1").diff.decode(), markup=False, highlight=False
        )
        out.print(f"$ cat {root}/patches/redis-unix-socket.patch")
        out.print(
            (root / "patches" / "redis-unix-socket.patch").read_text(),
            markup=False,
            highlight=False,
        )
        ok = result.state is RebaseState.COMPLETED and all(
            p.status in (PatchStatus.APPLIED,) for p in final.patches
        )
        out.print(
            "demo finished: " + ("every step behaved as expected" if ok else "UNEXPECTED RESULT")
        )
        if keep or directory:
            out.print(f"kept: {tmp}")
        return 0 if ok else 1
    finally:
        if not keep and not directory:
            shutil.rmtree(tmp, ignore_errors=True)
