"""The isolation audit: one table of cases per config format, then the driver and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit.audit import MemoryView, Verdict, audit_view
from patchkit.cli import main
from patchkit.core.patchfile import parse_patch
from patchkit.profiles import POSTE
from tests.helpers.projectbuilder import make_project


def listeners(
    files: dict[str, str], links: dict[str, str] | None = None
) -> list[tuple[str, object, str]]:
    result = audit_view(MemoryView(files, links), profile=POSTE)
    assert not result.problems, result.problems
    return [(where(x.socket, x.address, x.port), x.line, x.verdict.value) for x in result.listeners]


def where(socket: str | None, address: str | None, port: int | None) -> str:
    if socket:
        return socket
    return f"[{address}]:{port}" if address and ":" in address else f"{address}:{port}"


# -- nginx ---------------------------------------------------------------------------------

NGINX = "etc/nginx/nginx.conf"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("listen [::]:443 ssl;", [("[::]:443", "forbidden")]),
        ("listen 80 default_server;", [("*:80", "forbidden")]),
        ("listen 127.0.0.1:8080;", [("127.0.0.1:8080", "forbidden")]),
        ("listen localhost;", [("localhost:80", "forbidden")]),
        ("listen 192.0.2.7:443 ssl http2;", [("192.0.2.7:443", "ok")]),
        ("listen __LISTEN_ON__:443 ssl;", [("__LISTEN_ON__:443", "ok")]),
        ("listen __LISTEN_ON__:11334;", [("__LISTEN_ON__:11334", "forbidden")]),
        ("listen unix:/run/nginx.sock;", [("/run/nginx.sock", "ok")]),
        ("# listen 80;\n  root /srv;", [("*:80", "forbidden")]),  # no listen: nginx's *:80
        ('listen "[::1]:8080";  # quoted, trailing comment', [("[::1]:8080", "forbidden")]),
        # poste.io's own port placeholders (its init writes the numbers in at start)
        ("listen __HTTP_PORT__;", [("*:80", "forbidden")]),
        ("listen [::]:__HTTPS_PORT__ ssl;", [("[::]:443", "forbidden")]),
        ("listen __LISTEN_ON__:__HTTPS_PORT__ ssl;", [("__LISTEN_ON__:443", "ok")]),
    ],
)
def test_nginx_listen_forms(server: str, expected: list[tuple[str, str]]) -> None:
    conf = f"http {{\n server {{\n  {server}\n }}\n}}\n"
    assert [(a, v) for a, _, v in listeners({NGINX: conf})] == expected


def test_nginx_follows_includes_and_symlinks_with_lines() -> None:
    files = {
        NGINX: "events {}\nhttp {\n  include /etc/nginx/sites-enabled/*;\n}\n",
        "etc/nginx/sites-available/default": "server {\n\n  listen 80;\n}\n",
    }
    links = {"etc/nginx/sites-enabled/default": "/etc/nginx/sites-available/default"}
    result = audit_view(MemoryView(files, links), profile=POSTE)
    [only] = result.listeners
    assert (only.file, only.line, only.port) == ("etc/nginx/sites-enabled/default", 3, 80)


@pytest.mark.parametrize(
    ("conf", "line"),
    [
        ("http {\n server {\n  listen 80\n }\n}\n", 3),  # missing ';'
        ('http {\n server {\n  listen "80;\n }\n}\n', 3),  # unterminated quote
        ("http {\n server {\n  listen 80;\n}\n", 1),  # unclosed block
        ("http {\n server {\n  listen 80:x;\n }\n}\n", 3),
    ],
)
def test_nginx_unparsable_names_file_and_line_and_fails(conf: str, line: int) -> None:
    result = audit_view(MemoryView({NGINX: conf}), profile=POSTE)
    assert result.failed
    assert [(p.file, p.line) for p in result.problems][:1] == [(NGINX, line)]


# -- rspamd --------------------------------------------------------------------------------

RSPAMD = "etc/rspamd/rspamd.conf"


def rspamd_conf(inline: str) -> str:
    return (
        '# comment with bind_socket = "*:1";\n'
        'worker "normal" {\n'
        f"    {inline}\n"
        '    .include "$CONFDIR/worker-normal.inc"\n'
        '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/worker-normal.inc"\n'
        '    .include(try=true; priority=10) "$LOCAL_CONFDIR/override.d/worker-normal.inc"\n'
        "}\n"
    )


@pytest.mark.parametrize(
    ("inline", "expected"),
    [
        ('bind_socket = "*:11333";', [("*:11333", "forbidden")]),
        ('bind_socket = "localhost:11333";', [("localhost:11333", "forbidden")]),
        ('bind_socket = "[::1]:11333";', [("[::1]:11333", "forbidden")]),
        ('bind_socket = "/run/rspamd/normal.sock mode=0660";', [("/run/rspamd/normal.sock", "ok")]),
        (
            '/* bind_socket = "*:1"; */ bind_socket = "192.0.2.1:11333";',
            [("192.0.2.1:11333", "ok")],
        ),
    ],
)
def test_rspamd_bind_socket_forms(inline: str, expected: list[tuple[str, str]]) -> None:
    files = {RSPAMD: rspamd_conf(inline), "etc/rspamd/worker-normal.inc": "mime = true;\n"}
    assert [(a, v) for a, _, v in listeners(files)] == expected


def test_rspamd_override_d_replaces_local_d_and_inline() -> None:
    files = {
        RSPAMD: rspamd_conf('bind_socket = "localhost:11333";'),
        "etc/rspamd/worker-normal.inc": "",
        "etc/rspamd/local.d/worker-normal.inc": 'bind_socket = "*:11333";\n',
        "etc/rspamd/override.d/worker-normal.inc": '# ours\nbind_socket = "/var/run/rspamd/normal.sock";\n',
    }
    assert listeners(files) == [("/var/run/rspamd/normal.sock", 2, "ok")]
    del files["etc/rspamd/override.d/worker-normal.inc"]
    assert listeners(files) == [("*:11333", 1, "forbidden")]


def test_rspamd_unreadable_bind_socket_is_a_problem() -> None:
    files = {
        RSPAMD: rspamd_conf("bind_socket = localhost 11333;"),
        "etc/rspamd/worker-normal.inc": "",
    }
    result = audit_view(MemoryView(files), profile=POSTE)
    assert result.failed and result.problems[0].file == RSPAMD and result.problems[0].line == 3


# -- dovecot -------------------------------------------------------------------------------

DOVECOT = "etc/dovecot/dovecot.conf"


def test_dovecot_port_zero_disables_and_comments_are_ignored() -> None:
    files = {
        DOVECOT: "listen = 192.0.2.1 # host\n!include conf.d/*.conf\n!include_try local.conf\n",
        "etc/dovecot/conf.d/90-quota.conf": (
            "service quota-status {\n  inet_listener qs {\n    #port = 1\n    port = 13001\n"
            "    address = 127.0.0.1\n  }\n}\n"
        ),
        "etc/dovecot/local.conf": "service quota-status {\n  inet_listener qs {\n    port = 0\n  }\n}\n",
    }
    assert listeners(files) == []
    del files["etc/dovecot/local.conf"]
    assert listeners(files) == [("127.0.0.1:13001", 4, "forbidden")]


def test_dovecot_builtin_listeners_follow_protocols_and_listen() -> None:
    files = {
        DOVECOT: "!include_try /usr/share/dovecot/protocols.d/*.protocol\n!include conf.d/*.conf\n",
        "usr/share/dovecot/protocols.d/imapd.protocol": "protocols = $protocols imap\n",
        "etc/dovecot/conf.d/10-master.conf": (
            "service imap-login {\n  inet_listener imap {\n    #port = 143\n  }\n}\n"
            "service pop3-login {\n  inet_listener pop3 {\n  }\n}\n"  # pop3 not enabled: no listener
            'mailbox "Sent Messages" {\n  special_use = \\Sent\n}\n'
        ),
    }
    found = sorted(listeners(files))
    assert ("*:143", 2, "forbidden") in found and ("[::]:993", 1, "forbidden") in found
    assert not any(":110" in a for a, _, _ in found)
    files["etc/dovecot/local.conf"] = "listen = __LISTEN_ON__\n"
    files[DOVECOT] += "!include_try local.conf\n"
    assert {v for _, _, v in listeners(files)} == {"ok"}


def test_dovecot_24_protocols_block_and_listen_in_listener() -> None:
    files = {
        DOVECOT: "protocols {\n  sieve = yes\n}\nservice managesieve-login {\n"
        "  inet_listener sieve {\n    port = 4190\n    listen = 127.0.0.1\n  }\n}\n",
    }
    assert listeners(files) == [("127.0.0.1:4190", 6, "forbidden")]


def test_dovecot_unbalanced_brace_is_a_problem() -> None:
    result = audit_view(
        MemoryView({DOVECOT: "service x {\n  inet_listener y {\n    port = 1\n}\n"}), profile=POSTE
    )
    assert result.failed and result.problems[0].file == DOVECOT


# -- redis and Haraka ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        (
            "bind 127.0.0.1 -::1\nport 6379\n",
            [("127.0.0.1:6379", "forbidden"), ("[::1]:6379", "forbidden")],
        ),
        ("# port 1\n", [("*:6379", "forbidden"), ("[::]:6379", "forbidden")]),  # defaults
        (
            "bind 127.0.0.1\nport 0\nunixsocket /var/run/redis/redis.sock\n",
            [("/var/run/redis/redis.sock", "ok")],
        ),
    ],
)
def test_redis_forms(conf: str, expected: list[tuple[str, str]]) -> None:
    assert [(a, v) for a, _, v in listeners({"etc/redis/redis.conf": conf})] == expected


def test_redis_bad_port_is_a_problem() -> None:
    result = audit_view(MemoryView({"etc/redis/redis.conf": "port sixty\n"}), profile=POSTE)
    assert [(p.line, p.component) for p in result.problems] == [(1, "redis")]


def test_haraka_smtp_default_sections_and_http_socket() -> None:
    files = {
        "opt/haraka-smtp/config/smtp.ini": ";listen=[::0]:25\n[headers]\nlisten=1.2.3.4:25\n",
        "opt/haraka-smtp/config/http.ini": "; listen=[::]:80\n",
        "opt/haraka-sub/config/smtp.ini": "listen=__LISTEN_ON__:587,[::0]:465\n",
        "opt/haraka-sub/config/http.ini": "listen=/var/run/haraka/sub.sock:770\n",
    }
    assert listeners(files) == [
        ("[::0]:25", 0, "forbidden"),  # a listen inside [headers] is not the main one
        ("/var/run/haraka/sub.sock", 1, "ok"),
        ("[::0]:465", 1, "forbidden"),
        ("__LISTEN_ON__:587", 1, "ok"),
    ]


def test_unverified_listener_needs_a_skipped_offline_unverifiable_patch() -> None:
    files = {"etc/nginx/sites-enabled.templates/https": "server {\n listen 443 ssl;\n}\n"}
    pending = {"etc/nginx/sites-enabled.templates/https": "nginx.patch"}
    result = audit_view(MemoryView(files), profile=POSTE, unverified=pending)
    assert [x.verdict for x in result.listeners] == [Verdict.UNVERIFIED] and not result.failed
    assert audit_view(MemoryView(files), profile=POSTE, unverified=pending, strict=True).failed
    assert audit_view(MemoryView(files), profile=POSTE).failed


# -- the patched tree, through the CLI -----------------------------------------------------

REDIS_PATCH = """Description: redis on a socket

