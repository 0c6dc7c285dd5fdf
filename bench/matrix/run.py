#!/usr/bin/env python3
"""Benchmark `patchkit matrix` against a worktree + `git apply --check` loop and quilt.

A real upstream with real churn: ten consecutive releases of the npm package
``eslint`` (``npm pack eslint@8.40.0`` ... ``8.49.0``), imported as ``tar:``
releases. Fifty patches are real edits at real lines of the first release (some
files edited twice, so application is cumulative), made deterministic by a seed.

patchkit is measured as users run it: ``pip install .`` of this checkout into its own venv
outside the checkout (``--venv DIR`` to keep and reuse one), its ``patchkit`` command.
Measured in interleaved rounds (one run of every contender per round, the ratio taken
within the round: this machine's speed drifts), medians of ``--runs`` (default 3):

* patchkit cold: ``patchkit -q matrix --format json`` with ``.patchkit/cache`` removed;
* patchkit warm: the same again, cache in place;
* (a) per release: ``git worktree add`` + per patch ``git apply --check`` (and ``git apply``
  when it passes, so later patches see earlier ones);
* (b) per release: a fresh tree (``git archive``) + ``quilt push`` to the end, a
  failing patch dropped from that release's series and the push continued;
* with ``--baseline REV``: patchkit cold and warm of commit REV, installed the same way.

Besides wall time, the CPU time (user + sys, children included) of each patchkit run:
robust on a shared machine. The script asserts that patchkit's applied/conflict answers
equal (a)'s, and prints the table put in docs/matrix.md.
Usage: ``python bench/matrix/run.py [--runs 3] [--keep DIR] [--venv DIR] [--baseline REV]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
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
ROOT = Path(__file__).resolve().parents[2]
PYTHON = [sys.executable]  # replaced in main() by a venv with patchkit installed as users have it
PATCHKIT = [*PYTHON, "-m", "patchkit"]  # replaced in main() by that venv's `patchkit` command


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


def patchkit_matrix(root: Path, patchkit: list[str] | None = None) -> dict[tuple[str, str], str]:
    proc = sh(
        *(patchkit or PATCHKIT),
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


def installed_python(where: Path, source: Path = ROOT) -> str:
    """A venv at ``where`` (outside the checkout) with ``source`` installed by `pip install`,
    as a user has it: the package in site-packages, bytecode compiled by pip, dependencies
    from the package index."""
    python = where / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        check=True,
    )
    return str(python)


def baseline_python(rev: str, where: Path) -> str:
    """A venv at ``where`` with commit ``rev`` of this checkout installed the same way."""
    src = where / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return installed_python(where / "venv", src)


def cpu_and_wall(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(CPU seconds of the child processes fn waits for, wall seconds, fn's result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, wall, result


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
    ap.add_argument("--venv", metavar="DIR", help="install patchkit into this venv (kept)")
    ap.add_argument(
        "--baseline", metavar="REV", help="also time commit REV of this checkout, installed alike"
    )
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="patchkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    global PYTHON, PATCHKIT
    PYTHON = [installed_python(Path(args.venv) if args.venv else work / "venv")]
    PATCHKIT = [str(Path(PYTHON[0]).parent / "patchkit")]  # the command users run
    base_cmd = None
    if args.baseline:
        base_cmd = [
            str(Path(baseline_python(args.baseline, work / "baseline")).parent / "patchkit")
        ]
    os.chdir(work)  # `python -c` puts the working directory first: not this checkout
    load_before = os.getloadavg()
    try:
        tarballs = fetch(work)
        first, last = read_release(tarballs[VERSIONS[0]]), read_release(tarballs[VERSIONS[-1]])
        patches = make_patches(first, last)
        root = make_project(work, tarballs, patches)
        names = [n for n, _ in patches]
        # The baseline's own copy: two versions' cell caches in one place would evict each other.
        base_root = work / "project-baseline"
        if base_cmd:
            shutil.rmtree(base_root, ignore_errors=True)
            shutil.copytree(root, base_root, symlinks=True)

        def clear(project: Path) -> None:
            shutil.rmtree(project / ".patchkit/cache", ignore_errors=True)

        # Interleaved, one round at a time: this machine's speed drifts by 2x over minutes
        # (shared disk and CPU), so a ratio is taken within a round and the median reported.
        keys = ("cold", "warm", "api", "floor", "a", "b", "base-cold", "base-warm")
        rounds: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}
        ratios: list[float] = []
        base_ratios: list[float] = []
        for _ in range(args.runs):
            clear(root)
            c, t, pk = cpu_and_wall(lambda: patchkit_matrix(root))
            rounds["cold"].append(t)
            cpu["cold"].append(c)
            c, t, pk_warm = cpu_and_wall(lambda: patchkit_matrix(root))
            rounds["warm"].append(t)
            cpu["warm"].append(c)
            if base_cmd:
                clear(base_root)
                c, t, pk_base = cpu_and_wall(lambda: patchkit_matrix(base_root, base_cmd))
                rounds["base-cold"].append(t)
                cpu["base-cold"].append(c)
                c, t, _ = cpu_and_wall(lambda: patchkit_matrix(base_root, base_cmd))
                rounds["base-warm"].append(t)
                cpu["base-warm"].append(c)
                assert pk_base == pk, "the baseline gave other answers"
            t, pk_api = patchkit_in_process(root, 1)
            rounds["api"].append(t)
            c, t, _ = cpu_and_wall(lambda: sh(*PYTHON, "-c", "pass"))
            rounds["floor"].append(t)
            cpu["floor"].append(c)
            t, a = timed(lambda: worktree_apply(root, names), 1)
            rounds["a"].append(t)
            ratios.append(t / rounds["cold"][-1])
            if base_cmd:
                base_ratios.append(t / rounds["base-cold"][-1])
            t, b = timed(lambda: quilt_push(root, names), 1)
            rounds["b"].append(t)
        med = {k: statistics.median(v) for k, v in rounds.items() if v}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items() if v}
        cold, warm, a_time = med["cold"], med["warm"], med["a"]
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
        print(
            f"{os.cpu_count()} CPUs, load {load_before[0]:.1f} before and "
            f"{os.getloadavg()[0]:.1f} after; patchkit installed by pip install . in its own venv"
        )
        print()
        print(f"| run (median of {args.runs} rounds) | seconds | CPU seconds | vs patchkit cold |")
        print("|---|---:|---:|---:|")
        rows = [
            ("patchkit matrix, cold cache", "cold"),
            ("patchkit matrix, warm cache (nothing changed)", "warm"),
            (f"baseline {args.baseline}: patchkit matrix, cold cache", "base-cold"),
            (f"baseline {args.baseline}: patchkit matrix, warm cache", "base-warm"),
            ("Project.matrix() in a running process, cold cache", "api"),
            ("(floor of every CLI run) python -c pass", "floor"),
            ("(a) worktree add + git apply --check", "a"),
            ("(b) fresh tree + quilt push (continue past failures)", "b"),
        ]
        for label, key in rows:
            if key in med:
                cpu_text = f"{med_cpu[key]:.3f}" if key in med_cpu else ""
                print(f"| {label} | {med[key]:.3f} | {cpu_text} | {med[key] / cold:.1f}x |")
        print()
        print(
            f"(a) / cold = {a_time / cold:.1f}x (target >= 30x); warm = {warm:.3f} s (target < 0.2 s)"
        )
        print(
            "(a) / cold within each round: "
            + ", ".join(f"{r:.1f}x" for r in ratios)
            + f"; median {statistics.median(ratios):.1f}x"
        )
        if base_ratios:
            print(
                "(a) / baseline cold within each round: "
                + ", ".join(f"{r:.1f}x" for r in base_ratios)
                + f"; median {statistics.median(base_ratios):.1f}x"
            )
        print(f"(a) / Project.matrix() cold, in process = {a_time / med['api']:.1f}x")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
