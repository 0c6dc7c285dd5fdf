"""The HTML report: self-contained, and its grid seen in a real browser (headless Chromium)."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from patchkit.cli import main
from patchkit.core.model import PatchStatus
from patchkit.output.html import COLOURS, PANEL_BORDER
from tests.conftest import in_ci
from tests.helpers.projectbuilder import make_project
from tests.ops.test_matrix import PATCHES, RELEASES

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    "--window-size=1200,800",
]

# What the fixture project gives, row (patch) by column (release).
EXPECTED = [
    ["applied", "offset", "conflict", "conflict"],
    ["applied", "fuzz", "applied", "missing-target"],
    ["applied", "applied", "fuzz", "applied"],
]


@pytest.fixture
def report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = make_project(tmp_path, RELEASES, PATCHES, base="1.0")
    for v in RELEASES:
        assert main(["-q", "--project", str(root), "import", v]) == 0
    capsys.readouterr()
    assert main(["-q", "--project", str(root), "matrix", "--format", "html"]) == 1
    out = tmp_path / "matrix.html"
    out.write_text(capsys.readouterr().out, encoding="utf-8")
    return out


def chromium() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        if in_ci():
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium): cannot render the HTML")
    return path


def screenshot(page: Path, tmp_path: Path, fragment: str = "") -> object:
    from PIL import Image

    png = tmp_path / f"shot{fragment.replace('#', '-')}.png"
    profile = tmp_path / f"profile{fragment.replace('#', '-')}"
    proc = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            page.as_uri() + fragment,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert png.exists(), proc.stderr.decode("utf-8", "replace")[-2000:]
    return Image.open(png).convert("RGB")


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def cell_boxes(image: object) -> list[tuple[int, int, str]]:
    """(y, x, status) of every grid cell: long horizontal runs of exactly one status colour."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    by_rgb = {_rgb(c): s.value for s, c in COLOURS.items()}
    width, height = image.size
    px = image.load()
    assert px is not None
    # Columns: where long horizontal runs of one status colour start (legend swatches are short).
    starts: set[int] = set()
    for y in range(0, height, 2):
        x = 0
        while x < width:
            if px[x, y] not in by_rgb:
                x += 1
                continue
            start = x
            while x < width and px[x, y] == px[start, y]:
                x += 1
            if x - start >= 60:
                starts.add(start)
    # Cells: tall vertical runs of one status colour just inside each column's left edge,
    # where no glyph reaches.
    boxes = []
    for x0 in starts:
        x = x0 + 3
        y = 0
        while y < height:
            status = by_rgb.get(px[x, y])  # type: ignore[arg-type]
            if status is None:
                y += 1
                continue
            top = y
            while y < height and px[x, y] == px[x, top]:
                y += 1
            if y - top >= 30:
                boxes.append((top, x0, status))
    return sorted(boxes)


def test_html_is_one_self_contained_file(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "@import" not in text and "url(" not in text and "<script" not in text
    # every cell links to its panel, and failing panels carry hunks and the upstream change
    assert text.count('<td class="cell') == 12 and text.count('class="panel"') == 12
    assert "Upstream change that broke it" in text and "+line six" in text


def test_screenshot_shows_status_colours_in_the_grid(report: Path, tmp_path: Path) -> None:
    image = screenshot(report, tmp_path)
    boxes = cell_boxes(image)
    rows = sorted({y for y, _, _ in boxes})
    cols = sorted({x for _, x, _ in boxes})
    assert (len(rows), len(cols)) == (3, 4), boxes
    grid = [[""] * 4 for _ in rows]
    for y, x, status in boxes:
        grid[rows.index(y)][cols.index(x)] = status
    assert grid == EXPECTED
    # cells are evenly laid out: a grid, not a list
    assert len({b - a for a, b in itertools.pairwise(cols)}) == 1
    from PIL import Image

    assert isinstance(image, Image.Image)
    assert _rgb(PANEL_BORDER) not in {c for _, c in image.getcolors(1 << 20) or []}


def test_a_cell_opens_its_panel(report: Path, tmp_path: Path) -> None:
    # The conflict cell (row 0, column 2) links to #c-0-2: the panel must cover the page.
    from PIL import Image

    image = screenshot(report, tmp_path, "#c-0-2")
    assert isinstance(image, Image.Image)
    border = _rgb(PANEL_BORDER)
    width, height = image.size
    # The panel's frame runs around the window, 24 px in.
    assert image.getpixel((width // 2, 24 + 3)) == border
    assert image.getpixel((24 + 3, height // 2)) == border
    # ... and hides the grid: no cell-sized run of a status colour is left.
    assert cell_boxes(image) == []
    assert COLOURS[PatchStatus.CONFLICT] in report.read_text(encoding="utf-8")
