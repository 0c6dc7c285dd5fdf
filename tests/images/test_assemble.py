"""`patchkit assemble`: per-platform OCI layouts into one layout and one tag (real layouts)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from patchkit.cli import main
from patchkit.errors import SourceError
from patchkit.images.assemble import assemble_layout
from patchkit.images.oci import open_oci
from patchkit.images.source import parse_source
from tests.helpers.imagebuilder import Layer, build_oci_layout


def layer(arch: str) -> Layer:
    return Layer().dir("etc").file("etc/arch", arch.encode() + b"\n")


def two_platforms(tmp_path: Path) -> tuple[Path, Path, str]:
    """The same two images as one upstream index, and as two single-platform layouts."""
    index = build_oci_layout(
        tmp_path / "index",
        {"linux/amd64": [layer("amd64")], "linux/arm64": [layer("arm64")]},
        tag="1.0",
        nested=True,
    )
    for arch in ("amd64", "arm64"):
        build_oci_layout(tmp_path / arch, {f"linux/{arch}": [layer(arch)]}, tag="1.0", nested=True)
    top = json.loads((index.path / "index.json").read_text())["manifests"][0]["digest"]
    return tmp_path / "amd64", tmp_path / "arm64", top


def test_two_platform_builds_make_the_index_upstream_would(tmp_path: Path) -> None:
    amd, arm, upstream_index = two_platforms(tmp_path)
    out = tmp_path / "out"
    got = assemble_layout(out, "1.0", [f"oci:{amd}:1.0", f"oci:{arm}:1.0"])
    assert got.platforms == ("linux/amd64", "linux/arm64") and got.attestations == 0
    # Deterministic, and the same bytes as an index of the same two images made elsewhere.
    assert got.digest == upstream_index
    blob = out / "blobs" / "sha256" / got.digest.split(":")[1]
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == got.digest
    for plat, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        with open_oci(parse_source(f"oci:{out}:1.0"), platform=plat) as plan:
            assert plan.platform == plat and plan.tag_digest == got.digest
            with plan.layers[0].open() as f:
                assert f"{arch}\n".encode() in __import__("gzip").decompress(f.read())


def test_one_image_stays_that_manifest(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "one", [layer("amd64")], tag="2.0")
    got = assemble_layout(tmp_path / "out", "2.0", [built.source])
    assert got.digest == built.digest and got.media_type.endswith("manifest.v1+json")
    [entry] = json.loads((tmp_path / "out" / "index.json").read_text())["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "2.0"}


def test_attestations_ride_along_and_keep_their_subject(tmp_path: Path) -> None:
    built = build_oci_layout(
        tmp_path / "att", [layer("amd64")], tag="1", attestation=True, nested=True
    )
    got = assemble_layout(tmp_path / "out", "1", [built.source])
    assert got.attestations == 1 and got.platforms == ("linux/amd64",)
    doc = json.loads((tmp_path / "out/blobs/sha256" / got.digest.split(":")[1]).read_text())
    image, att = doc["manifests"]
    assert att["annotations"]["vnd.docker.reference.digest"] == image["digest"] == built.digest
    assert att["platform"] == {"architecture": "unknown", "os": "unknown"}


def test_two_images_for_one_platform_are_refused(tmp_path: Path) -> None:
    amd, _, _ = two_platforms(tmp_path)
    with pytest.raises(SourceError, match="more than one image for linux/amd64"):
        assemble_layout(tmp_path / "out", "1", [f"oci:{amd}:1.0", f"oci:{amd}:1.0"])


def test_a_corrupt_layer_is_refused_and_named(tmp_path: Path) -> None:
    built = build_oci_layout(tmp_path / "bad", [layer("amd64")], tag="1")
    blob = tmp_path / "bad/blobs/sha256" / built.layers[0].split(":")[1]
    blob.write_bytes(blob.read_bytes()[:-1] + b"x")
    with pytest.raises(SourceError, match="does not match its digest"):
        assemble_layout(tmp_path / "out", "1", [built.source])


def test_the_cli_prints_json_and_refuses_a_foreign_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amd, arm, index = two_platforms(tmp_path)
    out = tmp_path / "out"
    assert (
        main(["assemble", str(out), f"oci:{amd}:1.0", f"oci:{arm}:1.0", "--tag", "1.0", "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert (doc["command"], doc["digest"], doc["tag"]) == ("assemble", index, "1.0")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["assemble", str(tmp_path / "mine"), f"oci:{amd}:1.0", "--tag", "1"]) == 3
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
