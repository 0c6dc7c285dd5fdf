"""`[upstream.watch]` rules and adding `[[version]]` entries (core/versions.py, pure)."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from patchkit.core.versions import (
    ReleaseStatus,
    WatchRules,
    add_releases,
    parse_label,
    parse_versions,
    set_tag_digest,
    sort_tags,
)
from patchkit.errors import ConfigError

HEAD = """\
schema = 1
base = "2.5.5"

[upstream]
name = "poste.io"
image = "docker.io/analogic/poste.io"
exclude = ["usr/share/doc/**"]
"""

VERSIONS = """
[[version]]
version = "2.5.5"
"""


def parse(watch: str) -> WatchRules:
    rules = parse_versions(HEAD + watch + VERSIONS).upstream.watch
    assert rules is not None
    return rules


def test_rules_are_read_with_their_defaults() -> None:
    rules = parse("\n[upstream.watch]\ntags = '^2\\.\\d+\\.\\d+$'\n")
    assert rules.tags == r"^2\.\d+\.\d+$"
    assert rules.versions is None and rules.exclude == ()
    assert rules.status is ReleaseStatus.TESTING
    assert parse_versions(HEAD + VERSIONS).upstream.watch is None


def test_rules_select_tags_in_version_order() -> None:
    rules = parse(
        "\n[upstream.watch]\n"
        "tags = '^2\\.\\d+\\.\\d+'\n"
        'versions = ">=2.5"\n'
        "exclude = ['-rc', '^latest$']\n"
        'status = "supported"\n'
    )
    tags = ["latest", "2.4.9", "2.5.10", "2.5.9", "2.6.0-rc1", "2.5.5", "1.0", "3.0"]
    assert rules.select(tags) == ["2.5.5", "2.5.9", "2.5.10"]
    assert rules.status is ReleaseStatus.SUPPORTED


def test_default_rules_take_every_tag_that_parses_as_pep440() -> None:
    rules = WatchRules()
    assert rules.select(["latest", "2.5.24", "v2.5.23", "2.6.0rc1", "stable-2024", "1.0"]) == [
        "1.0",
        "v2.5.23",
        "2.5.24",
        "2.6.0rc1",
    ]


def test_a_specifier_leaves_prereleases_out_unless_it_names_one() -> None:
    assert WatchRules(versions=">=2.5").select(["2.6.0rc1", "2.5.1"]) == ["2.5.1"]
    assert WatchRules(versions=">=2.6.0rc1").select(["2.6.0rc1", "2.5.1"]) == ["2.6.0rc1"]


def test_tags_that_cannot_be_labels_are_never_selected() -> None:
    # a registry tag may start with "_" or end in ".lock": neither can name a git ref
    assert WatchRules(tags=".").select(["_1.0", "1.0.lock", "1.0"]) == ["1.0"]


def test_a_tags_regex_may_select_labels_that_are_not_versions() -> None:
    rules = WatchRules(tags="^stable-")
    assert rules.select(["stable-b", "stable-a", "1.0"]) == ["stable-a", "stable-b"]
    # ... but a versions specifier leaves them out (a non-PEP 440 label is in no range)
    assert WatchRules(tags="^stable-", versions=">=1").select(["stable-a"]) == []


@pytest.mark.parametrize(
    ("watch", "message"),
    [
        ("tags = '(unclosed'", r"^upstream-versions.toml:10: \[upstream.watch\] tags: invalid"),
        ("tags = ''", r"^upstream-versions.toml:10: \[upstream.watch\] tags: must be"),
        ("tags = 5", r"^upstream-versions.toml:10: \[upstream.watch\] tags: must be"),
        ('versions = ">>2"', r"^upstream-versions.toml:10: \[upstream.watch\] versions: '>>2'"),
        (
            "exclude = '-rc'",
            r"^upstream-versions.toml:10: \[upstream.watch\] exclude: must be a list",
        ),
        ("exclude = ['[']", r"^upstream-versions.toml:10: \[upstream.watch\] exclude: invalid"),
        ('status = "model"', r"^upstream-versions.toml:10: \[upstream.watch\] status: 'model'"),
        ('status = "beta"', r"^upstream-versions.toml:10: \[upstream.watch\] status: 'beta'"),
        ("exlude = []", r"^upstream-versions.toml:10: \[upstream.watch\] exlude: unknown key"),
    ],
)
def test_bad_rules_are_one_line_naming_file_line_and_key(watch: str, message: str) -> None:
    text = HEAD + "\n[upstream.watch]\n" + watch + "\n" + VERSIONS
    assert text.splitlines()[9] == watch  # line 10
    with pytest.raises(ConfigError, match=message) as info:
        parse_versions(text)
    assert "\n" not in str(info.value) and info.value.exit_code == 3


def test_a_key_is_found_in_its_own_table_not_in_upstream() -> None:
    # [upstream] has `exclude` on line 7; the bad one is the watch table's
    text = HEAD + "\n[upstream.watch]\ntags = '.'\nexclude = ['(']\n" + VERSIONS
    with pytest.raises(ConfigError, match=r":11: \[upstream.watch\] exclude"):
        parse_versions(text)


def test_dotted_and_inline_forms_name_the_line_too() -> None:
    text = HEAD.replace('name = "poste.io"', 'name = "poste.io"\nwatch.tags = "("') + VERSIONS
    with pytest.raises(ConfigError, match=r":6: \[upstream.watch\] tags: invalid"):
        parse_versions(text)
    inline = HEAD.replace('name = "poste.io"', 'name = "p"\nwatch = 3') + VERSIONS
    with pytest.raises(ConfigError, match=r"\[upstream.watch\]: must be a table"):
        parse_versions(inline)


def test_a_catastrophic_pattern_is_stopped_with_one_line() -> None:
    rules = WatchRules(tags=r"(a|aa)+$", where="f.toml:3: [upstream.watch]")
    with pytest.raises(
        ConfigError, match=r"^f.toml:3: \[upstream.watch\]: tags pattern .* took over"
    ):
        rules.selects("a" * 60 + "b")


def test_tag_digest_is_read_and_checked() -> None:
    good = "sha256:" + "ab" * 32
    vf = parse_versions(HEAD + VERSIONS + f'tag-digest = "{good}"\n')
    assert vf.release("2.5.5").tag_digest == good
    with pytest.raises(ConfigError, match=r":9: \[\[version\]\] #1: tag-digest 'sha256:1'"):
        parse_versions(HEAD + VERSIONS + 'tag-digest = "sha256:1"\n')


def test_set_tag_digest_keeps_the_rest() -> None:
    text = HEAD + VERSIONS.replace('"2.5.5"', '"2.5.5"   # kept')
    out = set_tag_digest(text, "2.5.5", "sha256:" + "0" * 64)
    assert "# kept" in out and out.startswith(HEAD)
    assert parse_versions(out).release("2.5.5").tag_digest == "sha256:" + "0" * 64


def test_an_oci_image_gives_oci_sources() -> None:
    text = HEAD.replace('"docker.io/analogic/poste.io"', '"oci:mirror/poste"') + VERSIONS
    assert parse_versions(text).source_for("2.5.5") == "oci:mirror/poste:2.5.5"


# --- adding entries -----------------------------------------------------------------------------

DESCENDING = (
    HEAD
    + """
