"""The audit on poste.io 2.5.x's nginx template structure (issue 20).

tests/audit/fixtures/poste-2.5-templates holds stand-ins written from the facts issue 20 and
POSTE.md record (NOT poste.io's files): two servers in `https`, one in `no-https`, three
locations behind `auth_request .auth` and the `.auth` location that asks the admin app.

* Unpatched, every proxy and the auth subrequest go over loopback: forbidden.
* The series as it was when issue 20 was filed (`localhost` -> `$hostname`) turns the auth
  subrequest into `proxy_pass https://$hostname:...`: a variable host with no `resolver`,
  which nginx answers with 500. The audit must call it a problem.
* The fix's design (issue 20 item 1, made on another branch): the auth endpoint on an
  internal unix-socket listener of the same server. The audit must pass it.
"""

from __future__ import annotations

from pathlib import Path

from patchkit.audit import MemoryView, Verdict, audit_view
from patchkit.kinds import load_change
from patchkit.profiles import POSTE

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "poste-2.5-templates"
TEMPLATES = "etc/nginx/sites-enabled.templates"
HTTPS, NO_HTTPS = f"{TEMPLATES}/https", f"{TEMPLATES}/no-https"
LABEL = "NOT poste.io's file"

# The series' nginx edits as they were when issue 20 was filed (nginx-listen-hostname and
# nginx-proxy-sockets), kept here so these tests do not change when the series is fixed on
# its branch. LOCALHOST is the edit that broke the auth subrequest.
LISTEN = b"""
[[edit]]
files = "etc/nginx/sites-enabled.templates/{https,no-https}"
expect-files = 2
delete = "listen __HTTP_PORT__;"
count = ">=1"

[[edit]]
files = "etc/nginx/sites-enabled.templates/https"
delete = "listen __HTTPS_PORT__ ssl;"
count = ">=1"

[[edit]]
files = "etc/nginx/sites-enabled.templates/{https,no-https}"
expect-files = 2
replace = "listen [::]:"
with = "listen __LISTEN_ON__:"
count = ">=1"
"""
LOCALHOST = b"""
[[edit]]
files = "etc/nginx/sites-enabled.templates/{https,no-https}"
expect-files = 2
replace = "localhost"
with = "$hostname"
count = ">=1"
"""
PROXIES = b"""
[[edit]]
files = "etc/nginx/sites-enabled.templates/{https,no-https}"
expect-files = 2
replace = "127.0.0.1:11334"
with = "unix:/var/run/rspamd/controller.sock:"
count = ">=1"

[[edit]]
files = "etc/nginx/sites-enabled.templates/{https,no-https}"
expect-files = 2
replace = "proxy_pass http://127.0.0.1:$1/"
with = "proxy_pass http://unix:/var/run/haraka/http-$1.sock:/"
count = ">=1"
"""
# The design the series' fix implements (issue 20 item 1, another branch), written here as
# an edit: the auth endpoint on an internal unix-socket listener of the same server;
# `server_name localhost ...` stays (a name, not a connection).
AUTH_ON_A_SOCKET = b"""
[[edit]]
files = "etc/nginx/sites-enabled.templates/https"
replace = "proxy_pass https://localhost:__HTTPS_PORT__/admin/auth-ws;"
with = "proxy_pass https://unix:/var/run/nginx-https.sock:/admin/auth-ws;"

[[edit]]
files = "etc/nginx/sites-enabled.templates/https"
insert-after = "listen [::]:__HTTPS_PORT__ ssl;"
lines = ["    listen unix:/var/run/nginx-https.sock ssl;"]

[[edit]]
files = "etc/nginx/sites-enabled.templates/no-https"
replace = "proxy_pass http://localhost:__HTTP_PORT__/admin/auth-ws;"
with = "proxy_pass http://unix:/var/run/nginx-http.sock:/admin/auth-ws;"

[[edit]]
files = "etc/nginx/sites-enabled.templates/no-https"
insert-after = "listen [::]:__HTTP_PORT__;"
lines = ["    listen unix:/var/run/nginx-http.sock;"]
"""


def templates() -> dict[str, str]:
    out = {}
    for name in (HTTPS, NO_HTTPS):
        text = (FIXTURE / name).read_text()
        assert LABEL in text.splitlines()[0]  # a labelled stand-in
        out[name] = text
    return out


def apply(files: dict[str, str], name: str, data: bytes) -> dict[str, str]:
    outcome = load_change(data, name=name).apply(
        {p: t.encode() for p, t in files.items()}, version="2.5-stand-in"
    )
    assert outcome.result.status.value == "applied", outcome.result
    return {**files, **{p: c.decode() for p, c in outcome.contents.items() if c is not None}}


def audit(files: dict[str, str]):  # type: ignore[no-untyped-def]
    return audit_view(MemoryView(files), profile=POSTE)


