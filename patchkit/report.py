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

from .model import (
    CheckResult,
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


def matrix_table(matrix: Matrix) -> RenderableType:
    table = Table(title="Compatibility matrix (patches x releases)", title_justify="left")
    table.add_column("patch")
    for v in matrix.versions:
        table.add_column(v, justify="center")
    for name in matrix.patches:
        cells: list[Text | str] = [name]
        for v in matrix.versions:
            status = matrix.status(v, name)
            cells.append(status_text(status, glyph_only=True) if status else "")
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
    return Group(table, legend)


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
        detail = p.message
        if p.conflicts:
            detail = "conflict markers in " + ", ".join(p.conflicts)
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


def matrix_junit(matrix: Matrix, *, fail_on: frozenset[PatchStatus]) -> str:
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
                failure.text = "\n".join(h.text for h in p.hunks if h.text) or _hunk_detail(p)
            elif p.status is PatchStatus.SKIPPED:
                ET.SubElement(case, "skipped", message=p.message)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = p.status.value
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def matrix_markdown(matrix: Matrix) -> str:
    lines = ["| patch | " + " | ".join(matrix.versions) + " |"]
    lines.append("|---|" + "---|" * len(matrix.versions))
    for name in matrix.patches:
        cells = []
        for v in matrix.versions:
            status = matrix.status(v, name)
            cells.append(f"{STYLE[status][0]} {status.value}" if status else "")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    details = []
    for check in matrix.checks:
        for p in check.patches:
            if p.needs_attention:
                details.append(f"- **{check.version}** `{p.name}`: {p.status.value} {_hunk_detail(p)}".rstrip())
    out = "\n".join(lines) + "\n"
    if details:
        out += "\n<details><summary>Needs attention</summary>\n\n" + "\n".join(details) + "\n\n</details>\n"
    return out
