"""patchkit.core.packages: dpkg's status file, npm's package.json files, what changed."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.core.packages import (
    npm_manifests,
    package_changes,
    parse_dpkg_status,
    parse_package_json,
)

NAMES = st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,15}", fullmatch=True)
VERSIONS = st.from_regex(r"([0-9]:)?[0-9][0-9a-z.+~-]{0,12}", fullmatch=True)
ARCHES = st.sampled_from(["amd64", "arm64", "all", "i386"])
STATES = st.sampled_from(
    ["installed", "installed", "half-configured", "config-files", "not-installed", "unpacked"]
)


def _stanza(name: str, arch: str, version: str, state: str) -> str:
    # Fields in dpkg's own order, with a multi-line Description and a Depends field.
    return (
        f"Package: {name}\nStatus: install ok {state}\nPriority: optional\n"
        f"Architecture: {arch}\nVersion: {version}\nDepends: libc6 (>= 2.36)\n"
        f"Description: the {name} package\n some more text\n .\n Version: not-a-field\n"
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(NAMES, ARCHES, VERSIONS, STATES), max_size=12, unique_by=lambda t: t[:2]),
    st.sampled_from(["\n", "\n\n", "\n \n"]),
)
def test_dpkg_status_gives_every_package_whose_files_are_on_disk(
    packages: list[tuple[str, str, str, str]], gap: str
) -> None:
    text = gap.join(_stanza(*p) for p in packages)
    on_disk = [p for p in packages if p[3] not in ("config-files", "not-installed")]
    names = [p[0] for p in on_disk]
    expected = {(f"{n}:{a}" if names.count(n) > 1 else n): v for n, a, v, _ in on_disk}
    assert parse_dpkg_status(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_dpkg_status_never_fails_on_any_text(text: str) -> None:
    for name, version in parse_dpkg_status(text).items():
        assert name and version


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"(@[a-z0-9-]{1,8}/)?[a-z0-9._-]{1,14}", fullmatch=True),
    VERSIONS,
    st.dictionaries(st.sampled_from(["main", "license", "dependencies"]), st.text(max_size=5)),
)
def test_package_json_gives_name_and_version(
    name: str, version: str, extra: dict[str, str]
) -> None:
    doc = {**extra, "name": name, "version": version}
    assert parse_package_json(json.dumps(doc).encode()) == (name, version)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_package_json_of_any_bytes_is_a_pair_or_none(data: bytes) -> None:
    got = parse_package_json(data)
    assert got is None or (isinstance(got[0], str) and isinstance(got[1], str))


def test_package_json_without_a_version_or_not_an_object_is_none() -> None:
    assert parse_package_json(b'{"name": "x"}') is None
    assert parse_package_json(b"[1, 2]") is None
    assert parse_package_json(b"\xff") is None


def test_npm_manifests_are_installed_packages_and_applications_only() -> None:
    paths = [
        "opt/haraka-smtp/package.json",
        "opt/haraka-smtp/node_modules/redis/package.json",
        "opt/haraka-smtp/node_modules/@haraka/utils/package.json",
        "opt/haraka-smtp/node_modules/redis/test/fixtures/package.json",
        "opt/haraka-smtp/node_modules/redis/node_modules/x/package.json",
        "opt/other/package.json",  # no node_modules beside it: not an installed application
        "usr/lib/node_modules/npm/package.json",
        "package.json",
        "node_modules/a/package.json",
    ]
    assert npm_manifests(paths) == sorted(
        [
            "opt/haraka-smtp/package.json",
            "opt/haraka-smtp/node_modules/redis/package.json",
            "opt/haraka-smtp/node_modules/@haraka/utils/package.json",
            "opt/haraka-smtp/node_modules/redis/node_modules/x/package.json",
            "usr/lib/node_modules/npm/package.json",
            "package.json",
            "node_modules/a/package.json",
        ]
    )


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(NAMES, st.sets(VERSIONS, min_size=1, max_size=2), max_size=8),
    st.dictionaries(NAMES, st.sets(VERSIONS, min_size=1, max_size=2), max_size=8),
)
def test_package_changes_list_exactly_the_names_whose_versions_differ(
    old: dict[str, set[str]], new: dict[str, set[str]]
) -> None:
    changes = package_changes("npm", old, new)
    assert [c.name for c in changes] == sorted(
        n for n in set(old) | set(new) if old.get(n) != new.get(n)
    )
    for c in changes:
        assert c.change == (
            "added" if c.name not in old else "removed" if c.name not in new else "changed"
        )
