"""`patchkit watch` against the real docker-registry on loopback, behind the tests' token proxy.

The image's tags are pushed with skopeo (the end-to-end test) or the registry's upload API; a
tag is re-pushed with other content; a tracked tag is deleted with the registry's delete API.
Nothing of the registry or of git is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.cli.main import main
from patchkit.core.watch import NewRelease, Repushed, Vanished
from patchkit.errors import DigestMismatchError, RebaseStateError
from patchkit.files import project_lock
from patchkit.images.registry import RetryPolicy
from patchkit.ops.watch import watch
from tests.conftest import require_tool
from tests.helpers import registry_server as rs
from tests.helpers.fresh import modules_loaded

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, timeout=10)

RULES = """
[upstream.watch]
tags = '^2\\.\\d+\\.\\d+'      # releases are 2.x.y
versions = ">=2.5"
exclude = ['-rc']
status = "testing"
"""


@pytest.fixture
def repo() -> str:
    return f"patchkit-watch/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def proxy(registry: rs.Registry) -> Iterator[rs.Proxy]:
    for proxy in rs.start_proxy(registry.address):
        proxy.state.page_size = 2  # every listing takes several pages
        yield proxy


def image(text: str) -> rs.Image:
    return rs.build_image(
        [{"etc/os-release": b"ID=test\n"}, {"etc/app.conf": f"release={text}\n".encode()}]
    )


def write_project(root: Path, address: str, repo: str, tracked: list[str], base: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = "# watched project\nschema = 1\n" + f'base = "{base}"\n\n[upstream]\nname = "app"\n'
    text += f'image = "{address}/{repo}"   # default source\n' + RULES
    for version in tracked:
        text += f'\n[[version]]\nversion = "{version}"\nstatus = "supported"   # kept\n'
    text += '\n# a release of another image is not watched\n[[version]]\nversion = "other"\n'
    text += f'source = "docker://{address}/elsewhere:1"\n'
    (root / "upstream-versions.toml").write_text(text)
    (root / "patches").mkdir(exist_ok=True)
    (root / "patches" / "series").write_text("")
    return root


def cli(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(project), "watch", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_new_repushed_and_vanished_end_to_end_with_skopeo(
    registry: rs.Registry,
    proxy: rs.Proxy,
    repo: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_tool("skopeo")
    layouts = {}
    for name in ("a", "b", "c", "d", "e"):
        rs.write_oci_layout(tmp_path / name, image(name), "x")
        layouts[name] = f"oci:{tmp_path / name}:x"
    # one image under several tags; 2.5.22 alone on its image (its manifest gets deleted)
    pushes = {"2.4.9": "a", "2.5.20": "a", "2.5.21": "b", "2.5.22": "c", "2.5.23": "d"}
    pushes |= {"latest": "d", "2.6.0-rc1": "d"}
    for tag, name in pushes.items():
        rs.skopeo_copy(layouts[name], f"docker://{registry.address}/{repo}:{tag}", tmp_path)
    root = write_project(
        tmp_path / "project", proxy.address, repo, ["2.5.20", "2.5.21", "2.5.22"], "2.5.21"
    )
    project = Project.open(root)
    for version in ("2.5.20", "2.5.21", "2.5.22"):
        result = project.import_release(version)
        assert result.tag_digest == result.digest  # single-platform: the tag names the manifest
        assert project.versions.release(version).tag_digest == result.tag_digest
        assert project.store.release(version).tag_digest == result.tag_digest  # type: ignore[union-attr]
    recorded = {v: project.versions.release(v).tag_digest for v in ("2.5.21", "2.5.22")}

    rs.skopeo_copy(layouts["e"], f"docker://{registry.address}/{repo}:2.5.21", tmp_path)
    assert recorded["2.5.22"] is not None
    rs.delete_manifest(registry.address, repo, recorded["2.5.22"])
    before = (root / "upstream-versions.toml").read_bytes()
    proxy.state.token_requests.clear()

    code, out, err = cli(capsys, root, "--json")
    assert code == 1
    doc = json.loads(out)
    e = image("e").digest
    assert doc == {
        "schema": 1,
        "command": "watch",
        "patchkit": doc["patchkit"],
        "image": f"docker://{proxy.address}/{repo}",
        "new": [{"version": "2.5.23", "digest": image("d").digest, "newer_than_base": True}],
        "repushed": [{"version": "2.5.21", "recorded": recorded["2.5.21"], "current": e}],
        "vanished": [{"version": "2.5.22"}],
        "applied": False,
    }
    assert "re-pushed" in err and "vanished" in err and "2.5.23" in err
    assert (root / "upstream-versions.toml").read_bytes() == before  # without --apply
    assert len(proxy.state.token_requests) == 1  # one token: every page and every HEAD

    code, out, _ = cli(capsys, root, "--json", "--apply")
    assert code == 1 and json.loads(out)["applied"] is True
    text = (root / "upstream-versions.toml").read_text()
    assert text.startswith(before.decode().split("[[version]]")[0])  # header, rules, comments
    assert text.count("# kept") == 3
    vf = project.versions
    assert vf.labels == ("2.5.20", "2.5.21", "2.5.22", "2.5.23", "other")
    added = vf.release("2.5.23")
    assert added.status.value == "testing" and added.tag_digest == image("d").digest
    # re-pushed and vanished releases are reported, never changed
    assert vf.release("2.5.21").tag_digest == recorded["2.5.21"]
    assert vf.release("2.5.22").tag_digest == recorded["2.5.22"]

    applied = (root / "upstream-versions.toml").read_bytes()
    code, out, _ = cli(capsys, root, "--json", "--apply")
    doc = json.loads(out)
    assert code == 1 and doc["new"] == [] and doc["applied"] is False
    assert (root / "upstream-versions.toml").read_bytes() == applied  # a second run adds nothing


def push(registry: rs.Registry, repo: str, tags: dict[str, str]) -> dict[str, str]:
    return {
        tag: rs.push_image(registry.address, repo, tag, image(text)) for tag, text in tags.items()
    }


def test_nothing_to_do_is_exit_0(
    registry: rs.Registry,
    proxy: rs.Proxy,
    repo: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    push(registry, repo, {"2.5.1": "1", "2.4.0": "old", "latest": "1", "2.6.0-rc1": "rc"})
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    Project.open(root).import_release("2.5.1")
    code, out, _ = cli(capsys, root)
    assert code == 0
    assert f"docker://{proxy.address}/{repo}: 4 tags" in out and "nothing new" in out


def test_import_imports_the_new_releases_and_records_their_digests(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path
) -> None:
    digests = push(registry, repo, {"2.5.1": "1", "2.5.2": "2", "2.5.10": "10"})
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    project = Project.open(root)
    result = project.watch(import_releases=True)
    assert [n.version for n in result.new] == ["2.5.2", "2.5.10"]  # by version, not by name
    assert result.applied and result.imported == ("2.5.2", "2.5.10")
    assert project.imported() == {"2.5.2", "2.5.10"}
    for version in ("2.5.2", "2.5.10"):
        release = project.versions.release(version)
        assert release.digest == release.tag_digest == digests[version]


def test_a_tag_re_pushed_after_apply_is_refused_by_import(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path
) -> None:
    push(registry, repo, {"2.5.1": "1", "2.5.2": "2"})
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    project = Project.open(root)
    assert project.watch(apply=True).applied
    moved = push(registry, repo, {"2.5.2": "2 again"})["2.5.2"]
    with pytest.raises(DigestMismatchError, match=r"version 2\.5\.2: the tag was re-pushed"):
        project.import_release("2.5.2")
    assert "2.5.2" not in project.imported()
    result = watch(project, retry=FAST)
    assert result.repushed == (
        Repushed(
            version="2.5.2",
            recorded=project.versions.release("2.5.2").tag_digest or "",
            current=moved,
        ),
    )
    project.import_release("2.5.2", replace=True)  # a person decided: take the new one
    assert project.versions.release("2.5.2").tag_digest == moved
    assert watch(project, retry=FAST).repushed == ()


def test_releases_recorded_before_tag_digests_compare_their_platform_manifest(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path
) -> None:
    amd, arm = image("amd"), rs.build_image([{"a": b"arm"}], platform="linux/arm64")
    index, children = rs.build_index([amd, arm])
    rs.push_index(registry.address, repo, "2.5.1", index, children)
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    text = (root / "upstream-versions.toml").read_text()
    # as an import before this release of patchkit wrote it: the platform manifest's digest only
    text = text.replace('"2.5.1"\nstatus', f'"2.5.1"\ndigest = "{amd.digest}"\nstatus')
    (root / "upstream-versions.toml").write_text(text)
    project = Project.open(root)
    # an arm64 rebuild changes the index, not our platform's manifest: not a re-push
    arm2 = rs.build_image([{"a": b"arm rebuilt"}], platform="linux/arm64")
    index2, children2 = rs.build_index([amd, arm2])
    rs.push_index(registry.address, repo, "2.5.1", index2, children2)
    result = watch(project, retry=FAST)
    assert result.repushed == () and not result.attention
    amd2 = image("amd rebuilt")
    index3, children3 = rs.build_index([amd2, arm2])
    rs.push_index(registry.address, repo, "2.5.1", index3, children3)
    result = watch(project, retry=FAST)
    assert result.repushed == (Repushed(version="2.5.1", recorded=amd.digest, current=amd2.digest),)


def test_a_multi_arch_tag_records_its_index_beside_the_platform_manifest(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path
) -> None:
    amd, arm = image("amd"), rs.build_image([{"a": b"arm"}], platform="linux/arm64")
    index, children = rs.build_index([amd, arm])
    index_digest = rs.push_index(registry.address, repo, "2.5.1", index, children)
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    project = Project.open(root)
    result = project.import_release("2.5.1")
    assert (result.digest, result.tag_digest) == (amd.digest, index_digest)
    release = project.versions.release("2.5.1")
    assert (release.digest, release.tag_digest) == (amd.digest, index_digest)


def test_registry_stopped_mid_listing_is_one_line_and_the_file_untouched(
    repo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool(rs.REGISTRY_BIN)
    own = rs.start_registry(tmp_path / "registry")  # this one is stopped
    try:
        push(own, repo, {"2.5.1": "1", "2.5.2": "2", "2.5.3": "3", "2.5.4": "4"})
        for proxy in rs.start_proxy(own.address):
            proxy.state.page_size = 2
            root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
            before = (root / "upstream-versions.toml").read_bytes()

            def stop_on_second_page(method: str, path: str) -> None:
                if "/tags/list?" in path and "last=" in path:
                    own.stop()

            proxy.state.on_request = stop_on_second_page
            code, out, err = cli(capsys, root, "--json", "--apply")
            assert code == 3 and out == ""
            lines = err.strip().splitlines()
            assert len(lines) == 1, err
            assert lines[0].startswith(f"patchkit: error: docker://{proxy.address}/{repo}: ")
            assert "tags/list" in lines[0]
            assert (root / "upstream-versions.toml").read_bytes() == before
            assert not (root / ".patchkit" / "store.git").exists()
    finally:
        own.stop()


def test_two_overlapping_runs_add_each_release_once(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path
) -> None:
    push(registry, repo, {"2.5.1": "1", "2.5.2": "2", "2.5.3": "3"})
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "patchkit", "--project", str(root), "watch", "--apply", "--json"]
    with project_lock(root / ".patchkit"):  # both runs read the registry, then wait here
        runs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for _ in range(2)
        ]
        time.sleep(3)
        assert all(run.poll() is None for run in runs)
    results = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [1, 1], [r[1] for r in results]
    docs = [json.loads(out) for out, _ in results]
    assert all(
        d["applied"] and [n["version"] for n in d["new"]] == ["2.5.2", "2.5.3"] for d in docs
    )
    text = (root / "upstream-versions.toml").read_text()
    assert text.count('version = "2.5.2"') == 1 and text.count('version = "2.5.3"') == 1


def test_apply_is_refused_while_a_rebase_is_in_progress(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, tmp_path: Path
) -> None:
    push(registry, repo, {"2.5.1": "1", "2.5.2": "2"})
    root = write_project(tmp_path / "p", proxy.address, repo, ["2.5.1"], "2.5.1")
    state = root / ".patchkit" / "rebase" / "state.json"
    state.parent.mkdir(parents=True)
    # a stopped rebase's state record (one the rebase reads: tests/ops/rebase_state_v1)
    state.write_bytes(
        (Path(__file__).parent / "rebase_state_v1" / "state-v1-stopped.json").read_bytes()
    )
    before = (root / "upstream-versions.toml").read_bytes()
    with pytest.raises(RebaseStateError, match=r"rebase onto .* is in progress"):
        Project.open(root).watch(apply=True)
    assert (root / "upstream-versions.toml").read_bytes() == before


def test_an_oci_layout_is_watched_by_its_ref_names(tmp_path: Path) -> None:
    layout = tmp_path / "mirror"
    first, second = image("1"), image("2")
    rs.write_oci_layout(layout, first, "2.5.1")
    rs.add_to_oci_layout(layout, second, "2.5.2")
    root = tmp_path / "p"
    root.mkdir()
    text = 'schema = 1\nbase = "2.5.0"\n\n[upstream]\nname = "app"\nimage = "oci:../mirror"\n'
    text += RULES + '\n[[version]]\nversion = "2.5.0"\n\n[[version]]\nversion = "2.5.1"\n'
    (root / "upstream-versions.toml").write_text(text)
    project = Project.open(root)
    result = project.watch(import_releases=True)
    assert result.image == "oci:../mirror"
    assert result.new == (NewRelease(version="2.5.2", digest=second.digest, newer_than_base=True),)
    assert result.vanished == (Vanished(version="2.5.0"),)
    assert project.versions.release("2.5.2").digest == second.digest
    assert project.versions.source_for("2.5.2") == "oci:../mirror:2.5.2"


def test_bad_rules_are_exit_3_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_project(tmp_path / "p", "127.0.0.1:1", "app", ["2.5.1"], "2.5.1")
    path = root / "upstream-versions.toml"
    path.write_text(path.read_text().replace('versions = ">=2.5"', 'versions = "=>2.5"'))
    code, out, err = cli(capsys, root)
    assert code == 3 and out == ""
    assert err.strip() == (
        "patchkit: error: upstream-versions.toml:11: [upstream.watch] versions: "
        "'=>2.5' is not a PEP 440 specifier (e.g. \">=2.5, <3\")"
    )


def test_watch_does_not_load_the_layer_reader_or_the_pack_writer() -> None:
    # `watch` runs daily and unattended: its start-up is most of its time against a close
    # registry. It reads tags and HEADs; the tar reader, the flattener and the pack writer
    # load only when `--import` pulls (images/__init__.py's _LAZY).
    heavy = [
        "patchkit.images.layers",
        "patchkit.images.tar",
        "patchkit.images.tree",
        "patchkit.git.pack",
    ]
    code = "import patchkit.cli.main, patchkit.project, patchkit.ops.watch"
    assert modules_loaded(code, heavy) == []
