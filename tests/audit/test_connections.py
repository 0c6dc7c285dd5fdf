"""Connections: where a config tells a component to connect, one table of cases per format,
then the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchkit.audit import Connection, MemoryView, Verdict, audit_view
from patchkit.audit.policy import is_loopback, judge_connection
from patchkit.kinds import load_change
from patchkit.profiles import GENERIC, POSTE

Row = tuple[str, str, str]  # (kind, target, verdict)


def connections(files: dict[str, str]) -> list[Connection]:
    result = audit_view(MemoryView(files), profile=POSTE)
    assert not result.problems, result.problems
    return list(result.connections)


def rows(files: dict[str, str]) -> list[Row]:
    return [(c.kind, c.target, c.verdict.value) for c in connections(files)]


# -- nginx -----------------------------------------------------------------------------------

NGINX = "etc/nginx/nginx.conf"


def site(body: str, http: str = "") -> dict[str, str]:
    return {NGINX: f"http {{\n{http}\n server {{\n  listen 192.0.2.1:80;\n{body}\n }}\n}}\n"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "location / { proxy_pass http://127.0.0.1:8080/; }",
            [("tcp", "127.0.0.1:8080", "forbidden")],
        ),
        (
            "location / { proxy_pass  https://localhost/x; }",
            [("tcp", "localhost:443", "forbidden")],
        ),
        ("location / { proxy_pass http://[::1]:81; }", [("tcp", "[::1]:81", "forbidden")]),
        ("location / { proxy_pass http://192.0.2.9:81; }", [("tcp", "192.0.2.9:81", "ok")]),
        (
            "location / { proxy_pass http://unix:/run/app.sock:/api/; }",
            [("unix", "/run/app.sock", "ok")],
        ),
        ("location / { fastcgi_pass unix:/run/php.sock; }", [("unix", "/run/php.sock", "ok")]),
        ("location / { fastcgi_pass 127.0.0.1:9000; }", [("tcp", "127.0.0.1:9000", "forbidden")]),
        (
            "location / { uwsgi_pass uwsgi://127.0.0.1:3031; }",
            [("tcp", "127.0.0.1:3031", "forbidden")],
        ),
        ("location / { grpc_pass grpc://[::1]:50051; }", [("tcp", "[::1]:50051", "forbidden")]),
        ("location / { scgi_pass localhost:4000; }", [("tcp", "localhost:4000", "forbidden")]),
        (
            "location / { memcached_pass 127.0.0.1:11211; }",
            [("tcp", "127.0.0.1:11211", "forbidden")],
        ),
        # an address host with variables elsewhere needs no resolver: judged by its address
        (
            "location ~ (\\d+) { proxy_pass http://127.0.0.1:$1/; }",
            [("tcp", "127.0.0.1", "forbidden")],
        ),
        # a name with variables, or a variable host, needs a resolver: none here
        (
            "location ~ (\\d+) { proxy_pass http://localhost:$1/; }",
            [("tcp", "localhost", "problem")],
        ),
        (
            "location / { proxy_pass https://$hostname/x; }",
            [("variable", "$hostname:443", "problem")],
        ),
        ("location / { proxy_pass $backend; }", [("variable", "$backend", "problem")]),
        # a unix socket path with a variable needs no resolver
        (
            "location ~ (\\d+) { proxy_pass http://unix:/run/h-$1.sock:/; }",
            [("unix", "/run/h-$1.sock", "ok")],
        ),
        # a name without variables is resolved when nginx starts
        (
            "location / { proxy_pass http://backend.example:8080; }",
            [("tcp", "backend.example:8080", "unverified")],
        ),
        ("# proxy_pass http://127.0.0.1;\n  root /srv;", []),
    ],
)
def test_nginx_pass_forms(body: str, expected: list[Row]) -> None:
    assert rows(site(body)) == expected


@pytest.mark.parametrize(
    "where",
    ["http", "server", "location", "after"],  # a resolver after the proxy_pass counts too
)
def test_nginx_resolver_in_scope_lets_a_variable_host_be_judged(where: str) -> None:
    resolver = "resolver 192.0.2.53 valid=10s ipv6=off;"
    location = "location / { proxy_pass https://$hostname/x; %s }" % (
        resolver if where == "location" else ""
    )
    body = ("  " + resolver + "\n" if where == "server" else "") + location
    if where == "after":
        body = location + "\n  " + resolver
    found = rows(site(body, http=resolver if where == "http" else ""))
    assert ("variable", "$hostname:443", "ok") in found
    assert ("udp", "192.0.2.53:53", "ok") in found


def test_nginx_resolver_of_a_sibling_location_is_not_in_scope() -> None:
    body = "location /a { resolver 192.0.2.53; }\n  location /b { proxy_pass https://$hostname/x; }"
    assert ("variable", "$hostname:443", "problem") in rows(site(body))


def test_nginx_loopback_resolver_is_forbidden() -> None:
    assert rows(site("resolver 127.0.0.1 [::1]:5353;")) == [
        ("udp", "127.0.0.1:53", "forbidden"),
        ("udp", "[::1]:5353", "forbidden"),
    ]


def test_nginx_upstream_servers_are_the_connections_of_a_pass_naming_them() -> None:
    http = (
        "upstream app {\n  server 127.0.0.1:8080 weight=2;\n  server unix:/run/app.sock;\n"
        "  server backend.example;\n}\n"
    )
    found = connections(site("location / { proxy_pass http://app; }", http=http))
    assert [(c.kind, c.target, c.verdict.value, c.line) for c in found] == [
        ("tcp", "127.0.0.1:8080", "forbidden", 3),
        ("unix", "/run/app.sock", "ok", 4),
        ("tcp", "backend.example:80", "unverified", 5),
    ]
    assert all("upstream app" in c.reason for c in found)


def test_nginx_include_keeps_the_including_blocks_in_scope() -> None:
    files = {
        NGINX: "http {\n  resolver 192.0.2.53;\n  include /etc/nginx/conf.d/*.conf;\n}\n",
        "etc/nginx/conf.d/app.conf": "server {\n  listen 192.0.2.1:80;\n"
        "  location / { proxy_pass https://$hostname:8443; }\n}\n",
    }
    [app, dns] = connections(files)  # sorted by file
    assert (app.file, app.line, app.verdict) == ("etc/nginx/conf.d/app.conf", 3, Verdict.OK)
    assert dns.kind == "udp"


def test_nginx_auth_request_location_is_named_in_the_reason() -> None:
    body = (
        "location /p { auth_request /auth; proxy_pass http://unix:/run/p.sock:/; }\n"
        "  location = /auth { internal; proxy_pass http://127.0.0.1:9/check; }"
    )
    auth = [c for c in connections(site(body)) if c.host == "127.0.0.1"]
    assert "location = /auth (an auth_request subrequest)" in auth[0].reason


def test_nginx_pass_without_address_is_a_problem() -> None:
    result = audit_view(MemoryView(site("location / { proxy_pass; }")), profile=POSTE)
    assert result.failed and "proxy_pass without an address" in result.problems[0].message


# -- rspamd ----------------------------------------------------------------------------------

RSPAMD = "etc/rspamd/rspamd.conf"
RSPAMD_MAIN = (
    '.include "$CONFDIR/common.conf"\n'
    'worker "rspamd_proxy" {\n'
    '    bind_socket = "localhost:11332";\n'
    '    .include "$CONFDIR/worker-proxy.inc"\n'
    '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/worker-proxy.inc"\n'
    '    .include(try=true; priority=10) "$LOCAL_CONFDIR/override.d/worker-proxy.inc"\n'
    "}\n"
)
RSPAMD_FILES = {
    RSPAMD: RSPAMD_MAIN,
    "etc/rspamd/common.conf": '.include "$CONFDIR/modules.conf"\n.include "$CONFDIR/statistic.conf"\n',
    "etc/rspamd/modules.conf": '.include(glob=true) "${CONFDIR}/modules.d/*.conf"\n',
    "etc/rspamd/modules.d/redis.conf": (
        "redis {\n"
        '  #servers = "127.0.0.1";\n'
        '  .include(try=true,priority=5) "${DBDIR}/dynamic/redis.conf"\n'
        '  .include(try=true,priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/redis.conf"\n'
        '  .include(try=true,priority=10) "$LOCAL_CONFDIR/override.d/redis.conf"\n'
        "}\n"
    ),
    "etc/rspamd/modules.d/logging.conf": 'log_format =<<EOD\nid: <$mid>, "quoted" {x}\nEOD\n',
    "etc/rspamd/statistic.conf": (
        'classifier "bayes" {\n  backend = "redis";\n  tokenizer { name = "osb"; }\n}\n'
        '.include(try=true; priority=1) "$LOCAL_CONFDIR/local.d/statistic.conf"\n'
    ),
    "etc/rspamd/worker-proxy.inc": 'milter = yes;\nupstream "local" {\n  default = yes;\n  hosts = "localhost";\n}\n',
}


def rspamd(**extra: str) -> list[tuple[str, str, str, int]]:
    files = {
        **RSPAMD_FILES,
        **{k.replace("__", "/").replace("_", "."): v for k, v in extra.items()},
    }
    return [(c.kind, c.target, c.file, c.line) for c in connections(files)]


def test_rspamd_proxy_upstream_defaults_to_port_11333() -> None:
    assert rspamd() == [("tcp", "localhost:11333", "etc/rspamd/worker-proxy.inc", 4)]


def test_rspamd_redis_servers_by_priority() -> None:
    files = {
        **RSPAMD_FILES,
        "etc/rspamd/local.d/redis.conf": 'servers = "round-robin:127.0.0.1:6379:1, 192.0.2.7";\n',
        "etc/rspamd/local.d/statistic.conf": (
            'classifier "bayes" {\n  backend = "redis";\n  servers = "/run/redis.sock";\n}\n'
        ),
    }
    found = [(c.kind, c.target, c.file, c.verdict.value) for c in connections(files)]
    assert found == [
        ("tcp", "127.0.0.1:6379", "etc/rspamd/local.d/redis.conf", "forbidden"),
        ("tcp", "192.0.2.7:6379", "etc/rspamd/local.d/redis.conf", "ok"),
        ("unix", "/run/redis.sock", "etc/rspamd/local.d/statistic.conf", "ok"),
        ("tcp", "localhost:11333", "etc/rspamd/worker-proxy.inc", "forbidden"),
    ]
    # override.d (priority 10) replaces local.d's servers and the proxy's whole upstream
    files["etc/rspamd/override.d/redis.conf"] = "servers = /run/redis.sock;\n"
    files["etc/rspamd/override.d/worker-proxy.inc"] = (
        'bind_socket = "/run/proxy.sock";\nupstream "local" {\n  hosts = "/run/normal.sock";\n}\n'
    )
    assert {(c.target, c.verdict.value) for c in connections(files)} == {
        ("/run/redis.sock", "ok"),
        ("/run/normal.sock", "ok"),
    }


def test_rspamd_module_servers_without_a_known_port_are_judged_by_host() -> None:
    files = {
        **RSPAMD_FILES,
        "etc/rspamd/modules.d/history_redis.conf": 'history_redis {\n  servers = "[::1]";\n}\n',
    }
    assert ("tcp", "[::1]", "forbidden") in [
        (c.kind, c.target, c.verdict.value) for c in connections(files)
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('redis {\n  servers = "a";\n', 2, "not closed"),
        ("redis {\n  servers = localhost 6379;\n}\n", 2, "unexpected '6379'"),
        ('.include "$CONFDIR/absent.conf"\n', 1, "not found"),
        ('.load "x"\n', 1, ".load is not read"),
        ('.include(priority=high) "x.conf"\n', 1, "priority must be a number"),
        ('redis {\n  servers = "a\n}\n', 2, "unterminated"),
    ],
)
def test_rspamd_unreadable_config_is_a_problem(text: str, line: int, message: str) -> None:
    result = audit_view(MemoryView({RSPAMD: text}), profile=POSTE)
    assert result.failed
    assert [(p.file, p.line) for p in result.problems] == [(RSPAMD, line)]
    assert message in result.problems[0].message


# -- Haraka ----------------------------------------------------------------------------------

SMTP = "opt/haraka-smtp/config"


def haraka(plugins: str, **ini: str) -> list[tuple[str, str, str, int, str]]:
    files = {f"{SMTP}/plugins": plugins, **{f"{SMTP}/{k}.ini": v for k, v in ini.items()}}
    return [(c.kind, c.target, c.origin, c.line, c.verdict.value) for c in connections(files)]


@pytest.mark.parametrize(
    ("rspamd_ini", "expected"),
    [
        # haraka-plugin-rspamd's own rspamd.ini keeps its defaults commented out: localhost:11333
        (
            ";host = localhost\n;port = 11333\n;unix_socket = /x\n",
            ("tcp", "localhost:11333", "default", 0, "forbidden"),
        ),
        ("host = 127.0.0.1\nport = 11333\n", ("tcp", "127.0.0.1:11333", "config", 1, "forbidden")),
        ("port = 11333\n", ("tcp", "localhost:11333", "default", 1, "forbidden")),
        (
            "host=localhost\nport=11333\nunix_socket=/run/rspamd/normal.sock\n",
            ("unix", "/run/rspamd/normal.sock", "config", 3, "ok"),
        ),
        (
            "[main]\nhost = __HOSTNAME__\n[tls]\nhost = 127.0.0.1\n",
            ("tcp", "__HOSTNAME__:11333", "config", 2, "ok"),
        ),
    ],
)
def test_haraka_rspamd_plugin(rspamd_ini: str, expected: tuple[str, str, str, int, str]) -> None:
    assert haraka("rspamd\n", rspamd=rspamd_ini) == [expected]


def test_haraka_rspamd_plugin_default_without_an_ini() -> None:
    assert haraka("# spam\nrspamd\n") == [("tcp", "localhost:11333", "default", 0, "forbidden")]


def test_haraka_redis_plugin_server_and_pubsub() -> None:
    assert haraka("redis\n") == [
        ("tcp", "127.0.0.1:6379", "default", 0, "forbidden"),
        ("tcp", "127.0.0.1:6379", "default", 0, "forbidden"),
    ]
    # pubsub does not inherit [server]'s settings, only [opts]' (sorted by line)
    assert haraka("redis\n", redis="[server]\npath=/run/redis.sock\n") == [
        ("tcp", "127.0.0.1:6379", "default", 0, "forbidden"),
        ("unix", "/run/redis.sock", "config", 2, "ok"),
    ]
    assert haraka("redis\n", redis="[opts]\npath=/run/redis.sock\n[server]\nip=192.0.2.1\n") == [
        ("unix", "/run/redis.sock", "config", 2, "ok"),
        ("unix", "/run/redis.sock", "config", 2, "ok"),
    ]


def test_haraka_plugins_not_enabled_are_read_only_when_configured() -> None:
    assert haraka("dnsbl\n") == []
    found = connections({f"{SMTP}/plugins": "dnsbl\n", f"{SMTP}/rspamd.ini": "host=127.0.0.1\n"})
    assert [c.reason.split("; ")[1] for c in found] == [
        "plugin rspamd [main] (not in config/plugins)"
    ]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("socket.connect(13001, '127.0.0.1');", [("tcp", "127.0.0.1:13001", "forbidden")]),
        (
            "socket.connect('/var/run/dovecot/quota-status');",
            [("unix", "/var/run/dovecot/quota-status", "ok")],
        ),
        (
            'net.createConnection({ port: 25, host: "localhost" })',
            [("tcp", "localhost:25", "forbidden")],
        ),
        ("net.connect({ path: '/run/x.sock' }, cb)", [("unix", "/run/x.sock", "ok")]),
        ("client.connect(4000)", [("tcp", "localhost:4000", "forbidden")]),
        ("client.connect(cfg.port, cfg.host)", [("variable", "cfg.port", "unverified")]),
        ("await client.connect()", []),
        ("// socket.connect(13001, '127.0.0.1');\n/* x.connect(1) */", []),
    ],
)
def test_node_connect_calls(code: str, expected: list[Row]) -> None:
    assert rows({"opt/haraka-smtp/plugins/p.js": code + "\n"}) == expected


# -- scripts, the admin app, sieve ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (
            "healthcheck/redis.sh",
            'redis-cli -h "127.0.0.1" ping | grep -q PONG\n',
            ("tcp", "127.0.0.1:6379", "forbidden", "config"),
        ),
        (
            "healthcheck/redis.sh",
            'redis-cli -s "/var/run/redis/redis.sock" ping\n',
            ("unix", "/var/run/redis/redis.sock", "ok", "config"),
        ),
        (
            "healthcheck/redis.sh",
            "redis-cli -u redis://192.0.2.4:6380/0 ping\n",
            ("tcp", "192.0.2.4:6380", "ok", "config"),
        ),
        (
            "healthcheck/redis.sh",
            "/usr/bin/redis-cli -p 6380 ping\n",
            ("tcp", "127.0.0.1:6380", "forbidden", "default"),
        ),
        (
            "healthcheck/redis.sh",
            'redis-cli -h "$REDIS_HOST" ping\n',
            ("variable", "$REDIS_HOST:6379", "unverified", "config"),
        ),
        (
            "healthcheck/nginx.sh",
            "curl -fsS http://127.0.0.1/ >/dev/null\n",
            ("tcp", "127.0.0.1:80", "forbidden", "config"),
        ),
        (
            "healthcheck/nginx.sh",
            "curl -fsS -m 5 http://$(hostname)/ >/dev/null\n",
            ("variable", "$(hostname):80", "ok", "config"),
        ),
        (
            "healthcheck/nginx.sh",
            'curl -k "https://$(hostname -f):443/x"\n',
            ("variable", "$(hostname -f):443", "ok", "config"),
        ),
        (
            "healthcheck/nginx.sh",
            "curl --unix-socket /run/n.sock http://x/\n",
            ("unix", "/run/n.sock", "ok", "config"),
        ),
        (
            "healthcheck/nginx.sh",
            "curl -H 'Host: a' localhost:8080/h\n",
            ("tcp", "localhost:8080", "forbidden", "config"),
        ),
        (
            "bin/poste-redis-statistics",
            "#!/bin/sh\n# redis-cli -h 127.0.0.1\nredis-cli info stats\n",
            ("tcp", "127.0.0.1:6379", "forbidden", "default"),
        ),
        (
            "bin/clear-idle-connections",
            "<?php\n// redis-cli\n$c = ['redis-cli', 'client', 'list'];\n",
            ("tcp", "127.0.0.1:6379", "forbidden", "default"),
        ),
        (
            "bin/clear-idle-connections",
            "<?php\n$c = ['redis-cli', '-s', '/run/r.sock', 'client', 'list'];\n",
            ("unix", "/run/r.sock", "ok", "config"),
        ),
        (
            "opt/admin/src/Base/Server/System.php",
            "<?php\n$o = shell_exec('rspamc stat');\n",
            ("tcp", "localhost:11334", "forbidden", "default"),
        ),
        (
            "opt/admin/src/Base/Server/System.php",
            "<?php\n$o = shell_exec('rspamc -h /run/c.sock stat');\n",
            ("unix", "/run/c.sock", "ok", "config"),
        ),
        (
            "opt/admin/src/Base/Server/System.php",
            '<?php\n$o = shell_exec("rspamc -h 192.0.2.3:11334 stat");\n',
            ("tcp", "192.0.2.3:11334", "ok", "config"),
        ),
        (
            "opt/admin/src/Base/CommandInternal/DeliverQuarantineCommand.php",
            "<?php\n$p = new Process(\n    ['msmtp', '-f', $f, $t]\n);\n",
            ("variable", "?", "unverified", "default"),
        ),
        (
            "opt/admin/src/Base/CommandInternal/DeliverQuarantineCommand.php",
            "<?php\n$p = new Process(['msmtp', '--host', gethostname(), '-f', $f]);\n",
            ("variable", "gethostname():25", "ok", "config"),
        ),
        (
            "opt/admin/src/Base/CommandInternal/DeliverQuarantineCommand.php",
            "<?php\n$p = new Process(['msmtp', '--host=127.0.0.1', '--port=2525']);\n",
            ("tcp", "127.0.0.1:2525", "forbidden", "config"),
        ),
        (
            "etc/dovecot/sieve/report-spam.sieve",
            'require ["vnd.dovecot.pipe"];\npipe :copy "rspamc" ["learn_spam"];\n',
            ("tcp", "localhost:11334", "forbidden", "default"),
        ),
        (
            "etc/dovecot/sieve/report-spam.sieve",
            'pipe :copy "rspamc" ["--connect=/run/c.sock", "learn_spam"];\n',
            ("unix", "/run/c.sock", "ok", "config"),
        ),
        (
            "etc/dovecot/sieve/report-spam.sieve",
            'pipe :copy "rspamc" ["-h", "127.0.0.1", "symbols"];\n',
            ("tcp", "127.0.0.1:11333", "forbidden", "config"),
        ),
    ],
)
def test_client_programs_in_scripts(
    path: str, text: str, expected: tuple[str, str, str, str]
) -> None:
    found = connections({path: text})
    assert [(c.kind, c.target or "?", c.verdict.value, c.origin) for c in found] == [expected]
    calls = [
        no
        for no, line in enumerate(text.splitlines(), 1)
        if any(p in line for p in ("redis-cli", "rspamc", "curl", "msmtp"))
        and not line.lstrip().startswith(("#", "//"))
    ]
    assert found[0].line == calls[0]


def test_a_program_named_in_a_comment_or_another_word_is_no_call() -> None:
    text = "#!/bin/sh\n# uses redis-cli\nmy-redis-cli ping\necho redis-cli.log\n"
    assert connections({"healthcheck/redis.sh": text}) == []


# -- Roundcube and Predis ----------------------------------------------------------------------

WEBMAIL = "opt/www/webmail/config/config.inc.php"


def webmail(config: str, defaults: str | None = None) -> dict[str, tuple[str, str, str, int]]:
    """service -> (target, verdict, origin, line)"""
    files = {WEBMAIL: "<?php\n" + config}
    if defaults is not None:
        files["opt/www/webmail/config/defaults.inc.php"] = "<?php\n" + defaults
    return {
        c.reason.split("; ")[1].split(":")[0]: (c.target, c.verdict.value, c.origin, c.line)
        for c in connections(files)
    }


def test_roundcube_defaults_when_nothing_is_set() -> None:
    assert webmail("$config['product_name'] = 'Webmail';\n") == {
        "imap": ("localhost:143", "forbidden", "default", 0),
        "smtp": ("localhost:587", "forbidden", "default", 0),
        "managesieve": ("localhost:4190", "forbidden", "default", 0),
    }


def test_roundcube_hostname_expressions_and_ports() -> None:
    config = (
        "$config['default_host'] = 'ssl://' . gethostname();\n"
        "$config['smtp_server'] = 'tls://__HOSTNAME__:587';\n"
        "// $config['managesieve_host'] = 'localhost';\n"
        "$config['managesieve_host'] = \"__HOSTNAME__\";\n"
    )
    assert webmail(config) == {
        "imap": ("gethostname():993", "ok", "config", 2),
        "smtp": ("__HOSTNAME__:587", "ok", "config", 3),
        "managesieve": ("__HOSTNAME__:4190", "ok", "config", 5),
    }


def test_roundcube_current_name_wins_over_legacy_in_one_file_and_later_files_win() -> None:
    # Roundcube 1.6 (rcube_config::fix_legacy_props): in one file imap_host beats default_host
    same_file = (
        "$config['imap_host'] = 'localhost:143';\n$config['default_host'] = 'ssl://__HOSTNAME__';\n"
    )
    assert webmail(same_file)["imap"] == ("localhost:143", "forbidden", "config", 2)
    # a legacy name in config.inc.php beats the current name in defaults.inc.php
    found = webmail(
        "$config['default_host'] = 'ssl://__HOSTNAME__';\n",
        "$config['imap_host'] = 'localhost:143';\n",
    )
    assert found["imap"] == ("__HOSTNAME__:993", "ok", "config", 2)
    assert found["smtp"] == ("localhost:587", "forbidden", "default", 0)  # Roundcube's own


@pytest.mark.parametrize(
    "value",
    ["'%h'", "['a.example' => 'A', 'b.example' => 'B']", "$host", "getenv('IMAP')"],
)
def test_roundcube_hosts_it_cannot_read_are_unverified(value: str) -> None:
    assert webmail(f"$config['imap_host'] = {value};\n")["imap"][1] == "unverified"


ADMIN = "opt/admin/config/services_base.yaml"


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            "services:\n  Predis\\Client: { arguments: ['tcp://127.0.0.1:6379'] }\n",
            ("tcp", "127.0.0.1:6379", "forbidden", "config"),
        ),
        (
            "services:\n  Predis\\Client: { arguments: ['unix:/var/run/redis/redis.sock'] }\n"
            "  # upstream's value was: { arguments: ['tcp://127.0.0.1:6379'] }\n",
            ("unix", "/var/run/redis/redis.sock", "ok", "config"),
        ),
        (
            "services:\n  Predis\\Client:\n    arguments:\n      - 'unix:///run/r.sock'\n  Other: ~\n",
            ("unix", "/run/r.sock", "ok", "config"),
        ),
        (
            "services:\n  Predis\\Client:\n    arguments: [{ scheme: unix, path: /run/r.sock }]\n",
            ("unix", "/run/r.sock", "ok", "config"),
        ),
        (
            "services:\n  Predis\\Client: { arguments: ['%env(REDIS_URL)%'] }\n",
            ("variable", "%env(REDIS_URL)%", "unverified", "config"),
        ),
        ("services:\n  Predis\\Client: ~\n", ("tcp", "127.0.0.1:6379", "forbidden", "default")),
        (
            "services:\n  'Predis\\Client':\n    arguments: ['redis://192.0.2.5']\n",
            ("tcp", "192.0.2.5:6379", "ok", "config"),
        ),
    ],
)
def test_predis_definitions(yaml: str, expected: tuple[str, str, str, str]) -> None:
    found = connections({ADMIN: yaml})
    assert [(c.kind, c.target, c.verdict.value, c.origin) for c in found] == [expected]
    assert found[0].line == 2


# -- dovecot -----------------------------------------------------------------------------------

DOVECOT = "etc/dovecot/dovecot.conf"


def test_dovecot_clients() -> None:
    conf = (
        "protocols = imap\nlisten = __LISTEN_ON__\n"
        "submission_host = localhost:587\n"
        "submission_relay_host = 192.0.2.8\nsubmission_relay_port = 2525\n"
        "plugin {\n"
        "  quota = dict:User quota::proxy::quota\n"
        "  quota_clone_dict = redis:host=127.0.0.1:port=6379\n"
        "  quota_warning = storage=95%% quota-warning 95 %u\n"
        "  quota_rule = *:storage=1G\n"
        "}\n"
        "dict {\n  acl = memcached_ascii:host=127.0.0.1\n  other = proxy:/run/dict.sock:x\n}\n"
    )
    found = [(c.kind, c.target, c.verdict.value, c.line) for c in connections({DOVECOT: conf})]
    assert sorted(found, key=lambda r: r[3]) == [
        ("tcp", "localhost:587", "forbidden", 3),
        ("tcp", "192.0.2.8:2525", "ok", 4),
        ("unix", "/var/run/dovecot/dict", "ok", 7),
        ("tcp", "127.0.0.1:6379", "forbidden", 8),
        ("unix", "/var/run/dovecot/quota-warning", "ok", 9),
        ("tcp", "127.0.0.1:11211", "forbidden", 13),
        ("unix", "/run/dict.sock", "ok", 14),
    ]


# -- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("ip6-localhost", True),
        ("localhost.localdomain", True),
        ("a.localhost", True),
        ("192.0.2.1", False),
        ("::2", False),
        ("localhostname.example", False),
        ("mail.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def conn(**kw: object) -> Connection:
    base: dict[str, object] = {"component": "c", "file": "f", "line": 1, "kind": "tcp"}
    return Connection(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("connection", "poste", "generic"),
    [
        (conn(kind="unix", socket="/run/x"), "ok", "ok"),
        (conn(host="127.0.0.1", port=1), "forbidden", "forbidden"),
        (conn(host="0.0.0.0", port=1), "forbidden", "forbidden"),
        (conn(host="192.0.2.1", port=1), "ok", "ok"),
        (conn(host="__LISTEN_ON__", port=1), "ok", "unverified"),
        (conn(host="__HOSTNAME__", port=1), "ok", "unverified"),
        (conn(kind="variable", host="gethostname()"), "ok", "ok"),
        (conn(kind="variable", host="$(hostname)"), "ok", "ok"),
        (conn(kind="variable", host="$upstream"), "unverified", "unverified"),
        (conn(kind="variable", host=None), "unverified", "unverified"),
        (conn(host="db.example", port=1), "unverified", "unverified"),
        (conn(kind="variable", host="$hostname", missing="no resolver"), "problem", "problem"),
    ],
)
def test_connection_policy(connection: Connection, poste: str, generic: str) -> None:
    assert judge_connection(connection, POSTE).verdict.value == poste
    assert judge_connection(connection, GENERIC).verdict.value == generic


def test_a_forbidden_connection_in_a_skipped_unverifiable_file_is_unverified() -> None:
    files = {"healthcheck/nginx.sh": "curl http://127.0.0.1/\n"}
    pending = {"healthcheck/nginx.sh": "healthcheck.edit.toml"}
    result = audit_view(MemoryView(files), profile=POSTE, unverified=pending)
    [only] = result.connections
    assert only.verdict is Verdict.UNVERIFIED and "healthcheck.edit.toml" in only.reason
    assert not result.failed
    assert audit_view(MemoryView(files), profile=POSTE, unverified=pending, strict=True).failed
    assert audit_view(MemoryView(files), profile=POSTE).failed


def test_the_series_webmail_edit_wins_over_a_release_that_sets_the_current_names() -> None:
    # A Roundcube 1.6 config.inc.php that names imap_host/smtp_host itself (a test's text, not
    # poste.io's): the series' appended legacy names alone would be ignored there.
    edit = Path(__file__).resolve().parents[2] / "patches" / "webmail-hostname.edit.toml"
    release = (
        "<?php\n$config['imap_host'] = 'localhost:143';\n$config['smtp_host'] = 'localhost:587';\n"
    )
    assert webmail(release[len("<?php\n") :])["imap"][1] == "forbidden"
    outcome = load_change(edit.read_bytes(), name=edit.name).apply(
        {WEBMAIL: release.encode()}, version="2.5-stand-in"
    )
    patched = outcome.contents[WEBMAIL]
    assert patched is not None
    found = webmail(patched.decode()[len("<?php\n") :])
    assert {service: found[service][:2] for service in found} == {
        "imap": ("__HOSTNAME__:993", "ok"),
        "smtp": ("__HOSTNAME__:587", "ok"),
        "managesieve": ("__HOSTNAME__:4190", "ok"),
    }
