"""The CLI of init, show, diff and materialize, driven through ``main`` as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit.cli import main
from tests.helpers.projectbuilder import write_tree


def test_init_import_show_materialize_diff(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    one = write_tree(tmp_path / "r1", {"etc/redis.conf": "port 6379\n"})
    two = write_tree(tmp_path / "r2", {"etc/redis.conf": "port 6379\nbind ::1\n"})
    proj = str(tmp_path / "proj")
    assert (
        main(
            [
                "--project",
                proj,
                "init",
                "--image",
                "docker.io/library/redis",
                "--version",
                "7.0",
                f"dir:{one}",
            ]
        )
        == 0
    )
    toml = Path(proj, "upstream-versions.toml")
    toml.write_text(toml.read_text() + f'\n[[version]]\nversion = "7.2"\nsource = "dir:{two}"\n')
    assert (
        main(["--project", proj, "init", "--version", "7.0", "--image", "x"]) == 3
    )  # never overwrites
    assert main(["-q", "--project", proj, "import", "7.0"]) == 0
    assert main(["-q", "--project", proj, "import", "7.2"]) == 0
    Path(proj, "patches/redis.edit.toml").write_text(
        'description = "redis on a socket"\n[[edit]]\nfiles = "etc/redis.conf"\nreplace = "port 6379"\nwith = "port 0"\n'
    )
    Path(proj, "patches/series").write_text("redis.edit.toml\n")
    capsysbinary.readouterr()
    assert main(["--project", proj, "show", "7.0:etc/redis.conf", "--patched"]) == 0
    assert capsysbinary.readouterr().out == b"port 0\n"
    assert main(["--project", proj, "show", "7.0:etc/none"]) == 3
    assert main(["--project", proj, "materialize", "redis.edit.toml", "--version", "7.2"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert out.startswith("Description: redis on a socket\n") and "+port 0\n" in out
    assert main(["--project", proj, "diff", "7.0", "7.2", "--touched", "--json"]) == 0
    doc = json.loads(capsysbinary.readouterr().out)
    assert doc["files"] == [{"path": "etc/redis.conf", "status": "M"}] and "patchkit" in doc
    assert main(["-q", "--project", proj, "materialize", "redis.edit.toml", "--replace"]) == 0
    assert Path(proj, "patches/series").read_text() == "redis.patch\n"
    assert main(["-q", "--project", proj, "check"]) == 0
