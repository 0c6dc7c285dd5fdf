"""The live proof's verdict over the measured results, and its report for people."""

from __future__ import annotations

import json
import re
from typing import Any

from lab import LOOPBACK_OR_WILDCARD, PUBLIC

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
