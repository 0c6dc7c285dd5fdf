"""Git plumbing of the edit worktree: a chain of commits written in one process, the diffs of
many commits read in one process, the commits between two, the worktree's sparse set and
its uncommitted files.

Everything runs with the store's pinned identity and dates (:mod:`patchkit.git.runner`), so
the same series always gives the same commit ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from patchkit.errors import StoreError
from patchkit.git.objects import TreeEntry
from patchkit.git.store import Store
from patchkit.git.worktree import Worktree, clear_worktree, enable_worktree_config

__all__ = [
    "ChainStep",
    "CommitDiff",
    "commit_chain",
    "commit_diffs",
    "commits_between",
    "empty_commit",
    "is_ancestor",
    "open_worktree",
    "paths_between",
    "raw_changes",
    "rewrite_messages",
    "sparse_patterns",
    "uncommitted_paths",
    "widen_sparse",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainStep:
    """One commit of a chain: its message and the files it changes (``None``: deleted;
    otherwise the git mode as an int and the content)."""

    message: str
    changes: Mapping[str, tuple[int, bytes | str] | None]  # a str: an existing blob's id


def commit_chain(store: Store, base: str, steps: Sequence[ChainStep], *, ref: str) -> list[str]:
    """Commit ``steps`` one on another from ``base``, in one `git fast-import` (one process
    for the whole series, where a temporary index would take four a commit); ``ref`` ends at
    the last. The commit ids, in order."""
    if not steps:
        store.git("update-ref", ref, base)
        return []
    marks = store.path / ("patchkit-" + ref.replace("/", "-") + ".marks")
    got: list[int] = []
    with store.fast_import(marks=marks) as fi:
        parent = base
        for step in steps:
            tree: dict[str, TreeEntry | None] = {}
            for path, change in step.changes.items():
                if change is None:
                    tree[path] = None
                    continue
                mode, data = change
                blob = data if isinstance(data, str) else fi.blob(data)
                tree[path] = TreeEntry(mode=mode, blob=blob)
            got.append(fi.commit_changes(ref, tree, step.message, parent=parent))
            parent = f":{got[-1]}"
    by_mark: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, _, oid = line.partition(" ")
        by_mark[int(mark[1:])] = oid
    marks.unlink()
    return [by_mark[m] for m in got]


def empty_commit(store: Store, parent: str, message: str) -> str:
    """A commit with ``parent``'s tree (no change), pinned identity and dates."""
    proc = store.git("commit-tree", f"{parent}^{{tree}}", "-p", parent, input=message.encode())
    return proc.stdout.decode().strip()


def rewrite_messages(
    store: Store, chain: Sequence[tuple[str, str]], new_messages: Mapping[str, str]
) -> dict[str, str]:
    """Give the commits of ``chain`` ((commit, parent), oldest first) named in
    ``new_messages`` their new message; the commits after them are made again on the new
    ones (same trees, same messages). Old id -> new id, for every commit that changed."""
    moved: dict[str, str] = {}
    for commit, parent in chain:
        new_parent = moved.get(parent, parent)
        if commit not in new_messages and new_parent == parent:
            continue
        message = new_messages.get(commit)
        if message is None:
            message = store.git("log", "-1", "--format=%B", commit).stdout.decode(
                "utf-8", "surrogateescape"
            )
        proc = store.git(
            "commit-tree",
            f"{commit}^{{tree}}",
            "-p",
            new_parent,
            input=message.encode("utf-8", "surrogateescape"),
        )
        moved[commit] = proc.stdout.decode().strip()
    return moved


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitDiff:
    """A commit, its parents, its message and the diff from its first parent."""

    commit: str
    parents: tuple[str, ...]
    message: str
    diff: bytes


def commit_diffs(
    store: Store, commits: Iterable[str], *, src_prefix: str = "a/", dst_prefix: str = "b/"
) -> dict[str, CommitDiff]:
    """The diff of each of ``commits`` from its first parent, in one `git diff-tree --stdin`
    (plain form: histogram, no renames, no color)."""
    wanted = list(dict.fromkeys(commits))
    if not wanted:
        return {}
    out = store.git(
        "-c",
        "diff.algorithm=histogram",
        "diff-tree",
        "--stdin",
        "-p",
        "-r",
        "--root",
        "--always",
        "--no-renames",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        f"--src-prefix={src_prefix}",
        f"--dst-prefix={dst_prefix}",
        "--format=%x00%x00%H %P%x00%B%x00",
        input="".join(c + "\n" for c in wanted).encode(),
    ).stdout
    found: dict[str, CommitDiff] = {}
    for chunk in out.split(b"\0\0")[1:]:
        ids, message, diff = chunk.split(b"\0", 2)
        commit, *parents = ids.decode().split()
        found[commit] = CommitDiff(
            commit=commit,
            parents=tuple(parents),
            message=message.decode("utf-8", "surrogateescape"),
            diff=diff.lstrip(b"\n"),
        )
    missing = [c for c in wanted if c not in found]
    if missing:
        raise StoreError(f"git diff-tree: no output for {missing[0]}")
    return found