[[version]]
version = "2.5.24"
status = "supported"   # newest first

[[version]]
version = "2.5.5"

# Models below
[[version]]
version = "model-bookworm"
status = "model"
source = "oci:x:model-bookworm"
"""
)


def test_add_keeps_a_descending_file_descending_and_its_comments() -> None:
    out = add_releases(DESCENDING, [{"version": "2.5.25", "status": "testing"}])
    assert parse_versions(out).labels == ("2.5.25", "2.5.24", "2.5.5", "model-bookworm")
    assert out.startswith(HEAD) and "# newest first" in out
    assert '\n[[version]]\nversion = "2.5.25"\nstatus = "testing"\n\n[[version]]\n' in out


def test_add_after_the_last_release_keeps_a_comment_above_what_it_heads() -> None:
    out = add_releases(DESCENDING, [{"version": "2.5.4", "status": "eol"}])
    assert '"2.5.5"\n\n[[version]]\nversion = "2.5.4"\nstatus = "eol"\n\n# Models below\n' in out


def test_add_twice_adds_once() -> None:
    entries = [{"version": "2.5.25", "status": "testing", "tag-digest": "sha256:" + "1" * 64}]
    once = add_releases(DESCENDING, entries)
    assert add_releases(once, entries) == once


labels_strategy = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 12)).map(lambda t: f"{t[0]}.{t[1]}"),
    unique=True,
    max_size=8,
)


@given(existing=labels_strategy, added=labels_strategy, descending=st.booleans())
def test_add_keeps_version_order_and_everything_else(
    existing: list[str], added: list[str], descending: bool
) -> None:
    existing = sorted(existing or ["1.0"], key=Version, reverse=descending)
    text = HEAD.replace('base = "2.5.5"', f'base = "{existing[0]}"') + "".join(
        f'\n[[version]]\nversion = "{label}"   # c{i}\n' for i, label in enumerate(existing)
    )
    out = add_releases(text, [{"version": label, "status": "testing"} for label in added])
    vf = parse_versions(out)
    labels = list(vf.labels)
    assert set(labels) == set(existing) | set(added) and len(labels) == len(set(labels))
    assert labels == sorted(labels, key=Version, reverse=descending and len(existing) > 1)
    for i in range(len(existing)):  # every comment kept
        assert f"# c{i}\n" in out
    assert tomllib.loads(out)["upstream"] == tomllib.loads(text)["upstream"]


@given(st.lists(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,12}\Z"), max_size=20))
def test_sort_tags_puts_versions_first_in_order(tags: list[str]) -> None:
    out = sort_tags(tags)
    assert sorted(out) == sorted(set(tags))
    versions = [parse_label(t) for t in out]
    n = sum(v is not None for v in versions)
    assert all(v is not None for v in versions[:n]) and all(v is None for v in versions[n:])
    parsed = [v for v in versions if v is not None]
    assert parsed == sorted(parsed)


@given(
    tags=st.lists(st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,10}\Z"), max_size=15),
    pattern=st.sampled_from(["^2", r"\d$", "rc", "^latest$", "."]),
)
def test_exclude_removes_exactly_what_it_matches(tags: list[str], pattern: str) -> None:
    import re

    base = WatchRules(tags=".")
    excluded = WatchRules(tags=".", exclude=(pattern,))
    assert excluded.select(tags) == [t for t in base.select(tags) if not re.search(pattern, t)]
