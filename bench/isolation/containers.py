"""The live proof's containers and what is measured in them: processes, listeners,
answers on the unix sockets, the protected pages, a kill and restart."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import DAEMONS, HARAKA_HTTP_SOCKETS, PODMAN, SESSION, SINK, Lab, Spec, Teardown, sh

# -- containers -----------------------------------------------------------------------


@dataclass(slots=True)
class Container:
    spec: Spec
    variant: str
    name: str
    pid: int = 0
    mntns: str = ""

    @property
    def root(self) -> Path:
        return Path(f"/proc/{self.pid}/root")

    def path(self, path: str) -> Path:
        """``path`` inside the container, seen from here: its symlinks (Debian's /var/run ->
        /run) resolved against the container's root, not ours."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            here = self.root.joinpath(*done, part)
            if here.is_symlink() and hops < 20:
                hops += 1
                target = os.readlink(here)
                parts = [p for p in target.split("/") if p] + parts
                if target.startswith("/"):
                    done = []
                continue
            if part == "..":
                done = done[:-1]
            elif part != ".":
                done.append(part)
        return self.root.joinpath(*done)

    def read(self, path: str, tail: int = 0) -> str:
        try:
            text = self.path(path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-tail:]) if tail else text


def start_container(
    lab: Lab, spec: Spec, variant: str, image: str, teardown: Teardown
) -> Container:
    name = f"pkiso-{os.getpid()}-{variant}-{spec.key}"
    data = lab.work / f"data-{variant}-{spec.key}"
    data.mkdir()
    if spec.outbound_hosts:
        (data / "outbound-hosts.yml").write_text(spec.outbound_hosts)
    env = {
        "MODEL_QUEUE_TARGET": f"{SINK}:25",
        "MODEL_RSPAMD_CHECK_PRIVATE": "1",
        "MODEL_ADMIN_SESSION": SESSION,
        **spec.env,
    }
    cmd = [
        *PODMAN,
        "run",
        "-d",
        "--name",
        name,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--network",
        f"ns:/run/netns/{lab.host}",
        "--hostname",
        spec.hostname,
        "-v",
        f"{data}:/data",
        "-v",
        f"{lab.work / 'hosts'}:/etc/hosts:ro",
        "-v",
        f"{lab.work / 'resolv.conf'}:/etc/resolv.conf:ro",
        *[x for k, v in env.items() for x in ("-e", f"{k}={v}")],
        image,
    ]
    teardown.add(
        f"container {name}", lambda: sh([*PODMAN, "rm", "-f", "-t", "2", name], check=False)
    )
    sh(cmd, timeout=300)
    c = Container(spec=spec, variant=variant, name=name)
    c.pid = int(sh([*PODMAN, "inspect", "--format", "{{.State.Pid}}", name]).stdout.strip() or 0)
    c.mntns = os.readlink(f"/proc/{c.pid}/ns/mnt") if c.pid else ""
    return c


def pid_owner(pid: int, containers: list[Container], host_pids: set[int]) -> str:
    if pid in host_pids:
        return "host"
    try:
        ns = os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return "?"
    for c in containers:
        if c.mntns and ns == c.mntns:
            return c.spec.key
    return "?"


