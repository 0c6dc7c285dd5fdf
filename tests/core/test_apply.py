"""patchkit.core.apply: applying file patches in memory, making diffs, change sets."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchkit.core.apply import _search, apply_file_patch, apply_patch, change_set, unified_diff
from patchkit.core.model import PatchStatus
from patchkit.core.patchfile import FilePatch, Patch, parse_patch

S = PatchStatus


def lines(*items: str, end: str = "\n") -> bytes:
    return "".join(i + end for i in items).encode()


BASE = lines(*(f"l{i}" for i in range(1, 21)))  # l1 .. l20


def diff(old: bytes | None, new: bytes | None, path: str = "f") -> FilePatch:
    fp = unified_diff(old, new, path)
    assert fp is not None
    return fp


def change(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data
    return data.replace(old.encode(), new.encode(), 1)


MID = diff(BASE, change(BASE, "l10\n", "TEN\n"))  # one hunk, 3 lines of context each side


@pytest.mark.parametrize(
    ("target", "status", "offset", "fuzz", "expected"),
    [
        # exact
        (BASE, S.APPLIED, 0, 0, change(BASE, "l10\n", "TEN\n")),
        # two lines added above: found lower down
        (b"x\ny\n" + BASE, S.OFFSET, 2, 0, b"x\ny\n" + change(BASE, "l10\n", "TEN\n")),
        # three lines removed above: found higher up
        (
            BASE[len(b"l1\nl2\nl3\n") :],
            S.OFFSET,
            -3,
            0,
            change(BASE, "l10\n", "TEN\n")[len(b"l1\nl2\nl3\n") :],
        ),
        # outermost context changed on one side: fuzz 1
        (
            change(BASE, "l7\n", "seven\n"),
            S.FUZZ,
            0,
            1,
            change(change(BASE, "l10\n", "TEN\n"), "l7\n", "seven\n"),
        ),
        # outermost context changed on both sides: still fuzz 1
        (
            change(change(BASE, "l7\n", "seven\n"), "l13\n", "thirteen\n"),
            S.FUZZ,
            0,
            1,
            change(
                change(change(BASE, "l10\n", "TEN\n"), "l7\n", "seven\n"), "l13\n", "thirteen\n"
            ),
        ),
        # two outer context lines changed: fuzz 2
        (
            change(change(BASE, "l7\n", "seven\n"), "l8\n", "eight\n"),
            S.FUZZ,
            0,
            2,
            change(change(change(BASE, "l10\n", "TEN\n"), "l7\n", "seven\n"), "l8\n", "eight\n"),
        ),
        # fuzz and offset together
        (
            b"new\n" + change(BASE, "l7\n", "seven\n"),
            S.FUZZ,
            1,
            1,
            b"new\n" + change(change(BASE, "l10\n", "TEN\n"), "l7\n", "seven\n"),
        ),
        # already there
        (change(BASE, "l10\n", "TEN\n"), S.ALREADY_APPLIED, 0, 0, change(BASE, "l10\n", "TEN\n")),
        # already there, elsewhere
        (
            b"top\n" + change(BASE, "l10\n", "TEN\n"),
            S.ALREADY_APPLIED,
            1,
            0,
            b"top\n" + change(BASE, "l10\n", "TEN\n"),
        ),
        # the changed line itself differs: conflict, content unchanged
        (change(BASE, "l10\n", "ten?\n"), S.CONFLICT, 0, 0, change(BASE, "l10\n", "ten?\n")),
        # context next to the change differs: needs fuzz 3, beyond the default
        (
            change(change(change(BASE, "l7\n", "7\n"), "l8\n", "8\n"), "l9\n", "9\n"),
            S.CONFLICT,
            0,
            0,
            None,
        ),
    ],
    ids=[
        "exact",
        "offset-down",
        "offset-up",
        "fuzz1",
        "fuzz1-both",
        "fuzz2",
        "fuzz-offset",
        "already",
        "already-moved",
        "conflict",
        "fuzz3",
    ],
)
def test_apply_one_hunk(
    target: bytes, status: PatchStatus, offset: int, fuzz: int, expected: bytes | None
) -> None:
    result = apply_file_patch(target, MID)
    assert result.status is status
    (hunk,) = result.hunks
    assert (hunk.status, hunk.offset, hunk.fuzz) == (status, offset, fuzz)
    assert result.content == (target if expected is None else expected)
    if status is S.CONFLICT:
        assert hunk.text.startswith("@@ -7,7 +7,7 @@\n")
    else:
        assert hunk.text == ""


def test_fuzz_is_refused_when_max_fuzz_is_zero() -> None:
    result = apply_file_patch(change(BASE, "l7\n", "seven\n"), MID, max_fuzz=0)
    assert result.status is S.CONFLICT


def test_offset_of_one_hunk_carries_to_the_next() -> None:
    new = change(change(BASE, "l5\n", "FIVE\n"), "l15\n", "FIFTEEN\n")
    fp = diff(BASE, new)
    assert len(fp.hunks) == 2
    moved = b"a\nb\n" + BASE
    result = apply_file_patch(moved, fp)
    assert result.status is S.OFFSET
    assert [(h.offset, h.line) for h in result.hunks] == [
        (2, 4),
        (2, 14),
    ]  # where l2 and l12 now are
    assert result.content == b"a\nb\n" + new


def test_hunk_with_short_leading_context_at_line_1_is_anchored_to_the_top() -> None:
    # As GNU patch: "-1,6" with 2 leading but 3 trailing context lines was made at the top
    # of the file; elsewhere it only applies by ignoring a trailing context line (fuzz 1).
    fp = diff(BASE, change(BASE, "l3\n", "THREE\n"))
    assert apply_file_patch(b"a\n" + BASE, fp, max_fuzz=0).status is S.CONFLICT
    result = apply_file_patch(b"a\n" + BASE, fp)
    assert (result.status, result.hunks[0].fuzz, result.hunks[0].offset) == (S.FUZZ, 1, 1)


def test_hunk_line_is_reported_in_the_input_file() -> None:
    result = apply_file_patch(BASE, MID)
    assert result.hunks[0].line == 7


def test_hunks_never_match_before_the_previous_hunk() -> None:
    old = lines("a", "b", "c", "x", "d", "e", "f", "g", "h", "i", "a", "b", "c", "y", "d", "e", "f")
    new = old.replace(b"x\n", b"X\n").replace(b"y\n", b"Y\n")
    fp = diff(old, new)
    assert apply_file_patch(old, fp).content == new


def test_partly_applied_file_is_a_conflict() -> None:
    new = change(change(BASE, "l3\n", "THREE\n"), "l17\n", "SEVENTEEN\n")
    fp = diff(BASE, new)
    half = change(BASE, "l3\n", "THREE\n")
    result = apply_file_patch(half, fp)
    assert result.status is S.CONFLICT
    assert [h.status for h in result.hunks] == [S.ALREADY_APPLIED, S.APPLIED]
    assert "partly applied upstream" in result.message
    assert result.content == half


def test_every_hunk_already_applied_is_already_applied() -> None:
    new = change(change(BASE, "l3\n", "THREE\n"), "l17\n", "SEVENTEEN\n")
    result = apply_file_patch(new, diff(BASE, new))
    assert result.status is S.ALREADY_APPLIED
    assert result.content == new


def test_missing_target() -> None:
    result = apply_file_patch(None, MID)
    assert result.status is S.MISSING_TARGET
    assert result.content is None
    assert [h.status for h in result.hunks] == [S.MISSING_TARGET]


@pytest.mark.parametrize(
    ("existing", "status", "content"),
    [
        (None, S.APPLIED, b"new\nfile\n"),
        (b"new\nfile\n", S.ALREADY_APPLIED, b"new\nfile\n"),
        (b"other\n", S.CONFLICT, b"other\n"),
    ],
)
def test_new_file(existing: bytes | None, status: PatchStatus, content: bytes) -> None:
    result = apply_file_patch(existing, diff(None, b"new\nfile\n"))
    assert (result.status, result.content) == (status, content)


@pytest.mark.parametrize(
    ("existing", "status", "content"),
    [
        (b"old\nfile\n", S.APPLIED, None),
        (None, S.ALREADY_APPLIED, None),
        (b"changed\n", S.CONFLICT, b"changed\n"),
    ],
)
def test_deleted_file(existing: bytes | None, status: PatchStatus, content: bytes | None) -> None:
    result = apply_file_patch(existing, diff(b"old\nfile\n", None))
    assert (result.status, result.content) == (status, content)


def test_empty_new_file_from_git() -> None:
    patch = parse_patch(
        b"diff --git a/e b/e\nnew file mode 100644\nindex 0000000..e69de29\n", name="e.patch"
    )
    result = apply_file_patch(None, patch.files[0])
    assert (result.status, result.content, result.mode) == (S.APPLIED, b"", "100644")


@pytest.mark.parametrize(
    ("text", "target", "expected", "status"),
    [
        # zero-context insertion at the top
        (
            "@@ -0,0 +1,2 @@\n+#!/bin/sh\n+set -e\n",
            b"a\nb\n",
            b"#!/bin/sh\nset -e\na\nb\n",
            S.APPLIED,
        ),
        (
            "@@ -0,0 +1,2 @@\n+#!/bin/sh\n+set -e\n",
            b"#!/bin/sh\nset -e\na\nb\n",
            b"#!/bin/sh\nset -e\na\nb\n",
            S.ALREADY_APPLIED,
        ),
        # zero-context insertion at the end
        ("@@ -2,0 +3 @@\n+c\n", b"a\nb\n", b"a\nb\nc\n", S.APPLIED),
        # insertion with context at the end: must stay at the end
        ("@@ -1,2 +1,3 @@\n a\n b\n+c\n", b"x\na\nb\n", b"x\na\nb\nc\n", S.OFFSET),
        ("@@ -1,2 +1,3 @@\n a\n b\n+c\n", b"a\nb\nz\n", b"a\nb\nz\n", S.CONFLICT),
        # insertion with context at the top: must stay at the top
        ("@@ -1,2 +1,3 @@\n+c\n a\n b\n", b"a\nb\nz\n", b"c\na\nb\nz\n", S.APPLIED),
        ("@@ -1,2 +1,3 @@\n+c\n a\n b\n", b"z\na\nb\n", b"z\na\nb\n", S.CONFLICT),
    ],
    ids=[
        "top",
        "top-already",
        "end",
        "end-context",
        "end-context-not-at-end",
        "top-context",
        "top-context-not-at-top",
    ],
)
def test_insertions_at_top_and_end(
    text: str, target: bytes, expected: bytes, status: PatchStatus
) -> None:
    fp = parse_patch(b"--- a/f\n+++ b/f\n" + text.encode(), name="i.patch").files[0]
    result = apply_file_patch(target, fp, max_fuzz=0)
    assert (result.status, result.content) == (status, expected)


def test_files_without_final_newline() -> None:
    old = b"a\nb\nc"
    for new in (b"a\nB\nc", b"a\nb\nc\n", b"a\nb\nc\nd", b"a\nb"):
        fp = diff(old, new)
        result = apply_file_patch(old, fp)
        assert (result.status, result.content) == (S.APPLIED, new)
        assert apply_file_patch(new, fp).status is S.ALREADY_APPLIED


def test_unterminated_last_line_only_matches_at_the_end() -> None:
    fp = diff(b"a\nb", b"a\nB")
    assert apply_file_patch(b"a\nb\nc\n", fp).status is S.CONFLICT


def test_crlf_file_applies_and_keeps_crlf() -> None:
    old = b"one\r\ntwo\r\nthree\r\n"
    new = b"one\r\n2\r\nthree\r\n"
    fp = diff(old, new)
    assert apply_file_patch(old, fp).content == new
    assert apply_file_patch(old.replace(b"\r\n", b"\n"), fp).status is S.CONFLICT


def test_crlf_git_patch_applies_to_crlf_file() -> None:
    data = b"diff --git a/w.ini b/w.ini\n--- a/w.ini\n+++ b/w.ini\n@@ -1,2 +1,2 @@\n [x]\r\n-a=1\r\n+a=2\r\n"
    fp = parse_patch(data, name="w.patch").files[0]
    assert apply_file_patch(b"[x]\r\na=1\r\n", fp).content == b"[x]\r\na=2\r\n"


# --------------------------------------------------------------------------- whole patches


def make_patch(*fps: FilePatch) -> Patch:
    return Patch(name="p.patch", files=fps)


def test_apply_patch_status_is_the_worst_file_status() -> None:
    offset_fp = diff(BASE, change(BASE, "l10\n", "TEN\n"), "a")
    fuzz_fp = diff(BASE, change(BASE, "l10\n", "TEN\n"), "b")
    files = {"a": b"x\n" + BASE, "b": change(BASE, "l7\n", "7\n")}
    result = apply_patch(files, make_patch(offset_fp, fuzz_fp))
    assert result.status is S.FUZZ
    assert set(result.contents) == {"a", "b"}
    assert [h.file for h in result.hunks] == ["a", "b"]
    assert result.to_patch_result().files == ("a", "b")


def test_apply_patch_missing_target_changes_nothing() -> None:
    result = apply_patch(
        {"a": BASE}, make_patch(diff(BASE, b"x\n", "a"), diff(BASE, b"y\n", "gone"))
    )
    assert result.status is S.MISSING_TARGET
    assert result.contents == {}
    assert "gone: no such file" in result.message


def test_apply_patch_conflict_wins_over_missing_target() -> None:
    result = apply_patch(
        {"a": b"other\n"}, make_patch(diff(BASE, b"x\n", "gone"), diff(BASE, b"x\n", "a"))
    )
    assert result.status is S.CONFLICT
    assert result.contents == {}


def test_apply_patch_all_files_already_applied() -> None:
    result = apply_patch(
        {"a": b"x\n", "b": None}, make_patch(diff(BASE, b"x\n", "a"), diff(BASE, None, "b"))
    )
    assert result.status is S.ALREADY_APPLIED


def test_apply_patch_some_files_already_applied_is_a_partly_applied_conflict() -> None:
    result = apply_patch(
        {"a": b"x\n", "b": BASE}, make_patch(diff(BASE, b"x\n", "a"), diff(BASE, b"y\n", "b"))
    )
    assert result.status is S.CONFLICT
    assert "partly applied upstream" in result.message
    assert result.contents == {}


def test_apply_patch_creates_and_deletes() -> None:
    result = apply_patch(
        {"old": b"o\n"}, make_patch(diff(None, b"n\n", "new"), diff(b"o\n", None, "old"))
    )
    assert result.status is S.APPLIED
    assert result.contents == {"new": b"n\n", "old": None}


def test_apply_patch_two_diffs_of_one_file_apply_in_turn() -> None:
    step1 = change(BASE, "l2\n", "two\n")
    step2 = change(step1, "l19\n", "nineteen\n")
    result = apply_patch({"f": BASE}, make_patch(diff(BASE, step1), diff(step1, step2)))
    assert result.contents == {"f": step2}


def test_apply_empty_patch_is_applied() -> None:
    assert apply_patch({}, make_patch()).status is S.APPLIED


# --------------------------------------------------------------------------- unified_diff, change_set


def test_unified_diff_of_equal_contents_is_none() -> None:
    assert unified_diff(b"a\n", b"a\n", "f") is None
    assert unified_diff(None, None, "f") is None


def test_unified_diff_hunks_follow_gnu_numbering() -> None:
    fp = diff(BASE, change(BASE, "l10\n", "TEN\n"))
    (h,) = fp.hunks
    assert (h.old_start, h.old_len, h.new_start, h.new_len) == (7, 7, 7, 7)
    created = diff(None, b"a\n")
    assert (created.is_new, created.hunks[0].old_start, created.hunks[0].old_len) == (True, 0, 0)
    deleted = diff(b"a\n", None)
    assert (deleted.is_deleted, deleted.hunks[0].new_start, deleted.hunks[0].new_len) == (
        True,
        0,
        0,
    )
    assert diff(None, b"").hunks == ()


def test_change_set_ignores_context_and_cancels_moves() -> None:
    fp = diff(lines("a", "b", "c", "d"), lines("b", "a", "c", "D", "e"))
    removed, added = change_set(fp)["f"]
    assert removed == Counter({"d\n": 1})
    assert added == Counter({"D\n": 1, "e\n": 1})


def test_change_set_of_patch_groups_by_path() -> None:
    patch = make_patch(diff(b"x\n", b"y\n", "a"), diff(None, b"n\n", "b"))
    assert change_set(patch) == {
        "a": (Counter({"x\n": 1}), Counter({"y\n": 1})),
        "b": (Counter(), Counter({"n\n": 1})),
    }


def _nearest(out: list[str], block: list[str], rep: list[str], start: int, low: int) -> int | None:
    """The search as its rule reads: start, start+1, start-1, ... the first place the block
    sits (and the replacement keeps "only the last line lacks a newline")."""
    high = len(out) - len(block)
    for distance in range(len(out) + abs(start) + 2):  # every place from start outwards
        for pos in (start + distance, start - distance) if distance else (start,):
            fits = not (rep and not rep[-1].endswith("\n") and pos + len(block) != len(out))
            fits = fits and not (
                rep and not block and pos == len(out) and out and not out[-1].endswith("\n")
            )
            if low <= pos <= high and out[pos : pos + len(block)] == block and fits:
                return pos
    return None


LINE = st.sampled_from(["a\n", "b\n", "c\n", "d"])


@given(
    st.lists(LINE, max_size=25),
    st.lists(LINE, max_size=4),
    st.lists(LINE, max_size=3),
    st.integers(-3, 28),
    st.integers(0, 10),
)
def test_search_finds_the_nearest_place(
    out: list[str], block: list[str], rep: list[str], start: int, low: int
) -> None:
    found = _search(out, block, rep, start=start, low=low, at_start=False, at_end=False)
    assert found == _nearest(out, block, rep, start, low)
