"""patchkit.core.patchfile: patch files, rendering and version ranges."""

from __future__ import annotations

import pytest

from patchkit.core.lines import split_lines
from patchkit.core.patchfile import (
    FilePatch,
    Hunk,
    HunkLine,
    Patch,
    introduced_words,
    parse_patch,
    patch_applies_to,
    render_patch,
)
from patchkit.errors import PatchParseError

# --------------------------------------------------------------------------- patches

GIT_PATCH = b"""\
From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] tune redis

Description: use a unix socket
Upstream-Versions: >=2.5, model-bookworm
---
 etc/redis.conf | 2 +-

diff --git a/etc/redis.conf b/etc/redis.conf
index 1111111..2222222 100644
--- a/etc/redis.conf
+++ b/etc/redis.conf
@@ -1,4 +1,4 @@ section text
 bind 127.0.0.1
-port 6379
+port 0
 unixsocket /run/redis.sock
 save ""
@@ -10,3 +10,4 @@
 a
 b
 c
+d
diff --git a/etc/new.conf b/etc/new.conf
new file mode 100755
index 0000000..3333333
--- /dev/null
+++ b/etc/new.conf
@@ -0,0 +1,2 @@
+one
+two
diff --git a/etc/old.conf b/etc/old.conf
deleted file mode 100644
index 4444444..0000000
--- a/etc/old.conf
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git a/empty b/empty
new file mode 100644
index 0000000..e69de29
diff --git a/run.sh b/run.sh
old mode 100644
new mode 100755
--
2.39.5
"""

PLAIN_PATCH = b"""\
Fix the thing.

diff -u orig/etc/x.conf new/etc/x.conf
--- orig/etc/x.conf\t2024-01-01 10:00:00.000000000 +0100
+++ new/etc/x.conf\t2024-01-02 11:00:00.000000000 +0100
@@ -1,3 +1,3 @@
 a
-b
+B
 c
"""


def test_parse_git_patch_reads_header_files_modes_and_hunks() -> None:
    patch = parse_patch(GIT_PATCH, name="redis.patch")
    assert patch.header.startswith("From 1234")
    assert patch.header.endswith(" etc/redis.conf | 2 +-\n\n")
    assert patch.upstream_versions == ">=2.5, model-bookworm"
    assert [fp.path for fp in patch.files] == [
        "etc/redis.conf",
        "etc/new.conf",
        "etc/old.conf",
        "empty",
        "run.sh",
    ]
    conf, new, old, empty, script = patch.files
    assert conf.raw_header_lines == (
        "diff --git a/etc/redis.conf b/etc/redis.conf\n",
        "index 1111111..2222222 100644\n",
        "--- a/etc/redis.conf\n",
        "+++ b/etc/redis.conf\n",
    )
    assert (conf.old_mode, conf.new_mode) == (None, None)
    h1, h2 = conf.hunks
    assert (h1.old_start, h1.old_len, h1.new_start, h1.new_len, h1.section) == (
        1,
        4,
        1,
        4,
        "section text",
    )
    assert h1.lines[1] == HunkLine(kind="-", text="port 6379\n")
    assert h1.old_lines == (
        "bind 127.0.0.1\n",
        "port 6379\n",
        "unixsocket /run/redis.sock\n",
        'save ""\n',
    )
    assert h2.new_lines[-1] == "d\n"
    assert new.is_new and new.old_path is None and new.new_mode == "100755"
    assert old.is_deleted and old.new_path is None and old.old_mode == "100644"
    assert empty.is_new and empty.hunks == ()
    assert (script.old_mode, script.new_mode, script.hunks) == ("100644", "100755", ())


def test_parse_plain_diff_with_timestamps() -> None:
    patch = parse_patch(PLAIN_PATCH, name="x.patch")
    assert patch.header == "Fix the thing.\n\ndiff -u orig/etc/x.conf new/etc/x.conf\n"
    (fp,) = patch.files
    assert (fp.old_path, fp.new_path, fp.path) == ("etc/x.conf", "etc/x.conf", "etc/x.conf")
    assert fp.hunks[0].new_lines == ("a\n", "B\n", "c\n")
    assert patch.upstream_versions is None


@pytest.mark.parametrize(
    ("strip", "path"),
    [(0, "new/etc/x.conf"), (1, "etc/x.conf"), (2, "x.conf")],
)
def test_parse_patch_strips_components_and_targets_the_new_name(strip: int, path: str) -> None:
    assert parse_patch(PLAIN_PATCH, name="x.patch", strip=strip).files[0].path == path


def test_parse_patch_p1_turns_absolute_names_relative_but_p0_refuses_them() -> None:
    data = b"--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n"
    assert parse_patch(data, name="abs.patch").files[0].path == "etc/passwd"
    with pytest.raises(
        PatchParseError, match=r"^patches/abs\.patch:1: absolute path '/etc/passwd'"
    ):
        parse_patch(data, name="abs.patch", strip=0)


