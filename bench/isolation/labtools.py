#!/usr/bin/env python3
"""Small network tools the live isolation proof runs inside its namespaces (stdlib only).

    labtools.py dns ADDR ZONE.json          a DNS server on ADDR:53 (UDP) answering from ZONE
    labtools.py sink ADDR PORT OUT.jsonl    an SMTP sink: one JSON line per message received
    labtools.py probe < PROBES.json         client probes (TCP connect, SMTP, HTTP(S), websocket); JSON out

Run with `ip netns exec NAME python3 labtools.py ...`: every address is one the proof put
inside a namespace it created (TEST-NET ranges), never the machine's own network.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import os
import smtplib
import socket
import ssl
import struct
import sys
import time
from pathlib import Path
from typing import Any

# -- DNS ------------------------------------------------------------------------------

TYPES = {1: "A", 28: "AAAA", 15: "MX", 12: "PTR"}


def _name(data: bytes, off: int) -> tuple[str, int]:
    labels = []
    while data[off]:
        n = data[off]
        labels.append(data[off + 1 : off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels).lower(), off + 1


def _encode(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"


def answer(query: bytes, zone: dict[str, Any]) -> bytes:
    """The response to one query. ZONE: {"A": {name: [ip]}, "AAAA": {...},
    "MX": {name-or-"*.suffix": exchange}}; unknown names get NXDOMAIN, known names without
    that type an empty answer."""
    qid, _flags, qd = struct.unpack(">HHH", query[:6])
    name, off = _name(query, 12)
    qtype = struct.unpack(">H", query[off : off + 2])[0]
    question = query[12 : off + 4]
    records: list[bytes] = []
    known = any(name in zone.get(t, {}) for t in ("A", "AAAA", "MX", "PTR"))
    mx = zone.get("MX", {}).get(name)
    if mx is None:
        for pattern, exchange in zone.get("MX", {}).items():
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                mx, known = exchange, True
    kind = TYPES.get(qtype)
    if kind == "PTR" and name in zone.get("PTR", {}):
        rdata = _encode(zone["PTR"][name])
        records.append(b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 60, len(rdata)) + rdata)
    elif kind == "MX" and mx:
        rdata = struct.pack(">H", 10) + _encode(mx)
        records.append(b"\xc0\x0c" + struct.pack(">HHIH", 15, 1, 60, len(rdata)) + rdata)
    elif kind in ("A", "AAAA"):
        family = socket.AF_INET if kind == "A" else socket.AF_INET6
        for ip in zone.get(kind, {}).get(name, []):
            rdata = socket.inet_pton(family, ip)
            records.append(b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata)
    rcode = 0 if known else 3
    header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, qd, len(records), 0, 0)
    return header + question + b"".join(records)


def dns_server(addr: str, zone_file: str) -> None:
    zone = json.loads(Path(zone_file).read_text())
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(data, zone), peer)
        except (IndexError, struct.error, UnicodeError):
            continue


# -- SMTP sink ------------------------------------------------------------------------


async def _session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: Path, host: str
) -> None:
    peer = writer.get_extra_info("peername")[0]
    record: dict[str, Any] = {"peer": peer, "helo": None, "mail_from": None, "rcpt": []}

    def send(line: str) -> None:
        writer.write(line.encode() + b"\r\n")

    send(f"220 {host} proof sink")
    try:
        while True:
            raw = await asyncio.wait_for(reader.readline(), 60)
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                record["helo"] = line[5:].strip()
                send(f"250 {host}")
            elif verb == "MAIL":
                record["mail_from"] = line.split(":", 1)[1].strip().split()[0].strip("<>")
                send("250 ok")
            elif verb == "RCPT":
                record["rcpt"].append(line.split(":", 1)[1].strip().strip("<>"))
                send("250 ok")
            elif verb == "DATA":
                send("354 go ahead")
                body = []
                while True:
                    chunk = await reader.readline()
                    if not chunk or chunk in (b".\r\n", b".\n"):
                        break
                    body.append(chunk.decode("utf-8", "replace").rstrip("\r\n"))
                record["headers"] = [h for h in body[:60] if h.startswith(("Subject:", "From:"))]
                record["time"] = time.time()
                with out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                record = {"peer": peer, "helo": record["helo"], "mail_from": None, "rcpt": []}
                send("250 queued")
            elif verb == "RSET":
                send("250 ok")
            elif verb == "QUIT":
                send("221 bye")
                break
            else:
                send("502 not here")
            await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def sink(addr: str, port: int, out_file: str) -> None:
    out = Path(out_file)

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _session(r, w, out, "mx.sink.test"), addr, port
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- probes ---------------------------------------------------------------------------


def probe_tcp(p: dict[str, Any]) -> dict[str, Any]:
    try:
        with socket.create_connection((p["addr"], p["port"]), timeout=5):
            return {"ok": True}
    except OSError as e:
        return {"ok": False, "error": str(e)}


def probe_smtp(p: dict[str, Any]) -> dict[str, Any]:
    """One message; every reply code kept."""
    steps: list[str] = []
    try:
        s = smtplib.SMTP(p["addr"], p.get("port", 25), source_address=(p["source"], 0), timeout=60)
        steps.append(f"ehlo {s.ehlo(p['helo'])[0]}")
        steps.append(f"mail {s.mail(p['mail_from'])[0]}")
        steps.append(f"rcpt {s.rcpt(p['rcpt'])[0]}")
        # A plain, complete message (Date, MIME headers, a real body): rspamd greylists
        # a bare one (score 5.1 > 4 measured: missing Date and MIME-Version, ...).
        msg = (
            f"From: Proof <{p['mail_from']}>\r\nTo: <{p['rcpt']}>\r\nSubject: {p['subject']}\r\n"
            f"Date: {email.utils.formatdate(localtime=False)}\r\n"
            f"Message-ID: <{p['subject']}@proof.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            "Hello,\r\n\r\nthis message was sent by the patchkit isolation proof to check that\r\n"
            "it is accepted and scanned by the instance it was sent to.\r\n\r\nRegards\r\n"
        ).encode()
        try:
            code, reply = s.data(msg)
            steps.append(f"data {code} {reply.decode(errors='replace')}")
        except smtplib.SMTPResponseException as e:
            code = e.smtp_code
            steps.append(f"data {code} {e.smtp_error.decode(errors='replace')}")
        s.quit()
        return {"ok": code == 250, "steps": steps}
    except (OSError, smtplib.SMTPException) as e:
        return {"ok": False, "steps": steps, "error": f"{type(e).__name__}: {e}"}


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


def _read_head(s: socket.socket) -> tuple[bytes, bytes]:
    """The response head (status line and headers) and whatever followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payload under 126 bytes)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def _ws_read_frame(s: socket.socket, pending: bytes) -> tuple[int, bytes]:
    """The next server frame (unmasked, payload under 126 bytes): its opcode and payload."""
    data = pending
    while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("the websocket closed before a frame arrived")
        data += chunk
    n = data[1] & 0x7F
    return data[0] & 0x0F, data[2 : 2 + n]