--- a/etc/redis/redis.conf
+++ b/etc/redis/redis.conf
@@ -1,2 +1,3 @@
 bind 127.0.0.1
-port 6379
+port 0
+unixsocket /var/run/redis/redis.sock
"""


def test_cli_audit_reads_the_series_applied_in_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        tmp_path,
        {"1.0": {"etc/redis/redis.conf": "bind 127.0.0.1\nport 6379\n"}},
        {"redis.patch": REDIS_PATCH},
        base="1.0",
    )
    assert parse_patch(REDIS_PATCH.encode(), name="redis.patch").paths == ("etc/redis/redis.conf",)
    assert main(["--project", str(project), "import", "1.0"]) == 0
    capsys.readouterr()
    assert main(["--project", str(project), "audit", "--unpatched", "--json"]) == 1
    unpatched = json.loads(capsys.readouterr().out)
    assert unpatched["summary"]["forbidden"] == 1 and unpatched["patched"] is False
    assert main(["--project", str(project), "audit", "1.0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["command"] == "audit" and doc["failed"] is False
    assert [(x["socket"], x["verdict"]) for x in doc["listeners"]] == [
        ("/var/run/redis/redis.sock", "ok")
    ]
    assert (project / "etc").exists() is False  # nothing checked out


# -- connections: the JSON contract, the text, --strict ------------------------------------

SITE = (
    "http {\n server {\n  listen 192.0.2.1:80;\n"
    "  location /a { proxy_pass http://backend.example:8080/; }\n"
    "  location /b { proxy_pass http://unix:/run/b.sock:/; }\n }\n}\n"
)


def test_the_json_has_connections_beside_listeners_in_schema_1() -> None:
    doc = audit_view(MemoryView({"etc/nginx/nginx.conf": SITE}), profile=POSTE).to_dict()
    assert doc["schema"] == 1 and doc["failed"] is False
    assert list(doc) == [
        "schema",
        "command",
        "version",
        "patched",
        "strict",
        "failed",
        "listeners",
        "connections",
        "problems",
        "summary",
    ]
    assert doc["connections"][0] == {
        "component": "nginx",
        "file": "etc/nginx/nginx.conf",
        "line": 4,
        "kind": "tcp",
        "host": "backend.example",
        "port": 8080,
        "socket": None,
        "directive": "proxy_pass http://backend.example:8080/",
        "origin": "config",
        "verdict": "unverified",
        "reason": "host name 'backend.example' resolved at run time (neither loopback nor "
        "this container's): not judged; location /a",
    }
    assert doc["connections"][1]["socket"] == "/run/b.sock"
    # the listener counts keep their keys and meaning; connections are counted beside them
    assert doc["summary"] == {
        "ok": 1,
        "forbidden": 0,
        "unverified": 0,
        "problems": 0,
        "listeners": 1,
        "connections": 2,
        "connections_ok": 1,
        "connections_forbidden": 0,
        "connections_unverified": 1,
        "connections_problem": 0,
    }


def test_cli_audit_lists_connections_and_strict_fails_on_unverified_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loopback = SITE.replace("backend.example", "127.0.0.1")
    project = make_project(
        tmp_path,
        {"1": {"etc/nginx/nginx.conf": SITE}, "2": {"etc/nginx/nginx.conf": loopback}},
        {},
        base="1",
    )
    for version in ("1", "2"):
        assert main(["--project", str(project), "-q", "import", version]) == 0
    capsys.readouterr()
    assert main(["--project", str(project), "audit", "1"]) == 0
    out = capsys.readouterr().out  # the text on stdout (on stderr beside --json)
    assert "connections (where the configs tell components to connect):" in out
    assert (
        "unverified nginx    tcp      backend.example:8080                     "
        "/etc/nginx/nginx.conf:4  proxy_pass http://backend.example:8080/  [host name" in out
    )
    assert out.rstrip().endswith(
        "audit 1 (patched): passed: 1 listener(s), 0 forbidden, 0 unverified, 0 unparsable; "
        "2 connection(s), 0 forbidden, 0 problem(s), 1 unverified"
    )
    assert main(["--project", str(project), "audit", "1", "--strict", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["strict"] is True and doc["failed"] is True
    # a loopback connection fails without --strict
    assert main(["--project", str(project), "audit", "2", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [c["verdict"] for c in doc["connections"]] == ["forbidden", "ok"]
    assert doc["summary"]["forbidden"] == 0 and doc["summary"]["connections_forbidden"] == 1
