"""`patchkit build`: the context holds exactly the patched tree's changed files, modes, owners."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.cli import main
from patchkit.ops.build import _base_image, build_context, patched_tree
from patchkit.profiles import POSTE
from patchkit.profiles.poste import START_SCRIPT
from tests.helpers.imagebuilder import Layer, build_oci_layout
from tests.profiles.madeup import DEMO, MadeUpSeries, WholeFiles

assert DEMO.start_script is not None
DEMO_SCRIPT = DEMO.start_script

REDIS_CONF = "bind 127.0.0.1\nport 6379\n"

PATCHES = {
    "redis.patch": """Description: redis socket

--- a/etc/redis/redis.conf
+++ b/etc/redis/redis.conf
@@ -1,2 +1,3 @@
 bind 127.0.0.1
-port 6379
+port 0
+unixsocket /var/run/redis/redis.sock
""",
    "new-local.patch": """Description: a new file in a directory owned by a service user

diff --git a/etc/redis/local.conf b/etc/redis/local.conf
new file mode 100644
--- /dev/null
+++ b/etc/redis/local.conf
@@ -0,0 +1 @@
+maxmemory 64mb
""",
    "drop.patch": """Description: remove a file

diff --git a/etc/old.conf b/etc/old.conf
deleted file mode 100644
--- a/etc/old.conf
+++ /dev/null
@@ -1 +0,0 @@
-old
""",
    "start.patch": f"""Description: the start-up script

