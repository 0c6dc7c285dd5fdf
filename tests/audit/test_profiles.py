"""The audit is generic: a made-up profile (other roots, ports, placeholder) changes its results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.audit import (
    AuditResult,
    MemoryView,
    Verdict,
    audit_release,
    audit_view,
    unverified_files,
)
from patchkit.cli import main
from patchkit.core.model import CheckResult
from patchkit.kinds.overlay import OverlayFile, load_overlay
from patchkit.profiles import GENERIC, POSTE
from patchkit.profiles.base import AuditRule
from tests.helpers.projectbuilder import make_project
from tests.profiles.madeup import DEMO, MadeUpSeries, WholeFiles


def verdicts(result_listeners: object) -> list[tuple[str, int | None, str]]:
    assert isinstance(result_listeners, tuple)
    return [(x.address, x.port, x.verdict.value) for x in result_listeners]


SITE = (
    "server {\n  listen @BIND@:8443 ssl;\n  listen @BIND@:25;\n  listen __LISTEN_ON__:11334;\n}\n"
)


def test_the_placeholder_and_public_ports_are_the_profiles() -> None:
    demo = audit_view(MemoryView({"srv/web/site.conf": SITE}), profile=DEMO)
    assert verdicts(demo.listeners) == [
        ("@BIND@", 8443, "ok"),  # a public port of demo on demo's placeholder
        ("@BIND@", 25, "forbidden"),  # not public for demo
        ("__LISTEN_ON__", 11334, "ok"),  # only a word for demo: a specific address
    ]
    assert demo.listeners[1].reason == "port 25 is internal: use a unix socket"
    # poste.io's rules do not read srv/; given demo's files through rules=, poste judges them
    assert audit_view(MemoryView({"srv/web/site.conf": SITE}), profile=POSTE).listeners == ()
    poste = audit_view(MemoryView({"srv/web/site.conf": SITE}), profile=POSTE, rules=DEMO.rules)
    assert verdicts(poste.listeners) == [
        ("@BIND@", 8443, "ok"),
        ("@BIND@", 25, "ok"),  # poste.io has no @BIND@: a specific address
        ("__LISTEN_ON__", 11334, "forbidden"),  # an internal port on poste.io's placeholder
    ]


def test_rules_come_from_the_profile_with_their_defaults() -> None:
    files = {"srv/cache/redis.conf": "# defaults only\n", "etc/redis/redis.conf": "# defaults\n"}
    demo = audit_view(MemoryView(files), profile=DEMO)
    assert [(x.component, x.file, x.port) for x in demo.listeners] == [
        ("cache", "srv/cache/redis.conf", 7000),  # demo's default port, not redis's 6379
        ("cache", "srv/cache/redis.conf", 7000),
    ]
    generic = audit_view(MemoryView(files), profile=GENERIC)
    assert {(x.component, x.file, x.port) for x in generic.listeners} == {
        ("redis", "etc/redis/redis.conf", 6379)
    }
    own = (AuditRule(component="kv", files=("srv/cache/redis.conf",), parser="redis"),)
    assert {x.port for x in audit_view(MemoryView(files), profile=DEMO, rules=own).listeners} == {
        6379
    }


def test_connections_are_profile_driven() -> None:
    files = {
        "srv/bin/probe.sh": "curl -fs http://@HOST@/health\ncurl http://__HOSTNAME__/\nrspamc stat\n",
        "healthcheck/nginx.sh": "curl http://127.0.0.1/\n",
    }

    def found(result: object) -> list[tuple[str, int, str]]:
        assert isinstance(result, AuditResult)
        return [(c.file, c.line, c.verdict.value) for c in result.connections]

    # demo reads its probes (curl and redis-cli only: no rspamc) and knows its @HOST@
    assert found(audit_view(MemoryView(files), profile=DEMO)) == [
        ("srv/bin/probe.sh", 1, "ok"),
        ("srv/bin/probe.sh", 2, "unverified"),  # __HOSTNAME__ is only a name for demo
    ]
    # poste.io reads its health checks, not srv/; with demo's rules its hostname word counts
    assert found(audit_view(MemoryView(files), profile=POSTE)) == [
        ("healthcheck/nginx.sh", 1, "forbidden")
    ]
    assert found(audit_view(MemoryView(files), profile=POSTE, rules=DEMO.rules)) == [
        ("srv/bin/probe.sh", 1, "unverified"),
        ("srv/bin/probe.sh", 2, "ok"),
    ]
    # the generic profile reads no script at all
    assert found(audit_view(MemoryView(files), profile=GENERIC)) == []


def test_no_placeholder_means_no_public_exception() -> None:
    view = MemoryView({"etc/nginx/nginx.conf": "http { server { listen __LISTEN_ON__:25; } }\n"})
    assert verdicts(audit_view(view, profile=GENERIC).listeners) == [("__LISTEN_ON__", 25, "ok")]
    assert verdicts(audit_view(view, profile=POSTE).listeners) == [("__LISTEN_ON__", 25, "ok")]
    view = MemoryView({"etc/nginx/nginx.conf": "http { server { listen __LISTEN_ON__:26; } }\n"})
    assert [x.verdict for x in audit_view(view, profile=POSTE).listeners] == [Verdict.FORBIDDEN]
    assert [x.verdict for x in audit_view(view, profile=GENERIC).listeners] == [Verdict.OK]


def test_unverified_files_take_changes_of_any_kind() -> None:
    marked = WholeFiles(
        name="site/",
        files={"srv/web/site.conf": (b"", "100644")},
        header="Verified: offline-unverifiable\n",
        versions=("2",),
    )
    plain = WholeFiles(
        name="other/", files={"srv/web/other.conf": (b"", "100644")}, versions=("2",)
    )
    check = CheckResult(
        version="1",
        patches=(marked.apply({}, version="1").result, plain.apply({}, version="1").result),
    )
    assert unverified_files([marked, plain], check) == {"srv/web/site.conf": "site/"}


# -- through a project -------------------------------------------------------------------

RELEASE = {
    "srv/web/site.conf": "server {\n  listen 8443;\n}\n",
    "etc/redis/redis.conf": "bind 127.0.0.1\n",
    "opt/haraka/config/smtp.ini": "; Haraka's default: [::0]:25\n",
}


def project(tmp_path: Path, profile: str | None = None) -> Path:
    root = make_project(tmp_path, {"1": RELEASE}, {}, base="1")
    if profile:
        toml = root / "upstream-versions.toml"
        toml.write_text(
            toml.read_text().replace('name = "test"', f'name = "test"\nprofile = "{profile}"')
        )
    assert main(["--project", str(root), "-q", "import", "1"]) == 0
    return root


def test_audit_release_reads_the_roots_of_the_profile_it_is_given(tmp_path: Path) -> None:
    root = project(tmp_path)
    fix = WholeFiles(
        name="site/", files={"srv/web/site.conf": (b"server { listen @BIND@:8443; }\n", "100644")}
    )
    ws = MadeUpSeries(root, [fix])
    before = audit_release(ws, "1", patched=False, profile=DEMO)
    assert [(x.file, x.verdict.value) for x in before.listeners] == [
        ("srv/web/site.conf", "forbidden")
    ]
    after = audit_release(ws, "1", profile=DEMO)
    assert [(x.address, x.verdict.value) for x in after.listeners] == [("@BIND@", "ok")]
    assert not after.failed
    # The project's own profile (generic: its name is not poste.io) reads etc/, not srv/.
    own = audit_release(ws, "1")
    assert {x.file for x in own.listeners} == {"etc/redis/redis.conf"}
    # A skipped offline-unverifiable change of any kind makes its files' listeners unverified.
    later = WholeFiles(
        name="site/",
        files=fix.files,
        header="Verified: offline-unverifiable\n",
        versions=("2",),
    )
    skipped = audit_release(MadeUpSeries(root, [later]), "1", profile=DEMO)
    assert [x.verdict for x in skipped.listeners] == [Verdict.UNVERIFIED] and not skipped.failed


@pytest.mark.parametrize(
    ("profile", "files"),
    [
        (None, {"etc/redis/redis.conf"}),  # generic: Debian's places only
        ("generic", {"etc/redis/redis.conf"}),
        ("poste", {"etc/redis/redis.conf", "opt/haraka/config/smtp.ini"}),
    ],
)
def test_the_cli_audits_with_the_profile_the_toml_chooses(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    profile: str | None,
    files: set[str],
) -> None:
    root = project(tmp_path, profile)
    capsys.readouterr()
    assert main(["--project", str(root), "audit", "--json"]) == 1  # redis on loopback
    doc = json.loads(capsys.readouterr().out)
    assert {x["file"] for x in doc["listeners"]} == files
    assert Project.open(root).audit().to_dict()["listeners"] == doc["listeners"]


def test_an_unknown_profile_is_exit_3_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, "generic")
    toml = root / "upstream-versions.toml"
    toml.write_text(toml.read_text().replace('profile = "generic"', 'profile = "postfix"'))
    capsys.readouterr()
    assert main(["--project", str(root), "audit"]) == 3
    err = capsys.readouterr().err.strip()
    assert "profile 'postfix' is not known (known: generic, poste)" in err
    assert err.startswith("patchkit: error: upstream-versions.toml:") and "\n" not in err


def test_an_overlay_marked_in_its_toml_header_is_offline_unverifiable() -> None:
    meta = b'verified = "offline-unverifiable"\nupstream-versions = ">=2"\n'
    overlay = load_overlay("site/", {"srv/web/site.conf": OverlayFile(data=b"")}, meta=meta)
    check = CheckResult(version="1", patches=(overlay.apply({}, version="1").result,))
    assert unverified_files([overlay], check) == {"srv/web/site.conf": "site/"}