def container_pids(c: Container) -> dict[int, int]:
    """{pid inside the container: pid on the host} for every process of ``c``."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/mnt") != c.mntns:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        if m:
            out[int(m.group(1).split()[-1])] = int(entry.name)
    return out


def daemons_up(c: Container) -> dict[str, bool]:
    """Each daemon model-init started: is its process still there (and not a zombie)?"""
    logs = sh([*PODMAN, "logs", c.name], check=False)
    started = dict(re.findall(r"started (\S+) \(pid (\d+)\)", logs.stdout + logs.stderr))
    pids = container_pids(c)
    up: dict[str, bool] = {}
    for name in DAEMONS:
        host_pid = pids.get(int(started.get(name, 0) or 0))
        alive = False
        if host_pid:
            with contextlib.suppress(OSError):
                alive = " Z " not in Path(f"/proc/{host_pid}/stat").read_text().split(")", 1)[1][:4]
        up[name] = alive
    return up


def _ss_owners(line: str, containers: list[Container], host_pids: set[int]) -> tuple[str, str]:
    """The process names and the owners (container or host) of an `ss -p` line, each
    comma-joined; owner "?" when no pid is shown."""
    pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
    procs = sorted(set(re.findall(r'\("([^"]+)"', line)))
    owners = sorted({pid_owner(p, containers, host_pids) for p in pids}) or ["?"]
    return ",".join(procs), ",".join(owners)


def tcp_listeners(
    lab: Lab, containers: list[Container], host_pids: set[int]
) -> list[dict[str, Any]]:
    out = []
    for line in lab.ss("-ltnpH"):
        cols = line.split()
        if len(cols) < 4:
            continue
        addr, _, port = cols[3].rpartition(":")
        addr = addr.strip("[]").split("%")[0]
        process, owner = _ss_owners(line, containers, host_pids)
        out.append({"address": addr, "port": int(port), "process": process, "owner": owner})
    return sorted(out, key=lambda x: (x["owner"], x["port"], x["address"]))


def unix_listeners(
    lab: Lab, containers: list[Container], host_pids: set[int]
) -> list[dict[str, Any]]:
    out = []
    for line in lab.ss("-lxpH"):
        cols = line.split()
        if len(cols) < 5:
            continue
        # As bound: Haraka binds its http.ini path without the leading "/" (relative to its
        # working directory, which is /).
        path = "/" + cols[4].lstrip("/")
        process, owner = _ss_owners(line, containers, host_pids)
        out.append({"path": path, "process": process, "owner": owner})
    return sorted(out, key=lambda x: (x["owner"], x["path"]))


def host_redis_clients(
    lab: Lab, containers: list[Container], host_pids: set[int]
) -> list[dict[str, Any]]:
    """Established TCP connections to the host's 127.0.0.1:6379, by the client's owner."""
    out = []
    for line in lab.ss("-tnpH"):
        cols = line.split()
        if len(cols) >= 5 and cols[4] == "127.0.0.1:6379":
            process, owner = _ss_owners(line, containers, host_pids)
            out.append({"client": cols[3], "process": process, "owner": owner})
    return out


def unix_request(c: Container, path: str, payload: bytes, timeout: float = 5) -> str:
    """Send ``payload`` to the unix socket ``path`` of container ``c``; the first reply bytes."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(c.path(path)))
            s.sendall(payload)
            data = b""
            with contextlib.suppress(TimeoutError):
                while len(data) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                    if payload.startswith(b"PING") or data.endswith(b"\n\n"):
                        break
    except OSError as e:
        return f"error: {e}"
    return data.decode("utf-8", "replace")


def socket_checks(c: Container) -> dict[str, dict[str, Any]]:
    http = "GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n"
    checks = {
        "redis /var/run/redis/redis.sock": ("/var/run/redis/redis.sock", b"PING\r\n", r"^\+PONG"),
        "rspamd normal /var/run/rspamd/normal.sock": (
            "/var/run/rspamd/normal.sock",
            http.format("/ping").encode(),
            r"^HTTP/1\.[01] 200.*pong",
        ),
        "rspamd controller /var/run/rspamd/controller.sock": (
            "/var/run/rspamd/controller.sock",
            http.format("/stat").encode(),
            r'^HTTP/1\.[01] 200.*"scanned"',
        ),
        "dovecot quota-status /var/run/dovecot/quota-status": (
            "/var/run/dovecot/quota-status",
            b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=postmaster@"
            + c.spec.hostname.encode()
            + b"\nsize=100\n\n",
            r"^action=",
        ),
    }
    # Haraka's HTTP sockets where the series puts them (haraka-http-sockets.edit.toml); the
    # image's http.ini must name the same path, which nginx's proxy is keyed on.
    named = {}
    for inst, path in HARAKA_HTTP_SOCKETS.items():
        listen = re.search(
            r"(?m)^listen\s*=\s*(\S+)", c.read(f"/opt/haraka-{inst}/config/http.ini")
        )
        named[path] = re.sub(r":[0-7]{3}$", "", listen.group(1)) if listen else "(none)"
        checks[f"haraka-{inst} http {path}"] = (
            path,
            http.format("/").encode(),
            r"^HTTP/1\.[01] \d{3}.*X-Powered-By: Express",
        )
    out = {}
    for name, (path, payload, expect) in checks.items():
        reply = unix_request(c, path, payload)
        ok = bool(re.search(expect, reply, re.S | re.I))
        out[name] = {"ok": ok, "reply": reply.splitlines()[0][:120] if reply else ""}
        if path in named and named[path] != path:
            out[name].update(ok=False, http_ini_listen=named[path])
    return out


