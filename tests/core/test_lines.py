"""The one line splitter: on "\n" only, whatever other line breaks str.splitlines knows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from patchkit.core.lines import lines_of, split_lines

# Every character str.splitlines splits on, "\r\n", and ordinary text, ASCII and wider.
TEXT = st.lists(
    st.sampled_from(
        [
            *("a", "line", "\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85"),
            *("\u2028", "\u2029", "é", "\u00a0", "ü\n", "😀"),
        ]
    ),
    max_size=20,
).map("".join)


def _reference(text: str) -> list[str]:
    """The rule as it reads: split on "\\n", keep it, no empty last line."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


@given(TEXT)
def test_split_lines_splits_on_newline_only(text: str) -> None:
    assert split_lines(text) == _reference(text)
    assert "".join(split_lines(text)) == text


@given(st.binary(max_size=40))
def test_lines_of_gives_every_byte_back_in_a_list_of_its_own(data: bytes) -> None:
    lines = lines_of(data)
    assert "".join(lines).encode("utf-8", "surrogateescape") == data
    lines.append("changed by the caller")  # a caller's list: the next call does not see it
    assert lines_of(data) == _reference(data.decode("utf-8", "surrogateescape"))
    assert lines_of(None) == []
