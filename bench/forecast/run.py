#!/usr/bin/env python3
"""`patchkit forecast` against `patchkit rebase --onto` on Debian's own patch series.

The series of bench/debian (docs/fidelity.md): for each package, bookworm's upstream tree
and debian/patches (the base, U1/S1) and trixie's upstream tree (U2), imported as `dir:`
releases into one project. Measured, interleaved run by run, medians of ``--runs``:

* forecast: ``Project.forecast(U2)`` on the project (which it must leave byte-identical);
* rebase: ``Project.rebase(U2)`` on a fresh copy of the project (the copy is not timed),
  then ``rebase_skip()`` at every stop until it completes: the same work (every patch
  replayed), which is what the forecast predicts;
* rebase to the first stop: ``Project.rebase(U2)`` alone (for a series that conflicts, the
  rebase stops early: it has done less than the forecast).

Both are library calls in this one process (no interpreter start-up in either); wall time and
this process's CPU time (user+sys, its git children included) per call. The script checks that
the forecast says what the rebase met, patch by patch, and that the forecast changed nothing.

Usage: ``python bench/forecast/run.py [PKG ...] [--runs 5] [--json OUT]``
(downloads as bench/debian does, cached in bench/.cache/).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from patchkit import Project  # noqa: E402
from patchkit.core.model import PatchStatus, RebaseState  # noqa: E402


def _debian_bench() -> Any:
    """bench/debian/run.py (its fetching and series reading), loaded by path."""
    spec = importlib.util.spec_from_file_location("debian_bench", HERE.parent / "debian" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


DEBIAN = _debian_bench()


def _version(tree: Path, pkg: str, suite: str) -> str:
    dsc = sorted(tree.parent.parent.glob(f"src/{pkg}-{suite}/*.dsc"))[0]
    return re.sub(r"[^A-Za-z0-9._+-]", "_", dsc.name.split("_")[1].rsplit("-", 1)[0])


def setup(pkg: str, work: Path) -> tuple[Project, str]:
    """The project of ``pkg`` (base: bookworm's upstream, series: its debian/patches) with
    both releases imported; and the release to go onto."""
    t1, t2 = (DEBIAN.fetch(pkg, suite) for suite in DEBIAN.SUITES)
    v1, v2 = _version(t1, pkg, DEBIAN.SUITES[0]), _version(t2, pkg, DEBIAN.SUITES[1])
    root = work / pkg
    shutil.copytree(t1 / "patches", root / "patches", symlinks=True)
    (root / "upstream-versions.toml").write_text(
        f'schema = 1\nbase = "{v1}"\n\n[upstream]\nname = "{pkg}"\n\n'
        f'[[version]]\nversion = "{v1}"\nsource = "dir:{t1 / "upstream"}"\n\n'
        f'[[version]]\nversion = "{v2}"\nsource = "dir:{t2 / "upstream"}"\n'
    )
    project = Project.open(root)
    project.import_release(v1)
    project.import_release(v2)
    return project, v2


def _fingerprint(root: Path) -> str:
    """Every file under ``root`` (.patchkit included: the store, its refs), hashed."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process and its children, fn's result)."""

    def cpu() -> float:
        own, kids = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, cpu() - c0, result


def _rebase_through(project: Project, onto: str) -> dict[str, str]:
    """``rebase --onto``, then ``--skip`` at every stop: each patch's status as it met it."""
    met: dict[str, str] = {}
    result = project.rebase(onto)
    while result.state is RebaseState.STOPPED:
        for p in result.patches:
            if p.status is PatchStatus.CONFLICT:
                met[p.name] = p.status.value
        result = project.rebase_skip()
    for p in result.patches:
        met.setdefault(p.name, p.status.value)
    return met


def bench_package(pkg: str, runs: int, work: Path) -> dict[str, Any]:
    project, onto = setup(pkg, work / "pristine")
    before = _fingerprint(project.root)
    times: dict[str, list[tuple[float, float]]] = {"forecast": [], "rebase": [], "first-stop": []}
    statuses: dict[str, str] = {}
    rebase_met: dict[str, str] = {}
    for run in range(runs):
        # Interleaved: each run times all three, in an order that rotates.
        order = ["forecast", "rebase", "first-stop"]
        order = order[run % 3 :] + order[: run % 3]
        for what in order:
            if what == "forecast":
                wall, cpu, result = _timed(lambda: project.forecast(onto))
                statuses = {p.name: p.status.value for p in result.patches}
            else:
                copy = work / f"{what}-{run}"
                shutil.copytree(project.root, copy, symlinks=True)
                other = Project.open(copy)
                if what == "rebase":
                    wall, cpu, rebase_met = _timed(lambda p=other: _rebase_through(p, onto))
                else:
                    wall, cpu, _ = _timed(lambda p=other: p.rebase(onto))
                shutil.rmtree(copy)
            times[what].append((wall, cpu))
    assert _fingerprint(project.root) == before, f"{pkg}: the forecast changed the project"
    assert statuses == rebase_met, f"{pkg}: forecast {statuses} != rebase {rebase_met}"
    med = {
        what: {
            "wall": statistics.median(w for w, _ in values),
            "cpu": statistics.median(c for _, c in values),
        }
        for what, values in times.items()
    }
    return {
        "package": pkg,
        "onto": onto,
        "patches": len(statuses),
        "conflicts": sum(s == "conflict" for s in statuses.values()),
        "runs": runs,
        "medians": med,
        "ratio_wall": med["forecast"]["wall"] / med["rebase"]["wall"],
        "ratio_cpu": med["forecast"]["cpu"] / med["rebase"]["cpu"],
        "ratio_wall_first_stop": med["forecast"]["wall"] / med["first-stop"]["wall"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packages", nargs="*", default=list(DEBIAN.DEFAULT_PACKAGES))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as tmp:
        for pkg in args.packages:
            r = bench_package(pkg, args.runs, Path(tmp) / pkg)
            results.append(r)
            m = r["medians"]
            print(
                f"{pkg:<10} onto {r['onto']:<14} {r['patches']:>3} patches {r['conflicts']:>2} conflicts  "
                f"forecast {m['forecast']['wall']:.2f}s (cpu {m['forecast']['cpu']:.2f})  "
                f"rebase+skips {m['rebase']['wall']:.2f}s (cpu {m['rebase']['cpu']:.2f})  "
                f"ratio {r['ratio_wall']:.2f} (cpu {r['ratio_cpu']:.2f})  "
                f"rebase to first stop {m['first-stop']['wall']:.2f}s",
                flush=True,
            )
    total = {
        what: sum(r["medians"][what]["wall"] for r in results)
        for what in ("forecast", "rebase", "first-stop")
    }
    print(
        f"{'TOTAL':<10} forecast {total['forecast']:.2f}s  rebase+skips {total['rebase']:.2f}s  "
        f"ratio {total['forecast'] / total['rebase']:.2f}  "
        f"(rebase to first stop {total['first-stop']:.2f}s)"
    )
    if args.json:
        args.json.write_text(json.dumps({"packages": results, "total": total}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
