"""The git store: every git operation patchkit performs lives here.

The store is a bare repository (default `.patchkit/store.git`). Each imported release
is a commit at `refs/patchkit/upstream/<version>` whose tree is the image's root
filesystem; its message carries the source, digest and layer digests as trailers.
Rebase worktrees are linked worktrees of the same repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import queue
import re
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from patchkit.core.model import ReleaseInfo
from patchkit.errors import StoreError

__all__ = [
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_LINK",
    "BlobReader",
    "FastImport",
    "PackWriter",
    "Store",
    "TreeEntry",
    "git_blob_id",
]

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000

_HEX40 = re.compile(r"\A[0-9a-f]{40}\Z")

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
    With a `PackWriter` (`Store.fast_import(pack=True)`), objects go to that pack
    instead and `refs` lists the refs to set once the pack is in the store.
    """

    def __init__(self, out: IO[bytes], pack: PackWriter | None = None) -> None:
        self._out = out
        self._pack = pack
        self._sent: set[str] = set()
        self._mark = 0
        self.refs: list[tuple[str, str]] = []  # with a pack: (ref, commit id) to set at the end

    def blob(self, data: bytes) -> str:
        """Store a small blob given whole; return its id."""
        if self._pack is not None:
            return self._pack.add(data)
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
        if self._pack is not None:
            return self._pack.add_stream(size, chunks)
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
        if self._pack is not None:
            if not replace_all:
                raise StoreError("commit_changes needs a plain fast-import session")
            # As fast-import does: a branch committed to earlier in the session continues.
            earlier = [oid for name, oid in self.refs if name == ref]
            parent = parent or (earlier[-1] if earlier else None)
            self.refs.append((ref, self._pack_commit(message, parent, changes)))
            return self._mark
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

    def _pack_commit(
        self, message: str, parent: str | None, files: Mapping[str, TreeEntry | None]
    ) -> str:
        """The commit `git fast-import` writes for ``commit``, written to the pack."""
        assert self._pack is not None
        tree = self._pack.add_tree({p: e for p, e in files.items() if e is not None})
        ident = _IDENT.encode() + b" 0 +0000"
        body = b"tree %s\n" % tree.encode()
        if parent:
            if not _HEX40.match(parent):
                raise StoreError(f"parent {parent!r} is not a commit id")
            body += b"parent %s\n" % parent.encode()
        body += b"author %s\ncommitter %s\n\n%s" % (ident, ident, message.encode("utf-8"))
        return self._pack.add_object(_OBJ_COMMIT, body)

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
        self._trees: dict[str, dict[str, tuple[bytes, str]] | None] = {}  # tree id -> entries
        self._paths: dict[str, list[str]] = {}  # tree id -> every blob path below it

    def read(self, spec: str) -> bytes | None:
        """Content of ``spec`` (`<rev>:<path>` or an object id), or None if absent.

        Directories and submodules count as absent: only blobs are content.
        """
        if "\n" in spec:
            return None
        return self._read_specs([spec])[0]

    def read_many(self, tree: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        """Blobs of ``paths`` in ``tree``, pipelined: many requests per round trip, not one."""
        out: dict[str, bytes | None] = {p: None for p in paths if "\n" in p}
        wanted = [p for p in paths if "\n" not in p]
        out.update(zip(wanted, self._read_specs([f"{tree}:{p}" for p in wanted]), strict=True))
        return out

    def read_objects(self, oids: Sequence[str]) -> dict[str, bytes | None]:
        """Blobs by object id, pipelined like ``read_many``; None for a missing one."""
        return dict(zip(oids, self._read_specs(list(oids)), strict=True))

    def blob_ids(self, specs: Sequence[tuple[str, str]]) -> list[str | None]:
        """Object ids of (tree, path) pairs; None where absent or not a blob (a directory, a submodule).

        Trees are read and parsed here, each once per reader: releases share most subtrees,
        and git's own `tree:path` lookup re-reads every tree on the way for every path.
        """
        out: list[str | None] = [None] * len(specs)
        pending = [
            (k, tree, path.split("/"))
            for k, (tree, path) in enumerate(specs)
            if path and "\n" not in path
        ]
        while pending:
            self._load_trees({tree for _, tree, _ in pending})
            deeper = []
            for k, tree, parts in pending:
                entry = (self._trees.get(tree) or {}).get(parts[0])
                if entry is None:
                    continue
                mode, oid = entry
                if len(parts) == 1:
                    out[k] = oid if mode in _BLOB_MODES else None
                elif mode == b"40000":
                    deeper.append((k, oid, parts[1:]))
            pending = deeper
        return out

    def list_paths(self, tree: str, patterns: Sequence[str]) -> list[str]:
        """Paths of the blobs (files and symlinks) in ``tree`` that match any of ``patterns``
        (globs, image-root relative), sorted. Each tree object is read once per reader."""
        from patchkit.core.globs import glob_to_regex

        regexes = [glob_to_regex(p) for p in patterns]
        return [path for path in self._all_paths(tree) if any(r.match(path) for r in regexes)]

    def _all_paths(self, tree: str) -> list[str]:
        cached = self._paths.get(tree)
        if cached is not None:
            return cached
        out: list[str] = []
        pending = [(tree, "")]
        while pending:
            self._load_trees({t for t, _ in pending})
            deeper = []
            for t, prefix in pending:
                for name, (mode, oid) in (self._trees.get(t) or {}).items():
                    if mode == b"40000":
                        deeper.append((oid, f"{prefix}{name}/"))
                    elif mode in _BLOB_MODES:
                        out.append(prefix + name)
            pending = deeper
        out.sort()
        self._paths[tree] = out
        return out

    def _load_trees(self, ids: set[str]) -> None:
        wanted = sorted(t for t in ids if t not in self._trees)
        for tree, raw in zip(wanted, self._read_raw(wanted), strict=True):
            if raw is not None and raw[0] == b"commit":  # a commit stands for its tree
                root = raw[1].split(b"\n", 1)[0].split()[1].decode()
                self._load_trees({root})
                self._trees[tree] = self._trees[root]
                continue
            self._trees[tree] = (
                _parse_tree(raw[1]) if raw is not None and raw[0] == b"tree" else None
            )

    def _read_specs(self, specs: Sequence[str]) -> list[bytes | None]:
        return [
            raw[1] if raw is not None and raw[0] == b"blob" else None
            for raw in self._read_raw(specs)
        ]

    def _read_raw(self, specs: Sequence[str]) -> list[tuple[bytes, bytes] | None]:
        """(type, content) of each spec, pipelined; None for a missing one."""
        out: list[tuple[bytes, bytes] | None] = []
        step = 256  # requests in flight stay far below the pipe buffer: no deadlock
        for i in range(0, len(specs), step):
            chunk = specs[i : i + step]
            self._in.write(b"".join(s.encode("utf-8", "surrogateescape") + b"\n" for s in chunk))
            self._in.flush()
            for _ in chunk:
                line = self._outp.readline()
                if not line:
                    raise StoreError("git cat-file ended unexpectedly")
                if line.endswith((b" missing\n", b" ambiguous\n")):  # the spec may hold spaces
                    out.append(None)
                    continue
                header = line.split()
                if len(header) != 3:
                    raise StoreError(f"unexpected git cat-file answer: {line!r}")
                data = self._outp.read(int(header[2]))
                self._outp.read(1)
                out.append((header[1], data))
        return out


_BLOB_MODES = frozenset({b"100644", b"100755", b"120000"})


def _parse_tree(data: bytes) -> dict[str, tuple[bytes, str]]:
    """A raw git tree object: name -> (mode, object id)."""
    entries: dict[str, tuple[bytes, str]] = {}
    i, n = 0, len(data)
    while i < n:
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = (data[i:space], data[nul + 1 : nul + 21].hex())
        i = nul + 21
    return entries


def run_git_in(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """git in the maintainer's own repository at ``root`` (not the store), output captured.

    Raises StoreError only when git cannot be run at all; the caller reads returncode.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"})
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, env=env, check=False)
    except OSError as e:
        raise StoreError(f"cannot run git: {e}") from e


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

    def files_with_words(self, rev: str, words: Sequence[str]) -> list[str]:
        """Paths of text files of ``rev`` that hold any of ``words`` as a whole word.

        One `git grep -l`: fast even for hundreds of words (which word is where is for the
        caller to read; `git grep -o` with many words is ~100x slower).
        """
        if not words:
            return []
        args = ["grep", "-l", "-I", "-F", "-w", "--null", "--no-color"]
        for word in words:
            args += ["-e", word]
        proc = self.git(*args, rev, "--", check=False)
        if proc.returncode not in (0, 1):  # 1: no match
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise StoreError(f"git grep failed: {err[-1] if err else proc.returncode}")
        prefix = len(rev) + 1  # paths come as "<rev>:<path>"
        return [
            p.decode("utf-8", "surrogateescape")[prefix:] for p in proc.stdout.split(b"\0") if p
        ]

    def files_containing(self, rev: str, text: str) -> list[str]:
        """Paths of text files of ``rev`` that contain ``text`` (one line, as is; `git grep -l -F`)."""
        if not text or "\n" in text:
            return []
        proc = self.git(
            "grep", "-l", "-I", "-F", "--null", "--no-color", "-e", text, rev, "--", check=False
        )
        if proc.returncode not in (0, 1):
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise StoreError(f"git grep failed: {err[-1] if err else proc.returncode}")
        prefix = len(rev) + 1
        return [
            p.decode("utf-8", "surrogateescape")[prefix:] for p in proc.stdout.split(b"\0") if p
        ]

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Paths added or modified from ``old`` to ``new`` (commits or trees), no renames."""
        out = self.git(
            "diff-tree", "-r", "-z", "--name-only", "--no-renames", "--diff-filter=d", old, new
        ).stdout
        return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]

    def rev_parse(self, rev: str) -> str | None:
        proc = self.git("rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    @contextlib.contextmanager
    def fast_import(self, *, marks: Path | None = None, pack: bool = False) -> Iterator[FastImport]:
        """A fast-import session; on error nothing is referenced (refs update at the end).

        With ``marks``, the commit marks are written there (`:N <id>` lines) at the end.
        With ``pack``, every object (blobs, trees, commits: the same ids fast-import
        gives them) is written by a `PackWriter`, and the refs are set in one
        `git update-ref --stdin` transaction once the pack is in place; only `commit`
        is available then (not `commit_changes`, nor ``marks``).
        """
        if pack:
            with self._packed_import(marks) as session:
                yield session
            return
        extra = [f"--export-marks={marks}"] if marks else []
        proc = subprocess.Popen(
            [
                # No delta search and zlib level 1: 3x less CPU in git, flat memory
                # whatever the blob sizes (measured in docs/import-benchmark.md).
                "git",
                "--git-dir",
                str(self.path),
                "-c",
                "pack.compression=1",
                "fast-import",
                "--quiet",
                "--done",
                "--force",
                "--big-file-threshold=1k",
                *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(),
        )
        assert proc.stdin is not None
        session = FastImport(proc.stdin)
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
    def _packed_import(self, marks: Path | None) -> Iterator[FastImport]:
        if marks is not None:
            raise StoreError("marks need a plain fast-import session")
        writer = PackWriter(self.path)
        with open(os.devnull, "wb") as nowhere:
            session = FastImport(nowhere, pack=writer)
            try:
                yield session
            except BaseException:
                writer.abort()
                raise
        writer.finish()  # every object is in the store (unreferenced) from here on
        if session.refs:  # one transaction: every ref moves, or none
            final = dict(session.refs)  # a ref committed twice ends at its last commit
            updates = "".join(f"update {ref} {oid}\n" for ref, oid in final.items())
            self.git("update-ref", "--stdin", input=updates.encode())

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

    def diff(
        self, old: str, new: str, *, src_prefix: str, dst_prefix: str, context: int = 3
    ) -> bytes:
        """`git diff` between two commits, in a stable, plain form (no color, no renames)."""
        return self.git(
            "-c",
            "diff.algorithm=histogram",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--no-textconv",
            f"-U{context}",
            f"--src-prefix={src_prefix}",
            f"--dst-prefix={dst_prefix}",
            old,
            new,
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
        proc = self.git(
            "cat-file", "--batch-check", input="".join(o + "\n" for o in wanted).encode()
        )
        return {
            line.split()[0]
            for line in proc.stdout.decode().splitlines()
            if line.endswith(" missing")
        }


# -- writing packs directly ------------------------------------------------------------

_OBJ_COMMIT, _OBJ_TREE, _OBJ_BLOB = 1, 2, 3
_TYPE_NAMES = {_OBJ_COMMIT: b"commit", _OBJ_TREE: b"tree", _OBJ_BLOB: b"blob"}
_PACK_WHOLE = 1 << 20  # blobs up to this size are compressed in one call, bigger ones in chunks
_PACK_BATCH = 1 << 20  # small blobs are handed to the compressing thread in batches this big
_PACK_QUEUE = 8  # batches/chunks in flight between the reading and the compressing thread


def _deflate_module() -> Any:
    """python-isal when installed (`patchkit[fast]`: about 4x zlib's speed at level 1 with a
    similar ratio, docs/import-benchmark.md), else zlib. Both write zlib streams git reads."""
    try:
        from isal import isal_zlib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return zlib
    return isal_zlib


_DEFLATE: Any = _deflate_module()
_DEFLATE_LEVEL = 1


def _pack_header(type_: int, size: int) -> bytes:
    """A pack entry's header: 3-bit type and the size in a little-endian base-128 varint."""
    out = bytearray()
    byte = (type_ << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


class _PackedIds:
    """Which object ids the store already holds (packed or loose), read from the .idx files."""

    def __init__(self, objects: Path) -> None:
        self._loose: set[bytes] = set()
        with contextlib.suppress(OSError), os.scandir(objects) as top:
            for d in top:
                if len(d.name) == 2 and d.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        for name in os.listdir(d.path):
                            with contextlib.suppress(ValueError):
                                self._loose.add(bytes.fromhex(d.name + name))
        self._indexes: list[tuple[mmap.mmap, int]] = []
        for idx in sorted((objects / "pack").glob("pack-*.idx")):
            try:
                with open(idx, "rb") as f:
                    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                continue
            # v2 only (git writes nothing else since 1.5.2); anything else just means duplicates
            if len(m) >= 8 + 1024 and m[:8] == b"\377tOc\0\0\0\2":
                count = int.from_bytes(m[8 + 1020 : 8 + 1024], "big")
                if len(m) >= 8 + 1024 + 20 * count:
                    self._indexes.append((m, count))
                    continue
            m.close()

    def __contains__(self, oid: bytes) -> bool:
        if oid in self._loose:
            return True
        first = oid[0]
        for m, _ in self._indexes:
            lo = int.from_bytes(m[4 + 4 * first : 8 + 4 * first], "big") if first else 0
            hi = int.from_bytes(m[8 + 4 * first : 12 + 4 * first], "big")
            while lo < hi:
                mid = (lo + hi) // 2
                at = 8 + 1024 + 20 * mid
                probe = m[at : at + 20]
                if probe == oid:
                    return True
                if probe < oid:
                    lo = mid + 1
                else:
                    hi = mid
        return False

    def close(self) -> None:
        for m, _ in self._indexes:
            m.close()
        self._indexes = []


class PackWriter:
    """Writes blobs straight into a new pack of the store (pack v2, index v2).

    Ids are computed here (SHA-1, on the calling thread); compressing and writing
    happen on one background thread (zlib/isal release the GIL), fed in order
    through a small bounded queue, so memory stays flat. Blobs the store already
    has, or that this pack already holds, are not written again.

    Until `finish`, the pack is a `tmp_pack_*` file that git ignores (and `git gc`
    removes if a crash leaves it behind). `finish` fixes the object count, appends
    the checksum, writes the index, fsyncs both and renames the pack and then the
    index, so git never sees a pack without its index. `abort` removes the
    temporary file.
    """

    def __init__(self, git_dir: Path) -> None:
        self._pack_dir = git_dir / "objects" / "pack"
        self._pack_dir.mkdir(parents=True, exist_ok=True)
        self._existing = _PackedIds(git_dir / "objects")
        import tempfile  # only an import writes packs

        fd, name = tempfile.mkstemp(prefix="tmp_pack_pk_", dir=self._pack_dir)
        self._tmp = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._file.write(b"PACK\0\0\0\2\0\0\0\0")  # the count is fixed in `finish`
        self._offset = 12
        self._entries: list[tuple[bytes, int, int]] = []  # id, offset, crc32 (writer thread)
        self._ids: set[bytes] = set()  # written or queued
        self._batch: list[tuple[bytes, int, bytes]] = []
        self._batch_bytes = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_PACK_QUEUE)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="patchkit-pack", daemon=True)
        self._thread.start()

    # -- the calling thread ----------------------------------------------------------

    def _known(self, oid: bytes) -> bool:
        return oid in self._ids or oid in self._existing

    def _put(self, item: Any) -> None:
        if self._error is not None:
            raise StoreError(f"cannot write the pack: {self._error}") from self._error
        self._queue.put(item)

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self._put(batch)

    def add(self, data: bytes) -> str:
        """Store a blob given whole; return its id."""
        return self.add_object(_OBJ_BLOB, data)

    def add_object(self, type_: int, data: bytes) -> str:
        """Store an object (blob, tree or commit) given whole; return its id."""
        h = hashlib.sha1(b"%s %d\0" % (_TYPE_NAMES[type_], len(data)))
        h.update(data)
        oid = h.digest()
        if not self._known(oid):
            self._ids.add(oid)
            self._batch.append((oid, type_, data))
            self._batch_bytes += len(data) + 64
            if self._batch_bytes >= _PACK_BATCH:
                self._flush_batch()
        return oid.hex()

    def add_tree(self, files: Mapping[str, TreeEntry]) -> str:
        """Store the tree holding exactly ``files`` (path -> entry) and its subtrees, as
        `git fast-import` would write them; return the root tree's id."""
        root: dict[bytes, Any] = {}
        for path, entry in files.items():
            *dirs, name = path.encode("utf-8", "surrogateescape").split(b"/")
            d = root
            for part in dirs:
                d = d.setdefault(part, {})
                if not isinstance(d, dict):
                    raise StoreError(f"{path}: a parent directory is also a file")
            if isinstance(d.get(name), dict):
                raise StoreError(f"{path}: both a file and a directory")
            d[name] = entry

        def tree(d: dict[bytes, Any]) -> bytes:
            items = []
            for name, value in d.items():
                if isinstance(value, dict):
                    items.append((name + b"/", b"40000 %s\0%s" % (name, tree(value))))
                else:
                    items.append(
                        (name, b"%o %s\0%s" % (value.mode, name, bytes.fromhex(value.blob)))
                    )
            return bytes.fromhex(
                self.add_object(_OBJ_TREE, b"".join(raw for _, raw in sorted(items)))
            )

        return tree(root).hex()

    def add_stream(self, size: int, chunks: Iterable[bytes]) -> str:
        """Store a blob of a known size from a stream of chunks; return its id.

        Raises StoreError if the chunks do not add up to ``size``.
        """
        if size <= _PACK_WHOLE:
            data = b"".join(chunks)
            if len(data) != size:
                raise StoreError(_size_error(size, len(data)))
            return self.add(data)
        self._flush_batch()
        h = hashlib.sha1(b"blob %d\0" % size)
        self._put(("begin", size))
        seen = 0
        try:
            for chunk in chunks:
                seen += len(chunk)
                if seen > size:
                    break
                h.update(chunk)
                self._put(chunk)
            if seen != size:
                raise StoreError(_size_error(size, seen))
        except BaseException:
            self._put(("end", None))  # cut the partial entry off the pack
            raise
        oid = h.digest()
        keep = not self._known(oid)
        self._put(("end", oid if keep else None))  # a known blob is cut off the pack again
        if keep:
            self._ids.add(oid)
        return oid.hex()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
            self._existing.close()

    def finish(self) -> None:
        """Complete the pack and its index and make them visible to git (nothing if empty)."""
        self._flush_batch()
        self._stop()
        try:
            if self._error is not None:
                raise StoreError(f"cannot write the pack: {self._error}") from self._error
            if not self._entries:
                self._file.close()
                self._tmp.unlink()
                return
            self._install()
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Drop everything written; the store is as it was."""
        # With an error set the thread only drains the queue, so there is soon room for None.
        self._error = self._error or StoreError("aborted")
        while not self._closed and self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=0.1)
                self._closed = True
        self._closed = True
        self._thread.join()
        self._existing.close()
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()
        with contextlib.suppress(OSError):
            self._tmp.with_suffix(".idx").unlink()

    def _install(self) -> None:
        f = self._file
        count = len(self._entries)
        if count >= 1 << 32:
            raise StoreError("too many objects for one pack")
        f.seek(8)
        f.write(count.to_bytes(4, "big"))
        f.flush()
        h = hashlib.sha1()
        with open(self._tmp, "rb") as r:
            while block := r.read(1 << 20):
                h.update(block)
        checksum = h.digest()
        f.seek(0, os.SEEK_END)
        f.write(checksum)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        idx_tmp = self._tmp.with_suffix(".idx")
        with open(idx_tmp, "wb") as out:
            out.write(_pack_index(self._entries, checksum))
            out.flush()
            os.fsync(out.fileno())
        name = "pack-" + checksum.hex()
        pack, idx = self._pack_dir / (name + ".pack"), self._pack_dir / (name + ".idx")
        if idx.exists():  # the very same pack is there already
            self._discard()
            return
        os.chmod(self._tmp, 0o444)
        os.chmod(idx_tmp, 0o444)
        os.replace(self._tmp, pack)
        try:
            os.replace(idx_tmp, idx)
        except BaseException:
            with contextlib.suppress(OSError):
                pack.unlink()
            raise
        dir_fd = os.open(self._pack_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        write = self._file.write
        entries = self._entries
        deflate = _DEFLATE.compress
        crc32 = zlib.crc32
        stream: Any = None
        start = crc = 0
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain until told to stop
            try:
                if isinstance(item, list):
                    for oid, type_, data in item:
                        head = _pack_header(type_, len(data))
                        body = deflate(data, _DEFLATE_LEVEL)
                        entries.append((oid, self._offset, crc32(body, crc32(head))))
                        write(head)
                        write(body)
                        self._offset += len(head) + len(body)
                elif isinstance(item, bytes):
                    out = stream.compress(item)
                    crc = crc32(out, crc)
                    write(out)
                elif item[0] == "begin":
                    head = _pack_header(_OBJ_BLOB, item[1])
                    stream = _DEFLATE.compressobj(_DEFLATE_LEVEL)
                    start, crc = self._offset, crc32(head)
                    write(head)
                else:  # ("end", id or None)
                    out = stream.flush()
                    stream = None
                    if item[1] is None:
                        self._file.seek(start)
                        self._file.truncate()
                    else:
                        write(out)
                        end = self._file.tell()
                        entries.append((item[1], start, crc32(out, crc)))
                        self._offset = end
            except BaseException as e:  # reported to the calling thread
                self._error = e


def _size_error(size: int, seen: int) -> str:
    if seen > size:
        return f"blob stream longer than its declared size {size}"
    return f"blob stream ended after {seen} of {size} bytes"


def _pack_index(entries: list[tuple[bytes, int, int]], checksum: bytes) -> bytes:
    """The .idx (version 2) of a pack holding ``entries`` (id, offset, crc32)."""
    ordered = sorted(entries)
    fanout = [0] * 256
    for oid, _, _ in ordered:
        fanout[oid[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    small: list[int] = []
    large: list[int] = []
    for _, offset, _ in ordered:
        if offset < 1 << 31:
            small.append(offset)
        else:
            small.append((1 << 31) | len(large))
            large.append(offset)
    body = b"".join(
        [
            b"\377tOc\0\0\0\2",
            struct.pack(">256I", *fanout),
            b"".join(oid for oid, _, _ in ordered),
            struct.pack(f">{len(ordered)}I", *(crc for _, _, crc in ordered)),
            struct.pack(f">{len(small)}I", *small),
            struct.pack(f">{len(large)}Q", *large),
            checksum,
        ]
    )
    return body + hashlib.sha1(body).digest()


class Worktree:
    """A linked worktree of the store, checked out sparsely on the paths patches touch."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path

    def git(
        self, *args: str, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return self.store.git(*args, cwd=self.path, check=check, input=input)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.decode().strip()

    def unmerged(self) -> list[str]:
        out = self.git("diff", "--name-only", "-z", "--diff-filter=U").stdout
        return sorted({p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p})

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

    def pick(self, commit: str, *, algorithm: str = "histogram") -> tuple[bool, str]:
        """3-way pick of ``commit`` without committing, with a diff algorithm (histogram, patience,
        minimal, myers); (ok, git's message)."""
        proc = self.git(
            "-c",
            "merge.conflictStyle=zdiff3",
            "-c",
            f"diff.algorithm={algorithm}",
            "cherry-pick",
            "--no-commit",
            "--allow-empty",
            "-X",
            f"diff-algorithm={algorithm}",
            commit,
            check=False,
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
    if (
        store.git("config", "--get", "extensions.worktreeConfig", check=False).stdout.strip()
        == b"true"
    ):
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