def test_parse_patch_no_newline_markers_strip_the_newline() -> None:
    data = b"--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
    (hunk,) = parse_patch(data, name="n.patch").files[0].hunks
    assert hunk.old_lines == ("a\n", "b")
    assert hunk.new_lines == ("a\n", "c")


def test_parse_patch_keeps_crlf_content_and_invalid_utf8() -> None:
    data = b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-dos\r\n+\xff\xfe\r\n"
    hunk = parse_patch(data, name="c.patch").files[0].hunks[0]
    assert hunk.old_lines == ("dos\r\n",)
    assert hunk.new_lines[0].encode("utf-8", "surrogateescape") == b"\xff\xfe\r\n"
    assert render_patch(parse_patch(data, name="c.patch")).endswith(b"-dos\r\n+\xff\xfe\r\n")


def test_parse_patch_whole_file_crlf_headers() -> None:
    data = b"--- a/f\r\n+++ b/f\r\n@@ -1 +1 @@ sec\r\n-x\r\n+y\r\n"
    fp = parse_patch(data, name="w.patch").files[0]
    assert fp.path == "f"
    assert fp.hunks[0].section == "sec"


@pytest.mark.parametrize(
    "data",
    [b"", b"Just a description.\nNo diff yet.\n", b"Subject: x\n\n-- \n2.39\n"],
)
def test_parse_patch_without_diffs_is_valid_and_empty(data: bytes) -> None:
    patch = parse_patch(data, name="e.patch")
    assert patch.files == ()
    assert render_patch(patch) == data


def test_dep3_field_is_case_insensitive_and_folded() -> None:
    patch = parse_patch(b"upstream-VERSIONS:  <3,\n  >=2\nOther: x\n", name="u.patch")
    assert patch.upstream_versions == "<3, >=2"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        # hunk shorter than its header, next file follows
        (
            b"hdr\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n@@ -10 +10 @@\n-x\n+y\n",
            "patches/bad.patch:8: Hunk diff line expected",
        ),
        # hunk shorter than its header at end of file
        (
            b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n",
            "patches/bad.patch:6: Hunk is shorter than expected",
        ),
        # hunk longer than its header: unidiff would silently drop the rest
        (
            b"--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n d\n",
            "patches/bad.patch:7: hunk ended at line 6",
        ),
        (
            b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-b\n+c\n+d\n",
            "patches/bad.patch:6: hunk ended at line 5",
        ),
        # garbage inside a hunk
        (
            b"--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n*b\n",
            "patches/bad.patch:5: Hunk diff line expected",
        ),
        # hunk without a file
        (b"text\n@@ -1 +1 @@\n-a\n+b\n", "patches/bad.patch:2: Unexpected hunk"),
        # target without source
        (b"+++ b/f\n@@ -1 +1 @@\n-a\n+b\n", "patches/bad.patch:1: Target without source"),
        # overlapping hunks
        (
            b"--- a/f\n+++ b/f\n@@ -5,2 +5,2 @@\n a\n-b\n+c\n@@ -6,1 +6,1 @@\n-x\n+y\n",
            "patches/bad.patch:7: hunk overlaps",
        ),
        # misplaced no-newline marker
        (
            b"--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n\\ No newline at end of file\n-b\n+c\n+d\n",
            "patches/bad.patch:3: '\\ No newline at end of file' follows a line that is not last",
        ),
        # unsafe paths
        (
            b"--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
            "patches/bad.patch:1: '..' in path",
        ),
        (b"--- f\n+++ f\n@@ -1 +1 @@\n-a\n+b\n", "cannot strip 1 components"),
        # binary and renames
        (
            b"diff --git a/x b/x\nindex 1..2 100644\nBinary files a/x and b/x differ\n",
            "binary diffs",
        ),
        (
            b"diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n",
            "patches/bad.patch:1: renames and copies are not supported",
        ),
        # line 0 with old lines
        (
            b"--- a/f\n+++ b/f\n@@ -0,1 +1,1 @@\n-a\n+b\n",
            "patches/bad.patch:3: hunk claims old lines starting at line 0",
        ),
        # invalid version range
        (
            b"Upstream-Versions: >=2.5, ~=x!\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n",
            "patches/bad.patch:1: invalid",
        ),
        (b"Upstream-Versions:\n", "patches/bad.patch:1: empty Upstream-Versions"),
    ],
)
def test_parse_patch_rejects_broken_patches_with_line(data: bytes, fragment: str) -> None:
    with pytest.raises(PatchParseError) as info:
        parse_patch(data, name="bad.patch")
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- rendering


