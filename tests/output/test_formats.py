"""The output layer: one JSON writer (with the version), the rules taken from core.model."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import patchkit.output
from patchkit._version import __version__
from patchkit.core.model import (
    LARGE_OFFSET,
    REBASE_ONLY,
    RISK_FLAGS,
    CheckResult,
    Matrix,
    PatchResult,
    PatchStatus,
)
from patchkit.output import formats, html, report

ALLOWED = ("patchkit.core", "patchkit.output", "patchkit._version", "patchkit.errors")


def test_to_json_adds_the_version_to_records_and_documents() -> None:
    check = CheckResult(version="1", patches=(PatchResult(name="a", status=PatchStatus.APPLIED),))
    for pretty in (True, False):
        doc = json.loads(formats.to_json(check, pretty=pretty))
        assert doc == {**check.to_dict(), "patchkit": __version__}
    plain = {"schema": 1, "command": "versions", "versions": []}
    assert json.loads(formats.to_json(plain)) == {**plain, "patchkit": __version__}
    assert "patchkit" not in plain  # the caller's document is not changed
    one_line = formats.to_json(check, pretty=False)
    assert "\n" not in one_line and ", " not in one_line
    assert formats.patchkit_version() == __version__


def test_output_imports_only_core() -> None:
    """output/ may import core (and rich, the standard library): never ops, git, images, cli."""
    for path in Path(patchkit.output.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name == "patchkit" or name.startswith("patchkit."):
                    assert name.startswith(ALLOWED), f"{path.name} imports {name}"


def test_one_copy_of_each_rule() -> None:
    # The HTML glyphs are the table's; the legends leave out the statuses only a rebase has.
    assert {s: glyph for s, (glyph, _) in formats.STYLE.items()} == html.GLYPHS
    assert set(formats.STYLE) == set(PatchStatus) == set(html.COLOURS)
    empty = Matrix(versions=(), patches=(), checks=())
    legend = formats.matrix_markdown(empty).split("\n\n")[1]
    for status in PatchStatus:
        assert (status.value in legend) is (status not in REBASE_ONLY)
    from rich.console import Console

    console = Console(width=200, color_system=None, record=True)
    console.print(report.matrix_table(empty))
    assert f"offset ≥ {LARGE_OFFSET} lines" in console.export_text()


def _one_cell(status: PatchStatus, flags: tuple[str, ...] = ()) -> Matrix:
    check = CheckResult(version="1", patches=(PatchResult(name="a", status=status, flags=flags),))
    return Matrix(versions=("1",), patches=("a",), checks=(check,))


def test_every_risk_flag_marks_the_cell_in_every_view() -> None:
    for flag in sorted(RISK_FLAGS):
        matrix = _one_cell(PatchStatus.FUZZ, (flag,))
        assert "| `a` | ~! |" in formats.matrix_markdown(matrix)
        assert 'class="cell s-fuzz risk"' in html.matrix_html(matrix)
    plain = _one_cell(PatchStatus.FUZZ, ("large-offset",))
    assert "| `a` | ~ |" in formats.matrix_markdown(plain)
    assert 'class="cell s-fuzz"' in html.matrix_html(plain)


def test_junit_marks_not_tried_patches_skipped() -> None:
    out = formats.matrix_junit(_one_cell(PatchStatus.SKIPPED), fail_on=frozenset())
    assert 'skipped="1"' in out and "<skipped" in out
