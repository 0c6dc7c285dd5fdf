"""``patchkit report``'s data: the release, the forecast, upstream's diff, the audit's changes
and verdict, the packages, from releases imported for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchkit import Project
from patchkit.core.model import PatchStatus
from patchkit.errors import NotImportedError
from patchkit.ops import report as report_mod
from patchkit.ops.report import build_report
from tests.helpers.projectbuilder import (
    forecast_scenario,
    make_project,
    numbered,
    report_scenario,
    udiff,
)


@pytest.fixture
def scenario(tmp_path: Path) -> Project:
    return report_scenario(tmp_path)


def test_the_report_holds_the_forecast_and_the_two_releases(scenario: Project) -> None:
    r = scenario.report("2.0")
    assert (r.name, r.release.version, r.base.version) == ("test", "2.0", "1.0")
    assert r.forecast.clean
    assert [(p.name, p.status) for p in r.forecast.patches] == [("redis.patch", PatchStatus.MERGED)]
    info = scenario.store.release("2.0")
    assert info is not None and r.release.digest == info.digest
    # A dir: source: its digest is its content's, and it has no image config.
    assert dict(r.release.digests) == {"content": info.digest}


def test_upstream_changes_are_those_of_the_touched_files_only(scenario: Project) -> None:
    u = scenario.report("2.0").upstream
    assert u.files == (("M", "etc/redis/redis.conf"),)
    (diff,) = u.diffs
    assert diff.path == "etc/redis/redis.conf" and "+# redis 8\n" in diff.text
    assert "etc/redis/redis.conf | 1 +" in u.stat


def test_listeners_that_appeared_upstream_and_the_patched_verdict(scenario: Project) -> None:
    r = scenario.report("2.0")
    listeners = r.section("listeners")
    assert [(x.text, x.component, x.verdict) for x in listeners.appeared] == [
        ("tcp 127.0.0.1:8080", "nginx", "forbidden")
    ]
    assert listeners.disappeared == ()
    assert r.audit is not None and r.audit.patched and r.audit.failed
    forbidden = [x.text for x in r.audit.findings if x.verdict == "forbidden"]
    assert forbidden == ["tcp 127.0.0.1:8080"]


def test_every_kind_of_audit_finding_has_its_section_found_or_not(scenario: Project) -> None:
    """Listeners and connections, from the audit's one table (audit/findings.py SECTIONS)."""
    r = scenario.report("2.0")
    assert [d.section for d in r.audit_changes] == ["listeners", "connections"]
    assert r.audit is not None and r.audit.sections == ("listeners", "connections")


def test_connections_that_appeared_upstream_are_reported(tmp_path: Path) -> None:
    # nginx proxying to 127.0.0.1:8000: a client of a loopback port (a leak once isolated)
    releases = {
        "1.0": {"etc/redis/redis.conf": "port 0\nunixsocket /run/redis.sock\n"},
        "2.0": {
            "etc/redis/redis.conf": "port 0\nunixsocket /run/redis.sock\n",
            "etc/nginx/nginx.conf": "events {}\nhttp {\n  server {\n    listen 10.0.0.1:80;\n"
            "    location / { proxy_pass http://127.0.0.1:8000; }\n  }\n}\n",
        },
    }
    project = Project.open(make_project(tmp_path, releases, {}, base="1.0"))
    project.import_release("1.0")
    project.import_release("2.0")
    appeared = project.report("2.0").section("connections").appeared
    assert [(x.text, x.component, x.verdict) for x in appeared] == [
        ("tcp 127.0.0.1:8000", "nginx", "forbidden")
    ]


def test_packages_that_changed_from_dpkg_and_npm(scenario: Project) -> None:
    got = [(c.manager, c.name, c.old, c.new) for c in scenario.report("2.0").packages]
    assert got == [
        ("debian", "libfoo", None, "1.0"),
        ("debian", "nginx", "1.22.1-9", None),
        ("debian", "redis-server", "5:7.0.15-1", "5:8.0.2-3"),
        ("npm", "app", "1.0.0", "2.0.0"),
    ]


def test_without_dpkg_status_the_report_says_so(tmp_path: Path) -> None:
    r = forecast_scenario(tmp_path).report("2.0")
    assert r.packages == ()
    assert any("no var/lib/dpkg/status in 1.0 and 2.0" in n for n in r.notes)
    assert not r.forecast.clean  # the report is written all the same


def test_upstream_diff_is_capped_per_file_and_in_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_mod, "MAX_FILE_DIFF_LINES", 20)
    monkeypatch.setattr(report_mod, "MAX_DIFF_LINES", 30)
    old = {f"etc/f{i}": numbered(40) for i in range(3)}
    new = {path: numbered(40, "changed") for path in old}
    patches = {
        f"p{i}.patch": udiff(f"etc/f{i}", numbered(40), numbered(39) + "ours\n") for i in range(3)
    }
    project = Project.open(make_project(tmp_path, {"1": old, "2": new}, patches, base="1"))
    project.import_release("1")
    project.import_release("2")
    u = build_report(project, "2").upstream
    assert [(d.path, len(d.text.splitlines()), d.truncated) for d in u.diffs] == [
        ("etc/f0", 20, True),
        ("etc/f1", 10, True),
    ]
    assert u.left_out == ("etc/f2",)
    assert len(u.files) == 3


def test_bad_input_is_the_forecasts_one_line(scenario: Project) -> None:
    (scenario.root / "upstream-versions.toml").write_text(
        (scenario.root / "upstream-versions.toml").read_text()
        + '\n[[version]]\nversion = "3.0"\nstatus = "testing"\nsource = "dir:/nowhere"\n'
    )
    with pytest.raises(NotImportedError, match=r"'3\.0' is not imported yet"):
        scenario.report("3.0")
