"""Patch files: unified diffs with a free-text header, parsed and rendered (pure: no I/O).

:func:`parse_patch` reads them with ``unidiff`` and returns a :class:`Patch`;
:func:`render_patch` writes one back deterministically (``parse_patch(render_patch(p)) == p``).

Text is decoded as UTF-8 with ``surrogateescape`` so that any byte survives a
parse/render round trip; lines are split on ``"\\n"`` only, so a ``"\\r"`` stays
part of the line it belongs to (CRLF files diff and apply like any other).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk as UnidiffHunk
from unidiff.patch import PatchSet

from patchkit.core.lines import split_lines
from patchkit.core.ranges import check_range, in_range
from patchkit.errors import PatchParseError

if TYPE_CHECKING:  # loaded when a patch has Upstream-Versions: most runs never need it
    pass

__all__ = [
    "DEFAULT_MODE",
    "FilePatch",
    "Hunk",
    "HunkLine",
    "Patch",
    "check_relative_path",
    "context_width",
    "diff_prefixes",
    "introduced_words",
    "parse_patch",
    "patch_applies_to",
    "render_file_patch",
    "render_patch",
    "words_in",
]

DEFAULT_MODE = "100644"  # what a created or deleted file without a git mode line is taken to be
NO_NEWLINE = "\\ No newline at end of file\n"
DEV_NULL = "/dev/null"

LineKind = Literal[" ", "-", "+"]
_KINDS: dict[str, LineKind] = {" ": " ", "-": "-", "+": "+"}


def check_relative_path(name: str) -> str | None:
    """Why ``name`` is not a safe relative path, or None when it is."""
    if not name:
        return "empty path"
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        return "absolute path"
    if "\\" in name:
        return "backslash in path"
    if ".." in name.split("/"):
        return "'..' in path"
    return None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- patch records


@dataclass(frozen=True, slots=True, kw_only=True)
class HunkLine:
    """One line of a hunk; ``text`` keeps its newline unless the file ends without one there."""

    kind: LineKind
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Hunk:
    """One ``@@ -old_start,old_len +new_start,new_len @@ section`` block.

    For a side of length 0 the start is the line *after which* the change goes
    (``-0,0`` inserts at the top), as in GNU diff.
    """

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    section: str = ""
    lines: tuple[HunkLine, ...] = ()

    @property
    def old_lines(self) -> tuple[str, ...]:
        return tuple(ln.text for ln in self.lines if ln.kind != "+")

    @property
    def new_lines(self) -> tuple[str, ...]:
        return tuple(ln.text for ln in self.lines if ln.kind != "-")

    @property
    def leading_context(self) -> int:
        n = 0
        for ln in self.lines:
            if ln.kind != " ":
                break
            n += 1
        return n

    @property
    def trailing_context(self) -> int:
        if all(ln.kind == " " for ln in self.lines):
            return len(self.lines)  # context-only: every line is both leading and trailing
        n = 0
        for ln in reversed(self.lines):
            if ln.kind != " ":
                break
            n += 1
        return n

    def render(self) -> str:
        """The hunk as unified-diff text (header line included)."""
        out = [f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"]
        out.append(f" {self.section}\n" if self.section else "\n")
        for ln in self.lines:
            out.append(ln.kind + ln.text)
            if not ln.text.endswith("\n"):
                out.append("\n" + NO_NEWLINE)
        return "".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class FilePatch:
    """The changes a patch makes to one file; paths are already stripped (``None`` for /dev/null).

    ``raw_header_lines`` (``diff --git``, ``index``, ``---``, ``+++`` ... as in the
    file) are kept for display and ``with_index`` rendering; they take no part in
    equality, which is structural. A created (deleted) file without a git mode
    line gets ``new_mode`` (``old_mode``) ``"100644"``.
    """

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...] = ()
    old_mode: str | None = None
    new_mode: str | None = None
    raw_header_lines: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.old_path is None and self.new_path is None:
            raise ValueError("a file patch needs an old or a new path")
        if self.old_path is None and self.new_mode is None:
            object.__setattr__(self, "new_mode", DEFAULT_MODE)
        if self.new_path is None and self.old_mode is None:
            object.__setattr__(self, "old_mode", DEFAULT_MODE)

    @property
    def path(self) -> str:
        """The file in the tree this patch changes (the new name, or the old one for a deletion)."""
        p = self.new_path if self.new_path is not None else self.old_path
        assert p is not None
        return p

    @property
    def is_new(self) -> bool:
        return self.old_path is None

    @property
    def is_deleted(self) -> bool:
        return self.new_path is None

    @property
    def old_lines(self) -> tuple[str, ...]:
        return tuple(t for h in self.hunks for t in h.old_lines)

    @property
    def new_lines(self) -> tuple[str, ...]:
        return tuple(t for h in self.hunks for t in h.new_lines)


_UPSTREAM_FIELD = re.compile(r"^upstream-versions:[ \t]*(.*?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Patch:
    """One patch file: its free-text ``header`` (kept verbatim) and its file diffs."""

    name: str
    strip: int = 1
    header: str = ""
    files: tuple[FilePatch, ...] = ()

    @property
    def upstream_versions(self) -> str | None:
        """The ``Upstream-Versions:`` header field (DEP-3 style, key case-insensitive), folded lines joined."""
        return _header_field(self.header)

    @property
    def paths(self) -> tuple[str, ...]:
        """Target paths, in order, each once."""
        return tuple(dict.fromkeys(fp.path for fp in self.files))


def _header_field(header: str) -> str | None:
    lines = split_lines(header)
    for i, raw in enumerate(lines):
        m = _UPSTREAM_FIELD.match(raw)
        if m is None:
            continue
        parts = [m.group(1)]
        for cont in lines[i + 1 :]:
            if cont[:1] not in (" ", "\t") or not cont.strip():
                break
            parts.append(cont.strip())
        return " ".join(p for p in parts if p)
    return None


# --------------------------------------------------------------------------- parsing patches


class _CountingLines:
    """Feeds unidiff one line at a time and remembers where it is, since its errors carry no line."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.lineno = 0
        self.hunk_line = 0  # last "@@" header seen

    def __iter__(self) -> Iterator[str]:
        for no, line in enumerate(self.lines, 1):
            self.lineno = no
            if line.startswith("@@ "):
                self.hunk_line = no
            yield line


