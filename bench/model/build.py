#!/usr/bin/env python3
"""Build the poste.io *model releases* as OCI image layouts, from real components.

    python bench/model/build.py [--out bench/.cache/models] [--only model-bookworm] [--force]

Each model is assembled at poste.io's paths from Debian packages (`apt-get download`
+ `dpkg-deb -x`, with the maintainer-script steps that place config files emulated)
and Haraka from npm (`npm install -g --prefix`, instance dirs made by the real
`haraka -i`), plus one small top layer that is *ours*: the poste.io-specific settings
reconstructed from public facts (see docs/poste.md). Layouts are cached: a model whose
inputs did not change is not rebuilt.

Needs: apt-get, dpkg-deb, node, npm, and network access to the Debian mirror named in
/etc/apt/sources.list.d/debian.sources and to the npm registry. Without them it stops
with one line saying what it needed (exit 3). Independent of patchkit on purpose, so a
CI job can run it before anything is installed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HEADER = (
    "patchkit model layer: poste.io-specific settings reconstructed from public facts, "
    "not poste.io's files"
)
LAYER_VERSION = 5  # bump when the top layer's content changes, so caches rebuild

DEBIAN_PACKAGES = {
    "redis": ["redis-server", "redis-tools"],
    "rspamd": ["rspamd"],
    "dovecot": [
        "dovecot-core",
        "dovecot-imapd",
        "dovecot-pop3d",
        "dovecot-sieve",
        "dovecot-managesieved",
    ],
    "nginx": ["nginx", "nginx-common"],
}

# Installed into Haraka's own node_modules, at exact versions (the model stays reproducible):
# - express: Haraka's HTTP server (http.ini listeners) needs it and Haraka does not depend on
#   it ("express failed to load. No http server"); poste.io's image has Haraka's web listeners,
#   so it has express. 4.x: the API Haraka 3.x's server.js and its http plugins use.
# - haraka-plugin-rspamd 1.5.0: the last release that calls `mail_from.address()`; 1.6.x reads
#   `mail_from.address` as a property (address-rfc2821 3.x), which with the address-rfc2821
#   2.2.x of Haraka 3.0.4 and 3.1.7 sends the method's source text as the From header
#   ("Invalid character in header content"), so no message reached rspamd. Haraka 3.1.7 itself
#   declares ~1.5.0; 3.0.4 declares ^1.3.1, which npm now resolves to the broken 1.6.1.
# - ws: Haraka's HTTP server makes a WebSocketServer on its http.ini listener when `ws` loads
#   (server.js init_http_respond, then the init_wss hook; "unable to load ws" otherwise).
#   poste.io's admin proxies Haraka's websocket (`/admin/haraka/<port>/ws`, POSTE.md), so its
#   Haraka has it. Haraka 3.0.4's optional haraka-plugin-watch brings ws 8.23.1; 3.1.7 has none.
HARAKA_EXTRAS = {"express": "4.21.2", "haraka-plugin-rspamd": "1.5.0", "ws": "8.23.1"}
# The model's stand-in for the admin app's auth endpoint (a FastCGI responder in Node on
# the admin app's php-fpm socket): ours, labelled, placed by our layer at this path.
ADMIN_STANDIN = Path(__file__).resolve().with_name("admin-auth-standin.js")
ADMIN_STANDIN_PATH = "usr/share/patchkit-model/admin-auth-standin.js"


@dataclass(frozen=True)
class ModelSpec:
    label: str
    suite: str
    haraka: str  # exact npm version


MODELS = {
    "model-bookworm": ModelSpec(label="model-bookworm", suite="bookworm", haraka="3.0.4"),
    "model-trixie": ModelSpec(label="model-trixie", suite="trixie", haraka="3.1.7"),
}


class BuildError(Exception):
    """One line for the person: what failed and what was needed."""


def run(
    cmd: list[str], *, cwd: Path | None = None, need: str, env: dict[str, str] | None = None
) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found (needed: {need})") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith(("E:", "npm error", "Err:"))] or lines
        raise BuildError(
            f"`{' '.join(cmd[:3])} ...` failed ({errs[-1] if errs else proc.returncode}); needed: {need}"
        )
    return proc.stdout


def debian_mirror() -> str:
    """The machine's own Debian mirror (never written into the project)."""
    path = Path("/etc/apt/sources.list.d/debian.sources")
    if path.exists():
        for line in path.read_text().splitlines():
            m = re.match(r"^URIs:\s*(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+\s", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    raise BuildError(
        "no Debian mirror found in /etc/apt/sources.list.d/debian.sources (needed: a Debian mirror URI)"
    )


# -- Debian ---------------------------------------------------------------------------


def apt_options(scratch: Path, suite: str, mirror: str) -> list[str]:
    """apt options that read nothing of the machine's own apt and dpkg state.

    Besides the scratch sources, lists and cache: an empty dpkg status of its own
    (``Dir::State::status``; otherwise a model package installed on the machine at a version
    the suite lacks, e.g. nginx-common from bookworm-security, becomes apt's candidate and
    ``download`` fails with "Can't find a source to download version ...") and no pinning
    (``Dir::Etc::Preferences``/``PreferencesParts``: the machine's pins would pick versions).
    """
    (scratch / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (scratch / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = scratch / "sources.list"
    sources.write_text(f"deb {mirror} {suite} main\n")
    status = scratch / "status"
    status.write_text("")
    return [
        "-o",
        f"Dir::Etc::SourceList={sources}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={scratch / 'lists'}",
        "-o",
        f"Dir::Cache={scratch / 'cache'}",
        "-o",
        f"Dir::State::status={status}",
        "-o",
        "Dir::Etc::Preferences=/dev/null",
        "-o",
        "Dir::Etc::PreferencesParts=/dev/null",
        "-o",
        "APT::Sandbox::User=root",
    ]


def fetch_debs(scratch: Path, suite: str, mirror: str) -> dict[str, list[Path]]:
    opts = apt_options(scratch, suite, mirror)
    every = [p for group in DEBIAN_PACKAGES.values() for p in group]
    run(["apt-get", "-q", *opts, "update"], need=f"Debian {suite} package lists from {mirror}")
    debs = scratch / "debs"
    debs.mkdir(exist_ok=True)
    run(
        ["apt-get", "-q", *opts, "download", *every],
        cwd=debs,
        need=f"Debian {suite} packages {' '.join(every)} from {mirror}",
    )
    out: dict[str, list[Path]] = {}
    for group, names in DEBIAN_PACKAGES.items():
        out[group] = []
        for name in names:
            found = sorted(debs.glob(f"{name}_*.deb"))
            if not found:
                raise BuildError(f"apt-get download gave no {name} for {suite}")
            out[group].append(found[-1])
    return out


def deb_version(deb: Path) -> str:
    return (
        run(["dpkg-deb", "-f", str(deb), "Package", "Version"], need="dpkg-deb")
        .replace("\n", " ")
        .strip()
    )


def extract(deb: Path, root: Path) -> str:
    """Unpack ``deb`` into ``root``; return its postinst script ("" if none)."""
    run(["dpkg-deb", "-x", str(deb), str(root)], need="dpkg-deb to unpack Debian packages")
    proc = subprocess.run(
        ["dpkg-deb", "-I", str(deb), "postinst"], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else ""


def emulate_postinst(root: Path, postinst: str) -> None:
    """The steps of Debian's maintainer scripts that put config files in place.

    dovecot: `ucf` copies each CONFFILES entry from /usr/share/dovecot to /etc/dovecot,
    and the protocol packages write /usr/share/dovecot/protocols.d/*.protocol;
    nginx-common links sites-enabled/default. Users, keys and services are not made.
    """
    m = re.search(r'CONFFILES="([^"]*)"', postinst)
    if m and "/usr/share/dovecot/$conffile" in postinst:
        for name in m.group(1).split():
            src = root / "usr/share/dovecot" / name
            if src.is_file():
                dst = root / "etc/dovecot" / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    for m2 in re.finditer(r"echo '([^']*)' > (/usr/share/dovecot/protocols\.d/\S+)", postinst):
        _write(root, m2.group(2), m2.group(1) + "\n")
    for m3 in re.finditer(
        r"cat <<EOF > (/usr/share/dovecot/protocols\.d/\S+)\n(.*?)\nEOF", postinst, re.S
    ):
        _write(root, m3.group(1), m3.group(2) + "\n")
    if "ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default" in postinst:
        link = root / "etc/nginx/sites-enabled/default"
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/etc/nginx/sites-available/default")


def _write(root: Path, abspath: str, text: str) -> None:
    path = root / abspath.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- Haraka ---------------------------------------------------------------------------


def install_haraka(root: Path, version: str, scratch: Path) -> str:
    env = dict(
        os.environ, npm_config_cache=str(scratch / "npm-cache"), npm_config_update_notifier="false"
    )
    run(
        [
            "npm",
            "install",
            "-g",
            "--prefix",
            str(root / "usr"),
            "--omit=dev",
            "--omit=optional",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            f"Haraka@{version}",
        ],
        need=f"Haraka {version} and its dependencies from the npm registry",
        env=env,
    )
    haraka = root / "usr/lib/node_modules/Haraka"
    wanted = [f"{pkg}@{ver}" for pkg, ver in HARAKA_EXTRAS.items()]
    if not (haraka / "node_modules/haraka-plugin-redis/package.json").is_file():
        wanted.append("haraka-plugin-redis")
    run(
        [
            "npm",
            "install",
            "--prefix",
            str(haraka),
            "--omit=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--no-save",
            *wanted,
        ],
        need=f"{' '.join(wanted)} from the npm registry",
        env=env,
    )
    for instance in ("haraka-smtp", "haraka-submission"):
        # The way Haraka makes an instance dir: the real binary, the machine's node.
        run(
            ["node", str(haraka / "bin/haraka"), "-i", str(root / "opt" / instance)],
            need="node to run `haraka -i`",
        )
    versions = []
    for pkg in ("", "haraka-plugin-redis", *HARAKA_EXTRAS):
        meta = json.loads(
            ((haraka / "node_modules" / pkg) if pkg else haraka)
            .joinpath("package.json")
            .read_text()
        )
        versions.append(f"{meta['name']} {meta['version']}")
    return ", ".join(versions)


# -- our layer ------------------------------------------------------------------------


def _hash(text: str) -> str:
    return "\n".join(f"# {line}" if line else "#" for line in text.splitlines()) + "\n"


def _semi(text: str) -> str:
    return "\n".join(f"; {line}" if line else ";" for line in text.splitlines()) + "\n"


def our_layer(stage: dict[str, Path], suite: str) -> dict[str, str]:
    """path -> content of every file of the top layer (each starts with HEADER)."""
    head = f"{HEADER}.\nSee docs/poste.md of the patchkit project for the facts each setting comes from."
    files: dict[str, str] = {}
    files["usr/share/doc/patchkit-model/README"] = (
        f"{HEADER}.\n\n"
        "This layer is NOT part of poste.io. patchkit's model releases put real open-source\n"
        "components (Debian packages, Haraka from npm) at poste.io's paths; this layer adds\n"
        "the poste.io-specific settings that public sources describe, written by the\n"
        "patchkit project, so that patches for those settings can be tested offline:\n\n"
        "  rspamd   /etc/rspamd/local.d/{redis,statistic}.conf  (redis at 127.0.0.1:6379)\n"
        "  Haraka   /opt/haraka-{smtp,submission}/config/{http.ini,rspamd.ini,plugins}\n"
        "           (HTTP listeners 127.0.0.1:11380 / :11381), submission smtp.ini (587, 465)\n"
        "  dovecot  /etc/dovecot/conf.d/90-quota.conf  (quota-status on 127.0.0.1:13001)\n"
        "  nginx    /etc/nginx/sites-enabled.templates/{https,no-https}  (stand-ins written from\n"
        "           the facts POSTE.md records about poste.io 2.5.x's templates: port placeholders,\n"
        "           address-less listens, rspamd's UI and Haraka's HTTP listeners proxied to their\n"
        "           localhost ports behind `auth_request .auth`, the `.auth` subrequest to nginx\n"
        "           itself on localhost, the admin app on /var/run/php-fpm-admin.sock)\n"
        "  admin    /usr/share/patchkit-model/admin-auth-standin.js: a STAND-IN for the admin\n"
        "           app's auth endpoint (FastCGI on /var/run/php-fpm-admin.sock; 200 for the\n"
        "           session in MODEL_ADMIN_SESSION, 401 otherwise), not poste.io's admin app\n\n"
        "redis 6379 and rspamd 11332-11335 on localhost are Debian's own defaults.\n"
    )
    files["etc/rspamd/local.d/redis.conf"] = _hash(head) + 'servers = "127.0.0.1:6379";\n'
    files["etc/rspamd/local.d/statistic.conf"] = _hash(head) + (
        'classifier "bayes" {\n  backend = "redis";\n  servers = "127.0.0.1:6379";\n}\n'
    )
    # Dovecot 2.3 names the inet_listener address `address`, 2.4 `listen`.
    addr = "listen" if suite != "bookworm" else "address"
    debian_quota = (stage["dovecot"] / "etc/dovecot/conf.d/90-quota.conf").read_text()
    files["etc/dovecot/conf.d/90-quota.conf"] = (
        _hash(
            head + "\nDebian's file follows unchanged; the quota-status service at the end is ours."
        )
        + debian_quota
        + "\n"
        + _hash(HEADER)
        + (
            "service quota-status {\n"
            "  executable = quota-status -p postfix\n"
            "  inet_listener quota-status {\n"
            "    port = 13001\n"
            "    ssl = no\n"
            f"    {addr} = 127.0.0.1\n"
            "  }\n"
            "  client_limit = 1\n"
            "}\n"
        )
    )
    haraka = stage["haraka"]
    for instance, http_port in (("haraka-smtp", 11380), ("haraka-submission", 11381)):
        cfg = f"opt/{instance}/config"
        files[f"{cfg}/http.ini"] = _semi(head) + f"listen=127.0.0.1:{http_port}\n"
        files[f"{cfg}/rspamd.ini"] = rspamd_ini(haraka, suite, head)
        created = (haraka / cfg / "plugins").read_text()
        files[f"{cfg}/plugins"] = (
            _hash(head + "\nHaraka's list from `haraka -i` follows, then poste.io's additions.")
            + created
            + "\n"
            + _hash(HEADER)
            + "redis\nrspamd\n"
        )
    smtp_ini = (haraka / "opt/haraka-submission/config/smtp.ini").read_text()
    files["opt/haraka-submission/config/smtp.ini"] = (
        _semi(
            head
            + "\nThe listen line is ours (poste.io's submission ports); Haraka's smtp.ini from\n"
            "`haraka -i` follows it unchanged."
        )
        + "listen=[::0]:587,[::0]:465\n\n"
        + smtp_ini
    )
    for name, text in nginx_standins().items():
        files[f"etc/nginx/sites-enabled.templates/{name}"] = (
            _hash(
                head
                + "\nA MODEL STAND-IN for poste.io's own template, NOT poste.io's text: written"
                "\nfrom the facts POSTE.md records about poste.io 2.5.x's (servers, listens,"
                "\nlocations, proxy and fastcgi targets); __HTTP_PORT__/__HTTPS_PORT__ are"
                "\nreplaced at start (80/443). Where the facts are silent the stand-in says so."
            )
            + text
        )
    files[ADMIN_STANDIN_PATH] = ADMIN_STANDIN.read_text()
    return files


def rspamd_ini(haraka: Path, suite: str, head: str) -> str:
    """The Haraka instances' rspamd.ini, in one of the two shapes a release may have.

    model-trixie: an active `host=localhost` + `port=11333` (the shape POSTE.md records for
    2.2-2.3: "a line starting host"). model-bookworm: haraka-plugin-rspamd's own
    config/rspamd.ini from its npm package, unchanged (every setting a commented default,
    `;host = localhost`: the plugin then connects to localhost:11333 by its built-in
    default). The series must work on both (haraka-rspamd-socket.edit.toml).
    """
    if suite != "bookworm":
        return _semi(head) + "host=localhost\nport=11333\n"
    own = haraka / "usr/lib/node_modules/Haraka/node_modules/haraka-plugin-rspamd/config/rspamd.ini"
    return (
        _semi(
            head + "\nharaka-plugin-rspamd's own config/rspamd.ini follows unchanged (its commented"
            "\ndefaults: the plugin connects to localhost:11333)."
        )
        + own.read_text()
    )


# The stand-in templates' pieces. Facts (POSTE.md, "poste.io 2.5.x's own nginx templates"): the
# locations, their order, `auth_request .auth;`, the proxy and fastcgi targets (with
# rspamd's two spaces), the ws location's Upgrade headers, `.auth` being `internal` and
# proxying to nginx itself, the port-443 server's server_name. Not among the facts, so the
# stand-in's own choice: the directives' other lines (`proxy_pass_request_body off`, fastcgi
# parameters), the port-80 server's server_name (the same here) and how the port-443 server
# hands /admin/auth-ws to the admin app (here as the port-80 server does: `try_files $uri
# @app`).
_SERVER_NAME = "    server_name localhost mail.* discover.* autoconfig.*;\n"
_APP = (
    "    location @app {\n"
    "        fastcgi_pass unix:/var/run/php-fpm-admin.sock;\n"
    "        include /etc/nginx/fastcgi_params;\n"
    "        fastcgi_param SCRIPT_NAME /index.php;\n"
    "    }\n"
    "    location ~ \\.php$ {\n"
    "        fastcgi_pass unix:/var/run/php-fpm.sock;\n"
    "        include /etc/nginx/fastcgi_params;\n"
    "    }\n"
)
_PROTECTED = (
    "    location ~/admin/haraka/(\\d+)/ws {\n"
    "        auth_request .auth;\n"
    "        proxy_pass http://127.0.0.1:$1/;\n"
    "        proxy_http_version 1.1;\n"
    "        proxy_set_header Upgrade $http_upgrade;\n"
    '        proxy_set_header Connection "upgrade";\n'
    "    }\n"
    "    location ~/admin/haraka/(\\d+)/(.*)$ {\n"
    "        auth_request .auth;\n"
    "        proxy_pass http://127.0.0.1:$1/$2;\n"
    "    }\n"
    "    location /admin/rspamd/ {\n"
    "        auth_request .auth;\n"
    "        proxy_pass  http://127.0.0.1:11334/;\n"
    "    }\n"
)


def _auth(url: str) -> str:
    return (
        "    location .auth {\n"
        "        internal;\n"
        f"        proxy_pass {url};\n"
        "        proxy_pass_request_body off;\n"
        '        proxy_set_header Content-Length "";\n'
        "    }\n"
    )


def nginx_standins() -> dict[str, str]:
    """The model's stand-ins for poste.io's two nginx templates (facts and choices: above)."""
    http = "    listen __HTTP_PORT__;\n    listen [::]:__HTTP_PORT__;\n"
    https = "    listen __HTTPS_PORT__ ssl;\n    listen [::]:__HTTPS_PORT__ ssl;\n"
    app_entry = "    location / {\n        try_files $uri @app;\n    }\n"
    return {
        "https": (
            "server {\n"
            + http
            + _SERVER_NAME
            + "    location / {\n        return 301 https://$host$request_uri;\n    }\n"
            "    location /admin/webauthn/roundcube-login {\n        try_files $uri @app;\n    }\n"
            + _APP
            + "}\n\nserver {\n"
            + https
            + _SERVER_NAME
            + _PROTECTED
            + _auth("https://localhost:__HTTPS_PORT__/admin/auth-ws")
            + app_entry
            + _APP
            + "}\n"
        ),
        "no-https": (
            "server {\n"
            + http
            + _SERVER_NAME
            + _PROTECTED
            + _auth("http://localhost:__HTTP_PORT__/admin/auth-ws")
            + app_entry
            + _APP
            + "}\n"
        ),
    }


# -- OCI layout -----------------------------------------------------------------------


def _reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.mtime = 0
    ti.uname = ti.gname = ""
    return ti


def tar_dir(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = Path(dirpath) / name
                arc = str(full.relative_to(root))
                ti = _reset(tar.gettarinfo(str(full), arcname=arc))
                if ti.isreg():
                    with full.open("rb") as f:
                        tar.addfile(ti, f)
                else:
                    tar.addfile(ti)
    return buf.getvalue()


def tar_files(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(ti)
            data = files[path].encode()
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def write_layout(
    layout: Path, layers: list[tuple[str, bytes]], *, tag: str, labels: dict[str, str]
) -> str:
    if layout.exists():
        shutil.rmtree(layout)
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors, diff_ids, history = [], [], []
    for name, raw in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _blob(layout, packed),
                "size": len(packed),
                "annotations": {"org.opencontainers.image.title": name},
            }
        )
        history.append({"created_by": f"patchkit model: {name}"})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {"Labels": labels},
            "history": history,
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


# -- driver ---------------------------------------------------------------------------


def inputs_key(spec: ModelSpec) -> str:
    me = hashlib.sha256(Path(__file__).read_bytes() + ADMIN_STANDIN.read_bytes()).hexdigest()[:16]
    return json.dumps(
        {
            "spec": spec.__dict__,
            "packages": DEBIAN_PACKAGES,
            "haraka_extras": HARAKA_EXTRAS,
            "script": me,
            "layer": LAYER_VERSION,
        },
        sort_keys=True,
    )


def build_model(spec: ModelSpec, out: Path, *, log: Callable[[str], None]) -> dict[str, object]:
    mirror = debian_mirror()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"patchkit-{spec.label}-") as tmp:
        scratch = Path(tmp)
        log(f"{spec.label}: Debian {spec.suite} packages from {mirror}")
        debs = fetch_debs(scratch / "apt", spec.suite, mirror)
        stage: dict[str, Path] = {}
        components: dict[str, list[str]] = {}
        for group, files in debs.items():
            root = scratch / "stage" / group
            root.mkdir(parents=True)
            scripts = [extract(deb, root) for deb in files]
            for script in scripts:
                emulate_postinst(root, script)
            stage[group] = root
            components[group] = [deb_version(deb) for deb in files]
        log(f"{spec.label}: Haraka {spec.haraka} from npm")
        root = scratch / "stage" / "haraka"
        root.mkdir(parents=True)
        components["haraka"] = [install_haraka(root, spec.haraka, scratch)]
        stage["haraka"] = root
        ours = our_layer(stage, spec.suite)
        layers = [(group, tar_dir(stage[group])) for group in (*DEBIAN_PACKAGES, "haraka")]
        layers.append(("poste-settings (patchkit model layer, ours)", tar_files(ours)))
        log(f"{spec.label}: writing the OCI layout")
        layout = out / spec.label
        digest = write_layout(
            layout,
            layers,
            tag=spec.label,
            labels={
                "org.opencontainers.image.description": f"patchkit model release {spec.label}: {HEADER}",
            },
        )
    size = sum(f.stat().st_size for f in layout.rglob("*") if f.is_file())
    info: dict[str, object] = {
        "label": spec.label,
        "suite": spec.suite,
        "digest": digest,
        "source": f"oci:{layout}:{spec.label}",
        "components": components,
        "our_layer_files": sorted(ours),
        "bytes": size,
        "seconds": round(time.monotonic() - started, 1),
        "inputs": inputs_key(spec),
    }
    (out / f"{spec.label}.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parents[1] / ".cache" / "models"),
        help="where the layouts go (default: bench/.cache/models)",
    )
    p.add_argument("--only", choices=sorted(MODELS), action="append", help="build only this model")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        for label in args.only or sorted(MODELS):
            spec = MODELS[label]
            stamp = out / f"{label}.json"
            if not args.force and stamp.exists() and (out / label / "index.json").exists():
                info = json.loads(stamp.read_text())
                if info.get("inputs") == inputs_key(spec):
                    log(f"{label}: cached ({info['digest']})")
                    continue
            info = build_model(spec, out, log=log)
            log(
                f"{label}: {info['digest']} ({int(info['bytes']) // 1_000_000} MB, {info['seconds']}s)"
            )  # type: ignore[call-overload]
    except BuildError as e:
        print(f"model build: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
