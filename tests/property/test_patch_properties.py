"""Property tests of the pure patch core: parse/render round trips and apply against diff and git."""

from __future__ import annotations

import difflib
import os
import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from patchkit.core.apply import apply_file_patch, apply_patch, unified_diff
from patchkit.core.model import PatchStatus
from patchkit.core.patchfile import Patch, parse_patch, render_patch
from tests.helpers.strategies import (
    UNIQUE_POOL,
    content_pairs,
    contents,
    edited,
    patches,
    unique_contents,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("PATCHKIT_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(patches())
def test_parse_render_parse_is_identity(patch: Patch) -> None:
    data = render_patch(patch)
    again = parse_patch(data, name=patch.name, strip=patch.strip)
    assert again == patch
    assert render_patch(again) == data


@SETTINGS
@given(content_pairs())
def test_unified_diff_applied_to_old_gives_new(pair: tuple[bytes, bytes]) -> None:
    old, new = pair
    fp = unified_diff(old, new, "f")
    if old == new:
        assert fp is None
        return
    assert fp is not None
    result = apply_file_patch(old, fp, max_fuzz=0)
    assert result.status is PatchStatus.APPLIED
    assert result.content == new
    # ... and through render/parse, as a patch file
    patch = parse_patch(render_patch(Patch(name="p.patch", files=(fp,))), name="p.patch")
    whole = apply_patch({"f": old}, patch)
    assert (whole.status, whole.contents) == (PatchStatus.APPLIED, {"f": new})


def _stdlib_diff(old: bytes, new: bytes) -> bytes:
    """What ``difflib.unified_diff`` writes, with the no-newline markers it leaves out."""
    a = old.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    b = new.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(a, b, "a/f", "b/f"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out).encode("utf-8", "surrogateescape")


_SAFE_POOL = (
    *tuple(line for line in UNIQUE_POOL[:12]),
    b"\n",
    b"x\r\n",
    b"\xff\n",
    b"dup\n",
    b"dup\n",
)


@SETTINGS
@given(content_pairs(pool=_SAFE_POOL))
def test_stdlib_difflib_output_parses_and_applies(pair: tuple[bytes, bytes]) -> None:
    old, new = pair  # this pool has no \r or \f inside lines, which str.splitlines would split on
    text = _stdlib_diff(old, new)
    patch = parse_patch(b"Description: from difflib\n\n" + text, name="d.patch")
    result = apply_patch({"f": old}, patch)
    if old == new:
        assert patch.files == ()
        return
    assert result.status is PatchStatus.APPLIED
    assert result.contents == {"f": new}


@SETTINGS
@given(contents(), st.data())
def test_patch_applied_twice_is_already_applied(old: bytes, data: st.DataObject) -> None:
    new = data.draw(edited(old))
    fp = unified_diff(old, new, "f")
    if fp is None or not fp.hunks:
        return
    once = apply_file_patch(old, fp)
    assert once.content == new
    twice = apply_file_patch(new, fp)
    # Re-applying either finds the change already there or (rarely, with repeated lines) elsewhere;
    # it never silently "applies" exactly where the patch says.
    assert twice.status is not PatchStatus.APPLIED or twice.content != new


def _git_apply_check(workdir: Path, target: bytes, patch: bytes) -> bool:
    (workdir / "f").write_bytes(target)
    (workdir / "p.patch").write_bytes(patch)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    proc = subprocess.run(
        ["git", "apply", "--check", "p.patch"],
        cwd=workdir,
        env=env,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


@SETTINGS
@given(unique_contents(), st.data())
def test_apply_agrees_with_git_apply_check(body: bytes, data: st.DataObject) -> None:
    # Edits stay between a fixed head and tail, so hunks get full context on both sides.
    head = b"".join(b"head %d\n" % i for i in range(5))
    tail = b"".join(b"tail %d\n" % i for i in range(5))
    body = body if body.endswith(b"\n") else body + b"\n"
    old = head + body + tail
    new = head + data.draw(edited(body, pool=UNIQUE_POOL[100:150], min_ops=1)) + tail
    # the release moved on independently
    target = head + data.draw(edited(body, pool=UNIQUE_POOL[150:])) + tail
    fp = unified_diff(old, new, "f")
    if fp is None or not fp.hunks:
        event("skip: no change")
        return
    # Known, deliberate differences from git, where we follow GNU patch: a hunk with
    # less context on one side is anchored to that end of the file (git anchors only
    # hunks at line 1 or without trailing context), and an unterminated context line
    # needs fuzz to match a terminated one. With equal context both sides, a no-fuzz
    # apply must agree with git.
    if any(h.leading_context != h.trailing_context or h.old_start <= 1 for h in fp.hunks):
        event("skip: asymmetric context")
        return
    ours = apply_file_patch(target, fp, max_fuzz=0).status
    event(f"ours: {ours.value}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        subprocess.run(["git", "init", "-q", str(workdir)], check=True, capture_output=True)
        theirs = _git_apply_check(workdir, target, render_patch(Patch(name="p.patch", files=(fp,))))
    assert (ours in (PatchStatus.APPLIED, PatchStatus.OFFSET)) == theirs, (ours, theirs)
