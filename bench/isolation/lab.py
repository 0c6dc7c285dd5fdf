"""The live proof's ground: its constants, the two instances, running commands, the
teardown and the network namespaces that stand for the host and the Internet."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / "bench" / ".cache" / "isolation"
MODELS = REPO / "bench" / ".cache" / "models"
SUITES = {"model-bookworm": "bookworm", "model-trixie": "trixie"}
PODMAN = [
    "podman",
    "--runtime",
    "/usr/sbin/runc",
    "--cgroup-manager=cgroupfs",
    "--storage-driver",
    "vfs",
]
BUILDAH = ["buildah", "--storage-driver", "vfs"]
PUBLIC = (25, 80, 110, 143, 443, 465, 587, 993, 995, 4190)
DAEMONS = (
    "redis",
    "rspamd",
    "dovecot",
    "nginx",
    "haraka-smtp",
    "haraka-submission",
    "admin-auth",  # the model's stand-in for the admin app's auth endpoint
)
# The session the model's auth stand-in accepts (MODEL_ADMIN_SESSION), one per run.
SESSION = secrets.token_hex(16)
LOOPBACK_OR_WILDCARD = re.compile(r"^(127\.|::1$|0\.0\.0\.0$|\*$|::$)")
DNS_ADDR, EDGE, SINK, CLIENT = "192.0.2.53", "198.51.100.1", "198.51.100.25", "198.51.100.30"
SETTLE = 30  # seconds every daemon must stay up
IMAGE = "localhost/patchkit-iso/{model}:{variant}"
# Haraka's HTTP listeners once patched (haraka-http-sockets.edit.toml names them by port).
HARAKA_HTTP_SOCKETS = {
    "smtp": "/var/run/haraka/http-11380.sock",
    "submission": "/var/run/haraka/http-11381.sock",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    key: str
    hostname: str
    v4: str
    v6: str
    send_only: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    outbound_hosts: str = ""

    @property
    def addresses(self) -> list[str]:
        return [self.v4, self.v6]


A = Spec(key="a", hostname="mail.alpha.test", v4="192.0.2.10", v6="2001:db8::10")
B = Spec(
    key="b",
    hostname="mail.beta.test",
    v4="192.0.2.20",
    v6="2001:db8::20",
    send_only=("192.0.2.21", "192.0.2.22"),
    env={"SEND_ON": "192.0.2.20, 2001:db8::20, 192.0.2.21, 192.0.2.22"},
    outbound_hosts=(
        "# bench/isolation: two sender domains and a default\n"
        "default:        { helo: out.beta.test,     ip: 192.0.2.20 }\n"
        "shop.beta.test: { helo: mx.shop.beta.test, ip: 192.0.2.21 }\n"
        "news.beta.test: { helo: mx.news.beta.test, ip: 192.0.2.22 }\n"
    ),
)
# (instance, sender, expected source IP, expected HELO, why)
OUTBOUND = (
    (A, "app@alpha.test", "192.0.2.10", "mail.alpha.test", "A: built-in default (first address)"),
    (B, "orders@shop.beta.test", "192.0.2.21", "mx.shop.beta.test", "B: outbound-hosts.yml shop"),
    (B, "letter@news.beta.test", "192.0.2.22", "mx.news.beta.test", "B: outbound-hosts.yml news"),
    (B, "someone@beta.test", "192.0.2.20", "out.beta.test", "B: other domain -> yml default"),
)


class CannotRun(Exception):
    """The proof cannot run here (exit 77): one line saying why."""


class ProofError(Exception):
    """A step of the proof failed outright (exit 1)."""


def sh(
    cmd: list[str], *, check: bool = True, timeout: float = 600, **kw: Any
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise ProofError(f"`{' '.join(cmd[:6])} ...` failed ({proc.returncode}): {tail}")
    return proc


# -- teardown -------------------------------------------------------------------------


class Teardown:
    """Undo actions, run in reverse order exactly once (finally, or on a signal)."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, action: Callable[[], object]) -> None:
        self.actions.append((what, action))

    def run(self, log: Callable[[str], None]) -> None:
        while self.actions:
            what, action = self.actions.pop()
            try:
                action()
            except Exception as e:  # teardown goes on whatever fails
                log(f"teardown: {what}: {e}")


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


# -- the namespaces -------------------------------------------------------------------


