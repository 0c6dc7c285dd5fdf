"""The start-up script /etc/cont-init.d/25-bind-hostname.sh, run on the patched model releases.

The configs are the real ones from the model releases (Debian's nginx and dovecot,
Haraka's instance dirs from `haraka -i`), patched by the series and copied to a temp
tree; the script runs with PATCHKIT_ROOT pointing there and with stub `hostname` and
`getent` on PATH. Results are read back by the real parsers where they run here:
`doveconf` and `nginx -t` from the model's own packages, haraka-config from npm.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci, require_tool
from tests.poste import modeltree
from tests.poste.harakaconf import haraka_ini

SCRIPT = Path(__file__).parent / "startup" / "25-bind-hostname.sh"
PATHS = (
    "etc/nginx",
    "etc/dovecot",
    "opt/haraka-smtp/config",
    "opt/haraka-submission/config",
    "usr/sbin/nginx",
    "usr/bin/doveconf",
    "usr/lib/dovecot",
    "usr/share/dovecot",
)
V4, V6 = "192.0.2.10", "2001:db8::10"


def _models() -> list[Any]:
    found = modeltree.available_models()
    if not found:
        if in_ci():
            return ["model-bookworm"]  # fails loudly below: CI builds the models first
        return []
    return found


@pytest.fixture(
    scope="session",
    params=_models()
    or [
        pytest.param(
            None,
            marks=pytest.mark.skip(reason="no model release built (python bench/model/build.py)"),
        )
    ],
)
def model_tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp(request.param)
    return modeltree.materialise(request.param, dest, patched=True, paths=PATHS)


@pytest.fixture
def root(model_tree: Path, tmp_path: Path) -> Iterator[Path]:
    r = tmp_path / "root"
    shutil.copytree(model_tree, r, symlinks=True)
    yield r


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """`hostname -f` answers $STUB_FQDN; `getent ahosts` answers $STUB_ADDRS like glibc does."""
    d = tmp_path / "stubs"
    d.mkdir()
    (d / "hostname").write_text('#!/bin/sh\n[ -n "$STUB_FQDN" ] || exit 1\necho "$STUB_FQDN"\n')
    (d / "getent").write_text(
        '#!/bin/sh\n[ "$1" = ahosts ] && [ "$2" = "$STUB_FQDN" ] || exit 2\n'
        '[ -n "$STUB_ADDRS" ] || exit 2\n'
        'for a in $STUB_ADDRS; do printf "%-15s STREAM %s\\n%-15s DGRAM\\n%-15s RAW\\n" "$a" "$2" "$a" "$a"; done\n'
    )
    for f in d.iterdir():
        f.chmod(0o755)
    return d


def run(
    root: Path,
    stubs: Path,
    *,
    fqdn: str = "mail.example.com",
    addrs: str = f"{V6} {V4}",
    **env: str,
) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "PATCHKIT_ROOT": str(root),
        "STUB_FQDN": fqdn,
        "STUB_ADDRS": addrs,
        "TMPDIR": str(stubs),
    }
    full.update(env)
    return subprocess.run(
        ["sh", str(SCRIPT)], env=full, capture_output=True, text=True, check=False
    )


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mtime_ns,
            )
    return out


def doveconf(root: Path, key: str) -> str:
    """A top-level setting as `doveconf -h` (the model's own binary) reads it.

    Dovecot 2.4's doveconf (trixie) refuses plugin settings whose modules live outside
    the tree (/usr/lib/dovecot/modules); there the include order is followed by hand.
    """
    env = {"LD_LIBRARY_PATH": str(root / "usr/lib/dovecot"), "PATH": os.environ["PATH"]}
    out = subprocess.run(
        [str(root / "usr/bin/doveconf"), "-c", str(root / "etc/dovecot/dovecot.conf"), "-h", key],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode == 0:
        return out.stdout.strip()
    assert "Unknown setting" in out.stderr, out.stderr
    return _dovecot_text_setting(root / "etc/dovecot/dovecot.conf", key) or ""


def _dovecot_text_setting(conf: Path, key: str) -> str | None:
    value, depth = None, 0
    for raw in conf.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("!include"):
            pattern = line.split(None, 1)[1]
            for inc in sorted(conf.parent.glob(pattern)) if not pattern.startswith("/") else []:
                got = _dovecot_text_setting(inc, key)
                value = got if got is not None else value
            continue
        depth += line.count("{") - line.count("}")
        if depth == 0 and "=" in line and line.split("=", 1)[0].strip() == key:
            value = line.split("=", 1)[1].strip()
    return value


def nginx_t(root: Path, site: str) -> subprocess.CompletedProcess[str]:
    """`nginx -t` (the model's binary) on nginx.conf with ``site`` as the only site."""
    conf = root / "etc/nginx/test-nginx.conf"
    text = (root / "etc/nginx/nginx.conf").read_text()
    text = text.replace("include /etc/nginx/sites-enabled/*;", "include @SITE@;")
    text = text.replace("/etc/nginx/", f"{root}/etc/nginx/").replace("/var/log/nginx/", f"{root}/")
    # The site rendered as poste.io's init renders it (the model's entrypoint does the same):
    # its port placeholders, which the model's stand-in templates hold too, become 80 and 443.
    rendered = root / "etc/nginx/test-site"
    # Its absolute includes (the stand-ins' fastcgi_params) read from the tree too.
    rendered.write_text(
        (root / site)
        .read_text()
        .replace("__HTTP_PORT__", "80")
        .replace("__HTTPS_PORT__", "443")
        .replace("/etc/nginx/", f"{root}/etc/nginx/")
    )
    text = text.replace("@SITE@", str(rendered))
    text = text.replace("pid /run/nginx.pid;", f"pid {root}/nginx.pid;")
    temps = "".join(
        f"{k}_temp_path {root}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {", "http {" + temps, 1)
    conf.write_text(text)
    (root / "etc/nginx/conf.d").mkdir(exist_ok=True)
    return subprocess.run(
        [
            str(root / "usr/sbin/nginx"),
            "-t",
            "-p",
            str(root),
            "-c",
            str(conf),
            "-e",
            str(root / "error.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


# -- what it rewrites ------------------------------------------------------------------


def test_haraka_both_instances_listen_only_on_the_hostname_addresses(
    root: Path, stubs: Path
) -> None:
    r = run(root, stubs)
    assert r.returncode == 0, r.stderr
    smtp = haraka_ini(root / "opt/haraka-smtp/config/smtp.ini")
    sub = haraka_ini(root / "opt/haraka-submission/config/smtp.ini")
    assert smtp["main"]["listen"] == f"{V4}:25,[{V6}]:25"
    assert sub["main"]["listen"] == f"{V4}:587,[{V6}]:587,{V4}:465,[{V6}]:465"
    assert "__LISTEN_ON__" not in (root / "opt/haraka-smtp/config/smtp.ini").read_text()


def test_dovecot_listen_is_the_hostname_addresses_as_doveconf_reads_it(
    root: Path, stubs: Path
) -> None:
    assert "__LISTEN_ON__" in doveconf(root, "listen") or doveconf(root, "listen") != f"{V4}, {V6}"
    assert run(root, stubs).returncode == 0
    assert doveconf(root, "listen") == f"{V4}, {V6}"


def test_nginx_placeholders_expand_to_one_listen_per_address_and_nginx_accepts_them(
    root: Path, stubs: Path
) -> None:
    assert run(root, stubs).returncode == 0
    https = (root / "etc/nginx/sites-enabled.templates/https").read_text()
    # The port placeholders stay for poste.io's init (which replaces them after the script).
    assert f"listen {V4}:__HTTPS_PORT__ ssl; listen [{V6}]:__HTTPS_PORT__ ssl;" in https
    assert f"listen {V4}:__HTTP_PORT__; listen [{V6}]:__HTTP_PORT__;" in https
    assert (
        "# patchkit-bind: listen __LISTEN_ON__:__HTTPS_PORT__ ssl;" in https
    )  # kept: the next start regenerates from it
    plain = root / "etc/nginx/sites-enabled.templates/no-https"
    result = nginx_t(root, str(plain.relative_to(root)))
    # `nginx -t` also binds: 192.0.2.10 exists only inside the live proof's namespace.
    assert "syntax is ok" in result.stderr, result.stderr
    assert (
        result.returncode == 0
        or f"bind() to {V4}:80 failed (99: Cannot assign requested address)" in result.stderr
    )


def test_unexpanded_placeholder_is_what_nginx_rejects(root: Path) -> None:
    # The check above can fail: the same nginx refuses the template before the script ran.
    result = nginx_t(root, "etc/nginx/sites-enabled.templates/no-https")
    assert result.returncode != 0 and "__LISTEN_ON__" in result.stderr


def test_plugin_lists_hold_listen_send_and_outbound_addresses(root: Path, stubs: Path) -> None:
    r = run(root, stubs, SEND_ON=f"{V6},{V4}", OUTBOUND_MAIL_IP=V6)
    assert r.returncode == 0, r.stderr
    for inst in ("smtp", "submission"):
        main = haraka_ini(root / f"opt/haraka-{inst}/config/bind_hostname.ini")["main"]
        assert main == {
            "hostname": "mail.example.com",
            "listen_on": f"{V4},{V6}",
            "send_on": f"{V4},{V6}",
            "outbound_ip": V6,
        }


def test_second_run_changes_nothing(root: Path, stubs: Path) -> None:
    assert run(root, stubs).returncode == 0
    before = snapshot(root)
    second = run(root, stubs)
    assert second.returncode == 0
    assert snapshot(root) == before  # content and mtimes
    assert "done (0 file(s) rewritten, 0 stale socket(s) removed)" in second.stdout


def test_next_start_with_other_addresses_rewrites_everything_again(root: Path, stubs: Path) -> None:
    assert run(root, stubs).returncode == 0
    assert run(root, stubs, addrs="198.51.100.7").returncode == 0
    https = (root / "etc/nginx/sites-enabled.templates/https").read_text()
    assert "listen 198.51.100.7:__HTTPS_PORT__ ssl;" in https and V4 not in https
    assert (
        haraka_ini(root / "opt/haraka-smtp/config/smtp.ini")["main"]["listen"] == "198.51.100.7:25"
    )
    assert doveconf(root, "listen") == "198.51.100.7"


def test_listen_on_star_binds_every_address(root: Path, stubs: Path) -> None:
    assert run(root, stubs, LISTEN_ON="*").returncode == 0
    assert (
        haraka_ini(root / "opt/haraka-submission/config/smtp.ini")["main"]["listen"]
        == "[::0]:587,[::0]:465"
    )
    assert (
        "listen __HTTP_PORT__; listen [::]:__HTTP_PORT__;"
        in (root / "etc/nginx/sites-enabled.templates/no-https").read_text()
    )
    assert doveconf(root, "listen") == "*, ::"
    main = haraka_ini(root / "opt/haraka-smtp/config/bind_hostname.ini")["main"]
    assert main["send_on"] == "*" and main["outbound_ip"] == "*"


def test_explicit_list_with_brackets_and_spaces(root: Path, stubs: Path) -> None:
    r = run(root, stubs, LISTEN_ON=f"[{V6}], 198.51.100.7", addrs="")
    assert r.returncode == 0, r.stderr  # no lookup needed
    assert (
        haraka_ini(root / "opt/haraka-smtp/config/smtp.ini")["main"]["listen"]
        == f"198.51.100.7:25,[{V6}]:25"
    )


def test_loopback_and_link_local_results_are_ignored(root: Path, stubs: Path) -> None:
    r = run(root, stubs, addrs=f"127.0.1.1 fe80::1 {V4}")
    assert r.returncode == 0, r.stderr
    assert "ignoring 127.0.1.1" in r.stdout
    assert doveconf(root, "listen") == V4


def test_services_reach_each_other_through_the_hostname(root: Path, stubs: Path) -> None:
    # poste.io's own files are not in the model: representative lines from public facts.
    files = {
        "etc/msmtprc": "account default\nhost localhost\nport 25\n",
        "opt/admin/.env.local": 'MAILER_DSN="smtp://user:pw@127.0.0.1:587?verify_peer=0"\n',
        "opt/www/webmail/config/config.inc.php": "<?php\n$config['imap_host'] = 'ssl://localhost:993';\n$config['smtp_host'] = 'tls://127.0.0.1:587';\n"
        "$config['managesieve_host'] = 'localhost';\n$config['product_name'] = 'localhost';\n",
        "etc/dovecot/conf.d/15-lda.conf": "submission_host = 127.0.0.1:587\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    r = run(root, stubs)
    assert r.returncode == 0, r.stderr
    assert (root / "etc/msmtprc").read_text() == "account default\nhost mail.example.com\nport 25\n"
    assert (
        root / "opt/admin/.env.local"
    ).read_text() == 'MAILER_DSN="smtp://user:pw@mail.example.com:587?verify_peer=0"\n'
    php = (root / "opt/www/webmail/config/config.inc.php").read_text()
    assert "'ssl://mail.example.com:993'" in php and "'tls://mail.example.com:587'" in php
    assert "$config['managesieve_host'] = 'mail.example.com';" in php
    assert "$config['product_name'] = 'localhost';" in php  # only the connection settings
    assert doveconf(root, "submission_host") == "mail.example.com:587"
    assert run(root, stubs).stdout.endswith(
        "done (0 file(s) rewritten, 0 stale socket(s) removed)\n"
    )


def test_files_only_in_the_real_image_are_skipped_and_said(root: Path, stubs: Path) -> None:
    r = run(root, stubs)
    for what in ("/etc/msmtprc", "/opt/admin mailer DSN", "/opt/www/webmail/config/config.inc.php"):
        assert f"skipped: not present: {what}" in r.stdout


# -- nginx's internal sockets ------------------------------------------------------------


def _stale_socket(path: Path) -> None:
    """A unix socket file nobody listens on: what a killed nginx leaves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


def _nginx_on_socket(root: Path, sock: Path) -> subprocess.CompletedProcess[str]:
    """Start the model's nginx (a daemon) with one server on ``sock``, as the patched
    template's internal listen; the caller stops it."""
    conf = root / "sock-nginx.conf"
    temps = "".join(f"{k}_temp_path {root}/{k};" for k in ("client_body", "proxy", "fastcgi"))
    conf.write_text(
        f"pid {root}/sock-nginx.pid; error_log {root}/sock-error.log;\n"
        f"events {{}}\nhttp {{ access_log off; {temps} uwsgi_temp_path {root}/u; "
        f"scgi_temp_path {root}/s;\n server {{ listen unix:{sock}; return 204; }} }}\n"
    )
    return subprocess.run(
        [str(root / "usr/sbin/nginx"), "-p", str(root), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _stop_nginx(root: Path) -> None:
    # nginx's master writes its pid file after the starting process has exited: wait for it,
    # or a loaded machine leaves this nginx running (and its socket in place) for the next test
    pidfile = root / "sock-nginx.pid"
    deadline = time.monotonic() + 20
    while not pidfile.exists() and time.monotonic() < deadline:
        if not (root / "sock-nginx.conf").exists():
            return
        time.sleep(0.05)
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip())
    os.kill(pid, signal.SIGQUIT)
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            break
        if state == "Z":  # exited; reaping it is its parent's (init's) business
            break
        time.sleep(0.05)


def test_a_stale_internal_socket_stops_nginx_until_the_script_removes_it(
    root: Path, stubs: Path
) -> None:
    sock = root / "var/run/nginx-https.sock"
    _stale_socket(sock)
    try:
        failed = _nginx_on_socket(root, sock)
        assert failed.returncode != 0
        assert "(98: Address already in use)" in failed.stderr, failed.stderr
        r = run(root, stubs)
        assert r.returncode == 0, r.stderr
        assert "removed a stale socket: /var/run/nginx-https.sock" in r.stdout
        assert not sock.exists()
        started = _nginx_on_socket(root, sock)
        assert started.returncode == 0, started.stderr
        assert stat.S_IMODE(sock.stat().st_mode) == 0o666  # nginx's own chmod: workers connect
    finally:
        _stop_nginx(root)
    assert not sock.exists()  # a clean stop removes it: nothing for the next start


def test_the_socket_of_a_running_nginx_is_kept(root: Path, stubs: Path, tmp_path: Path) -> None:
    sock = root / "var/run/nginx-http.sock"
    _stale_socket(sock)
    fake = tmp_path / "nginx"  # a process whose name is nginx, holding /run/nginx.pid
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "30"])
    try:
        (root / "run").mkdir(exist_ok=True)
        (root / "run/nginx.pid").write_text(f"{proc.pid}\n")
        r = run(root, stubs)
        assert r.returncode == 0 and "kept /var/run/nginx-http.sock: nginx is running" in r.stdout
        assert sock.exists()
    finally:
        proc.kill()
        proc.wait()
    r = run(root, stubs)
    assert "removed a stale socket: /var/run/nginx-http.sock" in r.stdout
    assert r.stdout.endswith("0 file(s) rewritten, 1 stale socket(s) removed)\n")


# -- how it fails ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"fqdn": "mail"}, "hostname 'mail' is not fully qualified"),
        ({"fqdn": ""}, "cannot determine the container's hostname"),
        ({"addrs": ""}, "resolves to no usable address"),
        ({"addrs": "127.0.1.1 ::1"}, "resolves to no usable address"),
        ({"LISTEN_ON": "192.0.2.10,mail.example.com"}, "'mail.example.com' is not an IP address"),
        ({"SEND_ON": "300.1.1.1x"}, "is not an IP address"),
        (
            {"OUTBOUND_MAIL_IP": "198.51.100.9"},
            "OUTBOUND_MAIL_IP 198.51.100.9 is not one of the send addresses",
        ),
    ],
)
def test_bad_setup_fails_loudly_with_one_line_and_touches_nothing(
    root: Path, stubs: Path, kw: dict[str, str], message: str
) -> None:
    before = snapshot(root)
    r = run(root, stubs, **kw)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr, r.stderr
    assert snapshot(root) == before
    assert not list(stubs.glob("25-bind-hostname.*")), "temporary files left behind"


def test_a_failing_move_leaves_each_file_whole_and_no_temp_files(root: Path, stubs: Path) -> None:
    real_mv = shutil.which("mv")
    (stubs / "mv").write_text(
        f'#!/bin/sh\ncase "$*" in *dovecot.conf) exit 1 ;; esac\nexec {real_mv} "$@"\n'
    )
    (stubs / "mv").chmod(0o755)
    dovecot = (root / "etc/dovecot/dovecot.conf").read_bytes()
    r = run(root, stubs)
    assert r.returncode == 1 and "cannot replace" in r.stderr
    assert (root / "etc/dovecot/dovecot.conf").read_bytes() == dovecot
    leftovers = [p for p in root.rglob(".25-bind-hostname.*")]
    assert leftovers == []


def test_script_is_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck")
    r = subprocess.run(
        [shellcheck, "--shell=sh", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout


def test_patches_are_generated_from_these_sources() -> None:
    r = subprocess.run(
        ["python3", str(modeltree.REPO / "tests/poste/make_patches.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
