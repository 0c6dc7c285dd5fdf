"""patchkit.core.series: the quilt series file."""

from __future__ import annotations

import pytest

from patchkit.core.series import parse_series
from patchkit.errors import SeriesError

# --------------------------------------------------------------------------- series


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("a.patch\n", [("a.patch", 1, 1)]),
        ("a.patch\nb.patch -p0\n", [("a.patch", 1, 1), ("b.patch", 0, 2)]),
        ("# comment\n\na.patch -p2\n", [("a.patch", 2, 3)]),
        ("a.patch # trailing comment\n", [("a.patch", 1, 1)]),
        ("a.patch\t-p0\t# tab comment\n", [("a.patch", 0, 1)]),
        ("a#b.patch\n", [("a#b.patch", 1, 1)]),
        ("   # indented comment\n a.patch\n", [("a.patch", 1, 2)]),
        ("sub/dir.patch\r\nb.patch\r\n", [("sub/dir.patch", 1, 1), ("b.patch", 1, 2)]),
        ("no-final-newline.patch", [("no-final-newline.patch", 1, 1)]),
        ("a.patch -p1 -p0\n", [("a.patch", 0, 1)]),
    ],
)
def test_parse_series_reads_names_strip_and_lines(
    text: str, expected: list[tuple[str, int, int]]
) -> None:
    series = parse_series(text)
    assert [(e.name, e.strip, e.line) for e in series.entries] == expected
    assert series.names == tuple(n for n, _, _ in expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a.patch\nb.patch -R\n", "patches/series:2: unknown option '-R'"),
        ("a.patch -x\n", "patches/series:1: unknown option '-x'"),
        ("a.patch -p\n", "patches/series:1: unknown option '-p'"),
        (
            "# c\na.patch\n\na.patch\n",
            "patches/series:4: duplicate patch 'a.patch' (first listed at line 2)",
        ),
        ("/etc/a.patch\n", "patches/series:1: absolute path"),
        ("../a.patch\n", "patches/series:1: '..' in path"),
        ("x/../../a.patch\n", "'..' in path"),
        ("-p1\n", "patches/series:1: expected a patch file name"),
    ],
)
def test_parse_series_rejects_bad_lines_naming_path_and_line(text: str, fragment: str) -> None:
    with pytest.raises(SeriesError) as info:
        parse_series(text)
    assert fragment in str(info.value)


def test_parse_series_error_names_the_given_path() -> None:
    with pytest.raises(SeriesError, match=r"^proj/patches/series:1: "):
        parse_series("a -Z\n", path="proj/patches/series")


@pytest.mark.parametrize(
    "text",
    ["", "a\n", "# x\n\n a -p0 # y\r\nb", "\n\n\n", "a\n# trailing comment without newline"],
)
def test_series_render_round_trips_byte_for_byte(text: str) -> None:
    assert parse_series(text).render() == text


def test_series_without_keeps_comments_and_other_lines() -> None:
    text = "# head\na.patch\n# about b\nb.patch -p0  # why\n\nc.patch\n"
    series = parse_series(text).without(["b.patch"])
    assert series.render() == "# head\na.patch\n# about b\n\nc.patch\n"
    assert series.names == ("a.patch", "c.patch")
    assert [e.line for e in series.entries] == [2, 5]
    assert parse_series(series.render()) == series


def test_series_without_ignores_unknown_names() -> None:
    assert parse_series("a\n").without(["zzz"]).names == ("a",)
