"""The repository the workflow checked out, for the action's watch mode: where the project
is in it, a throwaway worktree of HEAD for a release branch's commit, and what the remote
release branch holds (so a push never loses a person's commit).

Every command here reads, or writes only this machine's repository; pushing is
action/ghcli.py's (printed in a dry run).
"""

from __future__ import annotations

import enum
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ghcli import Failure

__all__ = ["BOT", "TRAILER", "Checkout", "Remote", "git"]

TRAILER = "Patchkit-Upstream"  # marks the workflow's own commits on a release branch
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")
PROJECT_FILES = ("upstream-versions.toml", "patches")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise Failure(f"git {args[0]} failed in {cwd} (exit {proc.returncode}): {why}")
    return proc.stdout.strip()


def _ok(cwd: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True).returncode == 0


class Remote(enum.Enum):
    """What ``origin`` holds of a release branch, against the commit made for it."""

    ABSENT = "absent"  # push, expecting no branch
    SAME = "same"  # it holds this change already (same tree on the same parent): no push
    OURS = "ours"  # only the workflow's earlier commits: push over them, with a lease
    THEIRS = "theirs"  # a person's commit is on it: never pushed over


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkout:
    """The repository the project lives in, as the workflow checked it out."""

    top: Path
    prefix: str  # the project's directory in it: "" or "image/"
    branch: str  # what pull requests go into
    head: str

    @classmethod
    def of(cls, project: Path, base_branch: str) -> Checkout:
        """The checkout holding ``project``; refused when the project's files differ from HEAD
        (the release branches are made from HEAD, the reports from the files)."""
        top = git(project, "rev-parse", "--show-toplevel", check=False)
        if not top:
            raise Failure(f"{project}: not in a git checkout (actions/checkout makes one)")
        branch = base_branch or git(project, "symbolic-ref", "--short", "-q", "HEAD", check=False)
        if not branch:
            raise Failure("HEAD is detached: set base-branch (PATCHKIT_BASE_BRANCH)")
        checkout = cls(
            top=Path(top),
            prefix=git(project, "rev-parse", "--show-prefix"),
            branch=branch,
            head=git(project, "rev-parse", "HEAD"),
        )
        if git(checkout.top, "status", "--porcelain", "--", *checkout.paths(*PROJECT_FILES)):
            raise Failure(
                f"{project}: upstream-versions.toml or patches/ differ from HEAD: the pull "
                "requests are made from HEAD, so commit or restore them first (an earlier "
                "run's watch added releases: git checkout -- upstream-versions.toml)"
            )
        return checkout

    def paths(self, *names: str) -> list[str]:
        return [f"{self.prefix}{name}" for name in names]

    @contextmanager
    def worktree(self, where: Path) -> Iterator[Path]:
        """A detached worktree of HEAD at ``where``, removed afterwards."""
        self._remove(where)  # what a killed run left
        where.parent.mkdir(parents=True, exist_ok=True)
        git(self.top, "worktree", "add", "--detach", "-q", str(where), self.head)
        try:
            yield where
        finally:
            self._remove(where)

    def _remove(self, where: Path) -> None:
        if where.exists():
            git(self.top, "worktree", "remove", "--force", str(where), check=False)
            shutil.rmtree(where, ignore_errors=True)
        git(self.top, "worktree", "prune", check=False)

    def commit(self, tree: Path, subject: str, body: str, version: str) -> str:
        """Commit the project's files in the worktree ``tree``; the new commit's id."""
        git(tree, "add", "-A", "--", *self.paths(*PROJECT_FILES))
        identity: list[str] = []
        if not git(tree, "config", "user.email", check=False):  # a runner has none
            identity = ["-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}"]
        message = ["-m", subject, "-m", body, "-m", f"{TRAILER}: {version}"]
        git(tree, *identity, "commit", "-q", *message)
        return git(tree, "rev-parse", "HEAD")

    def local_branch(self, branch: str, commit: str) -> bool:
        """Point the local ``branch`` at ``commit`` (false where it is checked out)."""
        return _ok(self.top, "branch", "-f", branch, commit)

    def remote(self, branch: str, commit: str, version: str) -> tuple[Remote, str, list[str]]:
        """What ``origin``'s ``branch`` holds: the verdict, its commit, and a person's
        commits on it (for :attr:`Remote.THEIRS`)."""
        listed = git(self.top, "ls-remote", "--heads", "origin", f"refs/heads/{branch}")
        tip = listed.split()[0] if listed else ""
        if not tip:
            return Remote.ABSENT, "", []
        if tip == commit:
            return Remote.SAME, tip, []
        if not _ok(self.top, "cat-file", "-e", f"{tip}^{{commit}}"):
            git(self.top, "fetch", "-q", "origin", f"refs/heads/{branch}")

        def rev(what: str) -> str:
            return git(self.top, "rev-parse", what)

        if rev(f"{tip}^{{tree}}") == rev(f"{commit}^{{tree}}") and rev(f"{tip}^") == rev(
            f"{commit}^"
        ):
            return Remote.SAME, tip, []
        mine = f"--format=%(trailers:key={TRAILER},valueonly)"
        theirs = [
            c
            for c in git(self.top, "rev-list", f"{self.head}..{tip}").split()
            if git(self.top, "log", "-1", mine, c) != version
        ]
        return (Remote.THEIRS if theirs else Remote.OURS), tip, theirs