def probe_http(p: dict[str, Any]) -> dict[str, Any]:
    """GET http(s)://ADDR:PORT/PATH with Host: HOST and optional extra headers (a cookie).

    ``tls`` (default true; a self-signed certificate, not verified). With ``websocket``
    the request is an RFC 6455 upgrade: on ``101`` the Sec-WebSocket-Accept is checked and a
    ping frame sent, whose pong must come back with the same payload.
    """
    family = socket.AF_INET6 if ":" in p["addr"] else socket.AF_INET
    tls = p.get("tls", True)
    headers = {"Host": p["host"], **p.get("headers", {})}
    key = ""
    if p.get("websocket"):
        key = base64.b64encode(os.urandom(16)).decode()
        headers.update(
            {
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": key,
            }
        )
    else:
        headers["Connection"] = "close"
    request = f"GET {p['path']} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    out: dict[str, Any] = {"ok": True}
    try:
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            raw.settimeout(10)
            raw.connect((p["addr"], p.get("port", 443 if tls else 80)))
            s: socket.socket = raw
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(raw, server_hostname=p["host"])
            s.sendall((request + "\r\n").encode())
            head, body = _read_head(s)
            lines = head.decode("latin-1").split("\r\n")
            found = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
            }
            out.update(status=lines[0], server=found.get("server", ""))
            out["powered_by"] = found.get("x-powered-by", "")
            if key and lines[0].split()[1:2] == ["101"]:
                digest = hashlib.sha1((key + WS_GUID).encode()).digest()
                out["ws_accept_ok"] = (
                    found.get("sec-websocket-accept") == base64.b64encode(digest).decode()
                )
                token = os.urandom(8).hex().encode()
                s.sendall(_ws_frame(0x9, token))
                opcode, payload = _ws_read_frame(s, body)
                out["ws_pong_ok"] = opcode == 0xA and payload == token
                s.sendall(_ws_frame(0x8, b"\x03\xe8"))  # close, 1000
            elif not key:
                while chunk := s.recv(65536):
                    body += chunk
            out["body"] = body[:200].decode("utf-8", "replace")
    except (OSError, ConnectionError, IndexError) as e:
        return {**out, "ok": False, "error": f"{type(e).__name__}: {e}"}
    return out


