"""Compare a patch with itself across a rebase, and with a release (pure: values in, values out).

* :func:`content_change_set`: the change set (per file, the removed and added lines with
  lines both removed and added cancelling) of going from one set of file contents to another.
  For a file going from A to B it is A-B and B-A as multisets of lines, so it does not depend
  on how a diff aligned the lines, nor on context or positions.
* :func:`change_lines`: the +/- lines that differ between two change sets: what `git range-diff`
  shows once pure context and line-number drift are ignored.
* :func:`change_present`: whether a patch's change is already in some files although the patch
  does not reverse-apply (upstream took it with other context, or moved it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from patchkit.core.lines import split_lines
from patchkit.core.model import ChangeLine
from patchkit.core.patchfile import Patch

__all__ = ["ChangeSet", "change_lines", "change_present", "content_change_set"]

ChangeSet = dict[str, tuple[Counter[str], Counter[str]]]


def _lines(data: bytes | None) -> list[str]:
    return split_lines((data or b"").decode("utf-8", "surrogateescape"))


def content_change_set(
    before: Mapping[str, bytes | None], after: Mapping[str, bytes | None]
) -> ChangeSet:
    """Per path whose content differs, (removed, added) line multisets.

    >>> content_change_set({"f": b"a\\nb\\n"}, {"f": b"b\\na\\nc\\n"})
    {'f': (Counter(), Counter({'c\\n': 1}))}
    """
    out: ChangeSet = {}
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        la, lb = Counter(_lines(a)), Counter(_lines(b))
        out[path] = (la - lb, lb - la)
    return out


def change_lines(old: ChangeSet, new: ChangeSet) -> tuple[ChangeLine, ...]:
    """The +/- lines of ``new`` that ``old`` lacks (outer mark ``+``) and the reverse (``-``).

    >>> old = {"f": (Counter({"x\\n": 1}), Counter({"y\\n": 1}))}
    >>> new = {"f": (Counter({"x\\n": 1}), Counter({"z\\n": 1}))}
    >>> [c.render() for c in change_lines(old, new)]
    ['f: -+y', 'f: ++z']
    """
    out: list[ChangeLine] = []
    empty: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    for path in sorted(set(old) | set(new)):
        (old_rm, old_add), (new_rm, new_add) = old.get(path, empty), new.get(path, empty)
        for inner, was, now in (("-", old_rm, new_rm), ("+", old_add, new_add)):
            for outer, diff in (("-", was - now), ("+", now - was)):
                for text in sorted(diff.elements()):
                    out.append(ChangeLine(file=path, mark=outer + inner, text=text.rstrip("\n")))
    order = {"--": 0, "+-": 1, "-+": 2, "++": 3}
    return tuple(sorted(out, key=lambda c: (c.file, order[c.mark], c.text)))


def _runs(patch: Patch, kind: str) -> dict[str, list[list[str]]]:
    runs: dict[str, list[list[str]]] = {}
    for fp in patch.files:
        for hunk in fp.hunks:
            current: list[str] = []
            for line in hunk.lines:
                if line.kind == kind:
                    current.append(line.text)
                elif current:
                    runs.setdefault(fp.path, []).append(current)
                    current = []
            if current:
                runs.setdefault(fp.path, []).append(current)
    return runs


def _contains(lines: list[str], block: list[str]) -> bool:
    m = len(block)
    return any(lines[i : i + m] == block for i in range(len(lines) - m + 1) if lines[i] == block[0])


def change_present(patch: Patch, files: Mapping[str, bytes | None]) -> bool:
    """Whether every change of ``patch`` is already in ``files``, context aside.

    True when each run of added lines (a block of consecutive ``+`` lines that is not blank)
    occurs as a block in its file, and no run of removed lines that is not blank and not
    itself among the added runs occurs there any more. A file the patch creates must exist
    with exactly its content, one it deletes must be absent. A patch with nothing to check
    (only blank lines) is not considered present.
    """
    added, removed = _runs(patch, "+"), _runs(patch, "-")
    checked = 0
    for fp in patch.files:
        content = files.get(fp.path)
        if fp.is_deleted:
            if content is not None:
                return False
            checked += 1
            continue
        if content is None:
            return False
        lines = _lines(content)
        adds = [run for run in added.get(fp.path, []) if any(t.strip() for t in run)]
        for run in adds:
            if not _contains(lines, run):
                return False
            checked += 1
        for run in removed.get(fp.path, []):
            if not any(t.strip() for t in run) or any(_contains(a, run) for a in adds):
                continue
            if _contains(lines, run):
                return False
            checked += 1
    return checked > 0
