"""`patchkit watch` for people: one table of what changed upstream, and what to do about it."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from patchkit.core.watch import WatchResult

__all__ = ["watch_table"]


def _short(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"{algo}:{hexd[:12]}"


def watch_table(result: WatchResult) -> RenderableType:
    """The new, re-pushed and vanished releases, then one line saying what to do next."""
    head = Text(f"{result.image}: {result.tags} tags")
    if not result.attention:
        head.append(" - nothing new; no tracked tag moved or vanished", style="green")
        return head
    table = Table(title_justify="left", show_edge=False)
    for column in ("", "release", "digest", "note"):
        table.add_column(column)
    for n in result.new:
        note = "newer than base" if n.newer_than_base else ""
        if n.version in result.imported:
            note = ", ".join(filter(None, [note, "imported"]))
        table.add_row(Text("new", style="cyan"), n.version, _short(n.digest), note)
    for r in result.repushed:
        table.add_row(
            Text("re-pushed", style="bold red"),
            r.version,
            f"{_short(r.recorded)} -> {_short(r.current)}",
            "recorded -> now",
        )
    for v in result.vanished:
        table.add_row(Text("vanished", style="yellow"), v.version, "", "no longer listed")
    lines: list[RenderableType] = [head, table]
    if result.new:
        if result.applied:
            lines.append(
                Text(f"added {len(result.new)} release(s) to upstream-versions.toml", style="green")
            )
        else:
            lines.append(Text("patchkit watch --apply adds them to upstream-versions.toml"))
    if result.repushed:
        lines.append(
            Text(
                "a re-pushed tag is never taken silently: compare (track the new digest under "
                "another label, patchkit diff --touched), then take it (patchkit import V "
                "--replace) or pin the recorded digest in its source (docs/cli.md, watch)",
                style="yellow",
            )
        )
    if result.vanished:
        lines.append(
            Text(
                "a vanished tag: pin its source to the recorded digest (docker://NAME@sha256:...), "
                "or drop the release from upstream-versions.toml",
                style="yellow",
            )
        )
    return Group(*lines)
