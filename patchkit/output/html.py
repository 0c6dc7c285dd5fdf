"""The matrix as one self-contained HTML page (no scripts, fonts or images from elsewhere).

The grid is patches x releases, one colour per status. Each cell links to a panel
(shown with CSS ``:target``, so it works with scripts disabled) holding the cell's
hunks and, for a failing cell, the upstream change that broke it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from patchkit.core.model import REBASE_ONLY, RISK_FLAGS, Drift, Matrix, PatchResult, PatchStatus
from patchkit.output.formats import STYLE

__all__ = ["COLOURS", "escape", "matrix_html", "page"]

# Cell background per status (#rrggbb); tests look for these in a screenshot.
COLOURS: dict[PatchStatus, str] = {
    PatchStatus.APPLIED: "#2e9e44",
    PatchStatus.OFFSET: "#8fd18b",
    PatchStatus.FUZZ: "#f2c12e",
    PatchStatus.MERGED: "#2bb3c0",
    PatchStatus.ALREADY_APPLIED: "#4a7bd0",
    PatchStatus.CONFLICT: "#d62d2d",
    PatchStatus.MISSING_TARGET: "#e07b2d",
    PatchStatus.SKIPPED: "#c8c8c8",
    PatchStatus.DROPPED: "#b04fc0",
}
# The glyphs of every other view (formats.STYLE): one copy.
GLYPHS: dict[PatchStatus, str] = {status: glyph for status, (glyph, _) in STYLE.items()}
PANEL_BORDER = "#1f3b73"  # the open panel's frame (tests look for it too)

_CSS = """
body { font: 14px/1.4 sans-serif; margin: 16px; color: #111; background: #fff; }
h1 { font-size: 18px; margin: 0 0 12px; }
table.grid { border-collapse: separate; border-spacing: 4px; }
table.grid th { font-weight: 600; padding: 0 6px; white-space: nowrap; }
table.grid th.patch { text-align: left; font-family: monospace; }
td.cell { width: 88px; height: 36px; padding: 0; text-align: center; position: relative; }
td.cell a { display: block; width: 100%; height: 36px; line-height: 36px; color: #111;
  text-decoration: none; font-size: 18px; }
td.risk::after { content: "!"; position: absolute; top: 0; right: 4px; font-weight: 700;
  color: #111; font-size: 13px; }
td.sum { text-align: center; font-weight: 600; }
.legend { margin: 14px 0; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 14px; height: 14px; vertical-align: -2px;
  margin-right: 4px; }
.panel { display: none; }
.panel:target { display: block; position: fixed; top: 24px; left: 24px; right: 24px;
  bottom: 24px; overflow: auto; background: #fff; border: 8px solid PANEL_BORDER;
  padding: 12px 18px; box-shadow: 0 0 0 4000px rgba(0, 0, 0, 0.35); }
.panel h2 { font-size: 16px; margin: 0 0 8px; }
.panel pre { background: #f4f4f4; padding: 8px; overflow: auto; font-size: 12px; }
.close { float: right; }
"""


def escape(text: str) -> str:
    """Text as HTML (quotes too: safe in attributes)."""
    return html.escape(text, quote=True)


_e = escape


def _cell_id(row: int, col: int) -> str:
    return f"c-{row}-{col}"


def _css() -> str:
    rules = [_CSS.replace("PANEL_BORDER", PANEL_BORDER)]
    for status, colour in COLOURS.items():
        rules.append(f"td.s-{status.value} {{ background: {colour}; }}")
        rules.append(f".legend i.s-{status.value} {{ background: {colour}; }}")
    return "\n".join(rules)


def _hunks(p: PatchResult) -> Iterable[str]:
    for h in p.hunks:
        where = f"{h.file} hunk {h.index}: {h.status.value}"
        if h.offset:
            where += f", offset {h.offset:+d}"
        if h.fuzz:
            where += f", fuzz {h.fuzz}"
        if h.line is not None:
            where += f", line {h.line}"
        yield f"<li>{_e(where)}</li>"
        if h.text:
            yield f"<pre>{_e(h.text)}</pre>"


def _drift(d: Drift) -> str:
    parts = [f"<h3>Upstream change that broke it</h3><p>Fails since <b>{_e(d.first_bad)}</b>"]
    if d.last_good:
        parts.append(f"; last applied on <b>{_e(d.last_good)}</b>")
    else:
        parts.append("; never applied in this matrix")
    parts.append(".</p>")
    if d.files:
        parts.append(
            "<p>Upstream changed: " + ", ".join(f"<code>{_e(f)}</code>" for f in d.files) + "</p>"
        )
    if d.upstream_diff:
        parts.append(
            f"<p>git diff {_e(d.last_good or '')}..{_e(d.first_bad)} of those files:</p>"
            f"<pre>{_e(d.upstream_diff)}</pre>"
        )
    elif d.files:
        parts.append("<p>(the diff text needs both releases in one store)</p>")
    return "".join(parts)


def _panel(matrix: Matrix, row: int, col: int, version: str, p: PatchResult) -> str:
    flags = f" [{', '.join(p.flags)}]" if p.flags else ""
    out = [
        f'<section class="panel" id="{_cell_id(row, col)}">',
        '<a class="close" href="#">close ✕</a>',
        f"<h2>{_e(p.name)} on {_e(version)}: {_e(p.status.value)}{_e(flags)}</h2>",
    ]
    if p.message:
        out.append(f"<p>{_e(p.message)}</p>")
    if p.files:
        out.append("<p>Files: " + ", ".join(f"<code>{_e(f)}</code>" for f in p.files) + "</p>")
    if p.hunks:
        out.append("<ul>" + "".join(_hunks(p)) + "</ul>")
    drift = matrix.drift_for(version, p.name)
    if drift is not None:
        out.append(_drift(drift))
    out.append("</section>")
    return "\n".join(out)


def matrix_html(matrix: Matrix, *, title: str = "patchkit compatibility matrix") -> str:
    """One HTML document: the coloured grid, a legend, a summary row and a panel per cell."""
    head = "".join(f"<th>{_e(v)}</th>" for v in matrix.versions)
    rows = []
    panels = []
    for r, name in enumerate(matrix.patches):
        cells = []
        for c, version in enumerate(matrix.versions):
            p = matrix.result(version, name)
            if p is None:
                cells.append('<td class="cell"></td>')
                continue
            classes = f"cell s-{p.status.value}" + (" risk" if RISK_FLAGS & set(p.flags) else "")
            tip = f"{name} on {version}: {p.status.value}"
            cells.append(
                f'<td class="{classes}" title="{_e(tip)}"><a href="#{_cell_id(r, c)}">'
                f"{GLYPHS[p.status]}</a></td>"
            )
            panels.append(_panel(matrix, r, c, version, p))
        rows.append(f'<tr><th class="patch">{_e(name)}</th>{"".join(cells)}</tr>')
    sums = []
    for check in matrix.checks:
        n = sum(1 for p in check.patches if p.needs_attention)
        sums.append(f'<td class="sum">{n} ✗</td>' if n else '<td class="sum">ok</td>')
    rows.append(f"<tr><th>needs attention</th>{''.join(sums)}</tr>")
    legend = "".join(
        f'<span><i class="s-{s.value}"></i>{GLYPHS[s]} {_e(s.value)}</span>'
        for s in COLOURS
        if s not in REBASE_ONLY
    )
    legend += "<span>! 3-way merge disagrees with fuzz/offset</span>"
    summary = ", ".join(f"{n} {k}" for k, n in matrix.summary.items() if n) or "no cells"
    body = (
        f'<table class="grid"><thead><tr><th></th>{head}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>\n"
        f'<div class="legend">{legend}</div>\n'
        f"<p>{_e(summary)}</p>\n" + "\n".join(panels)
    )
    return page(title, body)


def page(title: str, body: str, *, css: str = "") -> str:
    """One self-contained HTML document: the matrix's style (``css`` added), ``title`` as its
    heading, ``body`` (HTML) below it. Nothing is loaded from elsewhere."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_css()}{css}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n" + body + "\n</body></html>\n"
    )
