"""The `watch` table for people (rendered as text, no colour)."""

from __future__ import annotations

import io

from rich.console import Console

from patchkit.core.watch import NewRelease, Repushed, Vanished, WatchResult
from patchkit.output.watch import watch_table

A, B, C = ("sha256:" + c * 64 for c in "abc")


def render(result: WatchResult) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(watch_table(result))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_nothing_to_do_is_one_line() -> None:
    assert render(WatchResult(image="oci:mirror", tags=3)) == (
        "oci:mirror: 3 tags - nothing new; no tracked tag moved or vanished\n"
    )


def test_each_finding_is_a_row_and_says_what_to_do() -> None:
    result = WatchResult(
        image="docker://docker.io/analogic/poste.io",
        tags=312,
        new=(NewRelease(version="2.5.25", digest=A, newer_than_base=True),),
        repushed=(Repushed(version="2.5.24", recorded=B, current=C),),
        vanished=(Vanished(version="2.5.5"),),
    )
    text = render(result)
    assert text.startswith("docker://docker.io/analogic/poste.io: 312 tags\n")
    assert "new       │ 2.5.25  │ sha256:aaaaaaaaaaaa" in text and "newer than base" in text
    assert "sha256:bbbbbbbbbbbb -> sha256:cccccccccccc" in text
    assert "vanished  │ 2.5.5" in text
    assert "patchkit watch --apply adds them" in text
    assert "never taken silently" in text and "pin its source to the recorded digest" in text
    applied = render(WatchResult(image="x", new=result.new, applied=True, imported=("2.5.25",)))
    assert "added 1 release(s) to upstream-versions.toml" in applied
    assert "newer than base, imported" in applied
