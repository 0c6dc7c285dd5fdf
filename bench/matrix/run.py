#!/usr/bin/env python3
"""Benchmark `patchkit matrix` against a worktree + `git apply --check` loop and quilt.

A real upstream with real churn: ten consecutive releases of the npm package
``eslint`` (``npm pack eslint@8.40.0`` ... ``8.49.0``), imported as ``tar:``
releases. Fifty patches are real edits at real lines of the first release (some
files edited twice, so application is cumulative), made deterministic by a seed.

Measured, medians of ``--runs`` (default 3):

* patchkit cold: ``patchkit -q matrix --format json`` with ``.patchkit/cache`` removed;
* patchkit warm: the same again, cache in place;
* (a) per release: ``git worktree add`` + per patch ``git apply --check`` (and ``git apply``
  when it passes, so later patches see earlier ones);
* (b) per release: a fresh tree (``git archive``) + ``quilt push`` to the end, a
  failing patch dropped from that release's series and the push continued.

The script asserts that patchkit's applied/conflict answers equal (a)'s, and prints
the table put in docs/matrix.md. Usage: ``python bench/matrix/run.py [--runs 3] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PACKAGE = "eslint"
VERSIONS = [f"8.4{i}.0" for i in range(10)]
N_PATCHES = 50
SEED = 5
PYTHON = [sys.executable]  # replaced in main() by a venv with patchkit installed as users have it
PATCHKIT = [*PYTHON, "-m", "patchkit"]


def sh(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, check=check, env=env)


def fetch(work: Path) -> dict[str, Path]:
    tarballs = work / "tarballs"
    tarballs.mkdir(parents=True, exist_ok=True)
    out = {}
    for v in VERSIONS:
        path = tarballs / f"{PACKAGE}-{v}.tgz"
        if not path.exists():
            sh("npm", "pack", f"{PACKAGE}@{v}", "--silent", cwd=tarballs)
        out[v] = path
    return out


def read_release(tarball: Path) -> dict[str, bytes]:
    files = {}
    with tarfile.open(tarball) as tar:
        for m in tar.getmembers():
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                files[m.name.split("/", 1)[1]] = f.read()
    return files


def make_patches(first: dict[str, bytes], last: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """Real edits at real lines of the first release: half in files upstream later changed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from patchkit.core.apply import unified_diff
    from patchkit.core.patchfile import Patch, render_patch

    rng = random.Random(SEED)
    js = sorted(
        p
        for p in first
        if p.startswith("lib/") and p.endswith(".js") and first[p].count(b"\n") > 40
    )
    churned = [p for p in js if last.get(p) != first[p]]
    calm = [p for p in js if last.get(p) == first[p]]
    picks = rng.sample(churned, 20) + rng.sample(calm, 20)
    picks += rng.sample(picks, N_PATCHES - len(picks))  # ten files edited twice: cumulative
    current = dict(first)
    patches = []
    for n, path in enumerate(picks, 1):
        lines = current[path].decode().split("\n")
        candidates = [
            i
            for i, line in enumerate(lines)
            if line.strip() and "patchkit" not in line and 5 < i < len(lines) - 5
        ]
        i = rng.choice(candidates)
        new_lines = list(lines)
        new_lines[i] = lines[i] + " // patched by patchkit bench"
        new = "\n".join(new_lines).encode()
        fp = unified_diff(current[path], new, path)
        assert fp is not None
        name = f"{n:02d}-{path.replace('/', '-')}.patch"
        header = f"Description: bench edit {n} of {path}\n\n"
        patches.append((name, render_patch(Patch(name=name, header=header, files=(fp,)))))
        current[path] = new
    return patches


def make_project(work: Path, tarballs: dict[str, Path], patches: list[tuple[str, bytes]]) -> Path:
    root = work / "project"
    if root.exists():
        shutil.rmtree(root)
    (root / "patches").mkdir(parents=True)
    toml = ["schema = 1", f'base = "{VERSIONS[0]}"', "", "[upstream]", f'name = "{PACKAGE}"', ""]
    for v in VERSIONS:
        toml += [
            "[[version]]",
            f'version = "{v}"',
            'status = "supported"',
            f'source = "tar:{tarballs[v]}"',
            "strip = 1",
            "",
        ]
    (root / "upstream-versions.toml").write_text("\n".join(toml))
    for name, data in patches:
        (root / "patches" / name).write_bytes(data)
    (root / "patches/series").write_text("".join(f"{name}\n" for name, _ in patches))
    for v in VERSIONS:
        sh(*PATCHKIT, "-q", "--project", str(root), "import", v)
    return root


