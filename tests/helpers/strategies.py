"""Hypothesis strategies shared by the property tests: file contents and random edits of them,
and tar entry names and owners (the tests that write archives with another implementation's
writer, `tarfile`'s or Go's, and read them back)."""

from __future__ import annotations

from hypothesis import strategies as st

from patchkit.core.apply import unified_diff
from patchkit.core.patchfile import FilePatch, Patch

# A small pool so that lines repeat (which is what makes matching hard), with the
# awkward kinds mixed in: blank lines, CRLF, non-UTF-8 bytes, a lone CR, tabs.
LINE_POOL: tuple[bytes, ...] = (
    *(b"line %d\n" % i for i in range(24)),
    b"\n",
    b"}\n",
    b"    return 0;\n",
    b"dos line\r\n",
    b"caf\xc3\xa9\n",
    b"\xff\xfe raw bytes\n",
    b"tab\tsep\n",
    b"lone\rcr\n",
    b"+plus\n",
    b"-minus\n",
    b" space\n",
    b"@@ not a hunk\n",
    b"\\ backslash\n",
)

# Mostly-distinct lines for comparisons with git, where repeats let two correct
# engines legitimately pick different places.
UNIQUE_POOL: tuple[bytes, ...] = tuple(b"unique %d\n" % i for i in range(200))


def _drop_final_newline(lines: list[bytes]) -> list[bytes]:
    if lines and lines[-1].endswith(b"\n"):
        lines[-1] = lines[-1][:-1]
        if lines[-1].endswith(b"\r"):
            lines[-1] = lines[-1][:-1] or b"x"
        if not lines[-1]:
            lines[-1] = b"end"
    return lines


@st.composite
def line_lists(
    draw: st.DrawFn, *, pool: tuple[bytes, ...] = LINE_POOL, max_size: int = 30
) -> list[bytes]:
    """A list of lines, each with its ending."""
    return draw(st.lists(st.sampled_from(pool), max_size=max_size))


@st.composite
def contents(draw: st.DrawFn, *, pool: tuple[bytes, ...] = LINE_POOL, max_size: int = 30) -> bytes:
    """File content; sometimes without a final newline."""
    lines = draw(line_lists(pool=pool, max_size=max_size))
    if draw(st.booleans()) and draw(st.booleans()):
        lines = _drop_final_newline(lines)
    return b"".join(lines)


def _split(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


@st.composite
def unique_contents(draw: st.DrawFn, *, min_size: int = 8, max_size: int = 40) -> bytes:
    """Content whose lines are all distinct (from the first half of :data:`UNIQUE_POOL`)."""
    lines = draw(
        st.lists(
            st.sampled_from(UNIQUE_POOL[:100]), unique=True, min_size=min_size, max_size=max_size
        )
    )
    if draw(st.booleans()) and draw(st.booleans()):
        lines = _drop_final_newline(lines)
    return b"".join(lines)


@st.composite
def edited(
    draw: st.DrawFn,
    data: bytes,
    *,
    pool: tuple[bytes, ...] = LINE_POOL,
    min_ops: int = 0,
    max_ops: int = 4,
) -> bytes:
    """``data`` after a few random line insertions, deletions and replacements."""
    lines = _split(data)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
        unterminated = True
    else:
        unterminated = False
    for _ in range(draw(st.integers(min_ops, max_ops))):
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        if op == "insert" or not lines:
            at = draw(st.integers(0, len(lines)))
            lines[at:at] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
            continue
        at = draw(st.integers(0, len(lines) - 1))
        count = draw(st.integers(1, 3))
        if op == "delete":
            del lines[at : at + count]
        else:
            lines[at : at + count] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    if draw(st.booleans()):
        unterminated = not unterminated  # sometimes the edit is the final newline itself
    if unterminated:
        lines = _drop_final_newline(lines)
    return b"".join(lines)


@st.composite
def content_pairs(draw: st.DrawFn, *, pool: tuple[bytes, ...] = LINE_POOL) -> tuple[bytes, bytes]:
    """(old, new): a file and an edit of it."""
    old = draw(contents(pool=pool))
    return old, draw(edited(old, pool=pool))


PATH_PARTS = st.sampled_from(
    ("etc", "usr", "lib", "conf.d", "nginx.conf", "run.sh", "a", "b", "x y")
)
paths = st.lists(PATH_PARTS, min_size=1, max_size=3).map("/".join)

HEADER_LINES = st.sampled_from(
    (
        "Description: make it work\n",
        "Forwarded: not-needed\n",
        "Upstream-Versions: >=2.5, model-bookworm\n",
        "Author: Someone <s@example.org>\n",
        "\n",
        " continued text\n",
        "---\n",
        " file | 2 +-\n",
    )
)
headers = st.lists(HEADER_LINES, max_size=6).map("".join)

# One tar path component: any printable text but "/", NUL, "." and "..".
tar_component = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\0"),
    min_size=1,
    max_size=40,
).filter(lambda c: c not in (".", ".."))
# Relative paths of 1 to 8 components (long ones need a GNU long name or a pax record).
tar_names = st.lists(tar_component, min_size=1, max_size=8).map("/".join)
# Owner ids, half of them too big for the 7 octal digits of a ustar field.
tar_ids = st.one_of(st.integers(0, 2**21 - 1), st.integers(2**21, 2**40))


@st.composite
def file_patches(draw: st.DrawFn, path: str) -> FilePatch:
    """A file patch made by :func:`unified_diff`: a change, a creation or a deletion."""
    kind = draw(st.sampled_from(("modify", "modify", "modify", "create", "delete")))
    old, new = draw(content_pairs())
    if kind == "create":
        fp = unified_diff(None, new, path)
    elif kind == "delete":
        fp = unified_diff(old, None, path)
    else:
        fp = unified_diff(old, new, path)
    if fp is None:  # identical contents: make some change
        fp = unified_diff(old, old + b"added\n", path)
    assert fp is not None
    return fp


@st.composite
def patches(draw: st.DrawFn) -> Patch:
    """A whole patch: header, -pN and a few files with distinct paths.

    No spaces in names with -p0: a ``diff --git x y x y`` line is ambiguous to
    unidiff, so such names are a documented limitation of rendering.
    """
    strip = draw(st.integers(0, 2))
    names = draw(st.lists(paths, min_size=0, max_size=3, unique=True))
    if strip == 0:
        names = list(dict.fromkeys(n.replace(" ", "_") for n in names))
    files = tuple(draw(file_patches(p)) for p in names)
    return Patch(name="gen.patch", strip=strip, header=draw(headers), files=files)