@dataclass(slots=True)
class Lab:
    host: str
    net: str
    work: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def ns(self, name: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", name, *cmd]

    def up(self, teardown: Teardown, rootfs: Path) -> None:
        for ns in (self.host, self.net):
            sh(["ip", "netns", "add", ns])
            teardown.add(f"netns {ns}", lambda ns=ns: sh(["ip", "netns", "del", ns], check=False))
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        h = ["ip", "-n", self.host]
        for spec in (A, B):
            for addr in (*spec.addresses, *spec.send_only):
                six = ":" in addr
                sh(
                    [
                        *h,
                        "addr",
                        "add",
                        f"{addr}/{128 if six else 32}",
                        "dev",
                        "lo",
                        *(["nodad"] if six else []),
                    ]
                )
        sh([*h, "addr", "add", f"{DNS_ADDR}/32", "dev", "lo"])
        sh(
            [
                *h,
                "link",
                "add",
                "pkiso-host",
                "type",
                "veth",
                "peer",
                "name",
                "pkiso-net",
                "netns",
                self.net,
            ]
        )
        sh([*h, "addr", "add", f"{EDGE}/24", "dev", "pkiso-host"])
        sh([*h, "link", "set", "pkiso-host", "up"])
        n = ["ip", "-n", self.net]
        for addr in (SINK, CLIENT):
            sh([*n, "addr", "add", f"{addr}/24", "dev", "pkiso-net"])
        sh([*n, "link", "set", "pkiso-net", "up"])
        sh([*n, "route", "add", "192.0.2.0/24", "via", EDGE])
        zone = {
            "A": {
                "mx.sink.test": [SINK],
                "client.sink.test": [CLIENT],
                A.hostname: [A.v4],
                B.hostname: [B.v4],
            },
            "PTR": {"30.100.51.198.in-addr.arpa": "client.sink.test"},
            "AAAA": {A.hostname: [A.v6], B.hostname: [B.v6]},
            "MX": {
                "*.test": "mx.sink.test",
                "alpha.test": "mx.sink.test",
                "beta.test": "mx.sink.test",
            },
        }
        (self.work / "zone.json").write_text(json.dumps(zone))
        tools = str(HERE / "labtools.py")
        self.spawn(
            teardown,
            "dns",
            self.ns(
                self.host, sys.executable, tools, "dns", DNS_ADDR, str(self.work / "zone.json")
            ),
        )
        self.spawn(
            teardown,
            "sink",
            self.ns(
                self.net, sys.executable, tools, "sink", SINK, "25", str(self.work / "sink.jsonl")
            ),
        )
        # The host's own redis, from the Debian runtime's chroot (not part of any container).
        self.spawn(
            teardown,
            "host-redis",
            self.ns(
                self.host,
                "chroot",
                str(rootfs),
                "/usr/bin/redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                "/tmp",
            ),
        )
        for _ in range(100):
            if self.redis("PING") == "+PONG" and self._udp_ready():
                return
            time.sleep(0.1)
        raise ProofError("the host namespace's redis or DNS server did not start")

    def _udp_ready(self) -> bool:
        return "dns" in self.procs and self.procs["dns"].poll() is None

    def spawn(self, teardown: Teardown, name: str, cmd: list[str]) -> None:
        log = (self.work / f"{name}.log").open("wb")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = p

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)

        teardown.add(name, stop)

    def redis(self, *cmd: str) -> str:
        """One command to the host's redis on 127.0.0.1:6379 (a fresh connection)."""
        code = (
            "import socket,sys\n"
            "s=socket.create_connection(('127.0.0.1',6379),timeout=3)\n"
            "a=sys.argv[1:]\n"
            "s.sendall(('*%d\\r\\n' % len(a) + ''.join('$%d\\r\\n%s\\r\\n' % (len(x), x) for x in a)).encode())\n"
            "d=b''\n"
            "while True:\n"
            "    c=s.recv(65536)\n"
            "    d+=c\n"
            "    if not c or (d.endswith(b'\\r\\n') and (d[:1]!=b'$' or d.count(b'\\r\\n')>=2)): break\n"
            "print(d.decode().strip())\n"
        )
        r = sh(self.ns(self.host, sys.executable, "-c", code, *cmd), check=False)
        return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()[-200:]}"

    def probe(self, ns: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        r = sh(
            self.ns(ns, sys.executable, str(HERE / "labtools.py"), "probe"),
            input=json.dumps(items),
            timeout=300,
        )
        return json.loads(r.stdout)  # type: ignore[no-any-return]

    def ss(self, flags: str) -> list[str]:
        return sh(self.ns(self.host, "ss", flags)).stdout.splitlines()


def redis_info(lab: Lab, field_name: str) -> int:
    m = re.search(rf"{field_name}:(\d+)", lab.redis("INFO", "stats"))
    return int(m.group(1)) if m else -1
