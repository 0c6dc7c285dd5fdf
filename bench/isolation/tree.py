#!/usr/bin/env python3
"""Live isolation proof, engine "none": the real daemons of a model release, in a namespace.

    python bench/isolation/run.py --engine none [--model model-bookworm] [--json]

(The mode `.ci/run` has run since the start; `--engine podman` is live.py.)

For the UNPATCHED and the PATCHED model tree (tests/poste/modeltree.py materialises
both from the patchkit store; the patched one is then run through the start-up
script with the hostname mail.isolation.test -> 192.0.2.10), this starts, inside a
network namespace it creates (a veth pair whose both ends live in the namespace:
192.0.2.10 = the "hostname IP", 192.0.2.20 = a client; TEST-NET-1, never routed out)
and a private mount namespace (tmpfs on /run, so sockets never touch the host):

  redis-server (Debian, the model's binary), rspamd (Debian, the model's binary and
  /etc/rspamd, run like Debian's unit: -f -u _rspamd -g _rspamd), dovecot (Debian, the
  model's binary and /etc/dovecot, -F, log to stderr), nginx (Debian, the model's
  binary, the no-https template + sites-enabled), Haraka smtp + submission instances
  (npm, the model's install, run by this machine's node)

The mount namespace shows the model at its real paths (read-only overlays of the model's
/etc and /usr/{bin,sbin,lib,share} over the host's; a top /etc layer adds the users
_rspamd/dovecot/dovenull and a test certificate for dovecot; /var/log and /var/lib come
from the work dir). Nothing is mounted, and no user added, outside that namespace.

and then checks with `ss -ltnp` / `ss -lxp` inside the namespace: no TCP listener on
loopback or a wildcard on any port POSTE.md names; public ports only on 192.0.2.10;
the unix sockets exist with their modes (rspamd normal/proxy 0660, controller 0666 _rspamd, dovecot
quota-status 0660); redis answers PING and rspamd's controller answers `rspamc stat`
over their sockets; Haraka takes a test message over SMTP from 192.0.2.20; the admin
locations behind nginx's auth_request (rspamd's and both Haraka web UIs, the websockets) answer
with the session the model's auth stand-in accepts and are refused (401/403) without it. The
unpatched tree must show rspamd on localhost 11332-11334 and dovecot on 127.0.0.1:13001, and
serve the same protected pages (its auth subrequest goes over loopback). Exit 0 when the patched tree passes
AND the unpatched one shows forbidden listeners (so the check can fail); 1 otherwise;
77 (skip) when not root or namespaces are unavailable.
Needs root, iproute2, util-linux (unshare, nsenter), ss, node, and the model built
(python bench/model/build.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.poste import modeltree  # noqa: E402

# One directory per run: two runs at once (two engineers, CI) must not share trees.
CACHE = REPO / "bench" / ".cache" / "isolation" / f"tree-{os.getpid()}"
SCRIPT = REPO / "tests" / "poste" / "startup" / "25-bind-hostname.sh"
HOST_IP, CLIENT_IP, FQDN = "192.0.2.10", "192.0.2.20", "mail.isolation.test"
PUBLIC = {25, 80, 110, 143, 443, 465, 587, 993, 995, 4190}
INTERNAL = {6379, 11332, 11333, 11334, 11335, 11380, 11381, 13001}
RSPAMD_PORTS = {11332: "rspamd_proxy", 11333: "normal", 11334: "controller", 11335: "fuzzy"}
# The rspamd workers' sockets and their modes (patches/rspamd-worker-sockets/): the
# controller is 0666 because nginx's workers (www-data) proxy the web UI to it.
RSPAMD_SOCKETS = {
    "/var/run/rspamd/proxy.sock": "660",
    "/var/run/rspamd/normal.sock": "660",
    "/var/run/rspamd/controller.sock": "666",
}
QUOTA_SOCKET = "/var/run/dovecot/quota-status"
# Users the daemons run as, present only inside the mount namespace (an /etc overlay
# holds copies of the host's passwd/group with these lines added; the host's are untouched).
NS_USERS = {"_rspamd": 4901, "dovecot": 4902, "dovenull": 4903}
LOOPBACK_OR_WILDCARD = re.compile(r"^(127\.|\[?::1\]?$|0\.0\.0\.0$|\*$|\[?::\]?$)")
LABTOOLS = Path(__file__).resolve().with_name("labtools.py")
ADMIN_STANDIN = "usr/share/patchkit-model/admin-auth-standin.js"  # in the model's own layer
SESSION = secrets.token_hex(16)  # the session the auth stand-in lets pass, one per run


def sh(*cmd: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, **kw)  # type: ignore[call-overload,no-any-return]


class Namespace:
    """A network namespace plus a holder process with a private mount namespace (tmpfs /run)."""

    def __init__(self, name: str, root: Path, work: Path) -> None:
        self.name, self.root, self.work = name, root, work
        self.holder: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Namespace:
        sh("ip", "netns", "add", self.name)
        n = ["ip", "-n", self.name]
        sh(*n, "link", "set", "lo", "up")
        sh(*n, "link", "add", "pkiso0", "type", "veth", "peer", "name", "pkiso1")
        sh(*n, "addr", "add", f"{HOST_IP}/24", "dev", "pkiso0")
        sh(*n, "addr", "add", f"{CLIENT_IP}/24", "dev", "pkiso1")
        sh(*n, "link", "set", "pkiso0", "up")
        sh(*n, "link", "set", "pkiso1", "up")
        self.holder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                self.mount_script() + "exec sleep 3600",
            ]
        )
        for _ in range(50):
            if self._holder_ready():
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"isolation: the namespace's mounts failed: {self.mount_script()}")
        return self

    def mount_script(self) -> str:
        """Mounts made in the private mount namespace only: the model release appears at its
        real paths (read-only overlays: model over host for /etc and /usr/{bin,sbin,lib,share},
        a top /etc layer with the namespace's passwd/group and test certificates), /var/log and
        /var/lib come from the work dir, /run is a tmpfs."""
        top = self.work / "etc-top"
        cmds = [
            "set -e",
            "mount -t tmpfs tmpfs /run",
            "mkdir -p /run/redis /run/haraka /run/rspamd /run/dovecot",
            f"chown {NS_USERS['_rspamd']}:{NS_USERS['_rspamd']} /run/rspamd",
            f"mount -t overlay pkiso-etc -o lowerdir={top}:{self.root}/etc:/etc /etc",
        ]
        for d in ("bin", "sbin", "lib", "share"):
            if (self.root / "usr" / d).is_dir():
                cmds.append(
                    f"mount -t overlay pkiso-{d} -o lowerdir={self.root}/usr/{d}:/usr/{d} /usr/{d}"
                )
        cmds += [
            f"mount --bind {self.work}/var-log /var/log",
            f"mount --bind {self.work}/var-lib /var/lib",
            "touch /run/pkiso-ready",
        ]
        return " && ".join(cmds) + " && "

    def _holder_ready(self) -> bool:
        pid = self.holder_pid()
        if pid is None:
            return False
        r = sh("nsenter", "-t", str(pid), "-m", "sh", "-c", "test -e /run/pkiso-ready", check=False)
        return r.returncode == 0

    def holder_pid(self) -> int | None:
        # ip netns exec, unshare (no --fork) and sh all exec: the Popen pid is the holder.
        return self.holder.pid if self.holder is not None else None

    def enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder_pid()), "-m", "-n", "--"]

    def start(
        self,
        cmd: list[str],
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        f = log.open("wb")
        p = subprocess.Popen(
            self.enter() + cmd,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        f.close()
        self.procs.append(p)
        return p

    def run(self, cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return sh(*self.enter(), *cmd, check=False, input=stdin)

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if self.holder is not None:
            self.holder.terminate()
            self.holder.wait(timeout=10)
        sh("ip", "netns", "del", self.name, check=False)


def prepare(model: str, variant: str) -> Path:
    root = CACHE / model / variant
    if root.exists():
        shutil.rmtree(root)
    modeltree.materialise(model, root, patched=(variant == "patched"))
    if variant == "patched":
        stubs = CACHE / model / "stubs"
        stubs.mkdir(parents=True, exist_ok=True)
        (stubs / "hostname").write_text(f"#!/bin/sh\necho {FQDN}\n")
        (stubs / "getent").write_text(f"#!/bin/sh\nprintf '%s STREAM {FQDN}\\n' {HOST_IP}\n")
        for f in stubs.iterdir():
            f.chmod(0o755)
        env = dict(os.environ, PATCHKIT_ROOT=str(root), PATH=f"{stubs}:{os.environ['PATH']}")
        r = sh("sh", str(root / "etc/cont-init.d/25-bind-hostname.sh"), env=env, check=False)
        if r.returncode != 0:
            raise SystemExit(f"start-up script failed: {r.stderr.strip()}")
    return root


def namespace_files(root: Path, work: Path) -> None:
    """What the mount namespace shows on top of the model (see Namespace.mount_script)."""
    top = work / "etc-top"
    (top / "dovecot" / "private").mkdir(parents=True)
    passwd, group = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()
    for user, uid in NS_USERS.items():
        passwd += f"{user}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"
        group += f"{user}:x:{uid}:\n"
    (top / "passwd").write_text(passwd)
    (top / "group").write_text(group)
    # Test-only certificate where Debian's postinst would make one (dovecot's 10-ssl.conf
    # reads /etc/dovecot/private/dovecot.{pem,key}; the model has no maintainer scripts run).
    sh(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={FQDN}",
        "-keyout",
        str(top / "dovecot/private/dovecot.key"),
        "-out",
        str(top / "dovecot/private/dovecot.pem"),
    )
    rspamd_uid = NS_USERS["_rspamd"]
    for d in ("var-log/rspamd", "var-lib/rspamd", "var-lib/dovecot", "var-log/nginx"):
        (work / d).mkdir(parents=True, exist_ok=True)
        if "rspamd" in d:
            os.chown(work / d, rspamd_uid, rspamd_uid)
    # Only dovecot's log destination changes (syslog is not reachable in the namespace).
    (work / "dovecot.conf").write_text(
        "!include /etc/dovecot/dovecot.conf\nlog_path = /dev/stderr\n"
    )


def nginx_conf(root: Path, work: Path) -> Path:
    text = (root / "etc/nginx/nginx.conf").read_text()
    # The no-https template rendered as poste.io's init renders it: its port placeholders
    # (the model's stand-ins hold poste.io's) replaced by 80 and 443.
    template = (root / "etc/nginx/sites-enabled.templates/no-https").read_text()
    site = work / "site-no-https"
    site.write_text(template.replace("__HTTP_PORT__", "80").replace("__HTTPS_PORT__", "443"))
    sites = [site]
    enabled = root / "etc/nginx/sites-enabled"
    for link in sorted(enabled.iterdir()) if enabled.is_dir() else []:
        target = os.readlink(link) if link.is_symlink() else str(link)
        sites.append(root / target.lstrip("/") if target.startswith("/") else link)
    text = text.replace("include /etc/nginx/sites-enabled/*;", "@SITES@")
    text = text.replace("include /etc/nginx/modules-enabled/*.conf;", "")
    text = text.replace("/etc/nginx/", f"{root}/etc/nginx/").replace("/var/log/nginx/", f"{work}/")
    text = text.replace("@SITES@", "".join(f"include {s};" for s in sites))
    text = text.replace("pid /run/nginx.pid;", f"pid {work}/nginx.pid;").replace(
        "user www-data;", ""
    )
    temps = "".join(
        f"{k}_temp_path {work}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {", "http {" + temps, 1)
    conf = work / "nginx.conf"
    conf.write_text(text)
    return conf


def listeners(ns: Namespace) -> list[dict[str, str]]:
    out = []
    for line in ns.run(["ss", "-ltnpH"]).stdout.splitlines():
        cols = line.split()
        local, proc = cols[3], " ".join(cols[5:])
        addr, _, port = local.rpartition(":")
        name = re.search(r'\(\("([^"]+)"', proc)
        out.append(
            {"address": addr.split("%")[0], "port": port, "process": name.group(1) if name else "?"}
        )
    return out


def unix_sockets(ns: Namespace) -> list[dict[str, str]]:
    out = []
    for line in ns.run(["ss", "-lxpH"]).stdout.splitlines():
        cols = line.split()
        path = cols[4]
        if not path.startswith("/run") and not path.startswith("/var/run"):
            continue
        mode = ns.run(["stat", "-c", "%a %U:%G", path]).stdout.strip()
        name = re.search(r'\(\("([^"]+)"', line)
        out.append({"path": path, "mode": mode, "process": name.group(1) if name else "?"})
    return out


def wait_port(ns: Namespace, port: int, timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(lst["port"] == str(port) for lst in listeners(ns)):
            return True
        time.sleep(0.3)
    return False


def wait_rspamd(ns: Namespace, timeout: float = 60) -> bool:
    """rspamd's workers are up: the controller listens (TCP 11334 or its unix socket)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (
            any(x["port"] == "11334" for x in listeners(ns))
            or ns.run(["test", "-S", "/run/rspamd/controller.sock"]).returncode == 0
        ):
            return True
        time.sleep(0.5)
    return False


