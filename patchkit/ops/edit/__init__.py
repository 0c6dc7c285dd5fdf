"""``patchkit edit`` and ``patchkit new``: the maintainer's authoring loop (docs/authoring.md).

- :mod:`.editor`: the commands (open, save, continue, abort, done, discard, status, new);
- :mod:`.state`: the typed, versioned state record in ``.patchkit/edit/state.json``;
- :mod:`.series`: ``patches/series`` following the worktree's commits (pure);
- :mod:`.messages`: commit messages, trailers and new patch names (pure);
- :mod:`.swap`: every file of ``patches/`` replaced at once (directory exchange).
"""

from patchkit.ops.edit.editor import (
    Editor,
    EditOutcome,
    EditStatus,
    edit_guard,
    edit_in_progress,
)

__all__ = ["EditOutcome", "EditStatus", "Editor", "edit_guard", "edit_in_progress"]
