"""The live isolation proof with a real container engine: two instances on one "host".

    python bench/isolation/run.py --engine podman [--instances 2] [--model model-bookworm]
                                  [--json OUT.json] [--keep]

1. Build (buildah, vfs storage, chroot isolation):
   - the *model image*: ``FROM oci:<model release layout>``, plus the Debian runtime the
     model lacks (runtime.py: libc, node, users; never a file the model has) and the model
     entrypoint model-init.sh (NOT poste.io's init; it runs /etc/cont-init.d/* and starts
     redis, rspamd, dovecot, nginx and both Haraka instances). This is the UNPATCHED image.
   - the *patched image*: ``patchkit build MODEL --out DIR``'s context as written (the
     series as it is; on a model release patchkit leaves out the changes for poste.io's
     own files, ``left_out``), only its FROM pointed at the model image. Nothing of the
     proof is added to it: the model-only steps (the runtime, the entrypoint, the test-only
     settings) are in the unpatched image too and are listed in the JSON
     (``build.model_only_steps``).
2. One network namespace stands for the host: instance A mail.alpha.test = 192.0.2.10 +
   2001:db8::10, instance B mail.beta.test = 192.0.2.20 + 2001:db8::20 (+ 192.0.2.21/22,
   send-only, for B's outbound-hosts.yml), a DNS server on 192.0.2.53, all on its ``lo``, and
   a plain redis on its 127.0.0.1:6379 ("something else the host runs"). A second namespace,
   joined by a veth pair, stands for the Internet: the MX sink 198.51.100.25 (mx.sink.test)
   and a client 198.51.100.30 (Haraka's outbound refuses an MX on a local address, so the
   sink cannot live in the host namespace).
3. For the unpatched, then the patched image: two containers, host networking in that
   namespace (``--network ns:``), ``--hostname``, their own ``/data``; A with no
   OUTBOUND_MAIL_IP, B with SEND_ON and an ``outbound-hosts.yml`` of two sender domains.
   Everything in the verdict is measured: processes, ``ss`` listeners (attributed to each
   container by mount namespace), answers on the unix sockets (through /proc/PID/root),
   the web UIs through nginx, messages through Haraka and rspamd, what the sink received.
4. Tear down everything, even when interrupted: containers, images, namespaces, helper
   processes, ``podman system reset -f`` (vfs images are large). ``--keep`` (development
   only) keeps the images and storage for the next run.

Exit 0 when the verdict holds, 1 when it does not, 77 when it cannot run here (with the
reason on one line).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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


# -- build ----------------------------------------------------------------------------


PROJECT = [REPO]  # the patchkit project whose series is built (run.py --project)


def patchkit_cli() -> list[str]:
    exe = REPO / ".venv" / "bin" / "patchkit"
    return [
        str(exe) if exe.exists() else "patchkit",
        "--project",
        str(PROJECT[0]),
        "--store",
        str(CACHE / "store.git"),
    ]


def patchkit_context(model: str, out: Path, log: Callable[[str], None]) -> None:
    """`patchkit import` + `patchkit build` (retried once: the CLI may be mid-refactor)."""
    err = ""
    for attempt in (1, 2):
        # --replace: the proof's own store follows the model as bench/model/build.py last made it.
        imp = sh([*patchkit_cli(), "-q", "import", "--replace", model], check=False)
        bld = None
        if imp.returncode == 0:
            if out.exists():
                shutil.rmtree(out)
            bld = sh([*patchkit_cli(), "build", model, "--out", str(out)], check=False)
            if bld.returncode == 0:
                return
        failed = imp if bld is None else bld
        err = (
            " ".join(ln for ln in failed.stderr.splitlines() if "error" in ln)[:600]
            or failed.stderr.strip()[-300:]
        )
        if attempt == 1:
            log(f"patchkit failed ({err}); retrying in 30 s")
            time.sleep(30)
    raise ProofError(f"patchkit build {model} failed: {err}")


# What the proof adds that is not the series: model-only steps, all in the model image that
# both the unpatched and the patched image start from (the patched one adds only
# `patchkit build`'s context). Listed in the JSON as build.model_only_steps.
MODEL_ONLY_STEPS = (
    "runtime.tar: the Debian runtime the model release lacks (libc, node, users, maintainer "
    "scripts run; never a file the model has: bench/isolation/runtime.py)",
    "model-init.sh as the entrypoint (NOT poste.io's init): runs /etc/cont-init.d/*, makes a "
    "self-signed certificate, renders nginx's site from its https template with "
    "__HTTP_PORT__=80 and __HTTPS_PORT__=443 (as poste.io's init does), makes missing run "
    "directories, starts redis, rspamd, dovecot, nginx and both Haraka instances",
    "test-only settings applied by model-init from the container's environment: "
    "MODEL_QUEUE_TARGET (inbound mail to the proof's sink), MODEL_RSPAMD_CHECK_PRIVATE=1 "
    "(haraka-plugin-rspamd scans TEST-NET clients) and MODEL_ADMIN_SESSION (the session the "
    "model's stand-in for the admin app's auth endpoint accepts); dovecot logs to stderr",
    "the patched image: patchkit build's Dockerfile with its FROM replaced by the model image",
)


def build_images(
    model: str,
    work: Path,
    log: Callable[[str], None],
    keep: bool,
    image: str | None = None,
    push: str | None = None,
) -> dict[str, Any]:
    """The unpatched and patched images. ``image`` (REF@DIGEST): the patched one is pulled,
    not built; ``push`` (REPO): built, pushed by digest, and pulled back (byref.py)."""
    import byref
    import runtime

    started = time.monotonic()
    layout_real = MODELS / model
    # buildah's oci: transport rejects paths with a dot-led component (bench/.cache): link.
    # (It names the source after its path, so the path must be a valid image reference.)
    layout = work / "models" / model
    layout.parent.mkdir(parents=True)
    layout.symlink_to(layout_real)
    tar, _ = runtime.runtime_tar(SUITES[model], layout_real, CACHE, log)
    images = {v: IMAGE.format(model=model, variant=v) for v in ("unpatched", "patched")}
    info: dict[str, Any] = {"images": {}}
    existing = sh(
        [*PODMAN, "images", "--format", "{{.Repository}}:{{.Tag}}"], check=False
    ).stdout.split()
    base_ctx = work / "ctx-model"
    base_ctx.mkdir()
    try:
        os.link(tar, base_ctx / "runtime.tar")
    except OSError:
        shutil.copy2(tar, base_ctx / "runtime.tar")
    shutil.copy2(HERE / "model-init.sh", base_ctx / "model-init.sh")
    (base_ctx / "Containerfile").write_text(
        "# bench/isolation: the model release made runnable. NOT poste.io's image: the model's\n"
        "# own layers, the Debian runtime it lacks (runtime.py; no file of the model is in it)\n"
        "# and the MODEL entrypoint model-init.sh (poste.io's image has its own init).\n"
        f"FROM oci:{layout}:{model}\n"
        "ADD runtime.tar /\n"
        "COPY model-init.sh /usr/local/sbin/patchkit-model-init\n"
        'LABEL org.opencontainers.image.description="patchkit model release made runnable by '
        'bench/isolation (model entrypoint, not poste.io init)"\n'
        'ENTRYPOINT ["/bin/sh", "/usr/local/sbin/patchkit-model-init"]\n'
    )
    ctx = work / "ctx-patched"
    if image is not None:  # the patched image is what a registry holds: no context built here
        t = time.monotonic()
        info["images"]["unpatched"] = _build_one(base_ctx, "Containerfile", images, "unpatched",
                                                 keep, existing, log)  # fmt: skip
        info["images"]["patched"] = byref.pull_by_digest(sh, PODMAN, image, images["patched"], log)
        info["images"]["patched"]["seconds"] = round(time.monotonic() - t, 1)
        info["model_only_steps"] = list(MODEL_ONLY_STEPS)
        info["proof_patches"] = []
        info["left_out"] = ["(not known here: the patched image was pulled, not built)"]
        info["seconds"] = round(time.monotonic() - started, 1)
        return info
    patchkit_context(model, ctx, log)
    dockerfile = ctx / "Dockerfile"
    text = dockerfile.read_text()
    from_line = next(ln for ln in text.splitlines() if ln.startswith("FROM "))
    text = text.replace(
        from_line,
        "# bench/isolation (model-only step): FROM the model image (the model release made\n"
        f"# runnable), instead of patchkit build's {from_line!r}\n"
        f"FROM {images['unpatched']}",
        1,
    )
    dockerfile.write_text(text)
    built = json.loads((ctx / "patchkit-build.json").read_text())
    info["patchkit_from"] = from_line
    info["left_out"] = built.get("left_out", [])
    info["model_only_steps"] = list(MODEL_ONLY_STEPS)
    info["proof_patches"] = []  # none: the patched image is the series as it is
    log(f"patchkit build left out (poste.io-only targets): {', '.join(info['left_out']) or 'none'}")
    for variant, context in (("unpatched", base_ctx), ("patched", ctx)):
        file = "Containerfile" if variant == "unpatched" else "Dockerfile"
        info["images"][variant] = _build_one(context, file, images, variant, keep, existing, log)
    if push is not None:  # what the proof runs is what the registry holds, pulled by digest
        t = time.monotonic()
        ref = byref.push_by_digest(sh, BUILDAH, images["patched"], push, work, log)
        sh([*PODMAN, "rmi", "-f", images["patched"]], check=False)
        built = info["images"]["patched"]
        info["images"]["patched"] = byref.pull_by_digest(sh, PODMAN, ref, images["patched"], log)
        info["images"]["patched"]["built_seconds"] = built["seconds"]
        info["images"]["patched"]["seconds"] = round(time.monotonic() - t, 1)
    info["seconds"] = round(time.monotonic() - started, 1)
    return info


def _build_one(
    context: Path,
    file: str,
    images: dict[str, str],
    variant: str,
    keep: bool,
    existing: list[str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    name = images[variant]
    t = time.monotonic()
    if keep and name in existing and variant == "unpatched":
        log(f"build {variant}: reusing {name} (--keep)")
    else:
        sh(
            [
                *BUILDAH,
                "bud",
                "--isolation",
                "chroot",
                "-q",
                "-f",
                str(context / file),
                "-t",
                name,
                str(context),
            ],
            timeout=1200,
        )
    digest = sh([*PODMAN, "image", "inspect", "--format", "{{.Digest}}", name]).stdout.strip()
    image_id = sh([*PODMAN, "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()
    size = sh([*PODMAN, "image", "inspect", "--format", "{{.Size}}", name]).stdout.strip()
    log(
        f"build {variant}: {name} {digest} ({int(size or 0) // 1_000_000} MB, {time.monotonic() - t:.0f}s)"
    )
    return {
        "name": name,
        "digest": digest,
        "id": f"sha256:{image_id}",
        "bytes": int(size or 0),
        "seconds": round(time.monotonic() - t, 1),
    }


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
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        procs = sorted(set(re.findall(r'\("([^"]+)"', line)))
        owners = sorted({pid_owner(p, containers, host_pids) for p in pids}) or ["?"]
        out.append(
            {
                "address": addr,
                "port": int(port),
                "process": ",".join(procs),
                "owner": ",".join(owners),
            }
        )
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
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        procs = sorted(set(re.findall(r'\("([^"]+)"', line)))
        owners = sorted({pid_owner(p, containers, host_pids) for p in pids}) or ["?"]
        out.append({"path": path, "process": ",".join(procs), "owner": ",".join(owners)})
    return sorted(out, key=lambda x: (x["owner"], x["path"]))


def host_redis_clients(
    lab: Lab, containers: list[Container], host_pids: set[int]
) -> list[dict[str, Any]]:
    """Established TCP connections to the host's 127.0.0.1:6379, by the client's owner."""
    out = []
    for line in lab.ss("-tnpH"):
        cols = line.split()
        if len(cols) >= 5 and cols[4] == "127.0.0.1:6379":
            pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
            procs = sorted(set(re.findall(r'\("([^"]+)"', line)))
            owner = ",".join(sorted({pid_owner(p, containers, host_pids) for p in pids})) or "?"
            out.append({"client": cols[3], "process": ",".join(procs), "owner": owner})
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


# -- one variant ----------------------------------------------------------------------


def run_variant(
    lab: Lab,
    variant: str,
    image: str,
    teardown: Teardown,
    log: Callable[[str], None],
    host_pids: set[int],
) -> dict[str, Any]:
    t0 = time.monotonic()
    before = redis_info(lab, "total_connections_received")
    containers = []
    for spec in (A, B):
        containers.append(start_container(lab, spec, variant, image, teardown))
        time.sleep(2)  # A first, as a user starting a second instance next to a running one
    started_at = time.monotonic()
    phases = {"start_containers": round(started_at - t0, 1)}
    # Every daemon must still be up SETTLE seconds after the start; give rspamd (which
    # compiles its regexp cache at first start) up to 120 s to open its controller, which the
    # protected pages need (unpatched: A's on localhost:11334; patched: both sockets).
    deadline = started_at + 120
    while time.monotonic() < deadline:
        time.sleep(2)
        if time.monotonic() - started_at < SETTLE:
            continue
        if variant == "unpatched":
            # Only A's controller (on localhost:11334): B's rspamd cannot bind next to A's.
            if any(
                x["owner"] == "a" and x["port"] == 11334
                for x in tcp_listeners(lab, containers, host_pids)
            ):
                break
        elif all(
            any(
                x["owner"] == c.spec.key and x["path"].endswith("/controller.sock")
                for x in unix_listeners(lab, containers, host_pids)
            )
            for c in containers
        ):
            break
    phases["settle"] = round(time.monotonic() - started_at, 1)
    t_collect = time.monotonic()
    tcp = tcp_listeners(lab, containers, host_pids)
    unix = unix_listeners(lab, containers, host_pids)
    result: dict[str, Any] = {"variant": variant, "image": image, "instances": [], "phases": phases}
    for c in containers:
        mine = [x for x in tcp if x["owner"] == c.spec.key]
        forbidden = [x for x in mine if LOOPBACK_OR_WILDCARD.match(x["address"])]
        public = {p: sorted({x["address"] for x in mine if x["port"] == p}) for p in PUBLIC}
        result["instances"].append(
            {
                "name": c.name,
                "hostname": c.spec.hostname,
                "addresses": c.spec.addresses,
                "started": daemons_up(c),
                "listeners": mine,
                "unix_listeners": [
                    x
                    for x in unix
                    if x["owner"] == c.spec.key
                    and ("/dovecot/" not in x["path"] or x["path"].endswith("quota-status"))
                ],
                "dovecot_internal_unix_sockets": sum(
                    1 for x in unix if x["owner"] == c.spec.key and "/dovecot/" in x["path"]
                ),
                "forbidden": forbidden,
                "public_ports": {str(p): a for p, a in public.items()},
                "public_exact": all(set(a) == set(c.spec.addresses) for a in public.values()),
            }
        )
    result["host_listeners"] = [x for x in tcp if x["owner"] == "host"]
    result["host_redis_clients"] = host_redis_clients(lab, containers, host_pids)
    result["unowned_listeners"] = [x for x in tcp if x["owner"] not in ("a", "b", "host")]
    for c, inst in zip(containers, result["instances"], strict=True):
        # Unpatched, only A: B's nginx cannot bind next to A's (the collision measured).
        if variant == "patched" or c.spec is A:
            inst["protected"] = protected_checks(lab, c)
            inst.update(nginx_and_admin_logs(c))
    if variant == "patched":
        for c, inst in zip(containers, result["instances"], strict=True):
            inst["sockets"] = socket_checks(c)
        result["mail"] = mail_checks(lab, containers)
        result["restart"] = restart_after_kill(lab, containers[0])
        result["instances"][0]["protected_after_restart"] = result["restart"]["protected"]
    # The logs, read before the containers go.
    for c, inst in zip(containers, result["instances"], strict=True):
        logs = {d: c.read(f"/var/log/model-init/{d}.log") for d in DAEMONS}
        logs["rspamd-file"] = c.read("/var/log/rspamd/rspamd.log")
        inst["log_errors"] = {
            d: [
                ln[:220]
                for ln in text.splitlines()
                if re.search(
                    r"address already in use|EADDRINUSE|bind\(\).*failed|cannot listen|Could not create server",
                    ln,
                    re.I,
                )
            ][:12]
            for d, text in logs.items()
        }
        inst["_logs"] = logs
    ping = lab.redis("PING")
    after = redis_info(lab, "total_connections_received")
    # Our own connections to it in this variant, each counted once: the INFO before is in
    # `before` already; the PING and the INFO after are the 2 subtracted.
    result["host_redis"] = {
        "ping": ping,
        "connections_received_during_variant": after - before - 2,
        "clients_seen": result["host_redis_clients"],
    }
    phases["checks"] = round(time.monotonic() - t_collect, 1)
    t_stop = time.monotonic()
    sh([*PODMAN, "rm", "-f", "-t", "2", *(c.name for c in containers)], check=False)
    phases["stop_containers"] = round(time.monotonic() - t_stop, 1)
    result["seconds"] = round(time.monotonic() - t0, 1)
    log(f"{variant}: {result['seconds']}s ({', '.join(f'{k} {v}s' for k, v in phases.items())})")
    return result


def mail_checks(lab: Lab, containers: list[Container]) -> dict[str, Any]:
    a, b = containers
    token, itoken = secrets.token_hex(4), secrets.token_hex(4)
    sink_file = lab.work / "sink.jsonl"
    inbound_subject = f"inbound-{itoken}"
    host_list = (a.read("/opt/haraka-smtp/config/host_list").split() or ["localhost"])[0]
    probes = [
        {
            "kind": "smtp",
            "name": "inbound to A",
            "addr": A.v4,
            "source": CLIENT,
            "helo": "client.sink.test",
            "mail_from": f"sender-{itoken}@sink.test",
            "rcpt": f"postmaster@{host_list}",
            "subject": inbound_subject,
        }
    ]
    inbound = lab.probe(lab.net, probes)[0]
    outbound_probes = []
    for spec, sender, _ip, _helo, why in OUTBOUND:
        outbound_probes.append(
            {
                "kind": "smtp",
                "name": why,
                "addr": spec.v4,
                "source": spec.v4,  # from its own address: local_own_addresses lets it relay
                "helo": spec.hostname,
                "mail_from": sender,
                "rcpt": f"rcpt-{token}@sink.test",
                "subject": f"out-{token}-{sender}",
            }
        )
    sent = lab.probe(lab.host, outbound_probes)
    want = {f"out-{token}-{s}" for _sp, s, *_ in OUTBOUND} | {inbound_subject}
    records: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sink_file.exists():
            for line in sink_file.read_text().splitlines():
                rec = json.loads(line)
                subj = next(
                    (
                        h.split(":", 1)[1].strip()
                        for h in rec.get("headers", [])
                        if h.startswith("Subject:")
                    ),
                    "",
                )
                if subj in want:
                    records[subj] = rec
        if want <= set(records):
            break
        time.sleep(1)
    outbound_checks = []
    for (spec, sender, ip, helo, why), s in zip(OUTBOUND, sent, strict=True):
        rec = records.get(f"out-{token}-{sender}")
        outbound_checks.append(
            {
                "instance": spec.key,
                "sender": sender,
                "why": why,
                "submitted": s["result"],
                "expected": {"ip": ip, "helo": helo},
                "received": {"ip": rec["peer"], "helo": rec["helo"]} if rec else None,
                "ok": bool(rec and rec["peer"] == ip and rec["helo"] == helo),
            }
        )
    time.sleep(1)
    a_log = a.read("/var/log/model-init/haraka-smtp.log")
    b_logs = b.read("/var/log/model-init/haraka-smtp.log") + b.read(
        "/var/log/model-init/haraka-submission.log"
    )
    rspamd_a = a.read("/var/log/rspamd/rspamd.log")
    task = [
        ln
        for ln in rspamd_a.splitlines()
        if "rspamd_task_write_log" in ln and f"{inbound_subject}@proof.test" in ln
    ]
    haraka_rspamd = [
        ln for ln in a_log.splitlines() if "[rspamd]" in ln and ("score" in ln or "action" in ln)
    ]
    rspamd_errors = [
        ln
        for ln in a_log.splitlines()
        if "Plugin rspamd failed" in ln or "[rspamd] error" in ln.lower()
    ]
    forwarded = records.get(inbound_subject)
    return {
        "token": token,
        "inbound": {
            "submitted": inbound["result"],
            "accepted_by_a": inbound["result"].get("ok", False) and itoken in a_log,
            "b_logs_mention_it": itoken in b_logs,
            "forwarded_to_sink": bool(forwarded),
        },
        "rspamd_scan": {
            "rspamd_task_log": [ln.split("; ")[-1][:240] for ln in task],
            "haraka_rspamd_lines": [ln[:240] for ln in haraka_rspamd[-3:]],
            "plugin_errors": [ln[:240] for ln in rspamd_errors[-3:]],
            "ok": bool(task) and not rspamd_errors,
        },
        "outbound_checks": outbound_checks,
    }


# -- the verdict ----------------------------------------------------------------------


def verdict_of(unpatched: dict[str, Any], patched: dict[str, Any]) -> dict[str, bool]:
    p_inst = patched["instances"]
    u_a, u_b = unpatched["instances"]
    collisions = unpatched_collisions(unpatched)
    mail = patched["mail"]
    return {
        "patched_every_daemon_up_after_30s": all(all(i["started"].values()) for i in p_inst),
        "patched_public_ports_exactly_own_addresses": all(
            i["public_exact"] and all(i["public_ports"][str(p)] for p in PUBLIC) for i in p_inst
        ),
        "patched_no_loopback_or_wildcard_listener": all(not i["forbidden"] for i in p_inst),
        "patched_no_unowned_listener": not [
            x for x in patched["unowned_listeners"] if x["owner"] != "host"
        ],
        "host_redis_answers": patched["host_redis"]["ping"] == "+PONG"
        and unpatched["host_redis"]["ping"] == "+PONG",
        "patched_instances_never_talk_to_host_redis": patched["host_redis"][
            "connections_received_during_variant"
        ]
        == 0
        and not patched["host_redis"]["clients_seen"],
        "patched_sockets_answer": all(all(s["ok"] for s in i["sockets"].values()) for i in p_inst),
        "patched_protected_pages_with_session": all(
            x["ok"] for i in p_inst for x in i["protected"] if x["session"]
        ),
        "patched_protected_pages_refused_without_session": all(
            x["ok"] for i in p_inst for x in i["protected"] if not x["session"]
        ),
        "patched_haraka_websocket_upgrade": all(
            x["ok"] for i in p_inst for x in i["protected"] if "websocket" in x["location"]
        ),
        "patched_pages_and_sockets_after_a_kill_and_restart": patched["restart"]["ok"],
        "patched_rspamd_scans_via_socket": mail["rspamd_scan"]["ok"]
        and not any(x["process"] == "rspamd" for i in p_inst for x in i["listeners"]),
        "patched_inbound_to_a_only_a": mail["inbound"]["accepted_by_a"]
        and not mail["inbound"]["b_logs_mention_it"],
        "patched_outbound_ip_and_helo": all(x["ok"] for x in mail["outbound_checks"]),
        "unpatched_second_instance_collides": bool(collisions),
        "unpatched_loopback_listeners_appear": bool(u_a["forbidden"])
        and any(
            LOOPBACK_OR_WILDCARD.match(x["address"]) and x["address"].startswith(("127.", "::1"))
            for x in u_a["forbidden"]
        ),
        "unpatched_talks_to_host_redis": unpatched["host_redis"][
            "connections_received_during_variant"
        ]
        > 0
        or bool(unpatched["host_redis"]["clients_seen"]),
        "unpatched_b_not_fully_up": not all(u_b["started"].values()),
        # The same protected requests work on the unpatched model (nginx's auth subrequest
        # to itself on localhost): the checks above can fail only because of the series.
        "unpatched_protected_pages_work_through_loopback": bool(u_a["protected"])
        and all(x["ok"] for x in u_a["protected"]),
    }


def unpatched_collisions(unpatched: dict[str, Any]) -> list[dict[str, Any]]:
    """Ports B's services could not bind because A (or the host's redis) holds them."""
    u_a, u_b = unpatched["instances"]
    held = {(x["address"], x["port"], "A") for x in u_a["listeners"]}
    held |= {(x["address"], x["port"], "host") for x in unpatched["host_listeners"]}
    out = []
    for daemon, lines in u_b["log_errors"].items():
        for ln in lines:
            for port in sorted(
                {
                    int(p)
                    for p in re.findall(r"[:, (](\d{2,5})\b", ln)
                    if int(p) in set(PUBLIC) | {6379, 11332, 11333, 11334, 11380, 11381, 13001}
                }
            ):
                holders = sorted({f"{who} {a}" for a, p, who in held if p == port})
                out.append({"daemon": daemon, "port": port, "held_by": holders, "log": ln[:160]})
    seen, unique = set(), []
    for x in out:
        if (x["daemon"], x["port"]) not in seen:
            seen.add((x["daemon"], x["port"]))
            unique.append(x)
    return unique


# -- report ---------------------------------------------------------------------------


def report_lines(result: dict[str, Any]) -> list[str]:
    out: list[str] = []
    b = result["build"]
    out.append(f"engine: {result['engine']}  model: {result['model']}")
    for v, img in b["images"].items():
        out.append(
            f"image {v}: {img['name']} digest {img['digest']} ({img['bytes'] // 1_000_000} MB, built in {img['seconds']}s)"
        )
    out.append(
        f"left out by patchkit build (poste.io-only targets): {', '.join(b['left_out']) or 'none'}"
    )
    out.append("proof patches on top of the series: none; model-only steps (both images):")
    out.extend(f"  - {step}" for step in b["model_only_steps"])
    for variant in ("unpatched", "patched"):
        r = result[variant]
        out.append(f"== {variant}")
        for inst in r["instances"]:
            up = " ".join(f"{d}={'up' if ok else 'DOWN'}" for d, ok in inst["started"].items())
            out.append(f"-- {inst['hostname']} ({', '.join(inst['addresses'])}): {up}")
            for x in inst["listeners"]:
                mark = "  FORBIDDEN" if x in inst["forbidden"] else ""
                out.append(f"   tcp  {x['address']:>16}:{x['port']:<5} {x['process']}{mark}")
            for x in inst["unix_listeners"]:
                out.append(f"   unix {x['path']}  {x['process']}")
            if inst["dovecot_internal_unix_sockets"]:
                out.append(
                    f"   unix (+ {inst['dovecot_internal_unix_sockets']} dovecot-internal sockets under /run/dovecot)"
                )
            out.append(
                f"   forbidden: {len(inst['forbidden'])}; public ports exactly on its addresses: {inst['public_exact']}"
            )
            for d, lines in inst["log_errors"].items():
                for ln in lines[:4]:
                    out.append(f"   {d} log: {ln[:150]}")
            for name, s in inst.get("sockets", {}).items():
                out.append(f"   socket {name}: {'ok' if s['ok'] else 'FAIL'}  {s['reply'][:80]}")
            for x in inst.get("protected", []):
                out.append(
                    f"   protected {x['location']:<28} {x['path']:<24} via {x['addr']:<13} "
                    f"{'with' if x['session'] else 'without'} session: {x['status'][:36]} "
                    f"{x['answered_by'][:30]}  {'ok' if x['ok'] else 'FAIL'}"
                )
            for ln in inst.get("nginx_errors", []):
                out.append(f"   nginx error.log: {ln[:170]}")
            for rec in inst.get("admin_auth_requests", [])[-1:]:
                out.append(f"   admin auth stand-in was asked: {json.dumps(rec)[:170]}")
        if variant == "patched":
            rs = r["restart"]
            out.append(
                f"   A killed ({rs['killed']}) and started again in {rs['seconds']}s: stale sockets "
                f"left by the kill: {', '.join(rs['stale_sockets_left_by_the_kill']) or 'none'}; "
                f"start-up script: {' | '.join(rs['startup_script_said']) or '-'}; protected "
                f"locations after: {sum(x['ok'] for x in rs['protected'])}/{len(rs['protected'])} ok; "
                f"sockets after: {sum(x['ok'] for x in rs['sockets'].values())}/{len(rs['sockets'])} ok"
            )
        hr = r["host_redis"]
        out.append(
            f"   host redis 127.0.0.1:6379: {hr['ping']}; connections from the instances: "
            f"{hr['connections_received_during_variant']}; clients seen: "
            + (", ".join(f"{c['process']}@{c['owner']}" for c in hr["clients_seen"]) or "none")
        )
        if variant == "unpatched":
            for x in result["unpatched_collisions"]:
                out.append(
                    f"   collision: B's {x['daemon']} port {x['port']} (held by {', '.join(x['held_by']) or '-'}): {x['log'][:110]}"
                )
        if variant == "patched":
            m = r["mail"]
            out.append(
                f"   inbound to A: {' / '.join(m['inbound']['submitted'].get('steps', []))} {m['inbound']['submitted'].get('error', '')}"
            )
            out.append(
                f"   accepted by A: {m['inbound']['accepted_by_a']}; in B's logs: {m['inbound']['b_logs_mention_it']}; forwarded to the sink: {m['inbound']['forwarded_to_sink']}"
            )
            for ln in m["rspamd_scan"]["rspamd_task_log"][:1]:
                out.append(f"   rspamd task log: {ln[:200]}")
            for ln in m["rspamd_scan"]["haraka_rspamd_lines"][-1:]:
                out.append(f"   haraka rspamd: {ln[:200]}")
            for ln in m["rspamd_scan"]["plugin_errors"]:
                out.append(f"   haraka rspamd ERROR: {ln[:200]}")
            for x in m["outbound_checks"]:
                got = x["received"] or {"ip": "-", "helo": "-"}
                out.append(
                    f"   outbound {x['sender']:<24} expected {x['expected']['ip']} / {x['expected']['helo']:<18} "
                    f"got {got['ip']} / {got['helo']}  {'ok' if x['ok'] else 'FAIL'}"
                )
    out.append("verdict: " + ", ".join(f"{k}={v}" for k, v in result["verdict_items"].items()))
    out.append(f"VERDICT: {'holds' if result['verdict'] else 'FAILS'}  ({result['seconds']}s)")
    return out


# -- driver ---------------------------------------------------------------------------


def preflight(model: str) -> None:
    if os.geteuid() != 0:
        raise CannotRun("needs root (network namespaces, podman with runc)")
    for tool in ("podman", "buildah", "ip", "ss", "debootstrap", "patch"):
        if shutil.which(tool) is None:
            raise CannotRun(f"{tool} not found: run bench/isolation/setup.sh (Debian packages)")
    if not Path("/usr/sbin/runc").exists():
        raise CannotRun("/usr/sbin/runc not found: run bench/isolation/setup.sh")
    if not (MODELS / model / "index.json").is_file():
        raise CannotRun(f"{model} not built (python3 bench/model/build.py)")
    r = sh(["ip", "netns", "add", f"pkiso-probe-{os.getpid()}"], check=False)
    if r.returncode != 0:
        raise CannotRun(f"cannot create a network namespace: {r.stderr.strip()}")
    sh(["ip", "netns", "del", f"pkiso-probe-{os.getpid()}"], check=False)
    r = sh([*PODMAN, "info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False)
    if r.returncode != 0:
        raise CannotRun(
            f"engine podman cannot run here: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
        )


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(
    model: str,
    instances: int,
    json_out: str | None,
    keep: bool,
    project: Path | None = None,
    image: str | None = None,
    push: str | None = None,
) -> int:
    def log(msg: str) -> None:
        print(f"isolation: {msg}", file=sys.stderr, flush=True)

    if instances != 2:
        log("only --instances 2 is implemented (A and B)")
        return 2
    try:
        preflight(model)
    except CannotRun as e:
        log(f"skipped: {e}")
        return 77
    t0 = time.monotonic()
    teardown = Teardown()
    # buildah names an oci: source after its path, which must be a valid image reference:
    # lower-case letters, digits and single separators (mkdtemp's suffix may end in "_").
    work = Path(tempfile.gettempdir()) / f"patchkit-iso-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o755)
    teardown.add("work dir", lambda: shutil.rmtree(work, ignore_errors=True))
    if not keep:
        teardown.add(
            "podman system reset",
            lambda: sh([*PODMAN, "system", "reset", "-f"], check=False, timeout=600),
        )
        teardown.add(
            "images",
            lambda: [
                sh([*PODMAN, "rmi", "-f", IMAGE.format(model=model, variant=v)], check=False)
                for v in ("patched", "unpatched")
            ],
        )
    if project is not None:
        PROJECT[0] = project.resolve()
    result: dict[str, Any] = {
        "schema": 1,
        "engine": "podman",
        "model": model,
        "project": str(PROJECT[0]),
    }
    rc = 1
    with signals_raise():
        try:
            sys.path.insert(0, str(HERE))
            result["build"] = build_images(model, work, log, keep, image, push)
            result["image_digest"] = result["build"]["images"]["patched"]["digest"]
            # by reference (--image/--push): the REF@DIGEST the proof pulled and ran
            result["image_ref"] = result["build"]["images"]["patched"].get("ref")
            import runtime

            _, rootfs = runtime.runtime_tar(SUITES[model], MODELS / model, CACHE, log)
            lab = Lab(host=f"pkiso-{os.getpid()}-host", net=f"pkiso-{os.getpid()}-net", work=work)
            hosts = ["127.0.0.1 localhost", "::1 localhost"]
            hosts += [f"{addr} {s.hostname}" for s in (A, B) for addr in s.addresses]
            (work / "hosts").write_text("\n".join(hosts) + "\n")
            (work / "resolv.conf").write_text(
                f"nameserver {DNS_ADDR}\noptions timeout:1 attempts:1\n"
            )
            lab.up(teardown, rootfs)
            host_pids = {lab.procs["host-redis"].pid} | {
                int(p)
                for p in sh(
                    ["pgrep", "-s", str(lab.procs["host-redis"].pid)], check=False
                ).stdout.split()
            }
            for variant in ("unpatched", "patched"):
                log(f"{variant}: starting A ({A.hostname}) and B ({B.hostname})")
                result[variant] = run_variant(
                    lab,
                    variant,
                    result["build"]["images"][variant]["name"],
                    teardown,
                    log,
                    host_pids,
                )
            result["unpatched_collisions"] = unpatched_collisions(result["unpatched"])
            result["verdict_items"] = verdict_of(result["unpatched"], result["patched"])
            result["verdict"] = all(result["verdict_items"].values())
            result["instances"] = [
                {k: v for k, v in i.items() if k != "_logs"} for i in result["patched"]["instances"]
            ]
            result["unpatched_collides"] = result["verdict_items"][
                "unpatched_second_instance_collides"
            ]
            result["host_loopback_service_ok"] = (
                result["verdict_items"]["host_redis_answers"]
                and result["verdict_items"]["patched_instances_never_talk_to_host_redis"]
            )
            result["outbound_checks"] = result["patched"]["mail"]["outbound_checks"]
            rc = 0 if result["verdict"] else 1
        except ProofError as e:
            log(f"error: {e}")
            result["error"] = str(e)
            result["verdict"] = False
        finally:
            log("tearing down")
            teardown.run(log)
    result["seconds"] = round(time.monotonic() - t0, 1)
    for variant in ("unpatched", "patched"):
        for inst in result.get(variant, {}).get("instances", []):
            logs = inst.pop("_logs", {})
            inst["log_tail"] = {
                d: t.splitlines()[-8:] for d, t in logs.items() if d != "rspamd-file"
            }
    if "verdict_items" in result:
        print("\n".join(report_lines(result)))
    if json_out:
        text = json.dumps(result, indent=2, default=str) + "\n"
        if json_out == "-":
            print(text)
        else:
            tmp = Path(json_out + ".tmp")
            tmp.write_text(text)
            tmp.replace(json_out)
    log(f"done in {result['seconds']}s: verdict {'holds' if result.get('verdict') else 'FAILS'}")
    return rc
