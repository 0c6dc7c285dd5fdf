#!/usr/bin/env python3
"""Write the generated overlays of the poste.io series from their readable sources.

    python tests/poste/make_patches.py          # (re)write patches/<overlay>/
    python tests/poste/make_patches.py --check  # exit 1 if an overlay differs from its sources

The start-up script and the two Haraka plugins live under tests/poste/ (startup/,
haraka/plugins/), where the tests run them. The series places them over the image as
overlays (a `dir/` series line: every file under patches/dir/ at the same path in the
image, its mode from the executable bit; the header in patches/dir/.overlay.toml). This
script copies each source to its image path (keeping the executable bit), writes the
header and removes any other file of that overlay, so the series and the tested sources
cannot drift (tests/poste/test_startup.py runs --check). The other overlays of the series
(rspamd workers, dovecot local.conf, Haraka redis.ini) are written by hand in patches/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATCHES = HERE.parents[1] / "patches"
META = ".overlay.toml"

# overlay directory -> (its .overlay.toml, [(source under tests/poste, path in the image)])
OVERLAYS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "startup-bind-hostname": (
        'description = """\\\n'
        "Start-up script: bind to the hostname's addresses (a file we own). \\\n"
        "/etc/cont-init.d/25-bind-hostname.sh runs before the services. It resolves the \\\n"
        "container's FQDN (LISTEN_ON=host, the default; or * or a list), replaces the \\\n"
        "__LISTEN_ON__ placeholders (nginx, Haraka smtp.ini of both instances, dovecot listen), \\\n"
        "writes config/bind_hostname.ini for the Haraka plugins (listen, send, outbound IP), \\\n"
        "points msmtp, dovecot submission_host, the admin mailer DSN and webmail at the FQDN \\\n"
        "and clears the admin app's compiled cache when its services config is newer. \\\n"
        "Idempotent; fails with one line on stderr if the hostname is not fully qualified or \\\n"
        'resolves to no usable address. See docs/image-guide.md."""\n'
        'source = "tests/poste/startup/25-bind-hostname.sh (written here by tests/poste/make_patches.py)"\n'
        'verified = "model-bookworm, model-trixie (tests/poste/test_startup.py, bench/isolation/run.py)"\n',
        [("startup/25-bind-hostname.sh", "etc/cont-init.d/25-bind-hostname.sh")],
    ),
    "haraka-outbound-ip-helo": (
        'description = """\\\n'
        "Haraka smtp instance: outbound source IP and HELO per sender domain (a plugin we own). \\\n"
        "get_mx hook: MX lookup as Haraka does it, each MX bound to the chosen IP and HELO. \\\n"
        "Default: OUTBOUND_MAIL_IP or the first send address (config/bind_hostname.ini); \\\n"
        "/data/outbound-hosts.yml: `default` and per-sender-domain {helo, ip}; an ip that is \\\n"
        "not a send address is refused (logged) and the default used; ip '*' lets the OS \\\n"
        "choose; a malformed file is logged and never stops mail; re-read when it changes. \\\n"
        "Parses YAML with Haraka 3.1's `yaml` (js-yaml `load` on older installs; no safeLoad). \\\n"
        'Enabled in config/plugins by haraka-enable-plugins.edit.toml."""\n'
        'source = "tests/poste/haraka/plugins/outbound_ip_helo.js (written here by tests/poste/make_patches.py)"\n'
        'verified = "node --test against Haraka 3.1.7 objects (tests/poste/haraka); placed on model-bookworm, model-trixie"\n',
        [("haraka/plugins/outbound_ip_helo.js", "opt/haraka-smtp/plugins/outbound_ip_helo.js")],
    ),
    "haraka-local-own-addresses": (
        'description = """\\\n'
        "Haraka (both instances): connections from our own listen addresses are local (a plugin \\\n"
        "we own). With nothing on 127.0.0.1, the admin app, webmail and msmtp connect through \\\n"
        "the hostname; connect_init marks those connections local and relaying, as loopback \\\n"
        'was. Enabled in config/plugins by haraka-enable-plugins.edit.toml."""\n'
        'source = "tests/poste/haraka/plugins/local_own_addresses.js (written here by tests/poste/make_patches.py)"\n'
        'verified = "node --test against Haraka 3.1.7 objects (tests/poste/haraka); placed on model-bookworm, model-trixie"\n',
        [
            (
                "haraka/plugins/local_own_addresses.js",
                "opt/haraka-smtp/plugins/local_own_addresses.js",
            ),
            (
                "haraka/plugins/local_own_addresses.js",
                "opt/haraka-submission/plugins/local_own_addresses.js",
            ),
        ],
    ),
}


def wanted(name: str) -> dict[str, tuple[bytes, bool]]:
    """Relative path inside patches/NAME/ -> (content, executable)."""
    meta, files = OVERLAYS[name]
    out = {META: (meta.encode(), False)}
    for src, path in files:
        source = HERE / src
        out[path] = (source.read_bytes(), os.access(source, os.X_OK))
    return out


def present(root: Path) -> dict[str, tuple[bytes, bool]]:
    if not root.is_dir():
        return {}
    return {
        str(f.relative_to(root)): (f.read_bytes(), os.access(f, os.X_OK))
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def write(root: Path, files: dict[str, tuple[bytes, bool]]) -> None:
    for rel in set(present(root)) - set(files):
        (root / rel).unlink()
    for rel, (data, executable) in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o755 if executable else 0o644)
        tmp.replace(target)
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in OVERLAYS:
        want = wanted(name)
        root = PATCHES / name
        if present(root) == want:
            continue
        if check:
            stale.append(name + "/")
        else:
            write(root, want)
            print(f"wrote patches/{name}/")
    if stale:
        print("out of date (run python tests/poste/make_patches.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
