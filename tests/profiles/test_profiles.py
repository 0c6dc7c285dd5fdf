"""Which profile a project gets: `[upstream] profile`, else poste.io's by name, else generic."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchkit.core.versions import parse_versions
from patchkit.errors import ConfigError
from patchkit.profiles import GENERIC, POSTE, PROFILES, get_profile, profile_for

ROOT = Path(__file__).resolve().parents[2]


def toml(upstream: str) -> str:
    return (
        f'schema = 1\nbase = "1"\n\n[upstream]\n{upstream}\n\n[[version]]\nversion = "1"\n'
        'source = "dir:x"\n'
    )


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ('name = "poste.io"', "poste"),
        ('name = "Poste.io"', "poste"),
        ('name = "acme-mail"', "generic"),
        ('name = "acme-mail"\nprofile = "poste"', "poste"),
        ('name = "poste.io"\nprofile = "generic"', "generic"),
    ],
)
def test_the_toml_chooses_the_profile(upstream: str, expected: str) -> None:
    assert profile_for(parse_versions(toml(upstream))).name == expected


def test_this_repository_keeps_the_poste_profile() -> None:
    text = (ROOT / "upstream-versions.toml").read_text()
    assert profile_for(parse_versions(text)) is POSTE


def test_an_unknown_profile_is_one_line_naming_file_line_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as e:
        profile_for(parse_versions(toml('name = "x"\nprofile = "postfix"'), path="u.toml"))
    assert str(e.value) == (
        "u.toml:4: [upstream]: profile 'postfix' is not known (known: generic, poste)"
    )
    with pytest.raises(ConfigError, match="not known"):
        get_profile("postfix")


@pytest.mark.parametrize("bad", ['""', '"Poste"', "3", '"a b"'])
def test_a_malformed_profile_field_is_refused_when_the_toml_is_read(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"u.toml:4: \[upstream\]: .*profile"):
        parse_versions(toml(f'name = "x"\nprofile = {bad}'), path="u.toml")


def test_profiles_are_data_and_generic_adds_nothing() -> None:
    assert PROFILES == {"generic": GENERIC, "poste": POSTE}
    assert GENERIC.placeholder is None and not GENERIC.public_ports
    assert GENERIC.run_dirs == () and GENERIC.start_script is None
    assert POSTE.placeholder == "__LISTEN_ON__" and 4190 in POSTE.public_ports
    # every directory a rule names lies under an audit root (else the audit never reads it)
    for profile in PROFILES.values():
        for rule in profile.rules:
            for pattern in rule.files:
                assert pattern.startswith(tuple(r + "/" for r in profile.audit_roots)), pattern