_GIT_EXTENDED = (
    "old mode ",
    "new mode ",
    "deleted file mode ",
    "new file mode ",
    "copy from ",
    "copy to ",
    "rename from ",
    "rename to ",
    "similarity index ",
    "dissimilarity index ",
    "index ",
)
_MODE = re.compile(r"^(old mode|new mode|deleted file mode|new file mode) ([0-7]{6})\s*$")
_C_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "\\": "\\",
}


def _unquote(name: str) -> str:
    """Undo git's C-style quoting of a path (``"a/sp\\303\\251cial"``)."""
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    body = name[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            if nxt in _C_ESCAPES:
                out += _C_ESCAPES[nxt].encode()
                i += 2
                continue
        out += ch.encode("utf-8", "surrogateescape")
        i += 1
    return _decode(bytes(out))


def _quote(name: str) -> str:
    """Quote a path the way git does when it holds characters a diff header cannot carry."""
    if not any(c in name for c in '"\\\t\n\r') and not name.startswith(" "):
        return name
    rev = {v: k for k, v in _C_ESCAPES.items()}
    body = "".join("\\" + rev[c] if c in rev else c for c in name)
    return f'"{body}"'


def _strip_path(raw: str, strip: int, where: str) -> str | None:
    raw = _unquote(raw.rstrip("\r"))
    if raw == DEV_NULL:
        return None
    parts = raw.split("/")
    if len(parts) <= strip:
        raise PatchParseError(
            f"{where}: cannot strip {strip} components from {raw!r}: check -p in the series"
        )
    path = "/".join(parts[strip:])
    problem = check_relative_path(path)
    if problem:
        raise PatchParseError(
            f"{where}: {problem} {path!r} after -p{strip}: patches must stay inside the tree"
        )
    return path


def _file_start(lines: list[str], diff_line_no: int) -> int:
    """1-based line where a file diff begins: its ``diff --git`` or ``---`` line."""
    if lines[diff_line_no - 1].startswith("diff --git "):
        return diff_line_no
    no = diff_line_no - 1  # unidiff points plain diffs at their "+++" line
    while no >= 1 and not lines[no - 1].startswith("--- "):
        no -= 1
    return no if no >= 1 else diff_line_no


def _raw_header(lines: list[str], start: int) -> list[str]:
    out = [lines[start - 1]]
    is_git = lines[start - 1].startswith("diff --git ")
    for line in lines[start:]:
        if line.startswith("--- ") or (is_git and line.startswith(_GIT_EXTENDED)):
            out.append(line)
        elif line.startswith("+++ "):
            out.append(line)
            break
        else:
            break
    return out


def _git_line_names(line: str, source: str, target: str) -> tuple[str, str]:
    """Names from a ``diff --git X Y`` line with no ``---``/``+++`` to confirm them.

    unidiff splits ``diff --git x y x y`` (``-p0``, a space in the name) at the
    last space; like git, prefer two equal halves (after their first component
    for prefixed names).
    """
    rest = line[len("diff --git ") :].rstrip("\r\n")
    half = len(rest) // 2
    if len(rest) % 2 == 1 and rest[half] == " ":
        left, right = rest[:half], rest[half + 1 :]
        same = left == right or (
            "/" in left and "/" in right and left.split("/", 1)[1] == right.split("/", 1)[1]
        )
        if same:
            return (source if source == DEV_NULL else left, target if target == DEV_NULL else right)
    return source, target


def _looks_like_hunk_body(line: str, following: str | None) -> bool:
    if line[:1] not in ("+", "-", " "):
        return False
    if line.rstrip("\r\n") in ("--", "-- "):
        return False  # a mail signature ("-- \n2.39.5"), as git format-patch ends
    return not (line.startswith("--- ") and following is not None and following.startswith("+++ "))


def _convert_hunk(uh: UnidiffHunk, where: str, lines: list[str]) -> tuple[Hunk, int, int]:
    """A unidiff hunk as our record, plus the 1-based lines of its header and last body line."""
    numbers = [ln.diff_line_no for ln in uh if ln.diff_line_no is not None]
    header_no = numbers[0] - 1 if numbers else 0
    last_no = numbers[-1] if numbers else header_no
    at = f"{where}:{header_no}"
    if uh.source_length == 0 and uh.target_length == 0:
        raise PatchParseError(f"{at}: empty hunk (no lines on either side)")
    if uh.source_start == 0 and uh.source_length > 0:
        raise PatchParseError(f"{at}: hunk claims old lines starting at line 0")
    if uh.target_start == 0 and uh.target_length > 0:
        raise PatchParseError(f"{at}: hunk claims new lines starting at line 0")
    out: list[HunkLine] = []
    marked: list[int] = []  # indexes of lines followed by "\ No newline at end of file"
    for ln in uh:
        kind = ln.line_type
        if kind == "\\":
            if not out or not out[-1].text.endswith("\n"):
                raise PatchParseError(f"{at}: misplaced '\\ No newline at end of file'")
            prev = out[-1]
            out[-1] = HunkLine(kind=prev.kind, text=prev.text[:-1])
            marked.append(len(out) - 1)
        elif kind in _KINDS:
            out.append(HunkLine(kind=_KINDS[kind], text=ln.value))
        # kind "" is a blank separator unidiff attaches after a hunk: not part of it
    for idx in marked:
        kind = out[idx].kind
        later = {ln.kind for ln in out[idx + 1 :]}
        # The unterminated line must be the last of each side it belongs to.
        clash = (
            (kind == " " and later)
            or (kind == "-" and later & {" ", "-"})
            or (kind == "+" and later & {" ", "+"})
        )
        if clash:
            raise PatchParseError(
                f"{at}: '\\ No newline at end of file' follows a line that is not last in the hunk"
            )
    hunk = Hunk(
        old_start=uh.source_start,
        old_len=uh.source_length,
        new_start=uh.target_start,
        new_len=uh.target_length,
        section=uh.section_header.rstrip("\r"),
        lines=tuple(out),
    )
    while last_no < len(lines) and lines[last_no].startswith("\\"):
        last_no += 1
    return hunk, header_no, last_no


def _nominal_start(h: Hunk) -> int:
    """0-based index of the hunk's first old line (for an insertion: where it goes)."""
    return h.old_start - 1 if h.old_len else h.old_start


def parse_patch(data: bytes, *, name: str, strip: int = 1) -> Patch:
    """Parse one patch file (unified diff, git or plain ``diff -u`` style) with its free-text header.

    Errors raise :class:`PatchParseError` as ``patches/NAME:LINE: message``. A file
    with a header and no diff at all is a valid, empty patch. Beyond what
    unidiff checks, hunks whose ``@@`` counts do not match their lines,
    overlapping or misordered hunks, binary diffs, renames and copies, and paths
    that leave the tree are rejected.
    """
    where = f"patches/{name}"
    lines = split_lines(_decode(data))
    feed = _CountingLines(lines)
    try:
        patch_set = PatchSet(feed)
    except UnidiffParseError as e:
        msg = str(e).rstrip()
        extra = f" (hunk at line {feed.hunk_line})" if "expected" in msg and feed.hunk_line else ""
        raise PatchParseError(f"{where}:{feed.lineno}: {msg}{extra}") from e

    files: list[FilePatch] = []
    first_start = len(lines) + 1
    for pf in patch_set:
        start = _file_start(lines, pf.diff_line_no or 1)
        first_start = min(first_start, start)
        at = f"{where}:{start}"
        raw = _raw_header(lines, start)
        if pf.is_binary_file:
            raise PatchParseError(f"{at}: binary diffs are not supported: {pf.path}")
        if any(r.startswith(("rename from ", "copy from ")) for r in raw):
            raise PatchParseError(f"{at}: renames and copies are not supported: {pf.path}")
        old_mode = new_mode = None
        for r in raw:
            m = _MODE.match(r)
            if m is None:
                continue
            if m.group(1) in ("old mode", "deleted file mode"):
                old_mode = m.group(2)
            else:
                new_mode = m.group(2)
        source, target = pf.source_file, pf.target_file
        if not any(r.startswith(("--- ", "+++ ")) for r in raw):
            source, target = _git_line_names(raw[0], source, target)
        old_path = _strip_path(source, strip, at)
        new_path = _strip_path(target, strip, at)
        if old_path is None and new_path is None:
            raise PatchParseError(f"{at}: both sides are /dev/null")
        hunks: list[Hunk] = []
        last_no = 0
        for uh in pf:
            hunk, header_no, last_no = _convert_hunk(uh, where, lines)
            if hunks:
                prev = hunks[-1]
                if _nominal_start(hunk) < _nominal_start(prev) + prev.old_len:
                    raise PatchParseError(
                        f"{where}:{header_no}: hunk overlaps or precedes the hunk before it"
                    )
            hunks.append(hunk)
        if hunks and last_no < len(lines):
            nxt = lines[last_no]
            following = lines[last_no + 1] if last_no + 1 < len(lines) else None
            if _looks_like_hunk_body(nxt, following):
                raise PatchParseError(
                    f"{where}:{last_no + 1}: hunk ended at line {last_no} by its @@ counts, but diff lines go on: "
                    "the @@ line counts do not match the hunk"
                )
        if old_path is None and any(h.old_len for h in hunks):
            raise PatchParseError(f"{at}: a created file cannot have old lines")
        if new_path is None and any(h.new_len for h in hunks):
            raise PatchParseError(f"{at}: a deleted file cannot have new lines")
        files.append(
            FilePatch(
                old_path=old_path,
                new_path=new_path,
                hunks=tuple(hunks),
                old_mode=old_mode,
                new_mode=new_mode,
                raw_header_lines=tuple(raw),
            )
        )
    header = "".join(lines[: first_start - 1])
    patch = Patch(name=name, strip=strip, header=header, files=tuple(files))
    value = patch.upstream_versions
    if value is not None:
        no = next(i for i, t in enumerate(lines, 1) if _UPSTREAM_FIELD.match(t))
        check_range(value, f"{where}:{no}")
    return patch


# --------------------------------------------------------------------------- rendering


def _prefix(side: str, strip: int) -> str:
    # -p0 has no prefix; -pN needs N leading components, so repeat the git one.
    return f"{side}/" * strip


def render_file_patch(fp: FilePatch, *, strip: int = 1, with_index: bool = False) -> str:
    """One file diff in git style (``diff --git``, mode lines, ``---``/``+++``, hunks), no timestamps.

    With ``-p0`` and a space in a name the ``diff --git`` line would be ambiguous
    (unidiff splits it at the wrong space), so such a file is written in plain
    ``---``/``+++`` style, without mode lines, unless it has no hunks (then the
    parser splits the ``diff --git`` line into two equal halves, as git does).
    Known limit: such a plain-style file right after a hunkless git-style one is
    read by unidiff as part of it; use ``-p1`` for names with spaces.
    """
    a, b = _prefix("a", strip), _prefix("b", strip)
    old_name = fp.old_path if fp.old_path is not None else fp.path
    new_name = fp.new_path if fp.new_path is not None else fp.path
    out: list[str] = []
    if strip or " " not in old_name + new_name or not fp.hunks:
        out.append(f"diff --git {_quote(a + old_name)} {_quote(b + new_name)}\n")
        if fp.is_new:
            out.append(f"new file mode {fp.new_mode}\n")
        elif fp.is_deleted:
            out.append(f"deleted file mode {fp.old_mode}\n")
        elif fp.old_mode and fp.new_mode and fp.old_mode != fp.new_mode:
            out.append(f"old mode {fp.old_mode}\nnew mode {fp.new_mode}\n")
        if with_index:
            for raw in fp.raw_header_lines:
                if raw.startswith("index "):
                    out.append(raw if raw.endswith("\n") else raw + "\n")
                    break
    if fp.hunks:
        old = _quote(a + fp.old_path) if fp.old_path is not None else DEV_NULL
        new = _quote(b + fp.new_path) if fp.new_path is not None else DEV_NULL
        out.append(f"--- {old}\n+++ {new}\n")
        out.extend(h.render() for h in fp.hunks)
    return "".join(out)


def render_patch(patch: Patch, *, with_index: bool = False) -> bytes:
    """The patch file: header verbatim, then every file diff in git style; deterministic.

    ``with_index`` keeps each file's original ``index`` line (if it had one).
    """
    out = [patch.header]
    if patch.header and not patch.header.endswith("\n") and patch.files:
        out.append("\n")
    out.extend(
        render_file_patch(fp, strip=patch.strip, with_index=with_index) for fp in patch.files
    )
    return "".join(out).encode("utf-8", "surrogateescape")


def context_width(patch: Patch) -> int:
    """The context lines the patch was made with (its widest hunk side; 3 if it has none), so
    that a diff made again keeps them."""
    widths = [max(h.leading_context, h.trailing_context) for fp in patch.files for h in fp.hunks]
    return max(widths) if widths else 3


def diff_prefixes(patch: Patch) -> tuple[str, str]:
    """The ``a/``/``b/`` a diff's ``-pN`` strips (``-p0``: none; ``-p2``: the file's own), for
    a diff made again to keep them."""
    if patch.strip == 0:
        return "", ""
    if patch.strip == 1:
        return "a/", "b/"
    for fp in patch.files:
        for line in fp.raw_header_lines:
            if line.startswith("--- ") and DEV_NULL not in line:
                comps = line[4:].split("\t")[0].strip().split("/")
                prefix = "/".join(comps[: patch.strip]) + "/"
                return prefix, prefix
    return "a/" * patch.strip, "b/" * patch.strip


# --------------------------------------------------------------------------- introduced words

# Words distinctive enough to say "this patch brings X": string literals with 4+ characters
# inside the quotes, and identifiers of 5+ characters with an underscore (sd_notify,
# HAVE_SYSTEMD). Plain words are left out: comments share too many of them by chance. Every
# literal is matched, short ones too, so that quotes pair up from the left as a compiler's do.
_WORD = re.compile(r'"(?:[^"\\\n]|\\.)*"|\b[A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]*\b')


def words_in(text: str) -> set[str]:
    """The distinctive words (see ``_WORD``) of a text."""
    return {w for w in _WORD.findall(text) if len(w) >= (6 if w[0] == '"' else 5)}


def introduced_words(patch: Patch) -> tuple[str, ...]:
    """The distinctive words the patch's added lines bring and its removed lines do not have.

    >>> p = parse_patch(b"--- a/f\\n+++ b/f\\n@@ -1 +1,2 @@\\n x\\n+sd_notify(0, \\"READY=1\\");\\n", name="p")
    >>> introduced_words(p)
    ('"READY=1"', 'sd_notify')
    """
    added: set[str] = set()
    removed: set[str] = set()
    for fp in patch.files:
        for hunk in fp.hunks:
            for line in hunk.lines:
                if line.kind == "+":
                    added |= words_in(line.text)
                elif line.kind == "-":
                    removed |= words_in(line.text)
    return tuple(sorted(added - removed))


# --------------------------------------------------------------------------- version ranges


def patch_applies_to(patch_or_value: Patch | str | None, version_label: str) -> bool:
    """Whether a patch's ``Upstream-Versions`` range includes the release ``version_label``.

    The value is a comma-separated list mixing PEP 440 specifiers (items that
    start with ``< > = ! ~``) and bare labels. A release is in range when its
    label is listed bare (exact string match), or when there is at least one
    specifier, the label parses as a :class:`~packaging.version.Version` and
    every specifier admits it (pre-releases included). A label that does not
    parse is therefore outside every range unless named. No field means the
    patch applies everywhere.

    >>> patch_applies_to(">=2.5, model-bookworm", "model-bookworm")
    True
    >>> patch_applies_to(">=2.5, <3", "3.0")
    False
    """
    if isinstance(patch_or_value, Patch):
        value, where = patch_or_value.upstream_versions, f"patches/{patch_or_value.name}"
    else:
        value, where = patch_or_value, "Upstream-Versions"
    return in_range(value, version_label, where=where)
