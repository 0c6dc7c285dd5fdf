"""patchkit.core.merge: the line-level 3-way merge used by rebase (hunk by hunk) and matrix."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.core.merge import _opcodes, merge3

LINES = st.lists(st.sampled_from([f"l{i}\n" for i in range(8)] + ["x\n", "}\n", "\n"]), max_size=60)


def apply_opcodes(a: Sequence[str], b: Sequence[str]) -> list[str]:
    out: list[str] = []
    pos = 0
    for a1, a2, b1, b2 in _opcodes(a, b):
        assert pos <= a1 <= a2
        out.extend(a[pos:a1])
        out.extend(b[b1:b2])
        pos = a2
    out.extend(a[pos:])
    return out


@settings(max_examples=200, deadline=None)
@given(LINES, LINES)
def test_opcodes_turn_a_into_b(a: list[str], b: list[str]) -> None:
    assert apply_opcodes(a, b) == b


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=300, max_size=600), st.data())
def test_opcodes_on_large_files_with_anchors(numbers: list[int], data: st.DataObject) -> None:
    """Above the SequenceMatcher threshold the patience anchors split the work: still exact."""
    a = [f"{n}\n" for n in numbers]
    b = list(a)
    for _ in range(data.draw(st.integers(1, 20))):
        i = data.draw(st.integers(0, len(b)))
        if data.draw(st.booleans()) and i < len(b):
            del b[i]
        else:
            b.insert(i, f"new {data.draw(st.integers(0, 50))}\n")
    assert apply_opcodes(a, b) == b


@settings(max_examples=200, deadline=None)
@given(LINES, LINES)
def test_one_sided_changes_merge_to_that_side(base: list[str], other: list[str]) -> None:
    left = merge3(base, other, base)
    assert list(left.lines) == other and left.conflicts == 0
    right = merge3(base, base, other)
    assert list(right.lines) == other and right.conflicts == 0
    both = merge3(base, other, other)
    assert list(both.lines) == other and both.conflicts == 0


def test_edits_far_apart_merge_cleanly() -> None:
    base = [f"line {i}\n" for i in range(20)]
    ours = [*base[:2], "upstream\n", *base[3:]]
    theirs = [*base[:15], "patch\n", *base[16:]]
    r = merge3(base, ours, theirs)
    assert r.conflicts == 0 and r.adjacent == 0
    assert r.lines[2] == "upstream\n" and r.lines[15] == "patch\n"


def test_same_line_changed_both_ways_conflicts_with_zdiff3_markers() -> None:
    base = ["a\n", "b\n", "c\n"]
    r = merge3(base, ["a\n", "B1\n", "c\n"], ["a\n", "B2\n", "c\n"])
    assert r.conflicts == 1
    text = "".join(r.lines)
    assert "<<<<<<< ours\nB1\n||||||| base\nb\n=======\nB2\n>>>>>>> theirs\n" in text
    assert r.regions == (2,)


def test_upstream_wrapping_a_line_the_patch_edits_is_adjacent_not_a_conflict() -> None:
    base = ["a\n", "x = 1\n", "b\n"]
    ours = ["a\n", "#ifndef X\n", "x = 1\n", "#endif\n", "b\n"]
    theirs = ["a\n", "x = 2\n", "b\n"]
    r = merge3(base, ours, theirs)
    assert (r.conflicts, r.adjacent) == (0, 2)
    assert "".join(r.lines) == "a\n#ifndef X\nx = 2\n#endif\nb\n"


def test_adjacent_edit_of_an_ambiguous_line_stays_a_conflict() -> None:
    """The patch's line occurs twice upstream: placing it would be a guess."""
    base = ["a\n", "x = 1\n", "b\n"]
    ours = ["a\n", "#if X\n", "x = 1\n", "b\n", "x = 1\n"]
    theirs = ["a\n", "x = 2\n", "b\n"]
    assert merge3(base, ours, theirs).conflicts == 1
