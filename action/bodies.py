"""The words of the action's watch mode: branch names, titles, the bodies' markers and the
lines the workflow adds to a report, the re-pushed tag's issue, the job summary.

A title or body is the same text on every run while nothing changed, so a run that finds its
pull request or issue saying it already updates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BRANCH",
    "REPUSHED_MARKER",
    "first_line",
    "issue_footer",
    "issue_title",
    "pr_footer",
    "pr_title",
    "repushed_body",
    "repushed_title",
    "same",
    "summary",
]

BRANCH = "patchkit/upstream-{version}"
# The first line of a re-pushed tag's issue (a report's is output/upgrade.py's MARKER).
REPUSHED_MARKER = "<!-- patchkit-repushed {name} {version} -->"
BODY_LIMIT = 65_536  # GitHub refuses a longer pull request or issue body
DIFF_LIMIT = 50_000  # characters of the re-pushed tag's diff shown


def first_line(body: Any) -> str:
    return str(body or "").lstrip().split("\n", 1)[0].strip()


def same(found: Any, text: str) -> bool:
    """``found`` (as GitHub gives it back) says ``text``: line ends and outer blanks aside."""
    return str(found or "").replace("\r\n", "\n").strip() == text.strip()


def pr_title(name: str, version: str, *, rebased: bool) -> str:
    if rebased:
        return f"{name} {version}: track the release, rebase the series onto it"
    return f"{name} {version}: track the release"


def pr_footer(version: str, *, base: str, into: str, rebased: bool, report_audit: str) -> str:
    what = (
        f"adds {version} to `upstream-versions.toml` and moves the series onto it "
        f"(`patchkit rebase --onto {version}`: base {base} → {version})"
        if rebased
        else f"adds {version} to `upstream-versions.toml` (not newer than base {base}: the "
        "series stays on it)"
    )
    audit = "the audit of the result passed"
    if report_audit != "passed":
        audit += (
            f" (the report's audit ({report_audit}) applies the series as it stands on {version}, "
            "where a patch that only merges 3-way is left out)"
        )
    return (
        f"Opened by patchkit's upstream workflow: this branch {what}; {audit}. Each run brings "
        f"it up to date while {version} is new to `{into}`; a commit of yours on the branch "
        "stops that (docs/upgrading.md)."
    )


def issue_title(name: str, version: str) -> str:
    return f"{name} {version}: a person is needed for the upgrade"


def issue_footer(version: str, *, into: str, reasons: Sequence[str]) -> str:
    return (
        f"Opened by patchkit's upstream workflow: {version} needs a person "
        f"({'; '.join(reasons)}). Each run updates this issue while {version} is new to "
        f"`{into}`, and opens a pull request once it is clean (docs/upgrading.md)."
    )


def repushed_title(name: str, version: str) -> str:
    return f"{name} {version} was re-pushed upstream"


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def repushed_body(
    *,
    name: str,
    version: str,
    image: str,
    recorded: str,
    current: str,
    pin: str,
    stat: str,
    diff: str,
    why: str,
) -> str:
    """The issue of a re-pushed tag: both digests, ``diff --touched`` between the two images
    (or ``why`` it could not be made), what a person decides."""
    lines = [
        REPUSHED_MARKER.format(name=name, version=version),
        f"## {name} {version} was re-pushed\n",
        f"The tag `{version}` of `{image}` points elsewhere than `upstream-versions.toml` "
        "records. patchkit never takes a re-pushed release silently: a person decides "
        '(docs/cli.md, "watch").\n',
        "| | digest |",
        "|---|---|",
        f"| recorded | `{recorded}` |",
        f"| current | `{current}` |",
        "",
        "### What changed in the files the series touches\n",
    ]
    if why:
        lines.append(f"Not compared: {why}.\n")
    elif not diff.strip():
        lines.append("Nothing: no file the series touches differs between the two images.\n")
    else:
        shown = diff if len(diff) <= DIFF_LIMIT else diff[:DIFF_LIMIT].rsplit("\n", 1)[0]
        cut = "" if shown is diff else f" (its first {len(shown)} of {len(diff)} characters)"
        lines += [
            _fence(stat),
            "",
            f"<details><summary>the diff{cut}</summary>\n",
            _fence(shown, "diff"),
            "\n</details>\n",
        ]
    lines += [
        "### What to do\n",
        f"- take it: `patchkit import {version} --replace` records the new digests; commit "
        "`upstream-versions.toml`;",
        f'- keep the old one: pin it, `source = "{pin}"` (a pinned release is not watched).',
        "",
        "Opened by patchkit's upstream workflow; each run updates it while the tag differs from "
        "what is recorded.",
    ]
    return "\n".join(lines)[:BODY_LIMIT]


def summary(image: str, counts: tuple[int, int, int], rows: Sequence[Sequence[str]]) -> str:
    """The job summary: what watch found, one row a new release."""
    new, repushed, vanished = counts
    lines = [
        "## patchkit watch",
        "",
        f"`{image}`: {new} new, {repushed} re-pushed, {vanished} vanished.",
        "",
    ]
    if rows:
        lines += ["| release | forecast | patched audit | result |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
