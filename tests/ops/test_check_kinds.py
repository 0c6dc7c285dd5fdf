"""check over a series that holds all three kinds of change, on releases imported for real."""

from __future__ import annotations

import json
import os
from pathlib import Path

from patchkit import Project
from patchkit.cli import main
from tests.helpers.projectbuilder import make_project

PLUGINS = "# haraka plugins\nstatus_http\nrcpt_to.in_host_list\n"
HTTP_1 = "[main]\nlisten=127.0.0.1:11380\n"
HTTP_2 = "[main]\nlisten=127.0.0.1:11380\n; 2.0 adds a comment\n"

RELEASES = {
    "1.0": {
        "opt/haraka-smtp/config/plugins": PLUGINS,
        "opt/haraka-submission/config/plugins": PLUGINS,
        "opt/haraka-smtp/config/http.ini": HTTP_1,
        "etc/redis/redis.conf": "port 6379\n",
    },
    "2.0": {
        "opt/haraka-smtp/config/plugins": PLUGINS,
        "opt/haraka-submission/config/plugins": "# rewritten upstream\nrcpt_to.in_host_list\n",
        "opt/haraka-smtp/config/http.ini": HTTP_2,
        "etc/redis/redis.conf": "port 6379\n",
    },
}

EDIT = """description = "Our plugins after status_http, in both Haraka instances."
[[edit]]
files = "opt/haraka-{smtp,submission}/config/plugins"
expect-files = 2
insert-after = "status_http"
lines = ["bind_hostname"]

[[edit]]
files = "etc/haraka/extra.ini"
append = "socket = /var/run/haraka/smtp.sock\\n"
"""

REDIS = """--- a/etc/redis/redis.conf
+++ b/etc/redis/redis.conf
@@ -1 +1,2 @@
-port 6379
+port 0
+unixsocket /var/run/redis/redis.sock
"""


def project(tmp_path: Path) -> Path:
    root = make_project(
        tmp_path,
        RELEASES,
        {
            "redis.patch": REDIS,
            "haraka.edit.toml": EDIT,
            "sockets/opt/haraka-smtp/config/http.ini": "[main]\nlisten=/var/run/haraka/smtp.sock\n",
            "sockets/etc/haraka/extra.ini": "[extra]\n",
        },
        base="1.0",
        series="redis.patch\nsockets/\nharaka.edit.toml\n",
    )
    os.chmod(root / "patches/sockets/etc/haraka/extra.ini", 0o755)
    proj = Project.open(root)
    for version in RELEASES:
        proj.import_release(version)
    return root


def test_all_three_kinds_apply_on_base(tmp_path: Path) -> None:
    proj = Project.open(project(tmp_path))
    result = proj.check("1.0")
    by_name = {p.name: p for p in result.patches}
    assert {n: p.status.value for n, p in by_name.items()} == {
        "redis.patch": "applied",
        "sockets/": "applied",
        "haraka.edit.toml": "applied",
    }
    # the edit's second table edits a file the overlay created earlier in the series
    edits = by_name["haraka.edit.toml"].edits
    assert [(e.index, e.file, e.status.value) for e in edits] == [
        (1, "opt/haraka-smtp/config/plugins", "applied"),
        (1, "opt/haraka-submission/config/plugins", "applied"),
        (2, "etc/haraka/extra.ini", "applied"),
    ]
    entries = {e.path: (e.action, e.mode) for e in by_name["sockets/"].entries}
    assert entries == {
        "etc/haraka/extra.ini": ("added", "100755"),
        "opt/haraka-smtp/config/http.ini": ("replaced", "100644"),
    }


def test_on_a_newer_release_edits_report_per_edit_and_overlays_flag_upstream_changes(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    assert main(["--project", str(root), "check", "2.0", "--json"]) == 1
    proj = Project.open(root)
    doc = proj.check("2.0").to_dict()
    by_name = {p["name"]: p for p in doc["patches"]}
    edit = by_name["haraka.edit.toml"]
    assert edit["kind"] == "edit" and edit["status"] == "conflict"
    failed = [e for e in edit["edits"] if e["status"] == "conflict"]
    assert failed == [
        {
            "index": 1,
            "file": "opt/haraka-submission/config/plugins",
            "op": "insert-after",
            "status": "conflict",
            "reason": "no-match",
            "matches": 0,
            "expected": "1",
            "nearest": failed[0]["nearest"],
        }
    ]
    assert failed[0]["nearest"]["line"] in (1, 2)
    overlay = by_name["sockets/"]
    assert overlay["kind"] == "overlay" and overlay["status"] == "applied"
    assert overlay["flags"] == ["upstream-changed: opt/haraka-smtp/config/http.ini"]
    assert "kind" not in by_name["redis.patch"]  # diffs keep the JSON they always had


def test_cli_check_json_carries_the_kinds(tmp_path: Path, capsys: object) -> None:
    root = project(tmp_path)
    assert main(["--project", str(root), "check", "--json"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    doc = json.loads(out)
    kinds = {p["name"]: p.get("kind", "diff") for p in doc["patches"]}
    assert kinds == {"redis.patch": "diff", "sockets/": "overlay", "haraka.edit.toml": "edit"}
