"""Turn results into rich tables (people) and JSON / JUnit / Markdown (machines).

Renderables only: nothing here writes to a terminal; the CLI owns the Console.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .matrix import LARGE_OFFSET
from .model import (
    CheckResult,
    Drift,
    ImportResult,
    Matrix,
    PatchStatus,
    RebaseResult,
    RebaseState,
)

__all__ = [
    "STYLE",
    "check_table",
    "import_summary",
    "matrix_junit",
    "matrix_markdown",
    "matrix_table",
    "rebase_table",
    "to_json",
    "versions_table",
]

# One glyph and colour per status, shared by every view.
STYLE: dict[PatchStatus, tuple[str, str]] = {
    PatchStatus.APPLIED: ("✓", "green"),
    PatchStatus.OFFSET: ("↕", "green"),
    PatchStatus.MERGED: ("⇄", "cyan"),
    PatchStatus.FUZZ: ("~", "yellow"),
    PatchStatus.ALREADY_APPLIED: ("=", "blue"),
    PatchStatus.CONFLICT: ("✗", "bold red"),
    PatchStatus.MISSING_TARGET: ("?", "red"),
    PatchStatus.SKIPPED: ("-", "dim"),
    PatchStatus.DROPPED: ("⌫", "magenta"),
}


def to_json(result: Any) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)


def status_text(status: PatchStatus, *, glyph_only: bool = False) -> Text:
    glyph, style = STYLE[status]
    return Text(glyph if glyph_only else f"{glyph} {status.value}", style=style)


def versions_table(rows: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="Tracked upstream releases", title_justify="left")
    for col in ("version", "status", "base", "imported", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["version"],
            row["status"],
            "base" if row["base"] else "",
            Text("yes", style="green") if row["imported"] else Text("no", style="dim"),
            row["source"],
        )
    return table


def _hunk_detail(p: Any) -> str:
    bits = []
    for h in p.hunks:
        if h.status in (PatchStatus.APPLIED,):
            continue
        where = f"{h.file} #{h.index}"
        if h.status is PatchStatus.OFFSET:
            bits.append(f"{where} offset {h.offset:+d}")
        elif h.status is PatchStatus.FUZZ:
            bits.append(f"{where} fuzz {h.fuzz}" + (f" offset {h.offset:+d}" if h.offset else ""))
        else:
            bits.append(f"{where} {h.status.value}")
    if p.message:
        bits.append(p.message)
    return "; ".join(bits)


def check_table(result: CheckResult) -> RenderableType:
    table = Table(title=f"Series against {result.version}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("patch")
    table.add_column("status")
    table.add_column("files")
    table.add_column("details")
    for n, p in enumerate(result.patches, 1):
        table.add_row(str(n), p.name, status_text(p.status), "\n".join(p.files), _hunk_detail(p))
    return Group(table, _summary_line(result.summary))


def _summary_line(summary: dict[str, int]) -> Text:
    text = Text()
    for status in PatchStatus:
        n = summary.get(status.value, 0)
        if n:
            if text:
                text.append(", ")
            text.append(f"{n} {status.value}", style=STYLE[status][1])
    return text or Text("no patches")


RISKY = frozenset({"3way-conflict", "3way-differs"})  # flags that say "look at this cell"


def _cell_text(p: Any) -> Text:
    glyph, style = STYLE[p.status]
    text = Text(glyph, style=style)
    if RISKY & set(p.flags):
        text.append("!", style="bold yellow")
    elif "large-offset" in p.flags:
        text.append("»", style="yellow")
    return text


def matrix_table(matrix: Matrix) -> RenderableType:
    table = Table(title="Compatibility matrix (patches x releases)", title_justify="left")
    table.add_column("patch")
    for v in matrix.versions:
        table.add_column(v, justify="center")
    for name in matrix.patches:
        cells: list[Text | str] = [name]
        for v in matrix.versions:
            p = matrix.result(v, name)
            cells.append(_cell_text(p) if p else "")
        table.add_row(*cells)
    bad = []
    for check in matrix.checks:
        n = sum(1 for p in check.patches if p.needs_attention)
        bad.append(Text(f"{n} ✗", style="bold red") if n else Text("ok", style="green"))
    table.add_section()
    table.add_row(Text("needs attention", style="bold"), *bad)
    legend = Text("legend: ")
    for status, (glyph, style) in STYLE.items():
        if status in (PatchStatus.MERGED, PatchStatus.DROPPED):
            continue
        legend.append(f"{glyph} {status.value}  ", style=style)
    legend.append("! 3-way disagrees  ", style="bold yellow")
    legend.append(f"» offset ≥ {LARGE_OFFSET} lines", style="yellow")
    parts: list[RenderableType] = [table, legend, _summary_line(matrix.summary)]
    for d in matrix.drift:
        since = f"since {d.first_bad}" + (f" (applied on {d.last_good})" if d.last_good else "")
        files = f"; upstream changed {', '.join(d.files)}" if d.files else ""
        parts.append(Text(f"{d.patch}: {d.status.value} {since}{files}", style="red"))
    return Group(*parts)


def rebase_table(result: RebaseResult) -> RenderableType:
    title = {
        RebaseState.COMPLETED: f"Rebased the series from {result.base} onto {result.onto}",
        RebaseState.STOPPED: f"Rebase {result.base} → {result.onto} stopped on a conflict",
        RebaseState.ABORTED: f"Rebase {result.base} → {result.onto} aborted: everything restored",
    }[result.state]
    table = Table(title=title, title_justify="left")
    table.add_column("patch")
    table.add_column("status")
    table.add_column("files")
    table.add_column("details")
    for p in result.patches:
        detail = Text(p.message)
        if p.conflicts:
            detail = Text("conflict markers in " + ", ".join(p.conflicts))
            if p.message:
                detail.append("\n" + p.message)
        for risk in p.risk:
            detail.append(("\n" if detail.plain else "") + "⚠ risk: " + risk, style="bold yellow")
        if p.changes:
            shown = [c.render() for c in p.changes[:3]]
            more = f" (+{len(p.changes) - 3} more: rebase --status --diff)" if len(p.changes) > 3 else ""
            detail.append(("\n" if detail.plain else "") + "changed: " + "; ".join(shown) + more, style="cyan")
        table.add_row(p.name, status_text(p.status), "\n".join(p.files), detail)
    for name in result.pending:
        table.add_row(name, Text("… pending", style="dim"), "", "")
    parts: list[RenderableType] = [table]
    if result.refreshed:
        parts.append(Text("refreshed: " + ", ".join(result.refreshed)))
    if result.dropped:
        parts.append(Text("dropped from series: " + ", ".join(result.dropped), style="magenta"))
    if result.state is RebaseState.COMPLETED:
        parts.append(Text(f"base is now {result.onto}", style="green"))
    for hint in result.hints:
        parts.append(Text(hint, style="yellow"))
    return Group(*parts)


def import_summary(result: ImportResult) -> Text:
    if result.reused:
        return Text(f"{result.version}: already imported ({result.digest}), nothing to do", style="dim")
    return Text(
        f"{result.version}: imported {result.files} files from {len(result.layers)} layer(s), "
        f"digest {result.digest}, tree {result.tree[:12]}",
        style="green",
    )


def _drift_line(d: Drift) -> str:
    good = f"last applied on {d.last_good}" if d.last_good else "never applied in this matrix"
    files = f"; upstream changed: {', '.join(d.files)}" if d.files else ""
    return f"fails since {d.first_bad} ({good}){files}"


def matrix_junit(matrix: Matrix, *, fail_on: frozenset[PatchStatus]) -> str:
    """One testsuite per release, one testcase per patch; failures carry the conflicting hunks."""
    suites = ET.Element("testsuites", name="patchkit matrix")
    for check in matrix.checks:
        failures = sum(1 for p in check.patches if p.status in fail_on)
        skipped = sum(1 for p in check.patches if p.status is PatchStatus.SKIPPED)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=check.version,
            tests=str(len(check.patches)),
            failures=str(failures),
            skipped=str(skipped),
        )
        for p in check.patches:
            case = ET.SubElement(suite, "testcase", classname=check.version, name=p.name)
            if p.status in fail_on:
                failure = ET.SubElement(case, "failure", message=f"{p.status.value}: {_hunk_detail(p)}", type=p.status.value)
                body = [h.text for h in p.hunks if h.text] or [_hunk_detail(p)]
                drift = matrix.drift_for(check.version, p.name)
                if drift is not None:
                    body.append(_drift_line(drift))
                failure.text = "\n".join(body)
            elif p.status is PatchStatus.SKIPPED:
                ET.SubElement(case, "skipped", message=p.message)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = p.status.value + (f" [{', '.join(p.flags)}]" if p.flags else "")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _md_cell(p: Any) -> str:
    glyph = STYLE[p.status][0]
    mark = "!" if RISKY & set(p.flags) else ""
    return f"{glyph}{mark}"


def matrix_markdown(matrix: Matrix) -> str:
    """Compact table (glyphs) for $GITHUB_STEP_SUMMARY / PR comments; details collapsed."""
    lines = ["| patch | " + " | ".join(matrix.versions) + " |"]
    lines.append("|---|" + ":---:|" * len(matrix.versions))
    for name in matrix.patches:
        cells = []
        for v in matrix.versions:
            p = matrix.result(v, name)
            cells.append(_md_cell(p) if p else "")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    attention = []
    for check in matrix.checks:
        n = sum(1 for p in check.patches if p.needs_attention)
        attention.append(f"**{n} ✗**" if n else "ok")
    if matrix.versions:
        lines.append("| **needs attention** | " + " | ".join(attention) + " |")
    legend = ", ".join(
        f"{glyph} {status.value}"
        for status, (glyph, _) in STYLE.items()
        if status not in (PatchStatus.MERGED, PatchStatus.DROPPED)
    )
    out = "\n".join(lines) + f"\n\n{legend}; ! 3-way merge disagrees with fuzz/offset\n"
    details = []
    for check in matrix.checks:
        for p in check.patches:
            if not (p.needs_attention or RISKY & set(p.flags)):
                continue
            flags = f" [{', '.join(p.flags)}]" if p.flags else ""
            details.append(f"#### {check.version} · `{p.name}`: {p.status.value}{flags}\n")
            detail = _hunk_detail(p)
            if detail:
                details.append(detail + "\n")
            drift = matrix.drift_for(check.version, p.name)
            if drift is not None:
                details.append(_drift_line(drift) + "\n")
            hunks = "".join(h.text for h in p.hunks if h.text)
            if hunks:
                fence = "````" if "```" in hunks else "```"
                details.append(f"{fence}diff\n{hunks}{fence}\n")
    if details:
        out += "\n<details><summary>Details: needs attention</summary>\n\n" + "\n".join(details) + "\n</details>\n"
    return out