def probe_https(p: dict[str, Any]) -> dict[str, Any]:
    """GET https://ADDR/PATH with Host: HOST (a self-signed certificate: not verified)."""
    return probe_http({**p, "tls": True})


# -- poste.io's protected admin locations ---------------------------------------------

# The cookie the model's stand-in for the admin app's auth endpoint accepts
# (bench/model/admin-auth-standin.js), with the value the proof gives it (MODEL_ADMIN_SESSION).
SESSION_COOKIE = "patchkit_model_session"
# Every location poste.io's nginx guards with `auth_request .auth;` (POSTE.md, 2.5.x
# templates): (name, path requested, what must answer it with a session).
PROTECTED = (
    ("rspamd UI", "/admin/rspamd/stat", "rspamd"),
    ("Haraka smtp UI", "/admin/haraka/11380/", "express"),
    ("Haraka submission UI", "/admin/haraka/11381/", "express"),
    ("Haraka smtp websocket", "/admin/haraka/11380/ws", "websocket"),
    ("Haraka submission websocket", "/admin/haraka/11381/ws", "websocket"),
)


def protected_probes(
    addrs: list[str], host: str, *, tls: bool, session: str
) -> list[dict[str, Any]]:
    """Each protected location requested with the session cookie and without it, through
    nginx on the instance's own addresses (taken in turn)."""
    items = []
    for i, (name, path, expect) in enumerate(PROTECTED):
        for with_session in (True, False):
            items.append(
                {
                    "kind": "http",
                    "tls": tls,
                    "name": name,
                    "addr": addrs[i % len(addrs)],
                    "host": host,
                    "path": path,
                    "expect": expect,
                    "session": with_session,
                    "websocket": expect == "websocket",
                    "headers": {"Cookie": f"{SESSION_COOKIE}={session}"} if with_session else {},
                }
            )
    return items


def judge_protected(item: dict[str, Any]) -> dict[str, Any]:
    """One probe of :func:`protected_probes`, judged: with the session the component must
    answer (rspamd's stat JSON, Haraka's express, a websocket upgrade whose ping is
    answered); without it nginx must refuse (401 or 403)."""
    r = item["result"]
    words = r.get("status", "").split()
    code = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
    expect = item["expect"]
    if not item["session"]:
        ok = code in (401, 403)
    elif expect == "rspamd":
        ok = code == 200 and "scanned" in r.get("body", "")
    elif expect == "express":
        ok = r.get("powered_by", "").lower() == "express"
    else:
        ok = code == 101 and bool(r.get("ws_accept_ok")) and bool(r.get("ws_pong_ok"))
    return {
        "location": item["name"],
        "path": item["path"],
        "addr": item["addr"],
        "session": item["session"],
        "status": r.get("status") or r.get("error", ""),
        "answered_by": r.get("powered_by")
        or (
            "websocket ping answered"
            if r.get("ws_pong_ok")
            else " ".join(r.get("body", "").split())[:60]
        ),
        "ok": ok,
    }


def probe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = {"tcp": probe_tcp, "smtp": probe_smtp, "https": probe_https, "http": probe_http}
    return [{**p, "result": kinds[p["kind"]](p)} for p in items]


def main(argv: list[str]) -> int:
    if argv[:1] == ["dns"]:
        dns_server(argv[1], argv[2])
    elif argv[:1] == ["sink"]:
        sink(argv[1], int(argv[2]), argv[3])
    elif argv[:1] == ["probe"]:
        print(json.dumps(probe(json.load(sys.stdin))))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
