"""The unified diff a change made: what ``patchkit materialize`` prints (pure).

Any kind's effect on one release is a set of files before and after; this turns it into a
diff file whose header carries the change's own header over, DEP-3 style (``Description:``,
``Upstream-Versions:`` and every other header key), so that ``--replace`` loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from patchkit.core.apply import unified_diff
from patchkit.core.patchfile import FilePatch, Patch, render_patch

__all__ = ["diff_of"]


def diff_of(
    name: str,
    header: str,
    before: Mapping[str, bytes | None],
    after: Mapping[str, bytes | None],
    *,
    old_modes: Mapping[str, str | None] | None = None,
    new_modes: Mapping[str, str] | None = None,
) -> bytes:
    """A diff file turning ``before`` into ``after`` (paths in sorted order), with ``header``.

    ``old_modes``/``new_modes`` give the git modes on each side: created files get theirs, and
    a file whose mode changes gets ``old mode``/``new mode`` lines.
    """
    old_modes = old_modes or {}
    new_modes = new_modes or {}
    files: list[FilePatch] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        old_mode = old_modes.get(path) or "100644"
        new_mode = new_modes.get(path) or old_mode
        mode = new_mode if old is None else old_mode
        fp = unified_diff(old, new, path, mode=mode)
        if fp is None:
            if old is None or new is None or old_mode == new_mode:
                continue
            fp = FilePatch(old_path=path, new_path=path, hunks=(), raw_header_lines=())
        if old is not None and new is not None and old_mode != new_mode:
            fp = replace(fp, old_mode=old_mode, new_mode=new_mode)
        files.append(fp)
    return render_patch(Patch(name=name, header=header, files=tuple(files)))