def smtp_probe(ns: Namespace, root: Path) -> str:
    """One message over SMTP from the client address; returns the transcript's outcome."""
    rcpt_host = (root / "opt/haraka-smtp/config/host_list").read_text().split()[0]
    code = (
        "import smtplib,sys\n"
        f"s=smtplib.SMTP('{HOST_IP}',25,source_address=('{CLIENT_IP}',0),timeout=90)\n"
        "out=[]\n"
        "out.append(str(s.ehlo('client.isolation.test')[0]))\n"
        # The null sender: mail_from.is_resolvable needs DNS (none in the namespace) for others.
        # haraka-plugin-rspamd 1.6.1 on Haraka 3.0.4 fails on every sender here ("Invalid
        # character in header content [From]": it sends txn.mail_from.address, a method in
        # 3.0.4, as a string), so the message never reaches rspamd (docs/isolation-live.md).
        "out.append(str(s.mail('<>')[0]))\n"
        f"out.append(str(s.rcpt('<postmaster@{rcpt_host}>')[0]))\n"
        "try:\n"
        "    r=s.data(b'Subject: isolation probe\\r\\n\\r\\nhello\\r\\n'); out.append(str(r[0])+' '+r[1].decode())\n"
        "except smtplib.SMTPResponseException as e:\n"
        "    out.append(str(e.smtp_code)+' '+e.smtp_error.decode())\n"
        "print(' / '.join(out)); s.quit()\n"
    )
    r = ns.run([sys.executable, "-c", code])
    return (
        (r.stdout or r.stderr).strip().splitlines()[-1]
        if (r.stdout or r.stderr).strip()
        else "no output"
    )


