"""Turn results into rich tables for people (machine formats: ``formats``).

Renderables only: nothing here writes to a terminal; the CLI owns the Console.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from patchkit.core.forecast import ForecastResult
from patchkit.core.model import (
    LARGE_OFFSET,
    REBASE_ONLY,
    RISK_FLAGS,
    CheckResult,
    ImportResult,
    Matrix,
    PatchStatus,
    RebaseResult,
    RebaseState,
)
from patchkit.output.formats import (
    STYLE,
    forecast_detail,
    hunk_detail,
    matrix_junit,
    matrix_markdown,
    to_json,
)

__all__ = [
    "STYLE",
    "check_table",
    "forecast_table",
    "import_summary",
    "matrix_junit",
    "matrix_markdown",
    "matrix_table",
    "rebase_table",
    "to_json",
    "versions_table",
]


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


def check_table(result: CheckResult) -> RenderableType:
    table = Table(title=f"Series against {result.version}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("patch")
    table.add_column("status")
    table.add_column("files")
    table.add_column("details")
    for n, p in enumerate(result.patches, 1):
        table.add_row(str(n), p.name, status_text(p.status), "\n".join(p.files), hunk_detail(p))
    if not result.platforms:
        return Group(table, _summary_line(result.summary))
    # A multi-platform release: the table is its first platform's; then each other one.
    parts: list[RenderableType] = [table, _summary_line(result.summary)]
    first = result.platforms[0].platform
    parts.append(Text(f"(platform {first}; the others follow)"))
    for pc in result.platforms[1:]:
        if pc.check is None:
            parts.append(
                Text(f"platform {pc.platform}: same tree as {pc.same_as}: not checked again")
            )
        else:
            parts.append(check_table(pc.check))
    return Group(*parts)


def _summary_line(summary: dict[str, int]) -> Text:
    text = Text()
    for status in PatchStatus:
        n = summary.get(status.value, 0)
        if n:
            if text:
                text.append(", ")
            text.append(f"{n} {status.value}", style=STYLE[status][1])
    return text or Text("no patches")


def _cell_text(p: Any) -> Text:
    glyph, style = STYLE[p.status]
    text = Text(glyph, style=style)
    if RISK_FLAGS & set(p.flags):
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
        if status in REBASE_ONLY:
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
            more = (
                f" (+{len(p.changes) - 3} more: rebase --status --diff)"
                if len(p.changes) > 3
                else ""
            )
            detail.append(
                ("\n" if detail.plain else "") + "changed: " + "; ".join(shown) + more, style="cyan"
            )
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


def forecast_table(result: ForecastResult) -> RenderableType:
    verdict = (
        "a rebase would go through on its own"
        if result.clean
        else "a rebase would need a person"
        if result.starts
        else "a rebase would refuse to start: the series does not apply to its base"
    )
    table = Table(title=f"Forecast of a rebase {result.base} → {result.onto}", title_justify="left")
    for col in ("patch", "status", "files", "details"):
        table.add_column(col)
    for p in result.patches:
        detail = Text()
        for line in forecast_detail(p):
            risky = line.startswith(("risk: ", "upstream-changed"))
            detail.append(
                ("\n" if detail.plain else "") + line, style="bold yellow" if risky else ""
            )
        status = status_text(p.status)
        if p.left_out:
            status.append(" (left out)", style="dim")
        table.add_row(p.name, status, "\n".join(p.files), detail)
    parts: list[RenderableType] = [table, _summary_line(result.summary)]
    parts.append(Text(verdict, style="green" if result.clean else "bold red"))
    parts += [Text(note, style="yellow") for note in result.notes]
    return Group(*parts)


def import_summary(result: ImportResult) -> Text:
    if result.reused:
        return Text(
            f"{result.version}: already imported ({result.digest}), nothing to do", style="dim"
        )
    return Text(
        f"{result.version}: imported {result.files} files from {len(result.layers)} layer(s), "
        f"digest {result.digest}, tree {result.tree[:12]}",
        style="green",
    )