diff --git a/{START_SCRIPT} b/{START_SCRIPT}
new file mode 100755
--- /dev/null
+++ b/{START_SCRIPT}
@@ -0,0 +1,2 @@
+#!/bin/sh
+exit 0
""",
}


def make(tmp_path: Path, patches: dict[str, str] = PATCHES, *, status: str = "model") -> Path:
    layer = (
        Layer()
        .dir("etc", mode=0o755)
        .dir("etc/redis", mode=0o750, uid=101, gid=102)
        .file("etc/redis/redis.conf", REDIS_CONF.encode(), mode=0o640, uid=101, gid=102)
        .file("etc/old.conf", b"old\n")
        .file("etc/untouched.conf", b"same\n")
    )
    built = build_oci_layout(tmp_path / "layout", [layer], tag="1.0")
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "upstream-versions.toml").write_text(
        'schema = 1\nbase = "1.0"\n[upstream]\nname = "t"\nimage = "docker.io/acme/mail"\n'
        'profile = "poste"\n'
        f'[[version]]\nversion = "1.0"\nstatus = "{status}"\nsource = "{built.source}"\n'
    )
    for name, text in patches.items():
        (project / "patches" / name).write_text(text)
    (project / "patches" / "series").write_text("".join(f"{n}\n" for n in patches))
    assert main(["--project", str(project), "-q", "import", "1.0"]) == 0
    return project


def test_context_matches_the_patched_tree_file_by_file(tmp_path: Path) -> None:
    project = make(tmp_path)
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "-q", "build", "1.0", "--out", str(out)]) == 0
    p = Project.open(project)
    with p.store.blob_reader() as reader:
        pt = patched_tree(
            reader, version="1.0", tree=p.release_tree("1.0"), patches=p.patches(), store=p.store
        )
    overlay = out / "overlay"
    on_disk = {
        str(f.relative_to(overlay)): f.read_bytes() for f in overlay.rglob("*") if f.is_file()
    }
    assert on_disk == {path: pt.changes[path] for path in pt.changed_paths}
    assert set(on_disk) == {"etc/redis/redis.conf", "etc/redis/local.conf", START_SCRIPT}
    assert (
        stat.S_IMODE((overlay / "etc/redis/redis.conf").stat().st_mode) == 0o640
    )  # from the manifest
    assert stat.S_IMODE((overlay / START_SCRIPT).stat().st_mode) == 0o755  # new file mode 100755
    docker = (out / "Dockerfile").read_text()
    assert (
        'COPY --chown=101:102 ["overlay/etc/redis/redis.conf", "/etc/redis/redis.conf"]' in docker
    )
    # A new file takes its directory's owner from the manifest.
    assert (
        'COPY --chown=101:102 ["overlay/etc/redis/local.conf", "/etc/redis/local.conf"]' in docker
    )
    assert f'COPY --chown=0:0 ["overlay/{START_SCRIPT}", "/{START_SCRIPT}"]' in docker
    assert "RUN rm -f /etc/old.conf" in docker
    assert "RUN install -d -o redis -g redis -m 2775 /var/run/redis" in docker
    assert "untouched" not in docker and not (overlay / "etc/untouched.conf").exists()
    meta = json.loads((out / "patchkit-build.json").read_text())
    assert meta["start_script"] is True and meta["command"] == "build"
    assert (
        docker.splitlines()[3] == "FROM patchkit/1.0:1.0"
    )  # a local oci: image, said in a warning


def test_missing_target_writes_no_context_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {
        "gone.patch": PATCHES["redis.patch"].replace("etc/redis/redis.conf", "etc/redis/nope.conf")
    }
    project = make(tmp_path, bad, status="supported")
    capsys.readouterr()
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "build", "1.0", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "gone.patch (missing-target)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_model_release_leaves_out_changes_whose_targets_only_the_real_image_has(
    tmp_path: Path,
) -> None:
    only_real = {
        "gone.patch": PATCHES["redis.patch"].replace("etc/redis/redis.conf", "etc/redis/nope.conf"),
        "redis.patch": PATCHES["redis.patch"],
    }
    project = make(tmp_path, only_real)  # status = "model"
    out = tmp_path / "ctx"
    ctx = Project.open(project).build_context("1.0", out)
    assert ctx.left_out == ("gone.patch",)
    assert any("left out" in w and "gone.patch" in w for w in ctx.warnings)
    assert (out / "overlay/etc/redis/redis.conf").is_file()
    assert json.loads((out / "patchkit-build.json").read_text())["left_out"] == ["gone.patch"]


def test_from_uses_the_digest_and_falls_back_to_the_tag_with_a_warning() -> None:
    digest = "sha256:" + "a" * 64
    ref, warnings = _base_image("docker://analogic/poste.io:2.5.24", digest, "2.5.24")
    assert ref == f"docker.io/analogic/poste.io@{digest}" and warnings == []
    ref, warnings = _base_image("docker://analogic/poste.io:2.5.24", "", "2.5.24")
    assert ref == "docker.io/analogic/poste.io:2.5.24" and "no digest" in warnings[0]


def test_refuses_to_overwrite_a_directory_that_is_not_a_context(tmp_path: Path) -> None:
    project = make(tmp_path)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--project", str(project), "build", "1.0", "--out", str(out)]) == 3
    assert (out / "keep.txt").read_text() == "mine"


# -- the profile decides what the context adds; changes of any kind ----------------------------


def test_the_context_adds_the_run_dirs_and_start_script_of_the_profile_it_is_given(
    tmp_path: Path,
) -> None:
    project = make(tmp_path, {})
    site = b"server { listen unix:/srv/sockets/web.sock; }\n"
    change = WholeFiles(
        name="srv/",
        files={"srv/web/site.conf": (site, "100644"), DEMO_SCRIPT: (b"#!/bin/sh\n", "100755")},
    )
    ws = MadeUpSeries(project, [change])
    ctx = build_context(ws, "1.0", tmp_path / "demo", profile=DEMO)
    docker = (tmp_path / "demo" / "Dockerfile").read_text()
    assert "RUN install -d -o demo -g demo -m 0750 /srv/sockets" in docker
    assert f"RUN chmod 0755 /{DEMO_SCRIPT}" in docker and ctx.start_script
    assert stat.S_IMODE((tmp_path / "demo/overlay" / DEMO_SCRIPT).stat().st_mode) == 0o755
    assert [f["path"] for f in ctx.files] == ["/srv/bin/start.sh", "/srv/web/site.conf"]
    # poste.io's profile knows neither the directory nor the script
    ctx = build_context(ws, "1.0", tmp_path / "poste", profile=POSTE)
    docker = (tmp_path / "poste" / "Dockerfile").read_text()
    assert "install -d" not in docker and "chmod" not in docker and not ctx.start_script


def test_the_generic_profile_adds_nothing_but_the_files(tmp_path: Path) -> None:
    project = make(tmp_path)
    toml = project / "upstream-versions.toml"
    toml.write_text(toml.read_text().replace('profile = "poste"\n', ""))  # name "t": generic
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "-q", "build", "1.0", "--out", str(out)]) == 0
    docker = (out / "Dockerfile").read_text()
    assert "install -d" not in docker and "chmod" not in docker
    assert f'COPY --chown=0:0 ["overlay/{START_SCRIPT}", "/{START_SCRIPT}"]' in docker
    meta = json.loads((out / "patchkit-build.json").read_text())
    assert meta["run_dirs"] == [] and meta["start_script"] is False


def test_an_overlay_in_the_series_is_built_with_its_owners_and_modes(tmp_path: Path) -> None:
    project = make(tmp_path, {})
    overlay = project / "patches" / "redis-socket"
    (overlay / "etc/redis").mkdir(parents=True)
    (overlay / "etc/redis/redis.conf").write_text("port 0\nunixsocket /var/run/redis/r.sock\n")
    (overlay / "etc/redis/check.sh").write_text("#!/bin/sh\n")
    (overlay / "etc/redis/check.sh").chmod(0o755)
    (overlay / ".overlay.toml").write_text('[owners]\n"etc/redis/redis.conf" = "101:0"\n')
    (project / "patches" / "series").write_text("redis-socket/\n")
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "-q", "build", "1.0", "--out", str(out)]) == 0
    docker = (out / "Dockerfile").read_text()
    assert 'COPY --chown=101:0 ["overlay/etc/redis/redis.conf", "/etc/redis/redis.conf"]' in docker
    # owner root unless the owners table says otherwise, even below a service's directory
    assert 'COPY --chown=0:0 ["overlay/etc/redis/check.sh", "/etc/redis/check.sh"]' in docker
    assert "RUN install -d -o redis -g redis -m 2775 /var/run/redis" in docker
    files = {f["path"]: f for f in json.loads((out / "patchkit-build.json").read_text())["files"]}
    assert files["/etc/redis/redis.conf"]["mode"] == "0644"  # the overlay file's mode
    assert files["/etc/redis/check.sh"]["mode"] == "0755" and files["/etc/redis/check.sh"]["added"]
    assert main(["--project", str(project), "-q", "audit", "1.0"]) == 0  # the socket, no TCP
