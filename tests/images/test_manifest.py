"""The one platform/attestation rule (images/_manifest.py), alone and through OCI layouts.

The registry side of the same shapes is in test_registry.py (it needs the registry fixture).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from patchkit.errors import SourceError
from patchkit.images import open_image, parse_source
from patchkit.images._manifest import (
    Platform,
    choose_manifest,
    is_attestation,
    offered_platforms,
)
from tests.helpers.imagebuilder import Layer, build_oci_layout

ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


def entry(name: str, platform: str | None, **annotations: str) -> dict[str, Any]:
    out: dict[str, Any] = {"digest": name}
    if platform is not None:
        os_, arch, *variant = platform.split("/")
        out["platform"] = {"os": os_, "architecture": arch}
        if variant:
            out["platform"]["variant"] = variant[0]
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def picked(entries: list[dict[str, Any]], platform: str | None = None) -> str | None:
    desc = choose_manifest(entries, platform)
    return None if desc is None else str(desc["digest"])


# --- the rule itself ----------------------------------------------------------------------------


def test_the_annotation_marks_an_attestation_whatever_its_platform() -> None:
    att = entry("att", "linux/amd64", **ATTESTATION)
    assert is_attestation(att)
    assert picked([att, entry("img", "linux/amd64")]) == "img"
    assert picked([att]) is None
    assert offered_platforms([att, entry("img", "linux/arm64")]) == ["linux/arm64"]


def test_any_buildkit_reference_type_is_skipped() -> None:
    # BuildKit's attestation storage: a manifest with any other value must be ignored too
    other = entry("other", "linux/amd64", **{"vnd.docker.reference.type": "something-new"})
    assert is_attestation(other)
    assert picked([other, entry("img", "linux/amd64")]) == "img"


def test_buildkit_shape_annotation_and_unknown_platform_is_skipped() -> None:
    att = entry("att", "unknown/unknown", **ATTESTATION)
    assert picked([att, entry("img", "linux/amd64")]) == "img"
    assert picked([att, entry("img", "linux/amd64")], "unknown/unknown") is None
    assert offered_platforms([att, entry("img", "linux/amd64")]) == ["linux/amd64"]


def test_unknown_platform_without_annotation_is_an_ordinary_entry() -> None:
    unk = entry("unk", "unknown/unknown")
    assert not is_attestation(unk)
    entries = [unk, entry("img", "linux/amd64")]
    assert picked(entries) == "img"  # it never matches a real platform
    assert picked(entries, "unknown/unknown") == "unk"  # but it is what the index offers
    assert offered_platforms(entries) == ["linux/amd64", "unknown/unknown"]
    # one unknown half is just as ordinary
    assert picked([entry("half", "linux/unknown"), entry("img", "linux/amd64")]) == "img"


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (None, "amd64"),
        ("linux/amd64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm64/v8", "arm64"),  # arm64 without a variant is v8
        ("linux/arm/v7", "armv7"),
        ("linux/arm", "armv6"),  # no variant asked: the first arm entry
        ("linux/arm/v5", None),
        ("windows/amd64", None),
    ],
)
def test_platform_and_variant_matching(platform: str | None, expected: str | None) -> None:
    entries = [
        entry("att", "linux/arm/v7", **ATTESTATION),
        entry("armv6", "linux/arm/v6"),
        entry("armv7", "linux/arm/v7"),
        entry("arm64", "linux/arm64"),
        entry("amd64", "linux/amd64"),
    ]
    assert picked(entries, platform) == expected


def test_arm64_v8_entry_matches_a_request_without_variant() -> None:
    assert picked([entry("v8", "linux/arm64/v8")], "linux/arm64") == "v8"
    assert picked([entry("v8", "linux/arm64/v8")], "linux/arm64/v8") == "v8"


def test_a_single_image_without_platform_is_the_image() -> None:
    alone = entry("alone", None)
    assert picked([alone], "linux/s390x") == "alone"
    assert picked([entry("att", None, **ATTESTATION), alone]) == "alone"
    assert picked([alone, entry("arm", "linux/arm64")]) is None


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", "linux//v7"])
def test_malformed_platform_is_a_one_line_source_error(text: str) -> None:
    with pytest.raises(SourceError) as info:
        Platform.parse(text)
    assert repr(text) in str(info.value) and "OS/ARCH[/VARIANT]" in str(info.value)
    assert info.value.exit_code == 3 and "\n" not in str(info.value)


def test_platform_prints_as_written() -> None:
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64/v8"
    assert str(Platform.parse(None)) == "linux/amd64"


# --- through OCI layouts (both shapes) ----------------------------------------------------------


def _attestation_fields(platform: Mapping[str, str] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"annotations": {**ATTESTATION, "vnd.docker.reference.digest": "x"}}
    if platform is not None:
        fields["platform"] = dict(platform)
    return fields


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize(
    "att_platform",
    [
        {"os": "unknown", "architecture": "unknown"},  # BuildKit's shape
        {"os": "linux", "architecture": "amd64"},  # the annotation alone decides
        None,
    ],
)
def test_oci_layout_skips_annotated_attestations(
    tmp_path: Path, att_platform: Mapping[str, str] | None, nested: bool
) -> None:
    built = build_oci_layout(
        tmp_path / "img",
        {"linux/amd64": [Layer().file("arch", b"amd64")]},
        leading=[([Layer().file("att", b"x")], _attestation_fields(att_platform))],
        nested=nested,
        tag="1",
    )
    src = parse_source(built.source)
    with open_image(src) as plan:
        assert plan.digest == built.digest
        assert plan.digest not in built.extra["leading"]
    with pytest.raises(SourceError) as info:
        open_image(src, platform="linux/s390x").__enter__()
    assert "linux/amd64" in str(info.value) and "unknown" not in str(info.value)


def test_oci_layout_unknown_platform_without_annotation_is_listed_never_defaulted(
    tmp_path: Path,
) -> None:
    built = build_oci_layout(
        tmp_path / "img",
        {"linux/amd64": [Layer().file("arch", b"amd64")]},
        leading=[
            (
                [Layer().file("odd", b"x")],
                {"platform": {"os": "unknown", "architecture": "unknown"}},
            )
        ],
        nested=True,
        tag="1",
    )
    src = parse_source(built.source)
    with open_image(src) as plan:
        assert plan.digest == built.digest
    with pytest.raises(SourceError, match=r"available: linux/amd64, unknown/unknown\)"):
        open_image(src, platform="linux/s390x").__enter__()
    with open_image(src, platform="unknown/unknown") as plan:
        assert [plan.digest] == built.extra["leading"]


def test_oci_one_tag_on_several_platform_manifests_chooses_by_platform(tmp_path: Path) -> None:
    # index.json itself lists the platform manifests, each carrying the tag
    built = build_oci_layout(
        tmp_path / "img",
        {
            "linux/arm64/v8": [Layer().file("arch", b"arm64")],
            "linux/amd64": [Layer().file("arch", b"amd64")],
        },
        tag="1",
    )
    src = parse_source(built.source)
    with open_image(src) as plan:
        assert plan.digest == built.digest
    with open_image(src, platform="linux/arm64") as plan:
        assert plan.digest == built.extra["platforms"]["linux/arm64/v8"]["digest"]
