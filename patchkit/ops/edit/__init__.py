"""``patchkit edit`` and ``patchkit new``: the maintainer's authoring loop (docs/authoring.md).

The commands, one module each, every one a function of an :class:`~.session.EditSession`:

- :mod:`.opening`: ``edit [PATCH]``: the chain of commits and the sparse worktree, or re-open;
- :mod:`.save`: ``--save``: the person's changes collected, checked and amended;
- :mod:`.replay`: the later patches replayed; ``--continue`` and ``--abort`` of a stopped save;
- :mod:`.writeback`: the final chain written into ``patches/`` (files, series), swapped in;
- :mod:`.close`: ``--done`` and ``--discard``;
- :mod:`.status`: ``--status``;
- :mod:`.new`: ``patchkit new NAME``;
- :mod:`.editor`: :class:`Editor`, the one object ``Project`` calls them through.

What they share:

- :mod:`.session`: where one workspace's edit lives (state file, worktree, swap directories);
- :mod:`.recover`: what a killed command left, finished or undone first;
- :mod:`.worktree`: the worktree as git shows it (HEAD settled, sparse widened, chain, unsaved);
- :mod:`.guard`: refusals by phase (``edit_guard`` for rebase/import/refresh);
- :mod:`.compare`: patch file digests and commit diffs compared;
- :mod:`.outcome`: :class:`EditOutcome`, what a command did;
- :mod:`.state`: the typed, versioned state record in ``.patchkit/edit/state.json``;
- :mod:`.series`: ``patches/series`` following the worktree's commits (pure);
- :mod:`.messages`: commit messages, trailers and new patch names (pure);
- :mod:`.swap`: every file of ``patches/`` replaced at once (directory exchange).
"""

from patchkit.ops.edit.editor import Editor
from patchkit.ops.edit.guard import edit_guard, edit_in_progress
from patchkit.ops.edit.outcome import EditOutcome
from patchkit.ops.edit.status import EditStatus

__all__ = ["EditOutcome", "EditStatus", "Editor", "edit_guard", "edit_in_progress"]
