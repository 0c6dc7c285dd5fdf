"""`patchkit demo`: the whole workflow on a small generated example, offline.

The example image ("demo-mail", releases 1.0 and 1.1, then 1.2) is made up here, in a real
OCI image layout whose ref names are its tags; its files only resemble a mail server's and
are not poste.io's.
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
from patchkit.files import atomic_write
from patchkit.output import report
from patchkit.output.upgrade import report_html, report_markdown
from patchkit.output.watch import watch_table
from patchkit.project import Project

__all__ = ["build_demo_project", "publish_release_12", "run_demo", "write_oci_layout"]

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

# 1.2 (the release that appears at the end of the demo): redis also listens on ::1, a new
# internal TCP listener, and its tcp-backlog changes right below the line our patch changes.
REDIS_12 = (
    REDIS_11.replace("demo-mail 1.1", "demo-mail 1.2")
    .replace("bind 127.0.0.1\n", "bind 127.0.0.1 ::1\n")
    .replace("tcp-backlog 511", "tcp-backlog 1024")
)

# dpkg's status file (made-up entries of the demo image), so that a report compares packages
DPKG_STATUS = """\
Package: nginx
Status: install ok installed
Architecture: amd64
Version: 1.22.1-9

Package: redis-server
Status: install ok installed
Architecture: amd64
Version: {redis}
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
image = "oci:{root}/images/demo-mail"   # an OCI layout: its ref names are the tags

[upstream.watch]
status = "testing"      # `patchkit watch --apply` gives new releases this status

[[version]]
version = "1.0"
status = "supported"

[[version]]
version = "1.1"
status = "testing"
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
    """Add a single-platform image with gzip layers to an OCI image layout (made if needed),
    named ``tag`` (the image it named before is no longer named); return its manifest digest."""
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
    ref = "org.opencontainers.image.ref.name"
    index_path = layout / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    manifests = [m for m in index["manifests"] if m.get("annotations", {}).get(ref) != tag]
    index["manifests"] = manifests
    manifests.append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": len(manifest),
            "annotations": {ref: tag},
            "platform": {"architecture": "amd64", "os": "linux"},
        }
    )
    index_path.write_text(json.dumps(index, sort_keys=True))
    return digest


BASE_LAYER: Layer = {
    "etc/redis/redis.conf": REDIS_10,
    "healthcheck/redis.sh": HEALTH_10,
    "etc/nginx/sites-enabled/default": NGINX_10,
    "opt/www/index.html": "<h1>demo-mail</h1>\n",
    "etc/motd": "demo-mail 1.0\n",
    "var/lib/dpkg/status": DPKG_STATUS.format(redis="5:7.0.15-1"),
}
# 1.1 = the same lower layer plus an upper layer that changes, adds and deletes files.
LAYER_11: Layer = {
    "etc/redis/redis.conf": REDIS_11,
    "healthcheck/redis.sh": HEALTH_11,
    "etc/nginx/sites-enabled/default": NGINX_11,
    "etc/motd": None,
    "etc/issue": "demo-mail 1.1\n",
}
# 1.2 = one more layer: redis upgraded, its settings changed.
LAYER_12: Layer = {
    "etc/redis/redis.conf": REDIS_12,
    "etc/issue": "demo-mail 1.2\n",
    "var/lib/dpkg/status": DPKG_STATUS.format(redis="5:7.2.4-1"),
}


def layout_of(root: Path) -> Path:
    """The demo image's OCI layout under ``root`` (what `[upstream] image` names)."""
    return root / "images" / "demo-mail"


def publish_release_12(root: Path) -> str:
    """Upstream publishes 1.2: one more image, tagged 1.2, in the demo's layout; its digest."""
    return write_oci_layout(layout_of(root), [BASE_LAYER, LAYER_11, LAYER_12], tag="1.2")


def build_demo_project(root: Path) -> Path:
    """Write the example project (one OCI layout holding 1.0 and 1.1; a series of three diffs,
    an overlay and an edit) under ``root``."""
    write_oci_layout(layout_of(root), [BASE_LAYER], tag="1.0")
    write_oci_layout(layout_of(root), [BASE_LAYER, LAYER_11], tag="1.1")
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


def _next_release(out: Console, project: Project, tmp: Path) -> bool:
    """Upstream publishes 1.2: ``watch`` finds it, ``forecast`` and ``report`` show what the
    rebase onto it will meet. Whether each said what the demo's 1.2 holds."""
    out.print(Rule("upstream publishes 1.2: a new image in the layout, tagged 1.2"))
    publish_release_12(tmp)
    out.print("$ patchkit watch")
    found = project.watch()
    out.print(watch_table(found))
    out.print("$ patchkit watch --import")
    added = project.watch(import_releases=True)
    out.print(watch_table(added))
    out.print("$ patchkit forecast 1.2")
    forecast = project.forecast("1.2")
    out.print(report.forecast_table(forecast))
    written = tmp / "report-1.2.md"
    out.print(f"$ patchkit report 1.2 -o {written}")
    upgrade = project.report("1.2")
    text = report_markdown(upgrade)
    atomic_write(written, text.encode())
    (tmp / "report-1.2.html").write_text(report_html(upgrade))
    # What the rebase will meet, as the report says it: its verdicts, the conflicts, the
    # listener upstream added, the packages (the whole report is in the file).
    wanted = ("What a person must resolve", "Listeners that", "Packages that changed")
    parts = text.split("\n### ")
    shown = [parts[0], *(f"### {p}" for p in parts[1:] if p.startswith(wanted))]
    out.print("\n".join(shown).rstrip(), markup=False, highlight=False)
    appeared = {
        x.text
        for delta in upgrade.audit_changes
        for x in delta.appeared
        if delta.section == "listeners"
    }
    return (
        [n.version for n in found.new] == ["1.2"]
        and added.imported == ("1.2",)
        and [p.name for p in forecast.patches if p.left_out] == ["redis-unix-socket.patch"]
        and "tcp [::1]:6379" in appeared
        and any(c.name == "redis-server" for c in upgrade.packages)
    )


def run_demo(*, out: Console, directory: str | None = None, keep: bool = False) -> int:
    """Build the example, then import, check, matrix and rebase it; then a new release
    appears: watch, forecast and report it. Print every report."""
    tmp = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="patchkit-demo-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        root = build_demo_project(tmp)
        project = Project.open(root)
        out.print(
            Rule(
                "patchkit demo: a made-up 'demo-mail' image, two releases (then a third), "
                "five changes of three kinds"
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
        ok = _next_release(out, project, tmp) and ok
        out.print(
            "demo finished: " + ("every step behaved as expected" if ok else "UNEXPECTED RESULT")
        )
        if keep or directory:
            out.print(f"kept: {tmp}")
        return 0 if ok else 1
    finally:
        if not keep and not directory:
            shutil.rmtree(tmp, ignore_errors=True)
