"""patchkit.core.globs: image path globs (sparse imports, edit targets)."""

from __future__ import annotations

import pytest

from patchkit.core.globs import glob_to_regex


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("opt/haraka-{smtp,submission}/config/plugins", "opt/haraka-smtp/config/plugins", True),
        (
            "opt/haraka-{smtp,submission}/config/plugins",
            "opt/haraka-submission/config/plugins",
            True,
        ),
        ("opt/haraka-{smtp,submission}/config/plugins", "opt/haraka-x/config/plugins", False),
        ("etc/**/*.{conf,inc}", "etc/rspamd/local.d/redis.conf", True),
        ("etc/**/*.{conf,inc}", "etc/worker.inc", True),
        ("etc/**/*.{conf,inc}", "etc/worker.ini", False),
        ("{a,b{c,d}}/x", "bd/x", True),
        ("{a,b{c,d}}/x", "b/x", False),
        ("{a}", "{a}", True),  # one alternative is no group: literal braces
        ("a{b", "a{b", True),  # unclosed: literal
        ("**/x", "x", True),
        ("**/x", "a/b/x", True),
        ("etc/**", "etc", True),
        ("etc/*", "etc/a/b", False),
    ],
)
def test_glob_matches_whole_paths_with_braces_and_double_stars(
    pattern: str, path: str, matches: bool
) -> None:
    assert bool(glob_to_regex(pattern).match(path)) is matches
