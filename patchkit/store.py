"""The git store: every git operation patchkit performs lives here.

The store is a bare repository (default `.patchkit/store.git`). Each imported release
is a commit at `refs/patchkit/upstream/<version>` whose tree is the image's root
filesystem; its message carries the source, digest and layer digests as trailers.
Rebase worktrees are linked worktrees of the same repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import StoreError
from .model import ReleaseInfo

__all__ = [
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_LINK",
    "BlobReader",
    "FastImport",
    "Store",
    "TreeEntry",
    "git_blob_id",
]

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000

UPSTREAM_PREFIX = "refs/patchkit/upstream/"
MANIFEST_PREFIX = "refs/patchkit/manifest/"

# Pinned so that the same import or series always produces the same commit ids.
_IDENT = "patchkit <patchkit@localhost>"
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "patchkit",
    "GIT_AUTHOR_EMAIL": "patchkit@localhost",
    "GIT_COMMITTER_NAME": "patchkit",
    "GIT_COMMITTER_EMAIL": "patchkit@localhost",
    "GIT_AUTHOR_DATE": "1970-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "1970-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob with this content."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def _quote_path(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    if not (b'"' in raw or b"\n" in raw or b"\\" in raw or raw.startswith(b'"')):
        return raw
    out = bytearray(b'"')
    for byte in raw:
        ch = bytes([byte])
        if ch in (b'"', b"\\"):
            out += b"\\" + ch
        elif ch == b"\n":
            out += b"\\n"
        else:
            out += ch
    out += b'"'
    return bytes(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeEntry:
    mode: int  # MODE_FILE, MODE_EXEC or MODE_LINK
    blob: str  # 40-hex git blob id


class FastImport:
    """A `git fast-import` session: blobs are streamed in, trees assembled from ids.

    Blob ids are computed here while streaming, so callers never wait for git.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        assert proc.stdin is not None
        self._out: IO[bytes] = proc.stdin
        self._sent: set[str] = set()
        self._mark = 0

    def blob(self, data: bytes) -> str:
        """Store a small blob given whole; return its id."""
        oid = git_blob_id(data)
        if oid not in self._sent:
            self._out.write(b"blob\ndata %d\n" % len(data))
            self._out.write(data)
            self._out.write(b"\n")
            self._sent.add(oid)
        return oid

    def blob_stream(self, size: int, chunks: Iterable[bytes]) -> str:
        """Store a blob of a known size from a stream of chunks; return its id.

        The content is written to git as it arrives; the id is computed on the way.
        Raises StoreError if the chunks do not add up to ``size``.
        """
        h = hashlib.sha1(b"blob %d\0" % size)
        self._out.write(b"blob\ndata %d\n" % size)
        seen = 0
        for chunk in chunks:
            seen += len(chunk)
            if seen > size:
                raise StoreError(f"blob stream longer than its declared size {size}")
            h.update(chunk)
            self._out.write(chunk)
        if seen != size:
            raise StoreError(f"blob stream ended after {seen} of {size} bytes")
        self._out.write(b"\n")
        oid = h.hexdigest()
        self._sent.add(oid)
        return oid

    def commit(
        self,
        ref: str,
        files: Mapping[str, TreeEntry],
        message: str,
        *,
        parent: str | None = None,
    ) -> None:
        """Write a commit at ``ref`` whose tree is exactly ``files`` (path -> entry)."""
        self._commit(ref, message, parent=parent, changes=files, replace_all=True)

    def commit_changes(
        self,
        ref: str,
        changes: Mapping[str, TreeEntry | None],
        message: str,
        *,
        parent: str,
    ) -> int:
        """Write a commit on top of ``parent`` changing only ``changes`` (None deletes).

        Returns the commit's mark; `Store.fast_import(marks=...)` maps marks to ids.
        """
        return self._commit(ref, message, parent=parent, changes=changes, replace_all=False)

    def _commit(
        self,
        ref: str,
        message: str,
        *,
        parent: str | None,
        changes: Mapping[str, TreeEntry | None] | Mapping[str, TreeEntry],
        replace_all: bool,
    ) -> int:
        self._mark += 1
        msg = message.encode("utf-8")
        w = self._out.write
        w(b"commit %s\n" % ref.encode())
        w(b"mark :%d\n" % self._mark)
        w(b"committer %s 0 +0000\n" % _IDENT.encode())
        w(b"data %d\n" % len(msg))
        w(msg + b"\n")
        if parent:
            w(b"from %s\n" % parent.encode())
        if replace_all:
            w(b"deleteall\n")
        for path in sorted(changes):
            entry = changes[path]
            if entry is None:
                w(b"D %s\n" % _quote_path(path))
            else:
                w(b"M %o %s %s\n" % (entry.mode, entry.blob.encode(), _quote_path(path)))
        w(b"\n")
        return self._mark

    def close(self) -> None:
        self._out.write(b"done\n")
        self._out.close()


