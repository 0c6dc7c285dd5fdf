"""``series`` following the worktree: properties of :func:`patchkit.ops.edit.series.reorder`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.core.series import parse_series
from patchkit.ops.edit.series import reorder

_NAMES = [f"p{i}.patch" for i in range(8)]


@st.composite
def _series_and_order(draw: st.DrawFn) -> tuple[str, list[str]]:
    names = draw(st.lists(st.sampled_from(_NAMES), unique=True, min_size=0, max_size=6))
    lines: list[str] = []
    for name in names:
        lines += draw(st.lists(st.sampled_from(["# note\n", "\n", "  # indented\n"]), max_size=2))
        opt = draw(st.sampled_from(["", " -p0", " -p2"]))
        comment = draw(st.sampled_from(["", "  # why " + name]))
        lines.append(f"{name}{opt}{comment}\n")
    lines += draw(st.lists(st.just("# tail\n"), max_size=1))
    kept = draw(st.permutations(names))
    kept = kept[: draw(st.integers(0, len(kept)))]
    new = [n for n in _NAMES if n not in names]
    order = list(kept)
    for extra in draw(st.lists(st.sampled_from(new), unique=True, max_size=2)) if new else []:
        order.insert(draw(st.integers(0, len(order))), extra)
    return "".join(lines), order


@settings(max_examples=300, deadline=None)
@given(_series_and_order())
def test_reorder_keeps_every_comment_and_option(case: tuple[str, list[str]]) -> None:
    text, order = case
    series = parse_series(text)
    out = reorder(series, order)
    assert out.names == tuple(order)
    old_lines = {e.name: series.lines[e.line - 1] for e in series.entries}
    for e in out.entries:
        line = out.lines[e.line - 1]
        if e.name in old_lines:
            assert line == old_lines[e.name]  # its own -pN and trailing comment travel with it
            assert e.strip == series.entry(e.name).strip
        else:
            assert line == e.name + "\n" and e.strip == 1

    # Comments and blank lines: all of them, in their order.
    def others(s: str) -> list[str]:
        return [ln for ln in s.splitlines(True) if not ln.strip() or ln.lstrip().startswith("#")]

    assert others(out.render()) == others(text)


def test_unchanged_order_is_the_same_text() -> None:
    text = "# a\nx.patch -p0  # c\n\ny.patch\n"
    assert reorder(parse_series(text), ["x.patch", "y.patch"]).render() == text
