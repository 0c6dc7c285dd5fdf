"""Machine formats: JSON, JUnit and Markdown (no rich, so a machine's run does not load it).

The reporting layer is this module, ``report`` (rich tables for people) and ``html``; all
three take their rules (status groups, risk flags, the offset threshold) from
``patchkit.core.model`` and their glyphs from ``STYLE`` here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from patchkit.core.model import (
    FAILED,
    NOT_TRIED,
    REBASE_ONLY,
    RISK_FLAGS,
    Drift,
    Matrix,
    PatchStatus,
)

if TYPE_CHECKING:
    from patchkit.core.forecast import ForecastPatch  # loaded by forecast and report only

__all__ = [
    "STYLE",
    "forecast_detail",
    "hunk_detail",
    "matrix_junit",
    "matrix_markdown",
    "patchkit_version",
    "to_json",
]


class Record(Protocol):
    """A result record: ``to_dict()`` gives its JSON document (with ``schema`` and ``command``)."""

    def to_dict(self) -> dict[str, Any]: ...


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


def patchkit_version() -> str:
    """The version of this patchkit, as ``patchkit --version`` and every JSON document show it.

    ``patchkit/_version.py`` is the one place it is written (pyproject.toml reads it too);
    not ``importlib.metadata``, whose import alone costs ~18 ms on every JSON-writing run.
    """
    from patchkit._version import __version__

    return __version__


# The last record written on one line, and its text: a matrix is written once for its
# snapshot (patchkit.ops.matrix.snapshot) and then printed. Records are frozen: the same
# record gives the same text.
_last: list[tuple[object, str]] = []


def to_json(result: Record | Mapping[str, Any], *, pretty: bool = True) -> str:
    """The record's (or document's) JSON, with ``"patchkit": version`` added.

    Every JSON document the CLI prints is written here, so each carries the version that
    made it (docs/json.md). ``pretty=False`` is one line, ~5x faster to write for a big matrix.
    """
    if not pretty and _last and _last[0][0] is result:
        return _last[0][1]
    doc = dict(result) if isinstance(result, Mapping) else result.to_dict()
    doc["patchkit"] = patchkit_version()
    if pretty:
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if not isinstance(result, Mapping):
        _last[:] = [(result, text)]
    return text


def hunk_detail(p: Any) -> str:
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


def forecast_detail(p: ForecastPatch) -> list[str]:
    """What a person should know of one change's forecast, one line each (every view's words)."""
    lines: list[str] = []
    failed_edits = [e for e in p.edits if e.status in FAILED]
    # A stop's message is what the lines below say; a refusal's is not.
    if p.message and (p.refused or not (p.conflicts or failed_edits)):
        lines.append(p.message)
    for c in p.conflicts:
        if c.hunks:
            at = ", ".join(str(h.line) for h in c.hunks) + (f" and {c.more} more" if c.more else "")
            lines.append(f"conflict in {c.file} at line {at}")
        else:
            lines.append(f"conflict in {c.file}" + (f": {c.reason}" if c.reason else ""))
    for e in failed_edits:
        on = f" on {e.file}" if e.file else ""
        what = f"edit {e.index} ({e.op}){on}: {e.reason or e.status.value}"
        if e.expected:
            what += f", {e.matches} match(es) where {e.expected} expected"
        if e.nearest is not None:
            what += f"; nearest line {e.nearest.line}: {e.nearest.text.strip()}"
        lines.append(what)
    # An overlay's upstream-changed flags are among its risks once re-evaluated.
    lines += [f"risk: {r}" for r in p.risks]
    if p.changes:
        lines.append(f"range-diff: {len(p.changes)} +/- line(s) differ from the change on the base")
    if p.after_left_out:
        lines.append(
            f"replayed without {', '.join(p.after_left_out)} (left out, and touching the same "
            "files): this may change once that is fixed"
        )
    return lines


def drift_line(d: Drift) -> str:
    good = f"last applied on {d.last_good}" if d.last_good else "never applied in this matrix"
    files = f"; upstream changed: {', '.join(d.files)}" if d.files else ""
    return f"fails since {d.first_bad} ({good}){files}"


def matrix_junit(matrix: Matrix, *, fail_on: frozenset[PatchStatus]) -> str:
    """One testsuite per release, one testcase per patch; failures carry the conflicting hunks."""
    from xml.etree import ElementTree as ET  # ~10 ms to import: only JUnit needs it

    suites = ET.Element("testsuites", name="patchkit matrix")
    for check in matrix.checks:
        failures = sum(1 for p in check.patches if p.status in fail_on)
        skipped = sum(1 for p in check.patches if p.status in NOT_TRIED)
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
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{p.status.value}: {hunk_detail(p)}",
                    type=p.status.value,
                )
                body = [h.text for h in p.hunks if h.text] or [hunk_detail(p)]
                drift = matrix.drift_for(check.version, p.name)
                if drift is not None:
                    body.append(drift_line(drift))
                failure.text = "\n".join(body)
            elif p.status in NOT_TRIED:
                ET.SubElement(case, "skipped", message=p.message)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = p.status.value + (f" [{', '.join(p.flags)}]" if p.flags else "")
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _md_cell(p: Any) -> str:
    glyph = STYLE[p.status][0]
    mark = "!" if RISK_FLAGS & set(p.flags) else ""
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
        if status not in REBASE_ONLY
    )
    out = "\n".join(lines) + f"\n\n{legend}; ! 3-way merge disagrees with fuzz/offset\n"
    details = []
    for check in matrix.checks:
        for p in check.patches:
            if not (p.needs_attention or RISK_FLAGS & set(p.flags)):
                continue
            flags = f" [{', '.join(p.flags)}]" if p.flags else ""
            details.append(f"#### {check.version} · `{p.name}`: {p.status.value}{flags}\n")
            detail = hunk_detail(p)
            if detail:
                details.append(detail + "\n")
            drift = matrix.drift_for(check.version, p.name)
            if drift is not None:
                details.append(drift_line(drift) + "\n")
            hunks = "".join(h.text for h in p.hunks if h.text)
            if hunks:
                fence = "````" if "```" in hunks else "```"
                details.append(f"{fence}diff\n{hunks}{fence}\n")
    if details:
        out += (
            "\n<details><summary>Details: needs attention</summary>\n\n"
            + "\n".join(details)
            + "\n</details>\n"
        )
    return out
