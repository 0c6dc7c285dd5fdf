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


def test_expand_braces_and_the_directories_a_glob_can_reach() -> None:
    from patchkit.core.globs import expand_braces, glob_dirs

    assert expand_braces("opt/{a,b}/x{1,2}") == ["opt/a/x1", "opt/a/x2", "opt/b/x1", "opt/b/x2"]
    assert expand_braces(
        "{" + ",".join("abcdefghi") + "}" * 1 + "{" + ",".join("abcdefghi") + "}"
    ) == ["{a,b,c,d,e,f,g,h,i}{a,b,c,d,e,f,g,h,i}"]  # 81 alternatives: over the limit, kept whole
    assert glob_dirs("opt/haraka-{smtp,submission}/config/plugins") == [
        "opt/haraka-smtp/config/",
        "opt/haraka-submission/config/",
    ]
    assert glob_dirs("etc/**/*.conf") == ["etc/"]
    assert glob_dirs("**/x") == [""]
    assert glob_dirs("{etc,etc/nginx}/*") == ["etc/"]