def patchkit_matrix(root: Path) -> dict[tuple[str, str], str]:
    proc = sh(
        *PATCHKIT,
        "-q",
        "--project",
        str(root),
        "matrix",
        "--format",
        "json",
        "--fail-on",
        "",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    doc = json.loads(proc.stdout)
    return {(r["version"], r["patch"]): r["status"] for r in doc["results"]}


IN_PROCESS = """
import json, shutil, statistics, sys, time
from pathlib import Path
from patchkit.project import Project
root, runs = Path(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(runs):
    shutil.rmtree(root / ".patchkit/cache", ignore_errors=True)
    t = time.perf_counter()
    m = Project.open(root).matrix()
    times.append(time.perf_counter() - t)
cells = {f"{c.version}\\0{c.patch}": c.status.value for c in m.cells}
print(json.dumps({"median": statistics.median(times), "cells": cells}))
"""


def patchkit_in_process(root: Path, runs: int) -> tuple[float, dict[tuple[str, str], str]]:
    """`Project.matrix()` as a build script calls it: cold cache, interpreter already running."""
    doc = json.loads(sh(*PYTHON, "-c", IN_PROCESS, str(root), str(runs)).stdout)
    return doc["median"], {tuple(k.split("\0")): v for k, v in doc["cells"].items()}


def startup_floor(runs: int) -> float:
    """What every CLI run pays before any work: the interpreter and patchkit's imports."""
    return timed(lambda: sh(*PYTHON, "-c", "import patchkit.cli"), runs)[0]


def worktree_apply(root: Path, names: list[str]) -> dict[tuple[str, str], str]:
    store = root / ".patchkit/store.git"
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-wt-") as tmp:
        for v in VERSIONS:
            wt = Path(tmp) / v
            sh(
                "git",
                "--git-dir",
                str(store),
                "worktree",
                "add",
                "-q",
                "--detach",
                str(wt),
                f"refs/patchkit/upstream/{v}",
            )
            for name in names:
                patch = str(root / "patches" / name)
                ok = sh("git", "apply", "--check", patch, cwd=wt, check=False).returncode == 0
                if ok:
                    sh("git", "apply", patch, cwd=wt)
                out[(v, name)] = "applied" if ok else "failed"
            sh("git", "--git-dir", str(store), "worktree", "remove", "--force", str(wt))
    return out


def quilt_push(root: Path, names: list[str]) -> dict[tuple[str, str], str]:
    store = root / ".patchkit/store.git"
    out = {}
    env = {**os.environ, "QUILT_PATCHES": "patches", "QUILT_PC": ".pc", "QUILTRC": "/dev/null"}
    with tempfile.TemporaryDirectory(prefix="bench-quilt-") as tmp:
        for v in VERSIONS:
            tree = Path(tmp) / v
            tree.mkdir()
            archive = sh(
                "git", "--git-dir", str(store), "archive", f"refs/patchkit/upstream/{v}"
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            shutil.copytree(root / "patches", tree / "patches")
            left = list(names)
            status = dict.fromkeys(names, "applied")
            while True:
                proc = sh("quilt", "push", "-a", "-q", cwd=tree, check=False, env=env)
                if proc.returncode in (0, 2) and b"fail" not in proc.stdout.lower():
                    break
                applied = set(
                    sh("quilt", "applied", cwd=tree, check=False, env=env).stdout.decode().split()
                )
                failed = next(
                    (n for n in left if f"patches/{n}" not in applied and n not in applied), None
                )
                if failed is None:
                    break
                status[failed] = "failed"
                left.remove(failed)
                (tree / "patches/series").write_text("".join(f"{n}\n" for n in left))
            for name in names:
                out[(v, name)] = status[name]
    return out


def installed_python(work: Path) -> str:
    """A venv with this checkout's patchkit installed as `pip install .` installs it (the
    package in site-packages, bytecode compiled), its dependencies taken from this venv.

    A development venv (`pip install -e`) pays ~12 ms more at every interpreter start for its
    editable-install hook, which users of a released patchkit do not.
    """
    import compileall
    import sysconfig
    import venv

    env = work / "venv-installed"
    shutil.rmtree(env, ignore_errors=True)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    python = env / "bin" / "python"
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
        Path(__file__).resolve().parents[2] / "patchkit",
        site / "patchkit",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # Dependencies (unidiff, rich, ...) from this venv; a path line adds the directory only,
    # without running that directory's own .pth hooks (the editable install's among them).
    (site / "patchkit-bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    compileall.compile_dir(str(site / "patchkit"), quiet=1)
    return str(python)


def timed(
    fn: Callable[[], object], runs: int, before: Callable[[], None] | None = None
) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="work here and keep it (tarballs are reused)")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="patchkit-bench-"))
    global PYTHON, PATCHKIT
    PYTHON = [installed_python(work)]
    PATCHKIT = [*PYTHON, "-m", "patchkit"]
    os.chdir(work)  # `python -m`/`-c` put the working directory first: not this checkout
    try:
        tarballs = fetch(work)
        first, last = read_release(tarballs[VERSIONS[0]]), read_release(tarballs[VERSIONS[-1]])
        patches = make_patches(first, last)
        root = make_project(work, tarballs, patches)
        names = [n for n, _ in patches]
        cache = root / ".patchkit/cache"

        def clear() -> None:
            shutil.rmtree(cache, ignore_errors=True)

        # Interleaved, one round at a time: this machine's speed drifts by 2x over minutes
        # (shared disk and CPU), so a ratio is taken within a round and the median reported.
        rounds: dict[str, list[float]] = {k: [] for k in ("cold", "warm", "api", "floor", "a", "b")}
        ratios = []
        for _ in range(args.runs):
            t, pk = timed(lambda: patchkit_matrix(root), 1, clear)
            rounds["cold"].append(t)
            t, pk_warm = timed(lambda: patchkit_matrix(root), 1)
            rounds["warm"].append(t)
            t, pk_api = patchkit_in_process(root, 1)
            rounds["api"].append(t)
            rounds["floor"].append(startup_floor(1))
            t, a = timed(lambda: worktree_apply(root, names), 1)
            rounds["a"].append(t)
            ratios.append(t / rounds["cold"][-1])
            t, b = timed(lambda: quilt_push(root, names), 1)
            rounds["b"].append(t)
        cold, warm, api, floor, a_time, b_time = (
            statistics.median(rounds[k]) for k in ("cold", "warm", "api", "floor", "a", "b")
        )
        assert isinstance(pk, dict) and isinstance(a, dict) and isinstance(b, dict)
        assert pk == pk_warm, "warm cache gave other answers"
        assert pk == pk_api, "the library call gave other answers than the CLI"

        # Same answers as (a): git apply (no fuzz) passes exactly where patchkit says applied/offset.
        mismatch = []
        for key, status in pk.items():
            git_ok = a[key] == "applied"
            if (status in ("applied", "offset") and not git_ok) or (
                status in ("conflict", "missing-target") and git_ok
            ):
                mismatch.append((key, status, a[key]))
        assert not mismatch, f"patchkit and git apply disagree: {mismatch[:5]}"
        quilt_differs = sum(
            1
            for key, s in pk.items()
            if (s in ("applied", "offset", "fuzz")) != (b[key] == "applied")
        )
        counts: dict[str, int] = {}
        for s in pk.values():
            counts[s] = counts.get(s, 0) + 1
        cells = len(pk)
        print(
            f"{PACKAGE} {VERSIONS[0]}..{VERSIONS[-1]}: {len(names)} patches x {len(VERSIONS)} releases = {cells} cells"
        )
        print("patchkit answers: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        print(
            f"answers identical to (a) on applied/conflict: yes ({cells} cells); quilt differs on {quilt_differs}"
        )
        print()
        print(f"| run (median of {args.runs}) | seconds | vs patchkit cold |")
        print("|---|---:|---:|")
        for label, t in (
            ("patchkit matrix, cold cache", cold),
            ("patchkit matrix, warm cache", warm),
            ("Project.matrix() in a running process, cold cache", api),
            ("(floor of every CLI run) python -c 'import patchkit.cli'", floor),
            ("(a) worktree add + git apply --check", a_time),
            ("(b) fresh tree + quilt push (continue past failures)", b_time),
        ):
            print(f"| {label} | {t:.3f} | {t / cold:.1f}x |")
        print()
        print(
            f"(a) / cold = {a_time / cold:.1f}x (target >= 20x); warm = {warm:.3f} s (target < 0.5 s)"
        )
        print(
            "(a) / cold within each round: "
            + ", ".join(f"{r:.1f}x" for r in ratios)
            + f"; median {statistics.median(ratios):.1f}x"
        )
        print(f"(a) / Project.matrix() cold, in process = {a_time / api:.1f}x")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
