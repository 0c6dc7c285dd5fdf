"""`patchkit build`'s image labels: what they say, where from, and the same bytes twice."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from patchkit import Project
from patchkit.cli import main
from patchkit.errors import ConfigError
from patchkit.ops import labels as L
from patchkit.ops.matrix import compute_matrix
from tests.helpers.imagebuilder import Layer, build_oci_layout

CONF = b"port 6379\n"
PATCH = """Description: no TCP

--- a/etc/app.conf
+++ b/etc/app.conf
@@ -1 +1 @@
-port 6379
+port 0
"""


def make(tmp_path: Path, *, git: bool = False) -> Path:
    layer = Layer().dir("etc").file("etc/app.conf", CONF)
    built = build_oci_layout(tmp_path / "layout", [layer], tag="1.0", nested=True)
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "upstream-versions.toml").write_text(
        'schema = 1\nbase = "1.0"\n[upstream]\nname = "t"\n'
        f'[[version]]\nversion = "1.0"\nsource = "{built.source}"\n'
    )
    (project / "patches" / "app.patch").write_text(PATCH)
    (project / "patches" / "series").write_text("app.patch\n")
    assert main(["--project", str(project), "-q", "import", "1.0"]) == 0  # records the digest
    if git:
        run = {"cwd": project, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q", "-b", "main"], **run)  # type: ignore[call-overload]
        (project / ".gitignore").write_text(".patchkit/\n")
        subprocess.run(["git", "add", "-A"], **run)  # type: ignore[call-overload]
        subprocess.run(["git", "commit", "-qm", "project"], **run)  # type: ignore[call-overload]
        subprocess.run(  # type: ignore[call-overload]
            ["git", "remote", "add", "origin", "https://ci:s3cret@git.example.org/acme/mail.git"],
            **run,
        )
    return project


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def labels_of(out: Path) -> dict[str, str]:
    return dict(json.loads((out / "patchkit-build.json").read_text())["labels"])


def test_every_label_is_in_the_dockerfile_and_the_json(tmp_path: Path) -> None:
    project = make(tmp_path, git=True)
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "-q", "build", "1.0", "--out", str(out)]) == 0
    p = Project.open(project)
    info = p.store.release("1.0")
    assert info is not None and info.tag_digest and info.tag_digest != info.digest
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    labels = labels_of(out)
    assert labels == {
        L.BASE_NAME: "patchkit/1.0:1.0",  # a local oci: source: the name FROM uses
        L.BASE_DIGEST: info.tag_digest,  # the layout's ref names an index: its digest
        L.VERSION: "1.0",
        L.SOURCE: "https://git.example.org/acme/mail",  # no credentials, no .git
        L.REVISION: head,
        L.PATCHKIT_VERSION: __import__("patchkit").__version__,
        L.SERIES: compute_matrix(p, cache=False).fingerprint,  # the matrix JSON's fingerprint
    }
    docker = (out / "Dockerfile").read_text().splitlines()
    assert [ln for ln in docker if ln.startswith("LABEL ")] == [
        f"LABEL {k}={json.dumps(v)}" for k, v in sorted(labels.items())
    ]
    assert docker.index("FROM patchkit/1.0:1.0") < docker.index(
        f'LABEL {L.BASE_NAME}="patchkit/1.0:1.0"'
    )
    assert "s3cret" not in (out / "Dockerfile").read_text()


def test_the_same_project_gives_the_same_bytes_twice(tmp_path: Path) -> None:
    project = make(tmp_path, git=True)
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "-q", "build", "1.0", "--out", str(out)]) == 0
    first = snapshot(out)
    os.utime(project / "patches" / "app.patch", (1, 1))  # a touched file is the same series
    assert main(["--project", str(project), "-q", "build", "1.0", "--out", str(out)]) == 0
    assert snapshot(out) == first
    assert L.CREATED not in labels_of(out)


def test_created_only_when_asked(tmp_path: Path) -> None:
    project = make(tmp_path)
    out = tmp_path / "ctx"
    argv = ["--project", str(project), "-q", "build", "1.0", "--out", str(out)]
    assert main([*argv, "--created", "2025-01-31T13:00:00+01:00"]) == 0
    assert labels_of(out)[L.CREATED] == "2025-01-31T12:00:00Z"
    assert main([*argv, "--created", "now"]) == 0
    assert labels_of(out)[L.CREATED].endswith("Z")
    assert main([*argv, "--created", "yesterday"]) == 3  # one line, nothing replaced
    assert labels_of(out)[L.CREATED].endswith("Z")


def test_outside_a_git_checkout_source_and_revision_are_what_is_given(tmp_path: Path) -> None:
    project = make(tmp_path)
    out = tmp_path / "ctx"
    argv = ["--project", str(project), "-q", "build", "1.0", "--out", str(out)]
    assert main(argv) == 0
    assert L.SOURCE not in labels_of(out) and L.REVISION not in labels_of(out)
    assert main([*argv, "--source", "https://example.org/x", "--revision", "abc123"]) == 0
    got = labels_of(out)
    assert (got[L.SOURCE], got[L.REVISION]) == ("https://example.org/x", "abc123")


def test_uncommitted_series_changes_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make(tmp_path, git=True)
    (project / "patches" / "app.patch").write_text(PATCH.replace("port 0", "port 1"))
    out = tmp_path / "ctx"
    assert main(["--project", str(project), "build", "1.0", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "uncommitted changes in the project (patches/app.patch): the revision label" in err


def test_the_fingerprint_follows_the_series_not_its_comments(tmp_path: Path) -> None:
    project = make(tmp_path)
    p = Project.open(project)
    before = L.series_fingerprint_of(p)
    assert before.startswith("sha256:") and len(before) == 71
    (project / "patches" / "series").write_text("# a comment\napp.patch\n\n")
    assert L.series_fingerprint_of(p) == before
    (project / "patches" / "series").write_text("app.patch -p0\n")
    assert L.series_fingerprint_of(p) != before
    (project / "patches" / "series").write_text("app.patch\n")
    (project / "patches" / "app.patch").write_text(PATCH + "\n")
    assert L.series_fingerprint_of(p) != before


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:acme/poste.git", "https://github.com/acme/poste"),
        ("https://x-access-token:tok@github.com/acme/poste", "https://github.com/acme/poste"),
        ("ssh://git@gitlab.example:2222/a/b.git", "https://gitlab.example/a/b"),
        ("http://127.0.0.1:8080/a/b/", "http://127.0.0.1:8080/a/b"),
        ("/srv/git/poste.git", None),
        ("./poste", None),
        ("file:///srv/git/poste.git", None),
    ],
)
def test_public_url(remote: str, url: str | None) -> None:
    from patchkit.git.project_repo import public_url

    assert public_url(remote) == url


def test_normalize_created_refuses_a_time_without_zone() -> None:
    with pytest.raises(ConfigError, match="RFC 3339"):
        L.normalize_created("2025-01-31T12:00:00")
