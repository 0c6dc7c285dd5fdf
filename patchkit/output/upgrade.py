"""The upgrade report (:class:`~patchkit.core.report.UpgradeReport`) as Markdown that GitHub
renders (tables, ``<details>`` for what is long) and as one self-contained HTML page.

Both show the same sections in the same order: the verdicts; the conflicts a rebase would stop
on, each side of each region; the release; the forecast table; the audit's findings that
appeared or disappeared upstream, one section per kind of finding; the audit of the patched
release; the packages that changed; upstream's diff of the files the series touches.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from patchkit.core.conflicts import ConflictRegion
from patchkit.core.forecast import ForecastPatch, ForecastResult
from patchkit.core.model import PatchStatus
from patchkit.core.report import AuditDelta, AuditFinding, ReleaseFacts, UpgradeReport
from patchkit.output.formats import STYLE, forecast_detail
from patchkit.output.html import COLOURS, escape, page

__all__ = ["MARKDOWN_LIMIT", "MARKER", "report_html", "report_markdown"]

# The first line of the Markdown: a comment a workflow can find its issue or pull request by.
MARKER = "<!-- patchkit-report {name} {version} -->"
# A fact the store does not record (the image does not say, or an older patchkit imported it).
_NONE = "—"
# GitHub refuses an issue or pull request body over 65536 characters: the Markdown stays under
# this, which leaves the workflow room for a line of its own.
MARKDOWN_LIMIT = 60_000
# Rows of the package table shown before it folds into <details>.
_OPEN_ROWS = 25


# -- words both formats use ---------------------------------------------------------------


def _title(r: UpgradeReport) -> str:
    return f"{r.name} {r.release.version}: upgrade report (base {r.base.version})"


def _forecast_verdict(f: ForecastResult) -> str:
    if f.clean:
        return f"a `patchkit rebase --onto {f.onto}` would go through on its own"
    if not f.starts:
        bad = [p.name for p in f.patches if p.refused]
        return (
            f"the series does not apply to its base {f.base}: a rebase would refuse to start "
            f"({len(bad)} change(s) to fix first)"
        )
    stops = [p.name for p in f.patches if p.left_out]
    return f"a rebase would stop on {len(stops)} change(s): {', '.join(stops)}"


def _audit_verdict(r: UpgradeReport) -> str:
    if r.audit is None:
        return "not run"
    counts = dict(r.audit.summary)
    state = "FAILED" if r.audit.failed else "passed"
    detail = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items() if n)
    return f"{state}" + (f" ({detail})" if detail else "")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit} ({n} bytes)"


def _release_rows(r: UpgradeReport) -> list[tuple[str, str, str]]:
    def rows(f: ReleaseFacts) -> dict[str, str]:
        out = {"source": f.source, "created": f.created, "platform": f.platform}
        for what, digest in f.digests:
            out[f"{what} digest"] = digest
        out["layers"] = str(len(f.layers)) if f.layers else ""
        out["size (layers as stored)"] = _size(f.size)
        return out

    new, old = rows(r.release), rows(r.base)
    keys = list(dict.fromkeys([*new, *old]))
    return [(k, new.get(k) or _NONE, old.get(k) or _NONE) for k in keys]


def _section_title(section: str) -> str:
    return section[:1].upper() + section[1:].replace("_", " ")


def _where(f: AuditFinding) -> str:
    return f"{f.file}:{f.line}" if f.file else ""


def _counts(r: UpgradeReport) -> str:
    parts = [f"{len(r.upstream.files)} file(s) the series touches changed upstream"]
    for d in r.audit_changes:
        parts.append(f"{d.section}: {len(d.appeared)} appeared, {len(d.disappeared)} disappeared")
    parts.append(f"{len(r.packages)} package(s) changed")
    return " · ".join(parts)


# -- Markdown -----------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text for a Markdown table cell: <, > and & escaped, pipes escaped, lines joined by <br>."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")


def _code(text: str, *, table: bool = True) -> str:
    """Inline code that survives any backticks in ``text``; in a table, pipes escaped too
    (GitHub reads ``\\|`` in a cell's code span as a pipe)."""
    if not text:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    body = text.replace("|", "\\|") if table else text
    return f"{tick}{pad}{body}{pad}{tick}"


def _fence(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{lang}\n{body}{fence}\n"


def _details(summary: str, body: str) -> str:
    # The blank lines let GitHub render the Markdown inside.
    return f"<details><summary>{escape(summary)}</summary>\n\n{body}\n</details>\n"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_status(p: ForecastPatch) -> str:
    glyph = STYLE[p.status][0]
    return f"{glyph} {p.status.value}" + (" (left out)" if p.left_out else "")


def _sides(f: ForecastResult, p: ForecastPatch, h: ConflictRegion) -> list[tuple[str, str]]:
    """(what, text) of each side of a conflict region, in the order a person reads them."""
    sides = [(f"{f.onto}, with the changes before it (ours)", h.ours)]
    if h.base is not None:
        sides.append((f"{f.base}, the old base", h.base))
    return [*sides, (f"{p.name} (theirs)", h.theirs)]


def _md_conflicts(f: ForecastResult) -> list[str]:
    out = []
    for p in f.patches:
        if not p.left_out:
            continue
        out.append(f"#### {_code(p.name, table=False)}: {p.status.value}\n")
        out += [f"- {_cell(line)}" for line in forecast_detail(p)]
        out.append("")
        for c in p.conflicts:
            for h in c.hunks:
                cut = " (cut)" if h.truncated else ""
                body = "\n".join(f"{what}:\n\n{_fence(text)}" for what, text in _sides(f, p, h))
                out.append(_details(f"{c.file} line {h.line}{cut}", body))
    return out


def _md_delta(d: AuditDelta, r: UpgradeReport) -> list[str]:
    title = _section_title(d.section)
    out = [
        f"### {title} that appeared or disappeared upstream\n",
        f"The audit of the unpatched releases, {r.base.version} → {r.release.version}.\n",
    ]
    rows = [
        ("appeared", _code(x.text), _cell(x.component), _code(_where(x)), _cell(x.verdict))
        for x in d.appeared
    ] + [
        ("disappeared", _code(x.text), _cell(x.component), _code(_where(x)), _cell(x.verdict))
        for x in d.disappeared
    ]
    if rows:
        out.append(_table(["", "finding", "component", "where", "verdict"], rows))
    else:
        out.append(f"None: the same {d.section} in both.\n")
    return out


def _md_audit(r: UpgradeReport) -> list[str]:
    out = [
        f"### Audit of {r.release.version} with the series applied\n",
        f"**{_cell(_audit_verdict(r))}**\n",
    ]
    if r.audit is None:
        return out
    bad = [x for x in r.audit.findings if x.verdict != "ok"]
    if bad:
        out.append(
            _table(
                ["verdict", "finding", "component", "where", "why"],
                [
                    (
                        _cell(x.verdict),
                        _code(x.text),
                        _cell(x.component),
                        _code(_where(x)),
                        _cell(x.reason),
                    )
                    for x in bad
                ],
            )
        )
    out += [f"- unreadable: {_cell(p)}" for p in r.audit.problems]
    return out


def _md_packages(r: UpgradeReport, shown: int) -> list[str]:
    out = ["### Packages that changed\n"]
    if not r.packages:
        return [*out, "None.\n"]
    rows = [
        (_code(c.name), c.manager, _code(c.old or ""), _code(c.new or ""))
        for c in r.packages[:shown]
    ]
    if shown < len(r.packages):
        rows.append(
            (f"… {len(r.packages) - shown} more (JSON: `report --format json`)", "", "", "")
        )
    table = _table(["package", "manager", r.base.version, r.release.version], rows)
    folded = len(r.packages) > _OPEN_ROWS
    return [*out, _details(f"{len(r.packages)} packages changed", table) if folded else table]


def _md_upstream(r: UpgradeReport, shown: int) -> list[str]:
    out = ["### What upstream changed in the files the series touches\n"]
    u = r.upstream
    if not u.files:
        return [*out, "Nothing.\n"]
    out.append(_details(f"diffstat: {len(u.files)} file(s)", _fence(u.stat)))
    for d in u.diffs[:shown]:
        cut = " (cut)" if d.truncated else ""
        out.append(_details(f"{d.status} {d.path}{cut}", _fence(d.text, "diff")))
    left_out = [d.path for d in u.diffs[shown:]] + list(u.left_out)
    if left_out:
        out.append(
            "Not shown (over the report's limit): "
            f"{', '.join(_code(p, table=False) for p in left_out)}; "
            f"`patchkit diff {r.base.version} {r.release.version} --touched` shows all.\n"
        )
    return out


def report_markdown(r: UpgradeReport, *, limit: int = MARKDOWN_LIMIT) -> str:
    """The report as GitHub-flavoured Markdown (a pull request's or an issue's body), at most
    ``limit`` characters where it can be: upstream's file diffs are left out from the last,
    then the package table is shortened, until it fits (each left-out part is named)."""
    f = r.forecast
    head = [
        MARKER.format(name=r.name, version=r.release.version),
        f"## {_cell(_title(r))}\n",
        f"- **Forecast**: {'✓' if f.clean else '✗'} {_forecast_verdict(f)}",
        f"- **Audit of the patched release**: {_cell(_audit_verdict(r))}",
        f"- {_cell(_counts(r))}",
        "",
    ]
    conflicts = _md_conflicts(f)
    if conflicts:
        head += ["### What a person must resolve\n", *conflicts]
    head.append("### The release\n")
    head.append(
        _table(
            ["", f"{r.release.version}", f"{r.base.version} (base)"],
            [
                (k, _code(a) if a != _NONE else a, _code(b) if b != _NONE else b)
                for k, a, b in _release_rows(r)
            ],
        )
    )
    head.append(f"### Forecast of `patchkit rebase --onto {r.release.version}`\n")
    head.append(
        _table(
            ["change", "kind", "status", "files", "details"],
            [
                (
                    _code(p.name),
                    p.kind.value,
                    _md_status(p),
                    "<br>".join(_code(x) for x in p.files),
                    "<br>".join(_cell(x) for x in forecast_detail(p)),
                )
                for p in f.patches
            ],
        )
    )
    head += [f"- {_cell(n)}" for n in f.notes]
    for delta in r.audit_changes:
        head += _md_delta(delta, r)
    head += _md_audit(r)
    tail = ["### Notes\n", *(f"- {_cell(n)}" for n in r.notes)] if r.notes else []

    def text(packages: int, diffs: int) -> str:
        body = [*head, *_md_packages(r, packages), *_md_upstream(r, diffs), *tail]
        return "\n".join(body).rstrip("\n") + "\n"

    packages, diffs = len(r.packages), len(r.upstream.diffs)
    out = text(packages, diffs)
    while len(out) > limit and diffs:
        diffs -= 1
        out = text(packages, diffs)
    while len(out) > limit and packages > _OPEN_ROWS:
        packages = max(_OPEN_ROWS, packages // 2)
        out = text(packages, diffs)
    return out


# -- HTML -----------------------------------------------------------------------------------

_CSS = """
table.report { border-collapse: collapse; margin: 8px 0 16px; }
table.report th, table.report td { border: 1px solid #ccc; padding: 4px 8px; text-align: left;
  vertical-align: top; }
table.report td.status { white-space: nowrap; font-weight: 600; }
h2 { font-size: 16px; margin: 20px 0 8px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
pre { background: #f4f4f4; padding: 8px; overflow: auto; font-size: 12px; }
details summary { cursor: pointer; margin: 4px 0; }
ul.verdicts li { margin: 2px 0; }
"""


def _h_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table; ``rows`` are HTML already (escape what is text)."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="report"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _h_code(text: str) -> str:
    return f"<code>{escape(text)}</code>" if text else ""


def _h_details(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def _h_status(status: PatchStatus, left_out: bool) -> str:
    label = f"{STYLE[status][0]} {status.value}" + (" (left out)" if left_out else "")
    return f'<span style="color: {COLOURS[status]}">{escape(label)}</span>'


def _h_conflicts(f: ForecastResult) -> list[str]:
    parts: list[str] = []
    for p in f.patches:
        if not p.left_out:
            continue
        parts.append(f"<h3>{_h_code(p.name)}: {escape(p.status.value)}</h3><ul>")
        parts += [f"<li>{escape(line)}</li>" for line in forecast_detail(p)]
        parts.append("</ul>")
        for c in p.conflicts:
            for h in c.hunks:
                body = "".join(
                    f"<p>{escape(what)}:</p><pre>{escape(text)}</pre>"
                    for what, text in _sides(f, p, h)
                )
                cut = " (cut)" if h.truncated else ""
                parts.append(_h_details(f"{c.file} line {h.line}{cut}", body))
    return parts


def _h_forecast(f: ForecastResult) -> list[str]:
    rows = [
        (
            _h_code(p.name),
            escape(p.kind.value),
            _h_status(p.status, p.left_out),
            "<br>".join(_h_code(x) for x in p.files),
            "<br>".join(escape(x) for x in forecast_detail(p)),
        )
        for p in f.patches
    ]
    return [
        f"<h2>Forecast of {_h_code(f'patchkit rebase --onto {f.onto}')}</h2>",
        _h_table(["change", "kind", "status", "files", "details"], rows),
        *(f"<p>{escape(n)}</p>" for n in f.notes),
    ]


def _h_findings(findings: Iterable[tuple[str, AuditFinding]], section: str) -> str:
    rows = [
        (
            escape(what),
            _h_code(x.text),
            escape(x.component),
            _h_code(_where(x)),
            escape(x.reason or x.verdict),
        )
        for what, x in findings
    ]
    return _h_table(["", section, "component", "where", "verdict or why"], rows)


def _h_audit(r: UpgradeReport) -> list[str]:
    parts = []
    span = f"{r.base.version} → {r.release.version}"
    for d in r.audit_changes:
        title = _section_title(d.section)
        parts.append(f"<h2>{escape(title)} that appeared or disappeared upstream</h2>")
        parts.append(f"<p>The audit of the unpatched releases, {escape(span)}.</p>")
        found = [("appeared", x) for x in d.appeared] + [("disappeared", x) for x in d.disappeared]
        parts.append(
            _h_findings(found, d.section)
            if found
            else f"<p>None: the same {escape(d.section)} in both.</p>"
        )
    parts.append(f"<h2>Audit of {escape(r.release.version)} with the series applied</h2>")
    parts.append(f"<p><b>{escape(_audit_verdict(r))}</b></p>")
    if r.audit is not None:
        bad = [(x.verdict, x) for x in r.audit.findings if x.verdict != "ok"]
        if bad:
            parts.append(_h_findings(bad, "finding"))
        parts += [f"<p>unreadable: {escape(p)}</p>" for p in r.audit.problems]
    return parts


def _h_packages(r: UpgradeReport) -> list[str]:
    if not r.packages:
        return ["<h2>Packages that changed</h2>", "<p>None.</p>"]
    table = _h_table(
        ["package", "manager", r.base.version, r.release.version],
        [
            (_h_code(c.name), escape(c.manager), _h_code(c.old or ""), _h_code(c.new or ""))
            for c in r.packages
        ],
    )
    folded = len(r.packages) > _OPEN_ROWS
    return [
        "<h2>Packages that changed</h2>",
        _h_details(f"{len(r.packages)} packages changed", table) if folded else table,
    ]


def _h_upstream(r: UpgradeReport) -> list[str]:
    parts = ["<h2>What upstream changed in the files the series touches</h2>"]
    u = r.upstream
    if not u.files:
        return [*parts, "<p>Nothing.</p>"]
    parts.append(_h_details(f"diffstat: {len(u.files)} file(s)", f"<pre>{escape(u.stat)}</pre>"))
    for diff in u.diffs:
        cut = " (cut)" if diff.truncated else ""
        parts.append(
            _h_details(f"{diff.status} {diff.path}{cut}", f"<pre>{escape(diff.text)}</pre>")
        )
    if u.left_out:
        shown = ", ".join(_h_code(p) for p in u.left_out)
        parts.append(f"<p>Not shown (over the report's limit): {shown}</p>")
    return parts


def report_html(r: UpgradeReport) -> str:
    """The report as one self-contained HTML page (no scripts, fonts or images from elsewhere)."""
    f = r.forecast
    verdict = _forecast_verdict(f).replace("`", "")
    parts = [
        '<ul class="verdicts">',
        f"<li><b>Forecast</b>: {'✓' if f.clean else '✗'} {escape(verdict)}</li>",
        f"<li><b>Audit of the patched release</b>: {escape(_audit_verdict(r))}</li>",
        f"<li>{escape(_counts(r))}</li>",
        "</ul>",
    ]
    conflicts = _h_conflicts(f)
    if conflicts:
        parts += ["<h2>What a person must resolve</h2>", *conflicts]
    release = [
        (escape(k), *(_h_code(v) if v != _NONE else v for v in (a, b)))
        for k, a, b in _release_rows(r)
    ]
    parts += [
        "<h2>The release</h2>",
        _h_table(["", r.release.version, f"{r.base.version} (base)"], release),
        *_h_forecast(f),
        *_h_audit(r),
        *_h_packages(r),
        *_h_upstream(r),
    ]
    if r.notes:
        notes = "".join(f"<li>{escape(n)}</li>" for n in r.notes)
        parts.append(f"<h2>Notes</h2><ul>{notes}</ul>")
    return page(_title(r), "\n".join(parts), css=_CSS)