def raw_changes(
    store: Store, commits: Iterable[str]
) -> dict[str, dict[str, tuple[int, str] | None]]:
    """What each commit changes from its first parent: path -> (mode, blob id), ``None`` for a
    deletion; one `git diff-tree --stdin` for all of them."""
    wanted = list(dict.fromkeys(commits))
    out: dict[str, dict[str, tuple[int, str] | None]] = {c: {} for c in wanted}
    if not wanted:
        return out
    raw = store.git(
        "diff-tree", "--stdin", "-r", "-z", "--raw", "--no-renames", "--root",
        input="".join(c + "\n" for c in wanted).encode(),
    ).stdout  # fmt: skip
    fields = raw.split(b"\0")
    current: dict[str, tuple[int, str] | None] | None = None
    i = 0
    while i < len(fields):
        field = fields[i]
        if field.startswith(b":"):
            _old_mode, new_mode, _old, new, status = field[1:].decode().split()
            path = fields[i + 1].decode("utf-8", "surrogateescape")
            assert current is not None
            current[path] = None if status == "D" else (int(new_mode, 8), new)
            i += 2
            continue
        if field.strip():
            current = out.setdefault(field.decode().strip(), {})
        i += 1
    return out


def paths_between(store: Store, old: str, new: str) -> set[str]:
    """Paths that differ between two commits."""
    if old == new:
        return set()
    out = store.git("diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new).stdout
    return {p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p}


def is_ancestor(store: Store, old: str, new: str) -> bool:
    return store.git("merge-base", "--is-ancestor", old, new, check=False).returncode == 0


def commits_between(store: Store, base: str, head: str) -> list[tuple[str, tuple[str, ...]]]:
    """(commit, parents) of every commit after ``base`` up to ``head``, oldest first."""
    out = store.git("rev-list", "--reverse", "--parents", f"{base}..{head}").stdout.decode()
    rows = []
    for line in out.splitlines():
        commit, *parents = line.split()
        rows.append((commit, tuple(parents)))
    return rows


def _sparse_file(wt: Worktree) -> Path:
    """The worktree's own sparse-checkout file. (``--git-path info`` names the store's shared
    info/ directory, which a linked worktree does not read its patterns from.)"""
    path = Path(wt.git("rev-parse", "--git-path", "info/sparse-checkout").stdout.decode().strip())
    return path if path.is_absolute() else wt.path / path


def _no_step(name: str) -> None:
    pass


def open_worktree(
    store: Store,
    path: Path,
    commit: str,
    paths: Iterable[str],
    *,
    step: Callable[[str], None] = _no_step,
) -> Worktree:
    """A linked worktree of the store at ``path``, HEAD detached at ``commit``, checked out
    sparsely (non-cone patterns: exactly ``paths``). Whatever an earlier, interrupted add
    left is cleared first; ``step(name)`` runs between the git commands (checkpoints)."""
    clear_worktree(store, path)
    enable_worktree_config(store)
    step("edit worktree: add")
    store.git("worktree", "add", "-q", "--no-checkout", "--detach", str(path), commit)
    wt = Worktree(store, path)
    step("edit worktree: sparse")
    wt.git("config", "--worktree", "core.sparseCheckout", "true")
    wt.git("config", "--worktree", "core.sparseCheckoutCone", "false")
    sparse = _sparse_file(wt)
    sparse.parent.mkdir(parents=True, exist_ok=True)
    patterns = sorted({_pattern(p) for p in paths}) or [_NOTHING]
    sparse.write_text("\n".join(patterns) + "\n", encoding="utf-8")
    step("edit worktree: checkout")
    wt.git("checkout", "-q", "--detach", commit)
    return wt


_NOTHING = "/.patchkit-nothing"


def _pattern(path: str) -> str:
    return "/" + "".join("\\" + c if c in "*?[]\\!# " else c for c in path)


def sparse_patterns(wt: Worktree) -> set[str]:
    """The worktree's sparse-checkout patterns (non-cone: one exact path each)."""
    try:
        text = _sparse_file(wt).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def widen_sparse(wt: Worktree, paths: Iterable[str]) -> bool:
    """Add exact ``paths`` to the sparse set and check them out (uncommitted changes stay);
    whether anything was added."""
    have = sparse_patterns(wt)
    new = {_pattern(p) for p in paths} - have
    if not new:
        return False
    sparse = _sparse_file(wt)
    sparse.parent.mkdir(parents=True, exist_ok=True)
    patterns = sorted((have - {_NOTHING}) | new)
    sparse.write_text("\n".join(patterns) + "\n", encoding="utf-8")
    wt.git("sparse-checkout", "reapply")
    return True


def uncommitted_paths(wt: Worktree) -> list[str]:
    """Files that differ from HEAD in the worktree or index (tracked, or new and not ignored)."""
    out = wt.git("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames").stdout
    paths: set[str] = set()
    for record in out.split(b"\0"):
        if len(record) > 3:
            paths.add(record[3:].decode("utf-8", "surrogateescape"))
    return sorted(paths)