def protected_checks(ns: Namespace) -> list[dict[str, object]]:
    """poste.io's protected admin locations through nginx (the no-https template: http on
    port 80) on the hostname's address, with the session and without (labtools.PROTECTED).
    Unpatched, nginx listens on every address, so the same request works there too."""
    sys.path.insert(0, str(LABTOOLS.parent))
    import labtools

    items = labtools.protected_probes([HOST_IP], FQDN, tls=False, session=SESSION)
    r = ns.run([sys.executable, str(LABTOOLS), "probe"], stdin=json.dumps(items))
    try:
        answered = json.loads(r.stdout)
    except ValueError:
        answered = [{**x, "result": {"ok": False, "error": r.stderr[-200:]}} for x in items]
    return [labtools.judge_protected(x) for x in answered]


def run_variant(model: str, variant: str, log: list[str]) -> dict[str, object]:
    root = prepare(model, variant)
    work = CACHE / model / f"{variant}-run"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    result: dict[str, object] = {"variant": variant}
    namespace_files(root, work)
    with Namespace(f"pk-iso-{os.getpid()}-{variant}", root, work) as ns:
        redis = root / "usr/bin/redis-server"
        # The release's redis.conf with only its file locations moved into the work dir
        # (redis chdirs to `dir` while reading, before command-line overrides apply).
        conf = re.sub(
            r"(?m)^(dir|logfile|pidfile|daemonize) .*$",
            "",
            (root / "etc/redis/redis.conf").read_text(),
        )
        (work / "redis.conf").write_text(conf + f'\ndir {work}\nlogfile ""\ndaemonize no\n')
        ns.start([str(redis), str(work / "redis.conf")], work / "redis.log")
        # rspamd as Debian's unit runs it (the model's binary, /etc/rspamd, /usr/share/rspamd
        # and /usr/lib/rspamd at their real paths through the namespace's overlays).
        ns.start(
            [
                "/usr/bin/rspamd",
                "-f",
                "-u",
                "_rspamd",
                "-g",
                "_rspamd",
                "-c",
                "/etc/rspamd/rspamd.conf",
            ],
            work / "rspamd.out",
        )
        # dovecot in the foreground as root (it drops to dovecot/dovenull itself); only the
        # log goes to stderr (work/dovecot.conf includes the release's dovecot.conf).
        ns.start(
            ["/usr/sbin/dovecot", "-F", "-c", str(work / "dovecot.conf")], work / "dovecot.log"
        )
        ns.start(
            [
                str(root / "usr/sbin/nginx"),
                "-p",
                str(work),
                "-c",
                str(nginx_conf(root, work)),
                "-e",
                str(work / "nginx-error.log"),
                "-g",
                "daemon off;",
            ],
            work / "nginx.log",
        )
        node_haraka = root / "usr/lib/node_modules/Haraka/bin/haraka"
        for inst in ("haraka-smtp", "haraka-submission"):
            # Test-only self-signed certificate: the model has none, and Haraka will not
            # listen on 465 without one (poste.io makes its own at first start).
            cfg = root / "opt" / inst / "config"
            if not (cfg / "tls_cert.pem").exists():
                sh(
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    f"/CN={FQDN}",
                    "-keyout",
                    str(cfg / "tls_key.pem"),
                    "-out",
                    str(cfg / "tls_cert.pem"),
                    check=False,
                )
            # Test-only: the probe comes from 192.0.2.20, an address of the namespace itself
            # (local) and in TEST-NET-1 (private to Haraka); haraka-plugin-rspamd skips both
            # by default, so without this the message would never reach rspamd.
            ini = cfg / "rspamd.ini"
            ini.write_text(
                ini.read_text()
                + "\n; bench/isolation (test only)\n[check]\nprivate_ip=true\nlocal_ip=true\n"
            )
        for inst in ("haraka-smtp", "haraka-submission"):
            ns.start(
                ["node", str(node_haraka), "-c", str(root / "opt" / inst)], work / f"{inst}.log"
            )
        # The model's stand-in for the admin app's auth endpoint (FastCGI on the admin app's
        # php-fpm socket; NOT poste.io's admin app), letting the proof's session pass.
        ns.start(
            ["node", str(root / ADMIN_STANDIN), "/var/run/php-fpm-admin.sock"],
            work / "admin-auth.log",
            env=dict(os.environ, MODEL_ADMIN_SESSION=SESSION),
        )
        ready = {p: wait_port(ns, p) for p in (25, 80)}
        ready["rspamd"] = wait_rspamd(ns)
        time.sleep(3)  # the submission instance and redis clients settle
        tcp = listeners(ns)
        unix = unix_sockets(ns)
        ports = PUBLIC | INTERNAL
        forbidden = [
            x for x in tcp if int(x["port"]) in ports and LOOPBACK_OR_WILDCARD.match(x["address"])
        ]
        public_elsewhere = [x for x in tcp if int(x["port"]) in PUBLIC and x["address"] != HOST_IP]
        ping = ns.run([str(root / "usr/bin/redis-cli"), "-s", "/run/redis/redis.sock", "ping"])
        clients = ns.run(
            [str(root / "usr/bin/redis-cli"), "-s", "/run/redis/redis.sock", "client", "list"]
        )
        result["redis_clients_over_socket"] = sum(
            1
            for ln in clients.stdout.splitlines()
            if "laddr=/var/run/redis/redis.sock" in ln and "cmd=client" not in ln
        )
        controller = (
            "/var/run/rspamd/controller.sock" if variant == "patched" else "localhost:11334"
        )
        stat = ns.run(["/usr/bin/rspamc", "-h", controller, "stat"])
        result["rspamc_stat"] = {
            "host": controller,
            "rc": stat.returncode,
            "first_line": (stat.stdout or stat.stderr).strip().splitlines()[:1],
        }
        result.update(
            {
                "tcp": tcp,
                "unix": unix,
                "forbidden": forbidden,
                "public_not_on_hostname_ip": public_elsewhere,
                "redis_socket_ping": (ping.stdout or ping.stderr).strip(),
                "ready": ready,
                "smtp": smtp_probe(ns, root) if ready[25] else "port 25 not listening",
                "protected": protected_checks(ns),
            }
        )
        result["nginx_errors"] = [
            ln.split("] ", 1)[-1][:220]
            for log_file in (work / "error.log", work / "nginx-error.log")
            if log_file.exists()
            for ln in log_file.read_text(errors="replace").splitlines()
            if re.search(r"\[(error|crit|alert|emerg)\]", ln)
        ][-6:]
        result["admin_auth_requests"] = [
            json.loads(ln)
            for ln in (work / "admin-auth.log").read_text(errors="replace").splitlines()
            if ln.startswith('{"uri"')
        ][-4:]
        time.sleep(1)
        logs = (work / "haraka-smtp.log").read_text(errors="replace")
        result["haraka_log"] = [
            ln
            for ln in logs.splitlines()
            if re.search(
                r"redis|rspamd|outbound_ip_helo|local_own|queue|smtp_forward|EADDR|Error", ln, re.I
            )
        ][-14:]
        rlog = work / "var-log/rspamd/rspamd.log"
        rtext = (
            rlog.read_text(errors="replace")
            if rlog.exists()
            else (work / "rspamd.out").read_text(errors="replace")
        )
        # rspamd's task log line for the probe message: Haraka's rspamd plugin reached it.
        result["rspamd_task_log"] = [
            ln for ln in rtext.splitlines() if "rspamd_task_write_log" in ln
        ][-2:]
        denied = [ln for ln in rtext.splitlines() if "cannot connect to redis" in ln]
        result["rspamd_redis_errors"] = {
            "count": len(denied),
            "example": denied[-1].split("; ")[-1] if denied else "",
        }
        result["rspamd_listen_log"] = [
            ln.split("; ")[-1]
            for ln in rtext.splitlines()
            if "rspamd_fork_worker" in ln or "is disabled in the config" in ln
        ]
        result["dovecot_log"] = (
            (work / "dovecot.log").read_text(errors="replace").strip().splitlines()[-6:]
        )
    log.append(f"== {model} {variant}")
    for x in result["tcp"]:  # type: ignore[attr-defined]
        log.append(f"  tcp  {x['address']}:{x['port']}  {x['process']}")
    internal = 0
    for x in result["unix"]:  # type: ignore[attr-defined]
        if "/dovecot/" in x["path"] and not x["path"].endswith("/quota-status"):
            internal += 1  # dovecot's own inter-process sockets (all in the --json output)
            continue
        log.append(f"  unix {x['path']}  {x['mode']}  {x['process']}")
    if internal:
        log.append(f"  unix (+ {internal} dovecot-internal sockets under /run/dovecot)")
    log.append(
        f"  forbidden: {len(result['forbidden'])}  "
        + ", ".join(  # type: ignore[arg-type]
            f"{x['address']}:{x['port']} ({x['process']})" for x in result["forbidden"]
        )
    )  # type: ignore[attr-defined]
    log.append(f"  public ports not on {HOST_IP}: {len(result['public_not_on_hostname_ip'])}")  # type: ignore[arg-type]
    log.append(f"  redis PING over /run/redis/redis.sock: {result['redis_socket_ping']}")
    log.append(
        f"  redis clients connected over the socket (Haraka): {result.get('redis_clients_over_socket', 0)}"
    )
    rc = result["rspamc_stat"]
    log.append(f"  rspamc -h {rc['host']} stat: rc={rc['rc']} {' '.join(rc['first_line'])}")  # type: ignore[index]
    for ln in result["rspamd_listen_log"]:  # type: ignore[attr-defined]
        if "listen on" in ln or "skip spawning" in ln:
            log.append(f"  rspamd log: {ln[:150]}")
    re_err = result["rspamd_redis_errors"]
    log.append(f"  rspamd -> redis connection errors: {re_err['count']}  {re_err['example'][:150]}")  # type: ignore[index]
    for ln in result["dovecot_log"]:  # type: ignore[attr-defined]
        log.append(f"  dovecot log: {ln[:150]}")
    log.append(f"  SMTP probe from {CLIENT_IP}: {result['smtp']}")
    for x in result["protected"]:  # type: ignore[attr-defined]
        log.append(
            f"  protected {x['location']:<28} {x['path']:<24} "
            f"{'with' if x['session'] else 'without'} session: {x['status'][:36]} "
            f"{x['answered_by'][:30]}  {'ok' if x['ok'] else 'FAIL'}"
        )
    for ln in result["nginx_errors"]:  # type: ignore[attr-defined]
        log.append(f"  nginx error log: {ln[:170]}")
    for rec in result["admin_auth_requests"][-1:]:  # type: ignore[index]
        log.append(f"  admin auth stand-in was asked: {json.dumps(rec)[:170]}")
    for ln in result["rspamd_task_log"]:  # type: ignore[attr-defined]
        log.append(
            f"  rspamd task log (the probe, via Haraka's rspamd plugin): {ln.split('; ')[-1][:200]}"
        )
    for ln in result["haraka_log"]:  # type: ignore[attr-defined]
        log.append(f"  haraka-smtp log: {ln[:160]}")
    return result


