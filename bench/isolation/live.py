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
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from containers import (
    Container,
    daemons_up,
    host_redis_clients,
    nginx_and_admin_logs,
    protected_checks,
    restart_after_kill,
    socket_checks,
    start_container,
    tcp_listeners,
    unix_listeners,
)
from imagebuild import PROJECT, build_images
from lab import (
    CACHE,
    CLIENT,
    DAEMONS,
    DNS_ADDR,
    HERE,
    IMAGE,
    LOOPBACK_OR_WILDCARD,
    MODELS,
    OUTBOUND,
    PODMAN,
    PUBLIC,
    SETTLE,
    SUITES,
    A,
    B,
    CannotRun,
    Lab,
    ProofError,
    Teardown,
    _on_signal,
    redis_info,
    sh,
)
from verdict import report_lines, unpatched_collisions, verdict_of

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
