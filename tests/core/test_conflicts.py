"""patchkit.core.conflicts: the conflict regions a 3-way merge left, as each side's text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.core.conflicts import ConflictRegion, conflict_regions
from patchkit.core.merge import merge3

LINES = st.lists(st.sampled_from([f"l{i}\n" for i in range(8)] + ["x\n", "}\n", "\n"]), max_size=40)
# Text that is not a marker line (what a file holds between and inside regions).
PLAIN = st.lists(
    st.sampled_from(["a\n", "b\n", "<<<<<<x\n", "=====\n", ">>> not\n", "|| y\n", "\n"]),
    max_size=6,
).map("".join)


def _region(ours: str, base: str | None, theirs: str, labels: tuple[str, str, str]) -> str:
    text = f"<<<<<<< {labels[0]}\n{ours}"
    if base is not None:
        text += f"||||||| {labels[1]}\n{base}"
    return text + f"=======\n{theirs}>>>>>>> {labels[2]}\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PLAIN, PLAIN, st.none() | PLAIN, PLAIN), max_size=4), PLAIN)
def test_regions_give_back_each_sides_text_and_where_it_starts(
    parts: list[tuple[str, str, str | None, str]], tail: str
) -> None:
    text = ""
    expected = []
    for before, ours, base, theirs in parts:
        text += before
        line = text.count("\n") + 1
        text += _region(ours, base, theirs, ("HEAD", "parent of 1234 (x)", "1234 (x)"))
        expected.append(ConflictRegion(line=line, ours=ours, base=base, theirs=theirs))
    assert conflict_regions(text + tail) == expected


@settings(max_examples=300, deadline=None)
@given(LINES, LINES, LINES)
def test_every_region_merge3_leaves_is_read_where_it_says(
    base: list[str], ours: list[str], theirs: list[str]
) -> None:
    merged = merge3(base, ours, theirs, labels=("upstream", "base", "patch"))
    regions = conflict_regions("".join(merged.lines))
    assert len(regions) == merged.conflicts
    assert tuple(r.line for r in regions) == merged.regions
    for r in regions:
        assert r.base is not None
        # Each side is a run of that side's lines.
        for side, lines in ((r.ours, ours), (r.base, base), (r.theirs, theirs)):
            assert side in "".join(lines)


def test_git_merge_style_has_no_base_and_an_unclosed_region_is_none() -> None:
    text = "a\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> pick\nz\n<<<<<<< HEAD\nopen\n"
    assert conflict_regions(text) == [
        ConflictRegion(line=2, ours="ours\n", base=None, theirs="theirs\n")
    ]


def test_capped_sides_say_they_were_cut() -> None:
    region = ConflictRegion(line=1, ours="a\n" * 50, base="b\n", theirs="c" * 9000 + "\n")
    cut = region.capped(max_lines=40, max_chars=4000)
    assert cut.ours == "a\n" * 40 and cut.base == "b\n" and len(cut.theirs) == 4000
    assert cut.truncated and not region.capped(max_lines=60, max_chars=10_000).truncated
