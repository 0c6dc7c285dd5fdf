#!/usr/bin/env python3
"""Small network tools the live isolation proof runs inside its namespaces (stdlib only).

    labtools.py dns ADDR ZONE.json          a DNS server on ADDR:53 (UDP) answering from ZONE
    labtools.py sink ADDR PORT OUT.jsonl    an SMTP sink: one JSON line per message received
    labtools.py probe < PROBES.json         client probes (TCP connect, SMTP, HTTPS); JSON out

Run with `ip netns exec NAME python3 labtools.py ...`: every address is one the proof put
inside a namespace it created (TEST-NET ranges), never the machine's own network.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
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


def probe_https(p: dict[str, Any]) -> dict[str, Any]:
    """GET https://ADDR/PATH with Host: HOST (a self-signed certificate: not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    family = socket.AF_INET6 if ":" in p["addr"] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            raw.settimeout(10)
            raw.connect((p["addr"], p.get("port", 443)))
            with ctx.wrap_socket(raw, server_hostname=p["host"]) as s:
                s.sendall(
                    f"GET {p['path']} HTTP/1.1\r\nHost: {p['host']}\r\nConnection: close\r\n\r\n".encode()
                )
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
    except OSError as e:
        return {"ok": False, "error": str(e)}
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return {
        "ok": True,
        "status": lines[0],
        "server": headers.get("server", ""),
        "powered_by": headers.get("x-powered-by", ""),
        "body": body[:200].decode("utf-8", "replace"),
    }


def probe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = {"tcp": probe_tcp, "smtp": probe_smtp, "https": probe_https}
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
