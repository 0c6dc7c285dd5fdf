"""Benchmark: the authoring loop, `patchkit edit` against the same loop done by hand.

The release is a generated `dir:` tree of 40,000 files (200 directories x 200 files of ~1 KB:
~45 MB; the file count is what a checkout pays for, so the 800 MB of the issue are not needed
for the effect; --file-kb makes them bigger). The series is `git format-patch` files, so that
`git am` takes them as they are.

Measured, interleaved, median of --rounds (>= 3):

- open:  `patchkit edit` of a 15-patch series (sparse worktree, one commit a patch) vs. by
         hand, gbp-pq style: `git worktree add` of the release (a full checkout), `git am` of
         the 15 patches;
- save:  a 50-patch series, HEAD on patch 25, one file changed: `patchkit edit --save`
         (amend, replay of the 25 later patches, only that patch file rewritten) vs. by hand:
         `git commit --fixup` + `git rebase -i --autosquash` + `git format-patch` of all 50.

patchkit runs as `pip install .` installs it (a venv outside the checkout, bytecode compiled).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_AUTHOR_DATE": "2001-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2001-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PATCHKIT_"))}
    e.update(GIT_ENV)
    return e


def sh(*args: str, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    proc = subprocess.run(args, cwd=cwd, env=env(), input=input, capture_output=True)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(args)}: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def installed_python(work: Path) -> str:
    """A venv with this checkout's patchkit as `pip install .` puts it (site-packages,
    compiled), its dependencies from this venv (as bench/matrix/run.py does)."""
    envdir = work / "venv-installed"
    shutil.rmtree(envdir, ignore_errors=True)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(envdir)
    python = envdir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    shutil.copytree(
        ROOT / "patchkit", site / "patchkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    (site / "patchkit-bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    compileall.compile_dir(str(site / "patchkit"), quiet=1)
    return str(python)


def content(d: int, f: int, kb: int) -> str:
    lines = [f"# dir {d} file {f}\n"] + [f"key_{i} = value {d}.{f}.{i}\n" for i in range(1, 40)]
    text = "".join(lines)
    return (text * max(1, (kb * 1024) // len(text)))[: max(len(text), kb * 1024)]


def make_release(path: Path, kb: int) -> None:
    for d in range(200):
        sub = path / f"etc/d{d:03d}"
        sub.mkdir(parents=True)
        for f in range(200):
            (sub / f"f{f:03d}.conf").write_text(content(d, f, kb))


def make_series(project: Path, release: Path, n: int) -> None:
    """n format-patch files, patch k changing line 5 of etc/d<k>/f000.conf."""
    repo = project.parent / "series-src"
    shutil.rmtree(repo, ignore_errors=True)
    sh("git", "init", "-q", str(repo))
    for k in range(n):
        rel = f"etc/d{k:03d}/f000.conf"
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(release / rel, repo / rel)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "base", cwd=repo)
    for k in range(n):
        rel = f"etc/d{k:03d}/f000.conf"
        p = repo / rel
        p.write_text(p.read_text().replace("key_5 =", "key_5_patched =", 1))
        sh("git", "commit", "-qam", f"Patch number {k}\n\nWhy patch {k} exists.", cwd=repo)
    out = project / "patches"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    sh("git", "format-patch", "-q", "--no-numbered", "-o", str(out), f"HEAD~{n}", cwd=repo)
    names = sorted(p.name for p in out.iterdir())
    (out / "series").write_text("".join(f"{x}\n" for x in names))


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--file-kb", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR", help="work here and keep it (the release is reused)")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="patchkit-authoring-"))
    work.mkdir(parents=True, exist_ok=True)
    python = installed_python(work)

    def pk(*a: str) -> bytes:
        return sh(python, "-m", "patchkit", "--project", str(project), *a)

    release = work / "release"
    if not release.exists():
        print(f"generating 40,000 files under {release} ...", file=sys.stderr)
        make_release(release, args.file_kb)
    project = work / "project"
    if not (project / ".patchkit/store.git").exists():
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir()
        (project / "upstream-versions.toml").write_text(
            'schema = 1\nbase = "1.0"\n\n[upstream]\nname = "bench"\n\n'
            f'[[version]]\nversion = "1.0"\nstatus = "supported"\nsource = "dir:{release}"\n'
        )
        (project / "patches").mkdir()
        (project / "patches/series").write_text("")
        t = timed(lambda: pk("import", "1.0"))
        print(f"import of the release: {t:.1f} s (once)", file=sys.stderr)
    store = project / ".patchkit/store.git"
    release_commit = (
        sh("git", "--git-dir", str(store), "rev-parse", "refs/patchkit/upstream/1.0")
        .decode()
        .strip()
    )
    size = sum(p.stat().st_size for p in release.rglob("*") if p.is_file())
    print(f"release: 40,000 files, {size / 1e6:.0f} MB", file=sys.stderr)

    hand = work / "by-hand"

    def hand_open(n: int) -> None:
        sh(
            "git", "--git-dir", str(store), "worktree", "remove", "--force", str(hand)
        ) if hand.exists() else None
        sh("git", "--git-dir", str(store), "worktree", "prune")
        sh(
            "git",
            "--git-dir",
            str(store),
            "worktree",
            "add",
            "-q",
            "--detach",
            str(hand),
            release_commit,
        )
        names = (project / "patches/series").read_text().split()
        sh("git", "am", "-q", *[str(project / "patches" / x) for x in names[:n]], cwd=hand)

    results: dict[str, list[float]] = {
        k: [] for k in ("pk open", "hand open", "pk save", "hand save")
    }
    for r in range(args.rounds):
        # -- open, 15 patches
        make_series(project, release, 15)
        pk("edit", "--discard", "--force") if (project / ".patchkit/edit").exists() else None
        results["pk open"].append(timed(lambda: pk("edit")))
        pk("edit", "--discard", "--force")
        results["hand open"].append(timed(lambda: hand_open(15)))
        # -- save, 50 patches, HEAD on the 25th, one change
        make_series(project, release, 50)
        names = (project / "patches/series").read_text().split()
        pk("edit", names[24])
        wt = project / ".patchkit/edit/worktree"
        f = wt / "etc/d024/f000.conf"
        f.write_text(f.read_text().replace("key_9 =", "key_9_more =", 1))
        results["pk save"].append(timed(lambda: pk("edit", "--save")))
        pk("edit", "--discard", "--force")
        make_series(project, release, 50)  # the series as it was before patchkit's save
        hand_open(50)

        def hand_save() -> None:
            g = hand / "etc/d024/f000.conf"
            g.write_text(g.read_text().replace("key_9 =", "key_9_more =", 1))
            target = sh("git", "rev-parse", "HEAD~25", cwd=hand).decode().strip()
            sh("git", "commit", "-q", "-a", f"--fixup={target}", cwd=hand)
            subprocess.run(
                ["git", "rebase", "-q", "-i", "--autosquash", release_commit],
                cwd=hand, env={**env(), "GIT_SEQUENCE_EDITOR": "true"}, check=True,
                capture_output=True,
            )  # fmt: skip
            out = work / "hand-patches"
            shutil.rmtree(out, ignore_errors=True)
            sh("git", "format-patch", "-q", "-o", str(out), release_commit, cwd=hand)

        results["hand save"].append(timed(hand_save))
        print(
            f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()),
            file=sys.stderr,
        )
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"open  (15 patches): patchkit {med['pk open']:.2f} s, by hand {med['hand open']:.2f} s, "
        f"ratio {med['hand open'] / med['pk open']:.1f}x"
    )
    print(
        f"save  (50 patches): patchkit {med['pk save']:.2f} s, by hand {med['hand save']:.2f} s, "
        f"ratio {med['hand save'] / med['pk save']:.1f}x"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
