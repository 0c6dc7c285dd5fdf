"""Lint a project without a store: parse the TOML, the series and every file it names.

What ``patchkit lint`` (and the ``patchkit-lint`` pre-commit hook) runs. Nothing is imported
and git is never run, so it works on a fresh clone. Unlike the other operations it does not
stop at the first bad file: every problem is collected, each as the one-line message
(``file:line: what``) the parser that found it raises.

>>> result = lint_project(Project.open("."))          # doctest: +SKIP
>>> [str(p) for p in result.problems]                 # doctest: +SKIP
['patches/a.patch:7: hunk ended at line 6 by its @@ counts, but diff lines go on: ...']
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchkit.core.lines import split_lines
from patchkit.core.series import Series, SeriesEntry, parse_series
from patchkit.core.versions import parse_versions
from patchkit.errors import PatchkitError, SeriesError
from patchkit.kinds import ChangeKind, kind_of
from patchkit.ops.workspace import Workspace

__all__ = ["LintProblem", "LintResult", "Severity", "lint_project"]

SCHEMA = 1

# Files in patches/ that look like a change of the series; one that is not listed is a warning.
_CHANGE_SUFFIXES = (".patch", ".diff", ".edit.toml")


class Severity(enum.StrEnum):
    ERROR = "error"  # the file cannot be used: every command that reads it fails
    WARNING = "warning"  # usable, but probably not what was meant

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class LintProblem:
    """One problem: the file (project-relative), its 1-based line (0: the whole file), what."""

    file: str
    line: int = 0
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return f"{at}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "severity": self.severity.value,
            "text": str(self),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LintResult:
    """Every problem found, and every file that was read."""

    problems: tuple[LintProblem, ...] = ()
    files: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[LintProblem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[LintProblem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """No errors (warnings do not fail a lint)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "lint",
            "files": list(self.files),
            "problems": [p.to_dict() for p in self.problems],
            "summary": {"error": len(self.errors), "warning": len(self.warnings)},
        }


# "patches/x.patch:12: message" or "upstream-versions.toml: message": the shape every
# PatchkitError message has, so the JSON can give file and line as fields.
_WHERE = re.compile(r"^(?P<file>[^\s:][^:]*?)(?::(?P<line>\d+))?: (?P<message>.+)$", re.DOTALL)


def _problem(error: PatchkitError, *, default_file: str) -> LintProblem:
    text = " ".join(str(error).split("\n"))  # one line, whatever the message held
    m = _WHERE.match(text)
    if m is None or m.group("file").count(" "):
        return LintProblem(file=default_file, message=text)
    return LintProblem(
        file=m.group("file"), line=int(m.group("line") or 0), message=m.group("message")
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read_text(path: Path, rel: str, problems: list[LintProblem]) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        problems.append(LintProblem(file=rel, message=f"cannot read ({e.strerror})"))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(
            LintProblem(file=rel, message=f"not UTF-8 text ({e.reason} at byte {e.start})")
        )
        return None


def _lint_series(text: str, rel: str, problems: list[LintProblem]) -> Series:
    """Parse the series, collecting every bad line (the parser itself stops at the first)."""
    try:
        return parse_series(text, path=rel)
    except SeriesError:
        pass
    # Line by line: each line is parsed together with the good lines before it (bad ones
    # blanked, so line numbers stay true); an error is then about that line alone.
    kept: list[str] = []
    for raw in split_lines(text):
        try:
            parse_series("".join([*kept, raw]), path=rel)
        except SeriesError as e:
            problems.append(_problem(e, default_file=rel))
            kept.append("\n")
        else:
            kept.append(raw)
    return parse_series("".join(kept), path=rel)


def _lint_entry(
    workspace: Workspace, series: Series, entry: SeriesEntry, problems: list[LintProblem]
) -> None:
    one = Series(entries=(entry,), lines=series.lines, path=series.path)
    try:
        # The project's own loader, so every kind it knows is parsed exactly as check parses it.
        workspace.changes(one)
    except PatchkitError as e:
        problems.append(_problem(e, default_file=f"patches/{entry.name}"))


def _unlisted(patches_dir: Path, root: Path, series: Series) -> list[LintProblem]:
    listed = set(series.names)
    overlays = tuple(n for n in listed if kind_of(n) is ChangeKind.OVERLAY)
    out: list[LintProblem] = []
    for path in sorted(patches_dir.rglob("*")):
        if not path.is_file() or not path.name.endswith(_CHANGE_SUFFIXES):
            continue
        name = path.relative_to(patches_dir).as_posix()
        if name in listed or name.startswith(overlays):
            continue
        out.append(
            LintProblem(
                file=_relative(path, root),
                message=f"not listed in {_relative(patches_dir / 'series', root)}: "
                "no command applies it (add it to the series, or delete it)",
                severity=Severity.WARNING,
            )
        )
    return out


def lint_project(workspace: Workspace) -> LintResult:
    """Parse ``upstream-versions.toml``, ``patches/series`` and every file the series names.

    Needs no store and runs no git. Errors: what any command reading the project would fail
    on. Warnings: change files in ``patches/`` that the series does not list.
    """
    root = workspace.root
    problems: list[LintProblem] = []
    files: list[str] = []

    versions_rel = _relative(workspace.versions_path, root)
    text = _read_text(workspace.versions_path, versions_rel, problems)
    if text is None and not workspace.versions_path.exists():
        problems.append(LintProblem(file=versions_rel, message="not found"))
    elif text is not None:
        files.append(versions_rel)
        try:
            parse_versions(text, path=versions_rel)
        except PatchkitError as e:
            problems.append(_problem(e, default_file=versions_rel))

    series_rel = _relative(workspace.series_path, root)
    series_text = _read_text(workspace.series_path, series_rel, problems)
    if series_text is None:
        return LintResult(problems=tuple(problems), files=tuple(files))
    files.append(series_rel)
    series = _lint_series(series_text, series_rel, problems)
    for entry in series.entries:
        files.append(_relative(workspace.patches_dir / entry.name, root))
        _lint_entry(workspace, series, entry, problems)
    problems.extend(_unlisted(workspace.patches_dir, root, series))
    return LintResult(problems=tuple(problems), files=tuple(files))