def protected_checks(lab: Lab, c: Container) -> list[dict[str, Any]]:
    """poste.io's protected admin locations through nginx on the instance's own addresses
    (https, Host: its hostname), with the session and without it (labtools.PROTECTED)."""
    import labtools

    items = labtools.protected_probes(c.spec.addresses, c.spec.hostname, tls=True, session=SESSION)
    return [labtools.judge_protected(item) for item in lab.probe(lab.host, items)]


def restart_after_kill(lab: Lab, c: Container) -> dict[str, Any]:
    """Kill the container (no daemon cleans up), start it again: nginx must come back and
    serve the protected locations. A killed nginx leaves its internal unix socket in
    /var/run, which a container restart keeps; nginx does not start on a stale one, so the
    start-up script removes it (nginx-listen-hostname, 25-bind-hostname.sh)."""
    t0 = time.monotonic()
    sh([*PODMAN, "kill", "--signal", "KILL", c.name])
    sh([*PODMAN, "wait", c.name], check=False, timeout=60)
    left: list[str] = []
    mount = sh([*PODMAN, "mount", c.name], check=False)
    if mount.returncode == 0 and mount.stdout.strip():
        rootfs = Path(mount.stdout.strip())
        left = [
            f"/var/run/{name}"
            for name in ("nginx-https.sock", "nginx-http.sock")
            if (rootfs / "run" / name).is_socket()
        ]
        sh([*PODMAN, "unmount", c.name], check=False)
    before = len(sh([*PODMAN, "logs", c.name], check=False).stdout.splitlines())
    sh([*PODMAN, "start", c.name])
    c.pid = int(sh([*PODMAN, "inspect", "--format", "{{.State.Pid}}", c.name]).stdout.strip())
    c.mntns = os.readlink(f"/proc/{c.pid}/ns/mnt")
    protected: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(5)
        protected = protected_checks(lab, c)
        if protected and all(x["ok"] for x in protected):
            break
    # Every daemon's own sockets too: each must cope with what the kill left (redis, rspamd,
    # dovecot and Haraka remove their stale sockets themselves; nginx does not).
    sockets = socket_checks(c)
    logs = sh([*PODMAN, "logs", c.name], check=False).stdout.splitlines()[before:]
    return {
        "killed": "SIGKILL (podman kill), then podman start",
        "stale_sockets_left_by_the_kill": left,
        "startup_script_said": [ln for ln in logs if "stale socket" in ln or "kept /var" in ln],
        "protected": protected,
        "sockets": sockets,
        "ok": bool(protected)
        and all(x["ok"] for x in protected)
        and all(x["ok"] for x in sockets.values()),
        "seconds": round(time.monotonic() - t0, 1),
    }


def nginx_and_admin_logs(c: Container) -> dict[str, Any]:
    """nginx's error lines and what the admin app's auth stand-in was asked (its JSON lines)."""
    errors = [
        ln.split("] ", 1)[-1][:220]
        for ln in c.read("/var/log/nginx/error.log").splitlines()
        if re.search(r"\[(error|crit|alert|emerg)\]", ln)
    ]
    seen = []
    for ln in c.read("/var/log/model-init/admin-auth.log").splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(ln)
            if "uri" in rec:
                seen.append(rec)
    return {"nginx_errors": errors[-6:], "admin_auth_requests": seen[-4:]}