def test_render_patch_is_git_style_without_timestamps() -> None:
    text = render_patch(parse_patch(PLAIN_PATCH, name="x.patch")).decode()
    assert text == (
        "Fix the thing.\n\ndiff -u orig/etc/x.conf new/etc/x.conf\n"
        "diff --git a/etc/x.conf b/etc/x.conf\n--- a/etc/x.conf\n+++ b/etc/x.conf\n"
        "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    )


def test_render_patch_p0_has_no_prefix_and_with_index_keeps_index() -> None:
    patch = parse_patch(GIT_PATCH, name="r.patch")
    p0 = Patch(name="r.patch", strip=0, header="", files=patch.files[:1])
    assert (
        render_patch(p0)
        .decode()
        .startswith("diff --git etc/redis.conf etc/redis.conf\n--- etc/redis.conf\n")
    )
    assert b"index 1111111..2222222 100644\n" in render_patch(patch, with_index=True)
    assert b"index " not in render_patch(patch)


def test_render_patch_round_trips_git_patch_structurally() -> None:
    patch = parse_patch(GIT_PATCH, name="r.patch")
    again = parse_patch(render_patch(patch), name="r.patch")
    assert again == patch
    assert render_patch(again) == render_patch(patch)


def test_render_marks_missing_newline_and_quotes_odd_paths() -> None:
    fp = FilePatch(
        old_path='we"ird',
        new_path='we"ird',
        hunks=(
            Hunk(
                old_start=1,
                old_len=1,
                new_start=1,
                new_len=1,
                lines=(HunkLine(kind="-", text="a"), HunkLine(kind="+", text="b\n")),
            ),
        ),
    )
    data = render_patch(Patch(name="q.patch", files=(fp,)))
    assert b'--- "a/we\\"ird"\n' in data
    assert b"-a\n\\ No newline at end of file\n+b\n" in data
    assert parse_patch(data, name="q.patch").files == (fp,)


# --------------------------------------------------------------------------- version ranges


@pytest.mark.parametrize(
    ("value", "label", "expected"),
    [
        (None, "anything", True),
        (">=2.5", "2.5.24", True),
        (">=2.5", "2.4", False),
        (">=2.5, <3", "3.0", False),
        (">=2.5, <3", "2.9.9", True),
        (">=2.5", "2.6.0rc1", True),
        (">=2.5", "model-bookworm", False),
        (">=2.5, model-bookworm", "model-bookworm", True),
        ("model-bookworm", "model-bookworm", True),
        ("model-bookworm", "2.5", False),
        ("2.5.24", "2.5.24", True),
        ("==2.5.*", "2.5.3", True),
        ("!=2.5.3", "2.5.3", False),
    ],
)
def test_patch_applies_to_version_labels(value: str | None, label: str, expected: bool) -> None:
    assert patch_applies_to(value, label) is expected


def test_patch_applies_to_reads_patch_header() -> None:
    patch = Patch(name="p.patch", header="Upstream-Versions: <2\n")
    assert patch_applies_to(patch, "1.0")
    assert not patch_applies_to(patch, "2.0")


def test_patch_applies_to_invalid_range_names_patch() -> None:
    patch = Patch(name="p.patch", header="Upstream-Versions: >=x.y!\n")
    with pytest.raises(PatchParseError, match=r"patches/p\.patch: invalid Upstream-Versions"):
        patch_applies_to(patch, "1.0")


def test_hunkless_p0_git_line_with_spaces_splits_into_equal_halves() -> None:
    data = b"diff --git x y x y\nold mode 100644\nnew mode 100755\n"
    (fp,) = parse_patch(data, name="m.patch", strip=0).files
    assert (fp.path, fp.old_mode, fp.new_mode) == ("x y", "100644", "100755")
    assert render_patch(Patch(name="m.patch", strip=0, files=(fp,))) == data


def test_split_lines_splits_on_newline_only() -> None:
    assert split_lines("a\r\nb\rc\x0bd\n\ne") == ["a\r\n", "b\rc\x0bd\n", "\n", "e"]


def test_introduced_words_are_distinctive_words_added_not_removed() -> None:
    text = (
        "--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,3 @@\n"
        '-\told_name(x, "kept literal");\n'
        '+\tnew_name(x, "kept literal");\n'
        '+\t/* a plain comment word */ HAVE_SYSTEMD; "abc"; "READY=1"; x_y\n'
        " }\n"
    )
    patch = parse_patch(text.encode(), name="f.patch")
    # literals of 4+ characters and identifiers with an underscore, 5+ characters long;
    # old_name and "kept literal" are on a removed line too, so not introduced
    assert introduced_words(patch) == ('"READY=1"', "HAVE_SYSTEMD", "new_name")
