"""The GitHub side of the action's watch mode: ``gh`` and ``git push``, run or, in a dry run,
printed (docs/github-action.md, "Dry run").

In a dry run (``PATCHKIT_GH_DRY_RUN=1``) everything up to these commands runs for real, and
each of them is printed instead of run, in the order the real run would run it, and kept in
``commands.sh``. A lookup (``gh pr list``, ``gh issue list``, ``gh label list``) is answered
from ``PATCHKIT_GH_ANSWERS``: a JSON object mapping the lookup's exact command line, as the dry
run prints it, to what ``gh`` would print (a JSON array); a lookup it does not name finds
nothing (``[]``). So a test, or a person trying the workflow on a fork, sees exactly what a
run would create or update.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Failure", "GitHub", "load_answers"]


class Failure(Exception):
    """A step of the run failed (a ``gh`` or ``git`` command, a setting): the message is one
    line for the job log."""


def load_answers(path: str) -> dict[str, Any]:
    """The dry run's canned lookup answers (``{"gh pr list ...": [...]}``) from ``path``."""
    if not path:
        return {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise Failure(f"{path}: cannot read the dry run's answers ({e})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise Failure(
            f"{path}: the dry run's answers must be a JSON object of command line -> JSON array"
        )
    return doc


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class GitHub:
    """Runs ``gh`` and ``git push`` in ``cwd`` (the repository), or prints them (``dry_run``)."""

    cwd: Path
    log: Callable[[str], None]
    dry_run: bool = False
    answers: dict[str, Any] = field(default_factory=dict)
    answers_file: str = ""
    commands: list[str] = field(default_factory=list)  # every command, in order
    _found: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def lookup(self, *args: str) -> list[dict[str, Any]]:
        """A ``gh ... --json`` listing (read once a run: the same lookup gives the same list)."""
        line = shlex.join(args)
        if line in self._found:
            return self._found[line]
        self.commands.append(line)
        if self.dry_run:
            answered = line in self.answers
            where = f"answered from {self.answers_file}" if answered else "nothing found"
            self.log(f"dry run: {line}  ({where})")
            found: Any = self.answers.get(line, [])
        else:
            out = self._run(args)
            try:
                found = json.loads(out) if out.strip() else []
            except ValueError:
                raise Failure(f"`{shlex.join(args[:3])} ...` printed no JSON") from None
        if not isinstance(found, list):
            raise Failure(f"`{shlex.join(args[:3])} ...` gave no JSON array")
        self._found[line] = found
        return found

    def write(self, *args: str) -> str:
        """A command that changes something on GitHub (or the remote): its stdout."""
        line = shlex.join(args)
        self.commands.append(line)
        if self.dry_run:
            self.log(f"dry run: {line}")
            return ""
        self.log(f"$ {line}")
        return self._run(args)

    def forget(self, *args: str) -> None:
        """Read this lookup again next time (what it lists was just changed)."""
        self._found.pop(shlex.join(args), None)

    def _run(self, args: tuple[str, ...]) -> str:
        try:
            proc = subprocess.run(
                list(args), cwd=self.cwd, capture_output=True, text=True, check=False
            )
        except FileNotFoundError:
            raise Failure(
                f"{args[0]} is not installed here (GitHub's runners have gh and git; "
                "PATCHKIT_GH_DRY_RUN=1 prints the commands instead)"
            ) from None
        if proc.returncode != 0:
            why = _last_line(proc.stderr) or _last_line(proc.stdout) or "no message"
            raise Failure(f"`{shlex.join(args[:3])} ...` failed (exit {proc.returncode}): {why}")
        return proc.stdout
