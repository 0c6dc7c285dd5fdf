"""docker-daemon: sources, with the real docker client (no engine here) and a fake CLI script."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from patchkit.errors import SourceError
from patchkit.images.daemon import find_daemon_cli, open_daemon_image


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHKIT_OFFLINE", "1")
    monkeypatch.delenv("PATCHKIT_DOCKER", raising=False)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_cli(tmp_path: Path, *, daemon_up: bool = True, save: str = "") -> Path:
    """A docker look-alike: `version` answers or not, `save -o FILE NAME` runs ``save``; args are logged."""
    log = tmp_path / "cli.log"
    version = (
        "echo 28.0.0; exit 0"
        if daemon_up
        else 'echo "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?" >&2; exit 1'
    )
    return write_script(
        tmp_path / "fake-docker",
        f'echo "$@" >> "{log}"\n'
        f'case "$1" in\n  version) {version} ;;\n  save) {save or "exit 0"} ;;\n  *) exit 2 ;;\nesac\n',
    )


def docker_save_tarball(path: Path, repo_tag: str, layers: list[dict[str, bytes]]) -> list[str]:
    """A `docker save` (before Docker 25) tarball; returns the layers' diff_ids."""
    layer_tars = []
    for files in layers:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        layer_tars.append(buf.getvalue())
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layer_tars]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_ids = [hashlib.sha256(f"{i}{d}".encode()).hexdigest() for i, d in enumerate(diff_ids)]
    entries: dict[str, bytes] = {config_name: config}
    for layer_id, data in zip(layer_ids, layer_tars, strict=True):
        entries[f"{layer_id}/layer.tar"] = data
        entries[f"{layer_id}/VERSION"] = b"1.0"
        entries[f"{layer_id}/json"] = json.dumps({"id": layer_id}).encode()
    name, tag = repo_tag.rsplit(":", 1)
    entries["manifest.json"] = json.dumps(
        [
            {
                "Config": config_name,
                "RepoTags": [repo_tag],
                "Layers": [f"{i}/layer.tar" for i in layer_ids],
            }
        ]
    ).encode()
    entries["repositories"] = json.dumps({name: {tag: layer_ids[-1]}}).encode()
    with tarfile.open(path, "w") as tar:
        for entry, data in entries.items():
            info = tarfile.TarInfo(entry)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return diff_ids


def test_real_docker_client_without_engine_gives_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on PATH")
    cli, _ = find_daemon_cli()
    if cli is not None:
        pytest.skip(f"a daemon answers here ({cli}); this test is about the error without one")
    with pytest.raises(SourceError) as info, open_daemon_image("alpine:3.20"):
        pass
    msg = str(info.value)
    assert msg.startswith("docker-daemon:alpine:3.20: no docker or podman daemon answers (docker: ")
    assert "Cannot connect to the Docker daemon" in msg or "daemon" in msg.split("(docker: ", 1)[1]
    assert "\n" not in msg and info.value.exit_code == 3


def test_no_cli_at_all_names_both_candidates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(SourceError, match=r"\(docker: not found; podman: not found\)$"),
        open_daemon_image("app:1"),
    ):
        pass


def test_patchkit_docker_pointing_nowhere_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATCHKIT_DOCKER", str(tmp_path / "missing-docker"))
    with (
        pytest.raises(SourceError, match=r"missing-docker: not found \(PATCHKIT_DOCKER\)"),
        open_daemon_image("app:1"),
    ):
        pass


def test_daemon_down_reports_the_clients_own_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATCHKIT_DOCKER", str(fake_cli(tmp_path, daemon_up=False)))
    with pytest.raises(SourceError) as info, open_daemon_image("app:1"):
        pass
    assert str(info.value) == (
        "docker-daemon:app:1: no docker or podman daemon answers (fake-docker: Cannot connect to the "
        "Docker daemon at unix:///x.sock. Is the docker daemon running?)"
    )
    assert "save" not in (tmp_path / "cli.log").read_text()


def test_failed_save_is_reported_with_its_last_stderr_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    save = 'echo "Error response from daemon: reference does not exist" >&2; exit 1'
    monkeypatch.setenv("PATCHKIT_DOCKER", str(fake_cli(tmp_path, save=save)))
    with (
        pytest.raises(
            SourceError,
            match=r"^docker-daemon:app:1: fake-docker save failed: Error response from daemon: reference does not exist$",
        ),
        open_daemon_image("app:1"),
    ):
        pass


@pytest.mark.parametrize("name", ["-o/etc/passwd", "app 1", "", "app\n1"])
def test_names_that_could_be_options_never_reach_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    monkeypatch.setenv("PATCHKIT_DOCKER", str(fake_cli(tmp_path)))
    with pytest.raises(SourceError, match="not an image name"), open_daemon_image(name):
        pass
    assert not (tmp_path / "cli.log").exists()


def test_saved_tarball_is_read_as_docker_archive(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if importlib.util.find_spec("patchkit.images.archive") is None:
        pytest.skip("patchkit.images.archive (docker-archive reader) is not there yet")
    saved = tmp_path / "saved.tar"
    diff_ids = docker_save_tarball(saved, "app:1", [{"etc/a": b"one\n"}, {"etc/b": b"two\n"}])
    # `save -o FILE NAME`: $3 is FILE
    monkeypatch.setenv("PATCHKIT_DOCKER", str(fake_cli(tmp_path, save=f'cp "{saved}" "$3"')))
    with open_daemon_image("app:1") as plan:
        assert plan.source == "docker-daemon:app:1"
        assert [layer.diff_id for layer in plan.layers] == diff_ids
        tarball = Path((tmp_path / "cli.log").read_text().split()[-2])
        assert tarball.exists()
    assert not tarball.exists()  # the temp dir is gone after the block
    assert (tmp_path / "cli.log").read_text().splitlines()[-1].endswith(" app:1")


def test_open_image_dispatches_docker_daemon_sources_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from patchkit.images import open_image
    from patchkit.images.source import parse_source

    saved = tmp_path / "saved.tar"
    diff_ids = docker_save_tarball(saved, "app:1", [{"etc/a": b"one\n"}])
    monkeypatch.setenv("PATCHKIT_DOCKER", str(fake_cli(tmp_path, save=f'cp "{saved}" "$3"')))
    with open_image(parse_source("docker-daemon:app:1")) as plan:
        assert plan.source == "docker-daemon:app:1"
        assert [layer.diff_id for layer in plan.layers] == diff_ids