def rspamd_sockets_ok(result: dict[str, object]) -> bool:
    """The rspamd workers' unix sockets exist with their modes (RSPAMD_SOCKETS), owned by _rspamd, and rspamd has no TCP listener."""
    socks = {x["path"]: x["mode"] for x in result["unix"] if x["process"] == "rspamd"}  # type: ignore[attr-defined]
    no_tcp = not any(x["process"] == "rspamd" for x in result["tcp"])  # type: ignore[attr-defined]
    return no_tcp and all(
        socks.get(p, "").startswith(f"{mode} _rspamd") for p, mode in RSPAMD_SOCKETS.items()
    )


def main(model: str, as_json: bool) -> int:
    args = argparse.Namespace(model=model, json=as_json)
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None:
        print(
            "isolation: skipped: needs root, iproute2 and util-linux (network namespaces)",
            file=sys.stderr,
        )
        return 77
    if args.model not in modeltree.available_models():
        print(
            f"isolation: skipped: {args.model} not built (python bench/model/build.py)",
            file=sys.stderr,
        )
        return 77
    log: list[str] = []
    try:
        results = {v: run_variant(args.model, v, log) for v in ("unpatched", "patched")}
    finally:
        shutil.rmtree(CACHE, ignore_errors=True)
    patched, unpatched = results["patched"], results["unpatched"]
    verdict = {
        "patched_no_forbidden": not patched["forbidden"],
        "patched_public_only_on_hostname_ip": not patched["public_not_on_hostname_ip"]
        and any(int(x["port"]) in PUBLIC for x in patched["tcp"]),  # type: ignore[attr-defined]
        "patched_redis_socket_answers": patched["redis_socket_ping"] == "PONG",
        "patched_rspamd_on_sockets": rspamd_sockets_ok(patched),
        "patched_rspamc_over_socket": patched["rspamc_stat"]["rc"] == 0,  # type: ignore[index]
        # rspamd's own redis clients (statistics, history) reach redis over its socket.
        "patched_rspamd_reaches_redis": patched["rspamd_redis_errors"]["count"] == 0,  # type: ignore[index]
        "patched_dovecot_quota_socket": any(
            x["path"].replace("/var/run/", "/run/") == QUOTA_SOCKET.replace("/var/run/", "/run/")
            and x["mode"].startswith("660 ")
            for x in patched["unix"]
        ),  # type: ignore[attr-defined]
        "patched_protected_pages_with_session": all(
            x["ok"]
            for x in patched["protected"]
            if x["session"]  # type: ignore[attr-defined]
        ),
        "patched_protected_pages_refused_without_session": all(
            x["ok"]
            for x in patched["protected"]
            if not x["session"]  # type: ignore[attr-defined]
        ),
        "patched_haraka_websocket_upgrade": all(
            x["ok"]
            for x in patched["protected"]  # type: ignore[attr-defined]
            if "websocket" in x["location"]
        ),
        "unpatched_shows_forbidden": bool(unpatched["forbidden"]),
        "unpatched_protected_pages_work_through_loopback": bool(unpatched["protected"])
        and all(
            x["ok"]
            for x in unpatched["protected"]  # type: ignore[attr-defined]
        ),
        "unpatched_rspamd_on_localhost_tcp": {11332, 11333, 11334}
        <= {int(x["port"]) for x in unpatched["forbidden"] if x["process"] == "rspamd"},  # type: ignore[attr-defined]
        "unpatched_dovecot_quota_on_13001": any(
            x["port"] == "13001" and x["process"] == "dovecot" for x in unpatched["forbidden"]
        ),  # type: ignore[attr-defined]
    }
    log.append("verdict: " + ", ".join(f"{k}={v}" for k, v in verdict.items()))
    if args.json:
        print(json.dumps({"model": args.model, "results": results, "verdict": verdict}, indent=2))
    print("\n".join(log), file=sys.stderr if args.json else sys.stdout)
    return 0 if all(verdict.values()) else 1
