"""Multi-platform releases (`platforms = [...]`): one tree a platform, checked where the trees
differ, once where they are the same, a build context a platform. The index is made here: two
platforms of one OCI layout, linux/arm64 with a file that differs from linux/amd64's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patchkit import Project
from patchkit.cli import main
from patchkit.cli.quick import answer
from patchkit.core.versions import parse_versions, platform_label
from patchkit.errors import ConfigError
from patchkit.ops.matrix import compute_matrix
from tests.helpers.imagebuilder import Layer, build_oci_layout

CONF = b"listen 127.0.0.1\nport 6379\n"
PATCH = """Description: no TCP

--- a/etc/app.conf
+++ b/etc/app.conf
@@ -1,2 +1,2 @@
 listen 127.0.0.1
-port 6379
+port 0
"""


def layer(arch: str, conf: bytes = CONF) -> Layer:
    return (
        Layer()
        .dir("etc")
        .file("etc/app.conf", conf)
        .file("etc/arch", arch.encode() + b"\n")  # the platforms' trees differ here
    )


def make(
    tmp_path: Path, arm_conf: bytes = CONF, *, same: bool = False
) -> tuple[Path, dict[str, Any]]:
    images = {
        "linux/amd64": [layer("amd64")],
        "linux/arm64": [layer("amd64" if same else "arm64", arm_conf)],
    }
    built = build_oci_layout(tmp_path / "layout", images, tag="1.0", nested=True)
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "upstream-versions.toml").write_text(
        'schema = 1\nbase = "1.0"\n[upstream]\nname = "t"\n'
        f'[[version]]\nversion = "1.0"\nsource = "{built.source}"\n'
        'platforms = ["linux/amd64", "linux/arm64"]\n'
    )
    (project / "patches" / "app.patch").write_text(PATCH)
    (project / "patches" / "series").write_text("app.patch\n")
    return project, built.extra["platforms"]


def cli(project: Path, *args: str) -> int:
    return main(["--project", str(project), "-q", *args])


def test_each_platform_is_imported_into_a_tree_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, platforms = make(tmp_path)
    assert cli(project, "import", "1.0", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["platform"] == "linux/amd64"
    assert doc["digest"] == platforms["linux/amd64"]["digest"]
    [arm] = doc["platforms"]
    assert (arm["platform"], arm["version"]) == ("linux/arm64", "1.0@linux-arm64")
    assert arm["digest"] == platforms["linux/arm64"]["digest"] and arm["tree"] != doc["tree"]
    p = Project.open(project)
    assert p.imported() == {"1.0"}  # the second platform is not a release of its own
    first, second = p.store.release("1.0"), p.store.release(platform_label("1.0", "linux/arm64"))
    assert first is not None and second is not None
    assert first.tag_digest == second.tag_digest  # both read from the one index
    assert p.show("1.0", "etc/arch") == b"amd64\n"
    # The TOML records the first platform's digest; a second import reads nothing.
    assert (
        f'digest = "{platforms["linux/amd64"]["digest"]}"'
        in (project / "upstream-versions.toml").read_text()
    )
    assert cli(project, "import", "1.0", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reused"] and doc["platforms"][0]["reused"]


def test_check_checks_each_platform_whose_tree_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # On arm64 the file has moved on: the patch conflicts there only.
    project, _ = make(tmp_path, b"listen 127.0.0.1\nport 6380\n")
    assert cli(project, "import", "1.0") == 0
    capsys.readouterr()
    assert cli(project, "check", "1.0", "--json") == 1  # the arm64 conflict is the verdict
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["applied"] == 1 and doc["summary"]["conflict"] == 0  # linux/amd64
    amd, arm = doc["platforms"]
    assert (amd["platform"], amd["label"], "patches" in amd) == ("linux/amd64", "1.0", False)
    assert arm["label"] == "1.0@linux-arm64" and arm["summary"]["conflict"] == 1
    assert cli(project, "build", "1.0", "--out", str(tmp_path / "ctx")) == 1
    assert not (tmp_path / "ctx").exists()  # nothing written
    matrix = compute_matrix(Project.open(project), cache=False)
    assert matrix.versions == ("1.0", "1.0@linux-arm64")
    assert [c.patches[0].status.value for c in matrix.checks] == ["applied", "conflict"]


def test_identical_platform_trees_are_checked_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, platforms = make(tmp_path, same=True)
    assert platforms["linux/amd64"]["digest"] != platforms["linux/arm64"]["digest"]  # configs
    assert cli(project, "import", "1.0") == 0
    capsys.readouterr()
    assert cli(project, "check", "1.0", "--json") == 0
    _, arm = json.loads(capsys.readouterr().out)["platforms"]
    assert arm["same_as"] == "linux/amd64" and "patches" not in arm
    assert compute_matrix(Project.open(project), cache=False).versions == ("1.0",)


def test_build_writes_a_context_per_platform(tmp_path: Path) -> None:
    project, platforms = make(tmp_path)
    assert cli(project, "import", "1.0") == 0
    out = tmp_path / "ctx"
    assert cli(project, "build", "1.0", "--out", str(out)) == 0
    top = json.loads((out / "patchkit-build.json").read_text())
    assert [(c["platform"], c["out"]) for c in top["platforms"]] == [
        ("linux/amd64", str(out / "linux-amd64")),
        ("linux/arm64", str(out / "linux-arm64")),
    ]
    for plat, d in (("linux/amd64", "linux-amd64"), ("linux/arm64", "linux-arm64")):
        ctx = out / d
        assert (ctx / "overlay/etc/app.conf").read_bytes() == b"listen 127.0.0.1\nport 0\n"
        meta = json.loads((ctx / "patchkit-build.json").read_text())
        assert meta["platform"] == plat and meta["digest"] == platforms[plat]["digest"]
        # one base digest for both: the index the tag named
        assert (
            meta["labels"]["org.opencontainers.image.base.digest"]
            == top["labels"]["org.opencontainers.image.base.digest"]
        )
    assert not (out / "Dockerfile").exists()


def test_a_platform_not_imported_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _ = make(tmp_path)
    assert cli(project, "import", "1.0") == 0
    p = Project.open(project)
    p.store.git("update-ref", "-d", "refs/patchkit/upstream/1.0@linux-arm64")
    capsys.readouterr()
    assert cli(project, "check", "1.0") == 3
    assert (
        "platform(s) linux/arm64 not imported yet; run: patchkit import 1.0"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('platforms = ["linux/amd64"]', "two or more platforms"),
        ('platforms = ["linux/amd64", "linux/amd64"]', "lists a platform twice"),
        ('platforms = ["linux", "linux/arm64"]', "is not OS/ARCH"),
        ('platforms = "linux/amd64"', "must be a list of strings"),
        ('platform = "linux/arm64"\nplatforms = ["linux/amd64", "linux/arm64"]', "not both"),
    ],
)
def test_bad_platforms_are_one_line_naming_the_entry(line: str, message: str) -> None:
    text = f'schema = 1\nbase = "1"\n[upstream]\nname = "t"\n[[version]]\nversion = "1"\n{line}\n'
    with pytest.raises(
        ConfigError, match=rf"upstream-versions.toml:5: \[\[version\]\] #1: .*{message}"
    ):
        parse_versions(text)


def test_single_platform_releases_are_as_before(tmp_path: Path) -> None:
    text = 'schema = 1\nbase = "1"\n[upstream]\nname = "t"\n[[version]]\nversion = "1"\n'
    rel = parse_versions(text).release("1")
    assert rel.platforms == () and rel.platform_labels() == () and "platforms" not in rel.to_dict()


def test_a_warm_matrix_follows_the_platforms_and_their_trees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The snapshot's key holds `platforms` and the platforms' references: a warm run, from
    the full command line and from the quick one, is never the matrix of other platforms."""
    project, _ = make(tmp_path, b"listen 127.0.0.1\nport 6380\n")
    assert cli(project, "import", "1.0") == 0
    capsys.readouterr()
    argv = ["-q", "--project", str(project), "matrix", "--format", "json"]
    toml = project / "upstream-versions.toml"
    two = toml.read_text()

    def warm_columns() -> tuple[str, ...]:
        want = main(argv), capsys.readouterr().out  # cold or warm: the snapshot made
        assert (answer(argv), capsys.readouterr().out) == want  # warm, without the parser
        fresh = compute_matrix(Project.open(project), cache=False)
        assert Project.open(project).matrix() == fresh  # warm, the library
        versions = tuple(json.loads(want[1])["versions"])
        assert versions == fresh.versions
        return versions

    assert warm_columns() == ("1.0", "1.0@linux-arm64")
    assert warm_columns() == ("1.0", "1.0@linux-arm64")
    toml.write_text(two.replace('platforms = ["linux/amd64", "linux/arm64"]\n', ""))
    assert warm_columns() == ("1.0",)  # the arm64 reference is still in the store
    toml.write_text(two)
    assert warm_columns() == ("1.0", "1.0@linux-arm64")
    # The arm64 platform re-imported with amd64's files: its reference moves, its column goes.
    store = Project.open(project).store
    amd = store.git("rev-parse", "refs/patchkit/upstream/1.0").stdout.decode().strip()
    store.git("update-ref", f"refs/patchkit/upstream/{platform_label('1.0', 'linux/arm64')}", amd)
    assert warm_columns() == ("1.0",)
