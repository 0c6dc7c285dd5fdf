from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from patchkit.core.versions import ReleaseStatus, order_labels, parse_versions, set_base, set_digest
from patchkit.errors import ConfigError, UnknownVersionError

GOOD = """\
# comment kept
schema = 1
base = "2.5.24"   # trailing comment kept

[upstream]
name = "poste.io"
image = "docker.io/analogic/poste.io"

[[version]]
version = "2.5.24"
status = "supported"

[[version]]
version = "model-bookworm"
status = "model"
source = "oci:/tmp/x:model-bookworm"

[[version]]
version = "2.4.7"
status = "eol"
"""


def test_parse_reads_every_release_and_default_source() -> None:
    vf = parse_versions(GOOD)
    assert vf.base == "2.5.24"
    assert vf.labels == ("2.5.24", "model-bookworm", "2.4.7")
    assert vf.release("model-bookworm").status is ReleaseStatus.MODEL
    assert vf.source_for("2.5.24") == "docker://docker.io/analogic/poste.io:2.5.24"
    assert vf.source_for("model-bookworm") == "oci:/tmp/x:model-bookworm"


def test_order_puts_pep440_labels_by_version_then_others_in_file_order() -> None:
    assert order_labels(["2.5.24", "model-b", "2.4.7", "2.10", "model-a"]) == [
        "2.4.7",
        "2.5.24",
        "2.10",
        "model-b",
        "model-a",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema = 1\nbase = \n", "upstream-versions.toml:2: invalid TOML"),
        ('schema = 1\nbase = "1"\n', "missing table [upstream]"),
        (
            'schema = 1\nbase = "1"\n[upstream]\nimage = "x"\n',
            "upstream-versions.toml:3: [upstream]: missing field 'name'",
        ),
        (
            'schema = 1\nbase = "1"\n[upstream]\nname = "x"\n\n[[version]]\nstatus = "eol"\n',
            "upstream-versions.toml:6: [[version]] #1: missing field 'version'",
        ),
        (
            'schema = 1\nbase = "1"\n[upstream]\nname = "x"\n[[version]]\nversion = "1"\nstatus = "old"\n',
            "status 'old' is not one of",
        ),
        (
            'schema = 1\nbase = "2"\n[upstream]\nname = "x"\n[[version]]\nversion = "1"\n',
            "upstream-versions.toml:2: base '2' is not one of",
        ),
        (
            '[upstream]\nname = "x"\n[[version]]\nversion = "1"\n',
            "missing field 'base'",
        ),
        (
            'schema = 2\nbase = "1"\n[upstream]\nname = "x"\n[[version]]\nversion = "1"\n',
            "upstream-versions.toml:1: field 'schema' is 2",
        ),
        (
            'base = "1"\n[upstream]\nname = "x"\n[[version]]\nversion = "1"\n[[version]]\nversion = "1"\n',
            "listed twice",
        ),
        (
            'base = "a/../b"\n[upstream]\nname = "x"\n[[version]]\nversion = "a/../b"\n',
            "names a git ref",
        ),
        (
            'base = "1"\n[upstream]\nname = "x"\n[[version]]\nversion = "1"\ndigest = "md5:abc"\n',
            "is not 'sha256:<64 hex>'",
        ),
    ],
)
def test_bad_files_give_one_line_naming_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_versions(text)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_version_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownVersionError,
        match=r"'9\.9' is not tracked \(known: 2\.5\.24, model-bookworm, 2\.4\.7",
    ):
        parse_versions(GOOD).release("9.9")


def test_set_base_and_digest_keep_comments_and_layout() -> None:
    digest = "sha256:" + "ab" * 32
    text = set_digest(set_base(GOOD, "2.4.7"), "2.4.7", digest)
    assert "# comment kept" in text
    assert 'base = "2.4.7"   # trailing comment kept' in text
    vf = parse_versions(text)
    assert vf.base == "2.4.7"
    assert vf.release("2.4.7").digest == digest
    # Only those two lines changed.
    changed = [line for line in text.splitlines() if line not in GOOD.splitlines()]
    assert changed == ['base = "2.4.7"   # trailing comment kept', f'digest = "{digest}"']


def test_the_projects_own_file_parses() -> None:
    from pathlib import Path

    vf = parse_versions(
        (Path(__file__).resolve().parents[2] / "upstream-versions.toml").read_text()
    )
    assert vf.base in vf.labels
    assert "2.5.24" in vf.labels


# Release numbers only ("2.5.24", "1.0", "01.10.0"): ordered without packaging, as it orders them.
NUMBERS = st.lists(
    st.sampled_from(["0", "00", "1", "01", "2", "9", "10", "24"]), min_size=1, max_size=4
)


@given(st.lists(NUMBERS.map(".".join), max_size=8))
def test_release_numbers_are_ordered_as_pep440_orders_them(labels: list[str]) -> None:
    want = [label for label, _ in sorted(((x, Version(x)) for x in labels), key=lambda p: p[1])]
    assert order_labels(labels) == want  # equal versions (1.0, 1.0.0) keep the given order