def auth_connections(files: dict[str, str]) -> list[tuple[str, str, str]]:
    result = audit(files)
    return [
        (c.file, c.verdict.value, c.directive)
        for c in result.connections
        if c.directive.endswith("/admin/auth-ws")
    ]


def test_unpatched_every_protected_proxy_and_the_auth_subrequest_use_loopback() -> None:
    result = audit(templates())
    forbidden = [c for c in result.connections if c.verdict is Verdict.FORBIDDEN]
    assert {(c.file, c.host) for c in forbidden} == {
        (HTTPS, "127.0.0.1"),
        (HTTPS, "localhost"),
        (NO_HTTPS, "127.0.0.1"),
        (NO_HTTPS, "localhost"),
    }
    assert len(forbidden) == 8  # three protected proxies and .auth, in each template
    auth = [c for c in forbidden if c.host == "localhost"]
    assert {c.port for c in auth} == {443, 80}  # the port placeholders read as ports
    assert all("an auth_request subrequest" in c.reason for c in auth)
    php = [c for c in result.connections if c.kind == "unix"]
    assert {c.socket for c in php} == {"/var/run/php-fpm-admin.sock", "/var/run/php-fpm.sock"}


def test_the_series_at_issue_20_makes_the_auth_subrequest_a_problem() -> None:
    files = templates()
    for name, edit in (("listen", LISTEN), ("localhost", LOCALHOST), ("proxies", PROXIES)):
        files = apply(files, f"{name}.edit.toml", edit)
    assert "proxy_pass https://$hostname:__HTTPS_PORT__/admin/auth-ws;" in files[HTTPS]
    result = audit(files)
    assert result.failed
    problems = [c for c in result.connections if c.verdict is Verdict.PROBLEM]
    assert [(c.file, c.kind, c.host) for c in problems] == [
        (HTTPS, "variable", "$hostname"),
        (NO_HTTPS, "variable", "$hostname"),
    ]
    assert "no resolver defined to resolve $hostname" in problems[0].reason
    # Everything else already passes: the protected proxies reach the sockets, nginx listens
    # on the placeholder only.
    assert {c.verdict for c in result.connections if c not in problems} == {Verdict.OK}
    assert {x.verdict for x in result.listeners} == {Verdict.OK}
    s = result.summary
    assert (s["connections"], s["connections_problem"], s["connections_forbidden"]) == (10, 2, 0)


def test_the_intended_fix_passes_the_audit() -> None:
    files = templates()
    for name, edit in (("auth", AUTH_ON_A_SOCKET), ("listen", LISTEN), ("proxies", PROXIES)):
        files = apply(files, f"{name}.edit.toml", edit)
    assert "server_name localhost mail.*" in files[HTTPS]
    result = audit(files)
    assert not result.failed, [c for c in result.connections if c.verdict is not Verdict.OK]
    assert auth_connections(files) == [
        (HTTPS, "ok", "proxy_pass https://unix:/var/run/nginx-https.sock:/admin/auth-ws"),
        (NO_HTTPS, "ok", "proxy_pass http://unix:/var/run/nginx-http.sock:/admin/auth-ws"),
    ]
    assert {x.socket for x in result.listeners if x.kind == "unix"} == {
        "/var/run/nginx-https.sock",
        "/var/run/nginx-http.sock",
    }
    s = result.summary
    assert (s["connections"], s["connections_ok"], s["forbidden"]) == (10, 10, 0)


def test_a_resolver_in_scope_makes_the_variable_host_judged_by_its_value() -> None:
    files = apply(templates(), "localhost.edit.toml", LOCALHOST)
    files[HTTPS] = files[HTTPS].replace(
        "    location .auth {", "    resolver 192.0.2.53 valid=30s;\n    location .auth {"
    )
    https = [c for c in audit(files).connections if c.file == HTTPS]
    auth = [c for c in https if c.directive.endswith("/admin/auth-ws")]
    assert [(c.verdict, c.reason.split(";")[0]) for c in auth] == [
        (Verdict.OK, "the container's own hostname")
    ]
    dns = [c for c in https if "DNS resolver" in c.reason]
    assert [(c.kind, c.host, c.port, c.verdict) for c in dns] == [
        ("udp", "192.0.2.53", 53, Verdict.OK)
    ]
    # no-https has no resolver: still a problem there
    no_https = [c for c in audit(files).connections if c.file == NO_HTTPS]
    assert [c.verdict for c in no_https if c.directive.endswith("/admin/auth-ws")] == [
        Verdict.PROBLEM
    ]


def test_the_series_in_patches_passes_the_audit_on_the_2_5_templates() -> None:
    files = templates()
    # the series' nginx edits, in the order patches/series gives them
    series = (ROOT / "patches" / "series").read_text().split()
    for name in [n for n in series if n.startswith("nginx-") and n.endswith(".edit.toml")]:
        files = apply(files, name, (ROOT / "patches" / name).read_bytes())
    result = audit(files)
    assert not result.failed, [c for c in result.connections if c.verdict is not Verdict.OK]
