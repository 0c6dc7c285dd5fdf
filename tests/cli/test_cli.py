"""The CLI contract: commands, machine output on stdout, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.cli import main
from patchkit.compress import ZLIB_NAME
from tests.helpers.imagebuilder import Layer, build_docker_archive, build_oci_layout
from tests.helpers.projectbuilder import make_project, numbered, snapshot


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


PATCH = """\
Description: change line 3

--- a/etc/app.conf
+++ b/etc/app.conf
@@ -2,3 +2,3 @@
 line 2
-line 3
+line 3 patched
 line 4
"""


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return make_project(
        tmp_path,
        {"1.0": {"etc/app.conf": numbered(10)}, "2.0": {"etc/app.conf": "x\n" + numbered(10)}},
        {"p.patch": PATCH},
        base="1.0",
    )


def test_versions_lists_status_base_and_imported(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--project", str(proj), "import", "1.0")[0] == 0
    code, out, _ = run(capsys, "--project", str(proj), "versions", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["base"] == "1.0"
    assert [(v["version"], v["base"], v["imported"]) for v in doc["versions"]] == [
        ("1.0", True, True),
        ("2.0", False, False),
    ]
    code, out, _ = run(capsys, "--project", str(proj), "versions")
    assert "1.0" in out and "base" in out


def test_check_json_goes_to_stdout_and_table_to_stderr(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for v in ("1.0", "2.0"):
        assert run(capsys, "--project", str(proj), "import", v)[0] == 0
    code, out, err = run(capsys, "--project", str(proj), "check", "2.0", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == 1 and doc["command"] == "check" and doc["version"] == "2.0"
    assert doc["patches"][0]["status"] == "offset"
    assert doc["patches"][0]["hunks"][0]["offset"] == 1
    assert doc["summary"]["offset"] == 1
    assert "Series against 2.0" in err


def test_json_is_one_line_for_a_pipe_and_indented_for_a_terminal(proj: Path) -> None:
    import pty

    cmd = [sys.executable, "-m", "patchkit", "-q", "--project", str(proj)]
    subprocess.run([*cmd, "import", "1.0"], check=True, capture_output=True)
    piped = subprocess.run([*cmd, "check", "1.0", "--json"], capture_output=True, check=True).stdout
    assert piped.count(b"\n") == 1 and json.loads(piped)["command"] == "check"
    leader, follower = pty.openpty()
    try:
        subprocess.run([*cmd, "check", "1.0", "--json"], stdout=follower, check=True)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    shown = b"".join(chunks).replace(b"\r\n", b"\n")
    assert shown.count(b"\n") > 10 and b'\n  "command": "check"' in shown
    assert json.loads(shown) == json.loads(piped)


def test_matrix_formats(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for v in ("1.0", "2.0"):
        run(capsys, "--project", str(proj), "import", v)
    code, out, _ = run(capsys, "--project", str(proj), "-q", "matrix", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["versions"] == ["1.0", "2.0"]
    assert doc["results"] == [
        {"patch": "p.patch", "status": "applied", "version": "1.0"},
        {"patch": "p.patch", "status": "offset", "version": "2.0"},
    ]
    code, out, _ = run(capsys, "--project", str(proj), "-q", "matrix", "--format", "junit")
    assert out.startswith("<?xml") and 'testsuite name="2.0"' in out
    code, out, _ = run(capsys, "--project", str(proj), "-q", "matrix", "--format", "markdown")
    assert "| `p.patch` |" in out
    # --fail-on decides the exit code.
    assert run(capsys, "--project", str(proj), "-q", "matrix", "--fail-on", "offset")[0] == 1


def test_check_exit_1_on_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path, {"1": {"etc/app.conf": "other\n"}}, {"p.patch": PATCH}, base="1")
    run(capsys, "--project", str(root), "import", "1")
    code, out, _ = run(capsys, "--project", str(root), "check")
    assert code == 1
    assert "conflict" in out


def test_import_from_oci_and_docker_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lower = Layer().dir("etc").file("etc/app.conf", numbered(10).encode()).file("etc/gone", b"x")
    upper = Layer().whiteout("etc/gone").file("etc/new", b"n\n")
    oci = build_oci_layout(tmp_path / "oci", [lower, upper], tag="1.0")
    archive = build_docker_archive(tmp_path / "img.tar", [lower, upper])
    root = make_project(tmp_path, {"1.0": {}, "2.0": {}}, {"p.patch": PATCH}, base="1.0")
    code, out, _ = run(capsys, "--project", str(root), "import", "1.0", oci.source, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["reused"] is False and doc["digest"].startswith("sha256:")
    text = (root / "upstream-versions.toml").read_text()
    assert doc["digest"] in text and "# test project" in text
    # Same digest again: free.
    code, out, _ = run(capsys, "--project", str(root), "import", "1.0", oci.source, "--json")
    assert json.loads(out)["reused"] is True
    code, out, _ = run(
        capsys, "--project", str(root), "import", "2.0", f"docker-archive:{archive.path}", "--json"
    )
    assert code == 0
    code, out, _ = run(capsys, "--project", str(root), "check", "2.0", "--json")
    assert json.loads(out)["patches"][0]["status"] == "applied"


@pytest.mark.parametrize("where", ["before", "after"])
def test_import_verbose_names_the_zlib_wherever_v_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    oci = build_oci_layout(tmp_path / "oci", [Layer().file("etc/a", b"a\n")], tag="1.0")
    root = make_project(tmp_path, {"1.0": {}}, {"p.patch": PATCH}, base="1.0")
    argv = ["--project", str(root), "import", "1.0", oci.source, "--json"]
    argv.insert(0 if where == "before" else len(argv), "-v")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["reused"] is False and f"zlib: {ZLIB_NAME}\n" in err


BAD_TOML = [
    ("schema = 1\nbase = [\n", "upstream-versions.toml:2: invalid TOML"),
    (
        'schema = 1\nbase = "1"\n[upstream]\nname = "x"\n[[version]]\nstatus = "eol"\n',
        "upstream-versions.toml:5: [[version]] #1: missing field 'version'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_TOML)
def test_malformed_toml_is_one_line_exit_3(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "upstream-versions.toml").write_text(text)
    code, _out, err = run(capsys, "--project", str(tmp_path), "versions")
    assert code == 3
    assert err == f"patchkit: error: {err.split('error: ', 1)[1]}"
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *, code: int = 3) -> str:
    got, out, err = run(capsys, *argv)
    assert got == code, (out, err)
    assert err.startswith("patchkit: error: ") and err.count("\n") == 1, err
    return err


def test_bad_inputs_get_one_line_and_exit_3(
    proj: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--project", str(proj)]
    assert "'9.9' is not tracked" in one_line_error(capsys, [*p, "import", "9.9"])
    assert "not imported yet; run: patchkit import 2.0" in one_line_error(
        capsys, [*p, "check", "2.0"]
    )
    assert "does-not-exist" in one_line_error(
        capsys, [*p, "import", "1.0", f"oci:{tmp_path}/does-not-exist:1"]
    )
    (tmp_path / "notimage").mkdir()
    one_line_error(capsys, [*p, "import", "1.0", f"oci:{tmp_path}/notimage:1"])
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 10)
    one_line_error(capsys, [*p, "import", "1.0", f"docker-archive:{tmp_path}/junk.tar"])
    one_line_error(capsys, [*p, "import", "1.0", "nonsense-source"])
    # The series names a missing patch.
    (proj / "patches/series").write_text("p.patch\nmissing.patch\n")
    err = one_line_error(capsys, [*p, "check", "1.0"])
    assert "patches/series:2" in err and "missing.patch" in err
    # A patch unidiff cannot parse names the patch and line.
    (proj / "patches/series").write_text("p.patch\n")
    (proj / "patches/p.patch").write_text(PATCH.replace(" line 4\n", ""))
    err = one_line_error(capsys, [*p, "check", "1.0"])
    assert "patches/p.patch:" in err
    # Usage errors are exit 2.
    assert run(capsys, *p, "matrix", "--fail-on", "bogus")[0] == 2
    assert run(capsys, *p, "frobnicate")[0] == 2
    assert run(capsys, *p, "rebase")[0] == 2


def test_no_project_here(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, ["--project", str(tmp_path), "versions"])
    assert "upstream-versions.toml: not found" in err


def test_digest_recorded_in_toml_must_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build_oci_layout(tmp_path / "a", [Layer().file("f", b"a\n")], tag="1")
    b = build_oci_layout(tmp_path / "b", [Layer().file("f", b"b\n")], tag="1")
    root = make_project(tmp_path, {"1": {}}, {}, base="1")
    assert run(capsys, "--project", str(root), "import", "1", a.source)[0] == 0
    before = snapshot(root)
    err = one_line_error(capsys, ["--project", str(root), "import", "1", b.source])
    assert "digest" in err
    assert snapshot(root) == before


def test_hostile_layer_is_refused_and_nothing_written_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tarfile

    evil = tarfile.TarInfo("../../escaped")
    layer = Layer().raw(evil, b"boom")
    img = build_oci_layout(tmp_path / "evil", [layer], tag="1")
    root = make_project(tmp_path, {"1": {}}, {}, base="1")
    err = one_line_error(capsys, ["--project", str(root), "import", "1", img.source])
    assert "layer 1" in err and "../../escaped" in err
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()


@pytest.mark.parametrize(
    ("kind", "entry", "why"),
    [
        ("sparse-bomb", "big", "bytes of holes"),
        ("deep-path", "a/a/a/a", "the limit is 4096"),
        ("pax-no-newline", "././@PaxHeader", "newline"),
    ],
)
def test_hostile_tar_headers_get_one_line_naming_layer_and_entry_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, entry: str, why: str
) -> None:
    from tests.helpers.tarstreams import END, RawLayer, header, old_gnu_sparse, pax, pax_record

    archive = {
        "sparse-bomb": old_gnu_sparse("big", 60_000_000_000, [(0, b"x")]),
        "deep-path": pax([("path", "a/" * 222_371 + "f")]) + header("f"),
        "pax-no-newline": pax(pax_record("path", "name")[:-1] + b"X") + header("f"),
    }[kind]
    img = build_oci_layout(tmp_path / "img", [RawLayer(archive + END)], tag="1")
    root = make_project(tmp_path, {"1": {}}, {}, base="1")
    err = one_line_error(capsys, ["--project", str(root), "import", "1", img.source])
    assert "layer 1" in err and f"entry '{entry}" in err and why in err, err
    assert not list((root / ".patchkit").glob("**/tmp_pack_*"))


def test_demo_runs_offline_and_succeeds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "demo", "--dir", str(tmp_path / "demo"))
    assert code == 0
    assert "demo finished: every step behaved as expected" in out
    assert "already-applied" in out and "conflict" in out and "merged" in out


def test_demo_ends_with_a_new_release_that_watch_forecast_and_report_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "demo", "--dir", str(tmp_path / "demo"))
    assert code == 0 and "demo finished: every step behaved as expected" in out
    step = out[out.index("upstream publishes 1.2") :]
    assert "$ patchkit watch\n" in step and "newer than base" in step
    assert "newer than base, imported" in step  # watch --import
    assert "Forecast of a rebase 1.1 → 1.2" in step and "3 applied, 1 conflict" in step
    # the report: the conflict first, the new internal TCP listener, the package that changed
    assert "#### `redis-unix-socket.patch`: conflict" in step
    assert "| appeared | `tcp [::1]:6379` | redis |" in step
    assert "| `redis-server` | debian | `5:7.0.15-1` | `5:7.2.4-1` |" in step
    root = tmp_path / "demo"
    report = (root / "report-1.2.md").read_text()
    assert report.startswith("<!-- patchkit-report demo-mail 1.2 -->\n")
    assert (root / "report-1.2.html").read_text().startswith("<!DOCTYPE html>")
    project = Project.open(root / "project")
    added = project.versions.release("1.2")
    assert added.status.value == "testing" and added.tag_digest == added.digest
    assert project.versions.base == "1.1"  # watch, forecast and report change no base


def test_interrupt_during_rebase_is_recoverable_with_abort(proj: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) at several moments of a rebase: --abort restores the project."""
    env = {**os.environ}
    cmd = [sys.executable, "-m", "patchkit", "--project", str(proj)]
    for v in ("1.0", "2.0"):
        subprocess.run([*cmd, "import", v], check=True, env=env, capture_output=True)
    before = snapshot(proj)
    lock = proj / ".patchkit" / "lock"
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        stamp = lock.stat().st_mtime_ns if lock.exists() else 0
        proc = subprocess.Popen(
            [*cmd, "rebase", "--onto", "2.0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Interrupt patchkit's own work, not the interpreter's start-up: wait for the lock.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if lock.exists() and lock.stat().st_mtime_ns != stamp:
                break
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        stderr = proc.stderr.read() if proc.stderr else b""
        # -SIGINT: the signal landed while the interpreter was shutting down, after patchkit
        # returned (Python restores the default handler then); silent, and the work is done.
        assert proc.returncode in (0, 1, 130, -signal.SIGINT), stderr
        assert b"Traceback" not in stderr
        if proc.returncode == 0:
            # It finished first: undo through git-free means for the next round.
            for rel, data in before.items():
                (proj / rel).write_bytes(data)
            continue
        status = subprocess.run([*cmd, "rebase", "--abort"], env=env, capture_output=True)
        if status.returncode == 3:
            # Interrupted before the rebase started or after it completed: nothing to abort,
            # and the project is either untouched or the consistent, rebased one.
            assert b"no rebase in progress" in status.stderr
            now = snapshot(proj)
            assert now == before or 'base = "2.0"' in (proj / "upstream-versions.toml").read_text()
            for rel, data in before.items():
                (proj / rel).write_bytes(data)
            continue
        assert status.returncode == 0, status.stderr
        assert snapshot(proj) == before


def test_import_replace_takes_a_changed_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build_oci_layout(tmp_path / "a", [Layer().file("f", b"a\n")], tag="1")
    b = build_oci_layout(tmp_path / "b", [Layer().file("f", b"b\n")], tag="1")
    root = make_project(tmp_path, {"1": {}}, {}, base="1")
    assert run(capsys, "--project", str(root), "import", "1", a.source)[0] == 0
    err = one_line_error(capsys, ["--project", str(root), "import", "1", b.source])
    assert "--replace" in err
    code, out, _ = run(
        capsys, "--project", str(root), "import", "1", b.source, "--replace", "--json"
    )
    assert code == 0 and json.loads(out)["reused"] is False
    assert json.loads(out)["digest"] in (root / "upstream-versions.toml").read_text()
    from patchkit import Project

    info = Project.open(root).store.release("1")
    assert info is not None and info.digest == json.loads(out)["digest"]
