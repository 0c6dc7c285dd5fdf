"""The store: the bare repository of imported releases (refs, release records, queries).

The store is a bare repository (default `.patchkit/store.git`). Each imported release
is a commit at `refs/patchkit/upstream/<version>` whose tree is the image's root
filesystem; its message carries the source, digest and layer digests as trailers.
Rebase worktrees are linked worktrees of the same repository.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from patchkit.core.model import ReleaseInfo
from patchkit.errors import StoreError
from patchkit.git.objects import BlobReader, TreeEntry
from patchkit.git.packtmp import clear_stale_packs
from patchkit.git.refs import UPSTREAM_PREFIX, read_refs
from patchkit.git.runner import _GIT_ENV

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from patchkit.git.pack import FastImport

__all__ = [
    "Store",
]


MANIFEST_PREFIX = "refs/patchkit/manifest/"
_DIFFS_AT_ONCE = 4  # git processes of Store.plain_diffs running side by side


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
        else:
            clear_stale_packs(path / "objects" / "pack")  # what a killed import left
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
        from patchkit.git.pack import FastImport  # loaded by imports only (a thread, isal)

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
        from patchkit.git.pack import FastImport, PackWriter

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
            platform=fields.get("Patchkit-Platform", [""])[0],
            created=fields.get("Patchkit-Created", [""])[0],
            config=fields.get("Patchkit-Config", [""])[0],
            size=_size(fields.get("Patchkit-Size", [""])[0]),
            tag_digest=fields.get("Patchkit-Tag-Digest", [None])[0],
        )

    def release_commits(self) -> dict[str, str]:
        """label -> commit of every imported release: read from the reference files (no git
        process), or from `git for-each-ref` when git keeps them otherwise."""
        refs = read_refs(self.path, UPSTREAM_PREFIX)
        if refs is None:
            out = self.git(
                "for-each-ref", "--format=%(refname)%00%(objectname)", UPSTREAM_PREFIX
            ).stdout.decode("utf-8", "surrogateescape")
            refs = dict(line.split("\0") for line in out.split("\n") if line)
        return {name[len(UPSTREAM_PREFIX) :]: oid for name, oid in refs.items()}

    def imported_versions(self) -> set[str]:
        """Labels of the imported releases (a multi-platform release's other platforms,
        ``<version>@<platform>``, are not releases of their own: left out)."""
        out = self.git("for-each-ref", "--format=%(refname)", UPSTREAM_PREFIX).stdout.decode()
        return {
            line[len(UPSTREAM_PREFIX) :] for line in out.splitlines() if line and "@" not in line
        }

    @staticmethod
    def release_message(
        version: str,
        *,
        source: str,
        digest: str,
        layers: Iterable[str] = (),
        manifest_blob: str | None = None,
        platform: str | None = None,
        created: str | None = None,
        config: str | None = None,
        size: int | None = None,
        tag_digest: str | None = None,
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
        # What the image says of itself, for `patchkit report` (one line each: no newlines).
        for key, value in (("Platform", platform), ("Created", created), ("Config", config)):
            if value and "\n" not in value:
                lines.append(f"Patchkit-{key}: {value}")
        if size is not None:
            lines.append(f"Patchkit-Size: {size}")
        if tag_digest:
            lines.append(f"Patchkit-Tag-Digest: {tag_digest}")
        return "\n".join(lines) + "\n"

    def delete_refs(self, prefix: str) -> None:
        out = self.git("for-each-ref", "--format=%(refname)", prefix).stdout.decode()
        for ref in out.splitlines():
            self.git("update-ref", "-d", ref, check=False)

    def plain_diffs(self, pairs: Sequence[tuple[str, str, Sequence[str]]]) -> list[bytes]:
        """`git diff OLD NEW -- FILES...` of each (old, new, files), with git's defaults (no
        color, renames, external or text-converting drivers; literal paths), several git
        processes running side by side (one diff at a time would wait for each)."""
        out: list[bytes] = []
        for i in range(0, len(pairs), _DIFFS_AT_ONCE):
            procs = [
                subprocess.Popen(
                    [
                        "git",
                        "--git-dir",
                        str(self.path),
                        "diff",
                        "--no-color",
                        "--no-ext-diff",
                        "--no-renames",
                        "--no-textconv",
                        "--src-prefix=a/",
                        "--dst-prefix=b/",
                        old,
                        new,
                        "--",
                        *[":(literal)" + f for f in files],
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=self.env(),
                )
                for old, new, files in pairs[i : i + _DIFFS_AT_ONCE]
            ]
            for proc in procs:
                stdout, stderr = proc.communicate()
                if proc.returncode != 0:
                    err = stderr.decode("utf-8", "replace").strip().splitlines()
                    raise StoreError(f"git diff failed: {err[-1] if err else proc.returncode}")
                out.append(stdout)
        return out

    def diff(
        self,
        old: str,
        new: str,
        *,
        src_prefix: str,
        dst_prefix: str,
        context: int = 3,
        paths: Sequence[str] | None = None,
        stat: bool = False,
    ) -> bytes:
        """`git diff` between two commits, in a stable, plain form (no color, no renames);
        only ``paths`` (literal) when given; ``stat``: `--stat` instead of the patch."""
        args = [
            "-c",
            "diff.algorithm=histogram",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--no-textconv",
            f"--src-prefix={src_prefix}",
            f"--dst-prefix={dst_prefix}",
        ]
        args += ["--stat=200"] if stat else [f"-U{context}"]  # -U would add the patch to --stat
        args += [old, new]
        if paths is not None:
            if not paths:
                return b""
            args += ["--", *[":(literal)" + p for p in paths]]
        return self.git(*args).stdout

    def diff_names(
        self, old: str, new: str, paths: Sequence[str] | None = None
    ) -> list[tuple[str, str]]:
        """(status letter A/M/D/T, path) of every file that differs between two commits."""
        args = ["diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new]
        if paths is not None:
            if not paths:
                return []
            args += ["--", *[":(literal)" + p for p in paths]]
        fields = [
            f.decode("utf-8", "surrogateescape") for f in self.git(*args).stdout.split(b"\0") if f
        ]
        return list(zip(fields[0::2], fields[1::2], strict=True))

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


def _size(text: str) -> int | None:
    return int(text) if text.isdigit() else None


# -- writing packs directly ------------------------------------------------------------