class BlobReader:
    """Reads many blobs through one long-lived `git cat-file --batch`."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._in = proc.stdin
        self._outp = proc.stdout

    def read(self, spec: str) -> bytes | None:
        """Content of ``spec`` (`<rev>:<path>` or an object id), or None if absent.

        Directories and submodules count as absent: only blobs are content.
        """
        if "\n" in spec:
            return None
        self._in.write(spec.encode("utf-8", "surrogateescape") + b"\n")
        self._in.flush()
        header = self._outp.readline()
        if not header:
            raise StoreError("git cat-file ended unexpectedly")
        parts = header.split()
        if len(parts) == 2 and parts[1] in (b"missing", b"ambiguous"):
            return None
        if len(parts) != 3:
            raise StoreError(f"unexpected git cat-file answer: {header!r}")
        size = int(parts[2])
        data = self._outp.read(size)
        self._outp.read(1)  # the LF after the content
        if parts[1] != b"blob":
            return None
        return data


class Store:
    """The git repository under `.patchkit/` that holds imported releases."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        path = Path(path)
        if not (path / "HEAD").exists():
            if not create:
                raise StoreError(f"{path}: no patchkit store here")
            path.mkdir(parents=True, exist_ok=True)
            import git  # GitPython: only to create a store, so every other command starts faster

            try:
                with git.Repo.init(path, bare=True) as repo, repo.config_writer() as cfg:
                    cfg.set_value("core", "logAllRefUpdates", "false")
                    cfg.set_value("gc", "auto", "0")
                    cfg.set_value("user", "name", "patchkit")
                    cfg.set_value("user", "email", "patchkit@localhost")
            except git.GitError as e:
                raise StoreError(f"{path}: cannot create git store: {e}") from e
        return cls(path)

    # -- running git -------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(_GIT_ENV)
        return env

    def git(
        self,
        *args: str,
        input: bytes | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git against the store (or a worktree of it when ``cwd`` is given)."""
        cmd = ["git"] if cwd is not None else ["git", "--git-dir", str(self.path)]
        try:
            proc = subprocess.run(
                [*cmd, *args],
                input=input,
                capture_output=True,
                cwd=cwd,
                env=self.env(),
                check=False,
            )
        except OSError as e:
            raise StoreError(f"cannot run git: {e}") from e
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise StoreError(f"git {args[0]} failed: {err[-1] if err else proc.returncode}")
        return proc

    def rev_parse(self, rev: str) -> str | None:
        proc = self.git("rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    @contextlib.contextmanager
    def fast_import(self, *, marks: Path | None = None) -> Iterator[FastImport]:
        """A fast-import session; on error nothing is referenced (refs update at the end).

        With ``marks``, the commit marks are written there (`:N <id>` lines) at the end.
        """
        extra = [f"--export-marks={marks}"] if marks else []
        proc = subprocess.Popen(
            [
                # No delta search and zlib level 1: 3x less CPU in git, flat memory
                # whatever the blob sizes (measured in docs/import-benchmark.md).
                "git", "--git-dir", str(self.path), "-c", "pack.compression=1", "fast-import",
                "--quiet", "--done", "--force", "--big-file-threshold=1k", *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(),
        )
        session = FastImport(proc)
        try:
            yield session
        except BaseException:
            # Kill before "done": fast-import then updates no ref, so the store is unchanged.
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stderr):
                if pipe:
                    with contextlib.suppress(OSError):
                        pipe.close()
            raise
        with contextlib.suppress(BrokenPipeError):
            session.close()
        assert proc.stderr is not None
        with proc.stderr:
            err = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            raise StoreError(f"git fast-import failed: {err.splitlines()[-1] if err else '?'}")

    @contextlib.contextmanager
    def blob_reader(self) -> Iterator[BlobReader]:
        proc = subprocess.Popen(
            ["git", "--git-dir", str(self.path), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env(),
        )
        try:
            yield BlobReader(proc)
        finally:
            for pipe in (proc.stdin, proc.stdout):
                if pipe:
                    with contextlib.suppress(OSError):
                        pipe.close()
            proc.wait()

    # -- releases ------------------------------------------------------------

    @staticmethod
    def release_ref(version: str) -> str:
        return UPSTREAM_PREFIX + version

    def release(self, version: str) -> ReleaseInfo | None:
        """What the store holds for ``version``, or None if it was never imported."""
        commit = self.rev_parse(self.release_ref(version))
        if commit is None:
            return None
        raw = self.git("cat-file", "commit", commit).stdout.decode("utf-8", "replace")
        headers, _, message = raw.partition("\n\n")
        tree = next(line.split()[1] for line in headers.splitlines() if line.startswith("tree "))
        fields: dict[str, list[str]] = {}
        for line in message.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key.startswith("Patchkit-"):
                fields.setdefault(key, []).append(value.strip())
        return ReleaseInfo(
            version=version,
            commit=commit,
            tree=tree,
            source=fields.get("Patchkit-Source", [""])[0],
            digest=fields.get("Patchkit-Digest", [""])[0],
            layers=tuple(fields.get("Patchkit-Layer", [])),
            manifest_blob=fields.get("Patchkit-Manifest", [None])[0],
        )

    def imported_versions(self) -> set[str]:
        out = self.git("for-each-ref", "--format=%(refname)", UPSTREAM_PREFIX).stdout.decode()
        return {line[len(UPSTREAM_PREFIX) :] for line in out.splitlines() if line}

    @staticmethod
    def release_message(
        version: str,
        *,
        source: str,
        digest: str,
        layers: Iterable[str] = (),
        manifest_blob: str | None = None,
    ) -> str:
        lines = [
            f"patchkit: upstream {version}",
            "",
            f"Patchkit-Version: {version}",
            f"Patchkit-Source: {source}",
            f"Patchkit-Digest: {digest}",
        ]
        lines += [f"Patchkit-Layer: {layer}" for layer in layers]
        if manifest_blob:
            lines.append(f"Patchkit-Manifest: {manifest_blob}")
        return "\n".join(lines) + "\n"

    def delete_refs(self, prefix: str) -> None:
        out = self.git("for-each-ref", "--format=%(refname)", prefix).stdout.decode()
        for ref in out.splitlines():
            self.git("update-ref", "-d", ref, check=False)

    def diff(self, old: str, new: str, *, src_prefix: str, dst_prefix: str, context: int = 3) -> bytes:
        """`git diff` between two commits, in a stable, plain form (no color, no renames)."""
        return self.git(
            "-c", "diff.algorithm=histogram", "diff", "--no-color", "--no-ext-diff", "--no-renames",
            "--no-textconv", f"-U{context}", f"--src-prefix={src_prefix}",
            f"--dst-prefix={dst_prefix}", old, new,
        ).stdout

    def ls_tree(self, rev: str, paths: Iterable[str] | None = None) -> dict[str, TreeEntry]:
        """Every blob of ``rev``'s tree (or of ``paths`` in it), recursively: path -> entry."""
        selected = list(paths) if paths is not None else []
        if paths is not None and not selected:
            return {}
        args = ["ls-tree", "-r", "-z", "--full-tree", rev]
        if selected:
            args += ["--", *[":(literal)" + p for p in selected]]
        out = self.git(*args).stdout
        entries: dict[str, TreeEntry] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, oid = meta.split()
            if kind != b"blob":
                continue
            entries[path.decode("utf-8", "surrogateescape")] = TreeEntry(
                mode=int(mode, 8), blob=oid.decode()
            )
        return entries

    def ref_targets(self, prefix: str) -> dict[str, str]:
        """ref name -> object id, for every ref under ``prefix`` (one `git for-each-ref`)."""
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", prefix).stdout.decode()
        refs: dict[str, str] = {}
        for line in out.splitlines():
            oid, _, name = line.partition(" ")
            if name:
                refs[name] = oid
        return refs

    def missing_objects(self, oids: Iterable[str]) -> set[str]:
        """Those of ``oids`` the repository lacks (one `git cat-file --batch-check`)."""
        wanted = sorted(set(oids))
        if not wanted:
            return set()
        proc = self.git("cat-file", "--batch-check", input="".join(o + "\n" for o in wanted).encode())
        return {
            line.split()[0] for line in proc.stdout.decode().splitlines() if line.endswith(" missing")
        }


class Worktree:
    """A linked worktree of the store, checked out sparsely on the paths patches touch."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path

    def git(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return self.store.git(*args, cwd=self.path, check=check, input=input)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.decode().strip()

    def unmerged(self) -> list[str]:
        out = self.git("diff", "--name-only", "-z", "--diff-filter=U").stdout
        return sorted({p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p})

    def cherry_pick(self, commit: str) -> tuple[bool, str]:
        """3-way pick of ``commit`` without committing; (ok, git's message)."""
        proc = self.git(
            "-c", "merge.conflictStyle=zdiff3", "-c", "diff.algorithm=histogram",
            "cherry-pick", "--no-commit", "--allow-empty", commit, check=False,
        )
        msg = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        return proc.returncode == 0, msg

    def quit_pick(self) -> None:
        self.git("cherry-pick", "--quit", check=False)

    def index_matches_head(self) -> bool:
        return self.git("diff", "--cached", "--quiet", "HEAD", check=False).returncode == 0

    def add_all(self) -> None:
        self.git("add", "-A", "--sparse", ".")

    def commit(self, message: str) -> str:
        self.git("commit", "-q", "--no-verify", "--allow-empty", "-F", "-", input=message.encode())
        return self.head()

    def reset_hard(self, commit: str) -> None:
        self.git("reset", "-q", "--hard", commit)

    def dirty(self) -> bool:
        return bool(self.git("status", "--porcelain").stdout.strip())

    def pick(self, commit: str, *, algorithm: str = "histogram") -> tuple[bool, str]:
        """Like :meth:`cherry_pick`, with another diff algorithm (histogram, patience, minimal, myers)."""
        proc = self.git(
            "-c", "merge.conflictStyle=zdiff3", "-c", f"diff.algorithm={algorithm}",
            "cherry-pick", "--no-commit", "--allow-empty", "-X", f"diff-algorithm={algorithm}",
            commit, check=False,
        )
        msg = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        return proc.returncode == 0, msg

    def reset_soft(self, commit: str) -> None:
        """Move HEAD to ``commit``, keeping the index and the files."""
        self.git("reset", "-q", "--soft", commit)

    def add_paths(self, paths: Iterable[str]) -> None:
        selected = list(paths)
        if selected:
            self.git("add", "--sparse", "--", *selected)

    def changed_paths(self, commit: str) -> list[str]:
        """Files that differ from ``commit`` (staged, unstaged or untracked)."""
        out = self.git("diff", "--name-only", "-z", commit).stdout
        out += self.git("ls-files", "--others", "--exclude-standard", "-z").stdout
        return sorted({p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p})


def _enable_worktree_config(store: Store) -> None:
    """Per-worktree config (for sparse checkout); `core.bare` must then live in the bare
    repository's own config.worktree, or every linked worktree would count as bare."""
    if store.git("config", "--get", "extensions.worktreeConfig", check=False).stdout.strip() == b"true":
        return
    store.git("config", "--unset", "core.bare", check=False)
    store.git("config", "extensions.worktreeConfig", "true")
    store.git("config", "--worktree", "core.bare", "true")


def _sparse_pattern(path: str) -> str:
    escaped = "".join("\\" + c if c in "*?[]\\!# " else c for c in path)
    return "/" + escaped


def _worktree_add(store: Store, path: Path, commit: str, paths: Iterable[str]) -> Worktree:
    _enable_worktree_config(store)
    store.git("worktree", "prune")
    store.git("worktree", "add", "-q", "--no-checkout", "--detach", str(path), commit)
    wt = Worktree(store, path)
    wt.git("config", "--worktree", "core.sparseCheckout", "true")
    patterns = sorted({_sparse_pattern(p) for p in paths}) or ["/.patchkit-nothing"]
    info = Path(wt.git("rev-parse", "--git-path", "info").stdout.decode().strip())
    if not info.is_absolute():
        info = path / info
    info.mkdir(parents=True, exist_ok=True)
    (info / "sparse-checkout").write_text("\n".join(patterns) + "\n", encoding="utf-8")
    wt.git("checkout", "-q", "--detach", commit)
    return wt


def worktree_add(store: Store, path: Path, commit: str, paths: Iterable[str]) -> Worktree:
    """Check ``commit`` out at ``path``, only the files in ``paths`` (sparse)."""
    return _worktree_add(store, path, commit, paths)


def worktree_remove(store: Store, path: Path) -> None:
    store.git("worktree", "remove", "--force", str(path), check=False)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    store.git("worktree", "prune", check=False)
