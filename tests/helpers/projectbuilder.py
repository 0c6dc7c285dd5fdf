"""Build maintainer projects for tests: releases as `dir:` trees, a series, the TOML."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patchkit import Project

Files = Mapping[str, str | bytes]


def write_tree(root: Path, files: Files) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        os.chmod(path, 0o755 if data.startswith(b"#!") else 0o644)
    return root


def make_project(
    tmp: Path,
    releases: Mapping[str, Files],
    patches: Mapping[str, str],
    *,
    base: str,
    series: str | None = None,
) -> Path:
    """A project under ``tmp/project`` whose releases are `dir:` trees under ``tmp/upstream``."""
    project = tmp / "project"
    (project / "patches").mkdir(parents=True, exist_ok=True)
    lines = [
        "# test project",
        "schema = 1",
        f'base = "{base}"',
        "",
        "[upstream]",
        'name = "test"',
        "",
    ]
    for version, files in releases.items():
        tree = write_tree(tmp / "upstream" / version, files)
        lines += [
            "[[version]]",
            f'version = "{version}"',
            'status = "supported"',
            f'source = "dir:{tree}"',
            "",
        ]
    (project / "upstream-versions.toml").write_text("\n".join(lines))
    for name, text in patches.items():
        (project / "patches" / name).parent.mkdir(parents=True, exist_ok=True)  # debian/x.patch
        (project / "patches" / name).write_text(text)
    (project / "patches" / "series").write_text(
        series if series is not None else "".join(f"{name}\n" for name in patches)
    )
    return project


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the .patchkit state, path -> bytes."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] == ".patchkit":
            continue
        if path.is_file():
            out[str(rel)] = path.read_bytes()
    return out


def numbered(n: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1))


# -- the four-patch rebase scenario (test_rebase, test_crash) -------------------------


def udiff(path: str, old: str, new: str, header: str = "") -> str:
    body = "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}", n=3
        )
    )
    return header + body


A10 = numbered(30)
A11 = "".join(f"new top {i}\n" for i in range(5)) + A10.replace("line 20\n", "line 20 upstream\n")
B10 = "alpha\nbeta\ngamma\n"
B11 = "alpha\nBETA\ngamma\n"
C10 = numbered(10)
C11 = C10.replace("line 4\n", "line 4 theirs\n")
D10 = numbered(12)
D11 = D10.replace("line 6\n", "line 6 upstream\n")

PATCHES = {
    "a.patch": udiff(
        "etc/a.conf",
        A10,
        A10.replace("line 5\n", "line 5 patched\n"),
        "Description: patch line 5\nForwarded: no\n\n",
    ),
    "d.patch": udiff(
        "etc/d.conf", D10, D10.replace("line 3\n", "line 3 ours\n"), "Description: d\n\n"
    ),
    "b.patch": udiff("etc/b.conf", B10, B11, "Description: upstream took this in 1.1\n\n"),
    "c.patch": udiff(
        "etc/c.conf", C10, C10.replace("line 4\n", "line 4 ours\n"), "Description: c\n\n"
    ),
}
SERIES = "# our series\na.patch\n# d merges\nd.patch -p1\nb.patch\nc.patch\n"


def rebase_scenario(tmp: Path) -> Project:
    """Releases 1.0 and 1.1 (imported) and a series where, onto 1.1, a.patch only moves,
    d.patch merges, b.patch is already upstream and c.patch conflicts."""
    from patchkit import Project

    root = make_project(
        tmp,
        {
            "1.0": {"etc/a.conf": A10, "etc/b.conf": B10, "etc/c.conf": C10, "etc/d.conf": D10},
            "1.1": {"etc/a.conf": A11, "etc/b.conf": B11, "etc/c.conf": C11, "etc/d.conf": D11},
        },
        PATCHES,
        base="1.0",
        series=SERIES,
    )
    p = Project.open(root)
    p.import_release("1.0")
    p.import_release("1.1")
    return p


# -- the forecast scenario (test_forecast, the forecast CLI and report tests) ------------------

F_CLEAN = numbered(8, "clean")
F_MOVED = numbered(10, "moved")
F_PARTLY = numbered(20, "partly")
F_CONFLICT = numbered(10, "conflict")
F_INDEP = numbered(6, "indep")
F_HEALTH = '#!/bin/sh\ncurl -fsS "http://127.0.0.1/" >/dev/null\n'
F_HEALTH_2 = '#!/bin/sh\n# 2.0 checks by name\ncurl -fsS "http://localhost:80/" >/dev/null\n'
F_HTTP = "[main]\nlisten=127.0.0.1:11380\n"
F_HTTP_2 = "[main]\nlisten=127.0.0.1:11380\n; upstream 2.0 comment\n"

FORECAST_RELEASES = {
    "1.0": {
        "etc/clean.conf": F_CLEAN,
        "etc/moved.conf": F_MOVED,
        "etc/partly.conf": F_PARTLY,
        "etc/b.conf": B10,
        "etc/conflict.conf": F_CONFLICT,
        "etc/indep.conf": F_INDEP,
        "healthcheck/nginx.sh": F_HEALTH,
        "etc/http.ini": F_HTTP,
    },
    "2.0": {
        "etc/clean.conf": F_CLEAN,
        # 30 lines above: the patch still applies exactly, 30 lines further down (a risk)
        "etc/moved.conf": numbered(30, "top") + F_MOVED,
        # upstream made one of the patch's two changes itself (line 15): the 3-way merge
        # keeps the other, the change is smaller (range-diff)
        "etc/partly.conf": F_PARTLY.replace("partly 15\n", "partly 15 fixed\n"),
        "etc/b.conf": B11,
        "etc/conflict.conf": F_CONFLICT.replace("conflict 4\n", "conflict 4 upstream\n"),
        "etc/indep.conf": F_INDEP,
        "healthcheck/nginx.sh": F_HEALTH_2,
        "etc/http.ini": F_HTTP_2,
    },
}

FORECAST_PATCHES = {
    "clean.patch": udiff(
        "etc/clean.conf",
        F_CLEAN,
        F_CLEAN.replace("clean 2\n", "clean 2 ours\n"),
        "Description: clean\n\n",
    ),
    "moved.patch": udiff(
        "etc/moved.conf",
        F_MOVED,
        F_MOVED.replace("moved 5\n", "moved 5 ours\n"),
        "Description: moved\n\n",
    ),
    "partly.patch": udiff(
        "etc/partly.conf",
        F_PARTLY,
        F_PARTLY.replace("partly 3\n", "partly 3 ours\n").replace(
            "partly 15\n", "partly 15 fixed\n"
        ),
        "Description: two fixes, upstream took one\n\n",
    ),
    "b.patch": udiff("etc/b.conf", B10, B11, "Description: upstream took this in 2.0\n\n"),
    "conflict.patch": udiff(
        "etc/conflict.conf",
        F_CONFLICT,
        F_CONFLICT.replace("conflict 4\n", "conflict 4 ours\n"),
        "Description: conflicts\n\n",
    ),
    # builds on conflict.patch's line: without it, it cannot apply either
    "dependent.patch": udiff(
        "etc/conflict.conf",
        F_CONFLICT.replace("conflict 4\n", "conflict 4 ours\n"),
        F_CONFLICT.replace("conflict 4\n", "conflict 4 ours, again\n"),
        "Description: depends on conflict.patch\n\n",
    ),
    "independent.patch": udiff(
        "etc/indep.conf",
        F_INDEP,
        F_INDEP.replace("indep 3\n", "indep 3 ours\n"),
        "Description: i\n\n",
    ),
    "health.edit.toml": (
        'description = "health checks by name"\n'
        '[[edit]]\nfiles = "healthcheck/nginx.sh"\nreplace = "http://127.0.0.1"\n'
        'with = "http://$(hostname)"\n'
    ),
    "sockets/etc/http.ini": "[main]\nlisten=/var/run/haraka/smtp.sock\n",
}
FORECAST_SERIES = (
    "clean.patch\nmoved.patch\npartly.patch\nb.patch\nconflict.patch\ndependent.patch\n"
    "independent.patch\nhealth.edit.toml\nsockets/\n"
)
# What a rebase onto 2.0 meets, change by change.
FORECAST_EXPECTED = {
    "clean.patch": "applied",
    "moved.patch": "applied",
    "partly.patch": "merged",
    "b.patch": "already-applied",
    "conflict.patch": "conflict",
    "dependent.patch": "conflict",
    "independent.patch": "applied",
    "health.edit.toml": "conflict",
    "sockets/": "applied",
}


def forecast_scenario(tmp: Path) -> Project:
    """Releases 1.0 and 2.0 (imported) and a series of every case a forecast reports."""
    from patchkit import Project

    root = make_project(
        tmp, FORECAST_RELEASES, FORECAST_PATCHES, base="1.0", series=FORECAST_SERIES
    )
    p = Project.open(root)
    p.import_release("1.0")
    p.import_release("2.0")
    return p


# -- the report scenario (test_report, the report CLI) ----------------------------------------

R_DPKG_1 = (
    "Package: redis-server\nStatus: install ok installed\nArchitecture: amd64\n"
    "Version: 5:7.0.15-1\nDescription: stand-in stanza written for this test\n\n"
    "Package: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n"
)
R_DPKG_2 = (
    "Package: redis-server\nStatus: install ok installed\nArchitecture: amd64\n"
    "Version: 5:8.0.2-3\n\n"
    "Package: libfoo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n"
)
R_NGINX_1 = "events {}\nhttp {\n  server {\n    listen 10.0.0.1:80;\n  }\n}\n"
R_NGINX_2 = R_NGINX_1.replace("}\n}\n", "}\n  server {\n    listen 127.0.0.1:8080;\n  }\n}\n")
R_REDIS_1 = "bind 127.0.0.1\nport 6379\n"
R_REDIS_2 = "# redis 8\nbind 127.0.0.1\nport 6379\n"
REPORT_RELEASES = {
    version: {
        "etc/redis/redis.conf": redis,
        "etc/nginx/nginx.conf": nginx,
        "var/lib/dpkg/status": dpkg,
        "opt/app/package.json": f'{{"name": "app", "version": "{app}"}}',
        "opt/app/node_modules/left-pad/package.json": '{"name": "left-pad", "version": "1.1.0"}',
        "opt/app/node_modules/left-pad/test/package.json": '{"name": "fixture", "version": "0"}',
    }
    for version, redis, nginx, dpkg, app in (
        ("1.0", R_REDIS_1, R_NGINX_1, R_DPKG_1, "1.0.0"),
        ("2.0", R_REDIS_2, R_NGINX_2, R_DPKG_2, "2.0.0"),
    )
}
REPORT_PATCHES = {
    "redis.patch": udiff(
        "etc/redis/redis.conf",
        R_REDIS_1,
        "port 0\nunixsocket /run/redis.sock\n",
        "Description: r\n\n",
    )
}


def report_scenario(tmp: Path) -> Project:
    """1.0 -> 2.0: upstream adds a loopback nginx listener, changes redis.conf (which the one
    patch touches), Debian and npm packages."""
    from patchkit import Project

    p = Project.open(make_project(tmp, REPORT_RELEASES, REPORT_PATCHES, base="1.0"))
    p.import_release("1.0")
    p.import_release("2.0")
    return p
