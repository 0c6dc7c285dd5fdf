"""Path globs (`**`, `*`, `?`, `[...]`): sparse-import selection and edit targets."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache

__all__ = ["Selector", "expand_braces", "glob_dirs", "glob_to_regex", "literal_prefix"]


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob matched against the whole path (no leading '/').

    `*` and `?` stay inside one component, `**` crosses components, `[...]` is a
    class, `{a,b}` is either alternative (nested braces work); `dir/**` matches `dir`
    itself and everything below it, and `**/x` matches `x` at any depth.

    >>> bool(glob_to_regex("opt/haraka-{smtp,submission}/config/*.ini").match("opt/haraka-smtp/config/http.ini"))
    True
    """
    return re.compile(_translate(pattern.strip("/")) + r"\Z", re.S)


def _closing_brace(pat: str, start: int) -> tuple[int, list[str]] | None:
    """Where the brace group opened at ``start`` closes, and its top-level alternatives."""
    depth, i, last, alts = 0, start, start + 1, []
    while i < len(pat):
        c = pat[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                alts.append(pat[last:i])
                return (i, alts) if len(alts) > 1 else None
        elif c == "," and depth == 1:
            alts.append(pat[last:i])
            last = i + 1
        i += 1
    return None


def _translate(pat: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("/**", i) and i + 3 == len(pat):
            out.append("(?:/.*)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "{" and (group := _closing_brace(pat, i)) is not None:
            end, alts = group
            out.append("(?:" + "|".join(_translate(a) for a in alts) + ")")
            i = end + 1
        elif c == "[":
            end = pat.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


_GLOB_CHARS = re.compile(r"[*?\[{]")


def expand_braces(pattern: str, *, limit: int = 64) -> list[str]:
    """The alternatives of a glob's ``{a,b}`` groups, spelled out (``a{b,c}`` -> ``ab``,
    ``ac``); a pattern that would give more than ``limit`` is returned as it is."""
    out = [pattern]
    while True:
        expanded: list[str] = []
        changed = False
        for pat in out:
            start = pat.find("{")
            group = _closing_brace(pat, start) if start >= 0 else None
            while start >= 0 and group is None:
                start = pat.find("{", start + 1)
                group = _closing_brace(pat, start) if start >= 0 else None
            if group is None:
                expanded.append(pat)
                continue
            end, alts = group
            expanded.extend(pat[:start] + alt + pat[end + 1 :] for alt in alts)
            changed = True
        if not changed:
            return out
        if len(expanded) > limit:
            return [pattern]
        out = expanded


def glob_dirs(pattern: str) -> list[str]:
    """Directories (``""``: the root; else ending in ``/``) under which every path the glob
    matches lies: a reader of a tree needs to walk only those."""
    dirs: set[str] = set()
    for alt in expand_braces(pattern.strip("/")):
        prefix = literal_prefix(alt)
        dirs.add(prefix[: prefix.rfind("/") + 1])
    # A directory below another one listed adds nothing.
    return sorted(d for d in dirs if not any(o != d and d.startswith(o) for o in dirs))


def literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard: every path it matches starts with it
    (``etc/**/x`` -> ``etc/``; ``**/x`` -> ``""``)."""
    pat = pattern.strip("/")
    m = _GLOB_CHARS.search(pat)
    return pat if m is None else pat[: m.start()]


class Selector:
    """Which paths a sparse import keeps; with no include list, everything is kept."""

    def __init__(
        self,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        always: Collection[str] = (),
    ) -> None:
        self._include = [glob_to_regex(p) for p in include] if include is not None else None
        self._exclude = [glob_to_regex(p) for p in exclude]
        # Paths the series touches: exact for diffs and overlays, globs for edits.
        self._always = frozenset(p.strip("/") for p in always if not _GLOB_CHARS.search(p))
        self._always_globs = [glob_to_regex(p) for p in always if _GLOB_CHARS.search(p)]

    @property
    def keeps_everything(self) -> bool:
        """Every path is kept (no include list, no exclude list): no need to ask."""
        return self._include is None and not self._exclude

    def __call__(self, path: str) -> bool:
        if path in self._always or any(r.match(path) for r in self._always_globs):
            return True
        if self._include is not None and not any(r.match(path) for r in self._include):
            return False
        return not any(r.match(path) for r in self._exclude)
