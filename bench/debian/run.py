#!/usr/bin/env python3
"""Rebase-fidelity yardstick on Debian's own patch series (bookworm -> trixie).

For each package: U1/S1 = bookworm's upstream tree and debian/patches, U2/S2 = trixie's.
Each tool replays S1 onto U2 (skipping conflicts); each S1 patch is scored:

* agree               carried (same file name in S2), applied, change set equal to S2's
* diverge             carried, applied, change set differs
* needs-human         carried, the tool stopped on it (conflict)
* wrongly-dropped     carried, but the tool said "already applied" and dropped it
* dropped-ok          not carried, and the tool reported already-applied or conflict
* dropped-but-applied not carried, but the tool applied it

Change set: per file, the multiset of removed and added lines, lines both removed and added
cancelling (patchkit.core.apply.change_set). For a file going from A to B this is A-B and B-A as
multisets, whatever diff algorithm made the patch, so every tool is scored from the file
contents before and after its patch.

Tools: patchkit (`rebase --onto`, `--skip` on conflicts), quilt push (default fuzz and
--fuzz=0, one patch at a time on U2, a patch that fails is taken out of the series), and
`git rebase --onto` (merge backend, `--skip` on conflicts).

Usage: bench/debian/run.py [PKG ...] [--json OUT] [--tools patchkit,quilt,quilt0,git]

Downloads (apt-get source --download-only, through a scratch sources list that names the
machine's own Debian mirror) are cached under bench/.cache/ (git-ignored); the machine's
apt configuration is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / "bench" / ".cache"
sys.path.insert(0, str(ROOT))

from patchkit import Project  # noqa: E402
from patchkit.core.apply import change_set  # noqa: E402
from patchkit.core.model import PatchStatus, RebaseState  # noqa: E402
from patchkit.core.patchfile import parse_patch  # noqa: E402
from patchkit.core.rangediff import change_present  # noqa: E402
from patchkit.core.series import parse_series  # noqa: E402

DEFAULT_PACKAGES = ("memcached", "rspamd", "openldap")
SUITES = ("bookworm", "trixie")
SCORES = ("agree", "diverge", "needs-human", "wrongly-dropped", "dropped-ok", "dropped-but-applied")
ChangeSet = dict[str, tuple[Counter[str], Counter[str]]]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_AUTHOR_DATE": "1970-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "1970-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "LC_ALL": "C",
}


def run(
    cmd: list[str],
    cwd: Path | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, env=full_env, input=input, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-800:]}"
        )
    return proc


# --------------------------------------------------------------------------- fetching


def mirror() -> str:
    """The Debian mirror this machine already uses (never another host)."""
    text = Path("/etc/apt/sources.list.d/debian.sources").read_text()
    for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
        if not m.group(1).rstrip("/").endswith("-security"):
            return m.group(1)
    raise SystemExit("no Debian mirror in /etc/apt/sources.list.d/debian.sources")


def apt_options() -> list[str]:
    apt = CACHE / "apt"
    sources = apt / "sources.list"
    if not sources.exists():
        (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (apt / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        key = "/usr/share/keyrings/debian-archive-keyring.gpg"
        sources.write_text(
            "".join(f"deb-src [signed-by={key}] {mirror()} {s} main\n" for s in SUITES)
        )
    opts = [
        f"-o=Dir::Etc::SourceList={sources}",
        "-o=Dir::Etc::SourceParts=/dev/null",
        f"-o=Dir::State::Lists={apt / 'lists'}",
        f"-o=Dir::Cache={apt / 'cache'}",
    ]
    if not any((apt / "lists").glob("*Sources*")):
        run(["apt-get", *opts, "update"])
    return opts


def fetch(pkg: str, suite: str) -> Path:
    """The unpacked source (patches not applied) of ``pkg`` in ``suite``."""
    dl = CACHE / "src" / f"{pkg}-{suite}"
    if not list(dl.glob("*.dsc")):
        dl.mkdir(parents=True, exist_ok=True)
        try:
            run(["apt-get", *apt_options(), "source", "--download-only", f"{pkg}/{suite}"], cwd=dl)
        except RuntimeError:
            # This mirror lacks some upstream signatures (.asc, 404); dpkg-source --no-check
            # does not need them: fetch the files apt names, skipping only a missing .asc.
            uris = run(
                ["apt-get", *apt_options(), "source", "--print-uris", f"{pkg}/{suite}"]
            ).stdout.decode()
            for m in re.finditer(r"^'(\S+)' (\S+) ", uris, re.M):
                proc = subprocess.run(
                    ["curl", "-sSf", "-o", str(dl / m.group(2)), m.group(1)], capture_output=True
                )
                if proc.returncode != 0 and not m.group(2).endswith(".asc"):
                    raise RuntimeError(f"{pkg}/{suite}: cannot fetch {m.group(1)}") from None
    out = CACHE / "tree" / f"{pkg}-{suite}"
    if not (out / "upstream").is_dir():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        (dsc,) = dl.glob("*.dsc")
        run(["dpkg-source", "--no-check", "-x", "--skip-patches", str(dsc), str(out / "x")])
        shutil.copytree(out / "x" / "debian" / "patches", out / "patches", symlinks=True)
        shutil.rmtree(out / "x" / "debian")
        (out / "x").rename(out / "upstream")
    return out


# --------------------------------------------------------------------------- series


@dataclass
class Series:
    names: list[str]
    strips: dict[str, int]
    dir: Path

    def change_set(self, name: str) -> ChangeSet:
        return change_set(
            parse_patch((self.dir / name).read_bytes(), name=name, strip=self.strips[name])
        )


def read_series(patches: Path) -> Series:
    s = parse_series((patches / "series").read_text())
    return Series(
        names=[e.name for e in s.entries], strips={e.name: e.strip for e in s.entries}, dir=patches
    )


def files_change_set(before: dict[str, bytes | None], after: dict[str, bytes | None]) -> ChangeSet:
    """The change set of going from ``before`` to ``after`` (see the module docstring)."""
    out: ChangeSet = {}
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        la = Counter((a or b"").decode("utf-8", "surrogateescape").splitlines(True))
        lb = Counter((b or b"").decode("utf-8", "surrogateescape").splitlines(True))
        out[path] = (la - lb, lb - la)
    return out


def normalise(
    cs: ChangeSet,
) -> dict[str, tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]]:
    # Files whose change cancels out entirely are no change; a missing final newline is not one either.
    def norm(c: Counter[str]) -> Counter[str]:
        return Counter({k if k.endswith("\n") else k + "\n": v for k, v in c.items()})

    out = {}
    for path, (removed, added) in cs.items():
        r, a = norm(removed), norm(added)
        r, a = r - a, a - r
        if r or a:
            out[path] = (tuple(sorted(r.items())), tuple(sorted(a.items())))
    return out


@dataclass
class Outcome:
    status: str  # applied | conflict | already-applied
    change: ChangeSet | None = None
    note: str = ""


@dataclass
class ToolRun:
    tool: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- tools


def tool_patchkit(u1: Path, u2: Path, s1: Series, v1: str, v2: str, work: Path) -> ToolRun:
    proj = work / "patchkit"
    (proj / "patches").mkdir(parents=True)
    for name in s1.names:
        dst = proj / "patches" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s1.dir / name, dst)
    shutil.copyfile(s1.dir / "series", proj / "patches" / "series")
    (proj / "upstream-versions.toml").write_text(
        f'schema = 1\nbase = "{v1}"\n\n[upstream]\nname = "bench"\n\n'
        f'[[version]]\nversion = "{v1}"\nsource = "dir:{u1}"\n\n'
        f'[[version]]\nversion = "{v2}"\nsource = "dir:{u2}"\n'
    )
    project = Project.open(proj)
    project.import_release(v1)
    project.import_release(v2)
    tr = ToolRun("patchkit")
    result = project.rebase(v2)
    risky: list[str] = []
    conflict_notes: dict[str, str] = {}
    while result.state is RebaseState.STOPPED:
        stopped = [p for p in result.patches if p.status is PatchStatus.CONFLICT]
        if stopped:
            conflict_notes[stopped[-1].name] = stopped[-1].message
        result = project.rebase_skip()
    for p in result.patches:
        if p.risk:
            risky.append(p.name)
        if p.status in (PatchStatus.APPLIED, PatchStatus.MERGED):
            new = project.patches_dir / p.name
            cs = change_set(parse_patch(new.read_bytes(), name=p.name, strip=s1.strips[p.name]))
            tr.outcomes[p.name] = Outcome("applied", cs, p.message)
        elif p.status is PatchStatus.ALREADY_APPLIED:
            tr.outcomes[p.name] = Outcome("already-applied", note=p.message)
        else:
            tr.outcomes[p.name] = Outcome("conflict", note=conflict_notes.get(p.name, p.message))
    tr.extra["risk"] = ",".join(risky)
    tr.extra["risk_notes"] = "; ".join(
        f"{p.name}: {' / '.join(p.risk)}" for p in result.patches if p.risk
    )
    return tr


def _read_files(root: Path, paths: Iterable[str]) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in paths:
        f = root / p
        out[p] = f.read_bytes() if f.is_file() and not f.is_symlink() else None
    return out


def tool_quilt(u2: Path, s1: Series, work: Path, fuzz: int | None) -> ToolRun:
    tr = ToolRun("quilt" if fuzz is None else f"quilt --fuzz={fuzz}")
    tree = work / ("quilt" if fuzz is None else f"quilt-f{fuzz}")
    shutil.copytree(u2, tree, symlinks=True)
    pdir = tree / "debian" / "patches"
    shutil.copytree(s1.dir, pdir, symlinks=True)
    series_path = pdir / "series"
    env = {
        "QUILT_PATCHES": "debian/patches",
        "QUILT_PC": ".pc",
        "QUILT_PUSH_ARGS": "",
        "QUILTRC": "/dev/null",
    }
    lines = series_path.read_text().splitlines(True)
    for name in s1.names:
        paths = [
            fp.path
            for fp in parse_patch(
                (s1.dir / name).read_bytes(), name=name, strip=s1.strips[name]
            ).files
        ]
        before = _read_files(tree, paths)
        cmd = ["quilt", "--quiltrc=/dev/null", "push", "-q"] + (
            [f"--fuzz={fuzz}"] if fuzz is not None else []
        )
        proc = run(cmd, cwd=tree, check=False, env=env)
        if proc.returncode == 0:
            after = _read_files(tree, paths)
            tr.outcomes[name] = Outcome("applied", files_change_set(before, after))
            continue
        text = (proc.stdout + proc.stderr).decode(errors="replace")
        status = (
            "already-applied"
            if "reverse-applied" in text or "can be reverse" in text
            else "conflict"
        )
        tr.outcomes[name] = Outcome(
            status, note=text.strip().splitlines()[-1] if text.strip() else ""
        )
        # Take the failed patch out of the series (it is not applied, so quilt allows that).
        lines = [ln for ln in lines if ln.split("#")[0].split()[:1] != [name]]
        series_path.write_text("".join(lines))
    return tr


def _git(
    repo: Path, *args: str, check: bool = True, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return run(["git", *args], cwd=repo, check=check, env=GIT_ENV, input=input)


def _commit_tree(repo: Path, tree_dir: Path, parent: str | None, message: str) -> str:
    env = {
        **GIT_ENV,
        "GIT_INDEX_FILE": str(repo / ".git" / "tmp-index"),
        "GIT_WORK_TREE": str(tree_dir),
        "GIT_DIR": str(repo / ".git"),
    }
    run(["git", "add", "-A", "-f", "."], cwd=tree_dir, env=env)
    tree = run(["git", "write-tree"], cwd=tree_dir, env=env).stdout.decode().strip()
    (repo / ".git" / "tmp-index").unlink()
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    return _git(repo, *args).stdout.decode().strip()


def tool_git(u1: Path, u2: Path, s1: Series, work: Path) -> ToolRun:
    tr = ToolRun("git rebase")
    repo = work / "git"
    repo.mkdir()
    _git(repo, "init", "-q")
    c1 = _commit_tree(repo, u1, None, "U1")
    c2 = _commit_tree(repo, u2, c1, "U2")
    _git(repo, "checkout", "-q", "-f", c1)
    for name in s1.names:
        _git(
            repo,
            "apply",
            "--index",
            "--whitespace=nowarn",
            f"-p{s1.strips[name]}",
            "-C0",
            str(s1.dir / name),
            check=False,
        )
        if _git(repo, "diff", "--cached", "--quiet", check=False).returncode == 0:
            # git apply is stricter than dpkg-source; fall back to patch(1) as quilt uses it.
            run(
                [
                    "patch",
                    "-s",
                    "-f",
                    f"-p{s1.strips[name]}",
                    "--no-backup-if-mismatch",
                    "-i",
                    str(s1.dir / name),
                ],
                cwd=repo,
                check=False,
            )
            _git(repo, "add", "-A", "-f", ".")
        _git(repo, "commit", "-q", "--allow-empty", "-m", name)
    _git(repo, "branch", "-f", "series", "HEAD")
    _git(repo, "checkout", "-q", "series")
    env_rebase = ["-c", "merge.conflictStyle=merge", "rebase", "--merge", "--onto", c2, c1]
    proc = _git(repo, *env_rebase, check=False)
    conflicts: set[str] = set()
    while proc.returncode != 0:
        head = (
            _git(repo, "rev-parse", "--verify", "-q", "REBASE_HEAD", check=False)
            .stdout.decode()
            .strip()
        )
        if not head:
            raise RuntimeError(f"git rebase failed: {proc.stderr.decode(errors='replace')[-500:]}")
        conflicts.add(_git(repo, "log", "-1", "--format=%s", head).stdout.decode().strip())
        proc = _git(repo, "rebase", "--skip", check=False)
    log = _git(repo, "log", "--format=%H %s", f"{c2}..HEAD").stdout.decode().splitlines()
    applied = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in log}
    for name in s1.names:
        if name in conflicts:
            tr.outcomes[name] = Outcome("conflict")
        elif name in applied:
            c = applied[name]
            out = _git(repo, "diff", "--no-renames", "-U0", f"{c}^", c).stdout
            tr.outcomes[name] = Outcome(
                "applied", change_set(parse_patch(out, name=name, strip=1)) if out else {}
            )
        else:
            tr.outcomes[name] = Outcome("already-applied")
    return tr


# --------------------------------------------------------------------------- scoring


def score(name: str, outcome: Outcome, s2: Series) -> str:
    carried = name in s2.names
    if not carried:
        return "dropped-but-applied" if outcome.status == "applied" else "dropped-ok"
    if outcome.status == "conflict":
        return "needs-human"
    if outcome.status == "already-applied":
        return "wrongly-dropped"
    assert outcome.change is not None
    return "agree" if normalise(outcome.change) == normalise(s2.change_set(name)) else "diverge"


def rewritten_lines(name: str, s1: Series, s2: Series, u1: Path, u2: Path) -> int:
    """Lines where S2's patch is not S1's carried over: lines S2 adds that are nowhere in U1,
    U2 (same file) or S1's patch (Debian wrote new text), plus lines S1 adds that S2 does
    not and U2 does not have either (Debian dropped part of the change; upstream did not
    absorb it). A tool builds its result from U1, U2 and S1 and applies a patch whole, so a
    carried patch with such lines can come out as diverge or needs-human, never as agree.
    """
    cs1, cs2 = s1.change_set(name), s2.change_set(name)
    ours = {line for _, added in cs1.values() for line in added}
    theirs = {line for _, added in cs2.values() for line in added}
    count = 0
    for path in sorted(set(cs1) | set(cs2)):
        upstream: set[str] = set()
        for root in (u1, u2):
            f = root / path
            if f.is_file():
                upstream.update(f.read_bytes().decode("utf-8", "surrogateescape").splitlines(True))
        u2_lines = set()
        if (u2 / path).is_file():
            u2_lines = set(
                (u2 / path).read_bytes().decode("utf-8", "surrogateescape").splitlines(True)
            )

        def known(line: str, pool: set[str]) -> bool:
            return line in pool or line + "\n" in pool

        for line, n in cs2.get(path, (Counter(), Counter()))[1].items():
            if line.strip() and not known(line, upstream | ours):
                count += n
        for line, n in cs1.get(path, (Counter(), Counter()))[1].items():
            if line.strip() and not known(line, theirs | u2_lines):
                count += n
    return count


def _already_in(name: str, s1: Series, u2: Path) -> bool:
    """The patch changes nothing (an empty file: procps' ps_checks) or its change is in U2."""
    patch = parse_patch((s1.dir / name).read_bytes(), name=name, strip=s1.strips[name])
    return not patch.files or change_present(patch, _read_files(u2, patch.paths))


def floors(
    results: dict[str, Any], s1: Series, s2: Series, u1: Path, u2: Path
) -> dict[str, object]:
    """The best any tool could score here, whatever its method (see docs/fidelity.md).

    needs-human: carried patches that cannot agree (rewritten_lines > 0) end as needs-human or
    diverge; with no more diverge than git rebase, at least (those - git's diverge) stay
    needs-human. dropped-but-applied: a dropped patch that `quilt push --fuzz=0` applies has
    every line and its context unchanged upstream: refusing it means refusing patches that
    look the same and are kept, so a tool that applies what applies exactly applies it.
    """
    tools = results["tools"]
    cannot_agree = sorted(
        n for n in s1.names if n in s2.names and rewritten_lines(n, s1, s2, u1, u2) > 0
    )
    git_diverge = tools["git rebase"]["scores"]["diverge"] if "git rebase" in tools else 0
    out: dict[str, object] = {
        "cannot_agree": cannot_agree,
        "needs_human": max(0, len(cannot_agree) - git_diverge),
    }

    # Dropped by name only: S2 carries the same change set under another file name.
    def key(series: Series, name: str) -> str:
        return repr(sorted(normalise(series.change_set(name)).items()))

    by_change: dict[str, str] = {}
    for m in s2.names:
        with contextlib.suppress(Exception):  # a patch of S2 this parser cannot read is no match
            by_change.setdefault(key(s2, m), m)
    out["renamed"] = {
        n: by_change[key(s1, n)] for n in s1.names if n not in s2.names and key(s1, n) in by_change
    }
    if "quilt --fuzz=0" in tools:
        exact = tools["quilt --fuzz=0"]["status"]
        # ... unless its change is already there as it is (upstream added the very lines):
        # a tool may see that, and drop it.
        out["dropped_exact"] = sorted(
            n
            for n in s1.names
            if n not in s2.names and exact.get(n) == "applied" and not _already_in(n, s1, u2)
        )
        out["dropped_but_applied"] = len(out["dropped_exact"])  # type: ignore[arg-type]
    return out


def bench_package(pkg: str, tools: list[str], keep: bool) -> dict[str, object]:
    t1, t2 = fetch(pkg, SUITES[0]), fetch(pkg, SUITES[1])
    s1, s2 = read_series(t1 / "patches"), read_series(t2 / "patches")
    v1 = (
        sorted(t1.parent.parent.glob(f"src/{pkg}-{SUITES[0]}/*.dsc"))[0]
        .name.split("_")[1]
        .rsplit("-", 1)[0]
    )
    v2 = (
        sorted(t2.parent.parent.glob(f"src/{pkg}-{SUITES[1]}/*.dsc"))[0]
        .name.split("_")[1]
        .rsplit("-", 1)[0]
    )
    v1, v2 = re.sub(r"[^A-Za-z0-9._+-]", "_", v1), re.sub(r"[^A-Za-z0-9._+-]", "_", v2)
    if v1 == v2:
        raise RuntimeError(
            f"the same upstream version ({v1}) in both suites: nothing to rebase onto"
        )
    work = Path(tempfile.mkdtemp(prefix=f"bench-{pkg}-"))
    runners: dict[str, Callable[[], ToolRun]] = {
        "patchkit": lambda: tool_patchkit(t1 / "upstream", t2 / "upstream", s1, v1, v2, work),
        "quilt": lambda: tool_quilt(t2 / "upstream", s1, work, None),
        "quilt0": lambda: tool_quilt(t2 / "upstream", s1, work, 0),
        "git": lambda: tool_git(t1 / "upstream", t2 / "upstream", s1, work),
    }
    results: dict[str, object] = {
        "package": pkg,
        "from": v1,
        "to": v2,
        "patches": len(s1.names),
        "carried": sum(n in s2.names for n in s1.names),
        "tools": {},
    }
    try:
        for tool in tools:
            start = time.monotonic()
            tr = runners[tool]()
            tr.seconds = time.monotonic() - start
            per_patch = {n: score(n, tr.outcomes.get(n, Outcome("conflict")), s2) for n in s1.names}
            counts = Counter(per_patch.values())
            results["tools"][tr.tool] = {  # type: ignore[index]
                "scores": {s: counts.get(s, 0) for s in SCORES},
                "per_patch": per_patch,
                "status": {n: o.status for n, o in tr.outcomes.items()},
                "notes": {n: o.note for n, o in tr.outcomes.items() if o.note},
                "seconds": round(tr.seconds, 1),
                **tr.extra,
            }
        results["floors"] = floors(results, s1, s2, t1 / "upstream", t2 / "upstream")
    finally:
        if keep:
            print(f"[{pkg}] work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def table(all_results: list[dict[str, object]]) -> str:
    head = (
        f"{'package':<12} {'tool':<16} "
        + " ".join(
            f"{s:>7}" for s in ("agree", "diverge", "human", "wrongdr", "drop-ok", "drop-ap")
        )
        + "   secs"
    )
    rows = [head, "-" * len(head)]
    totals: dict[str, Counter[str]] = {}
    for r in all_results:
        for tool, data in r["tools"].items():  # type: ignore[attr-defined]
            sc = data["scores"]
            totals.setdefault(tool, Counter()).update(sc)
            rows.append(
                f"{r['package']:<12} {tool:<16} "
                + " ".join(f"{sc[s]:>7}" for s in SCORES)
                + f" {data['seconds']:>6}"
            )
    rows.append("-" * len(head))
    for tool, sc in totals.items():
        rows.append(f"{'TOTAL':<12} {tool:<16} " + " ".join(f"{sc[s]:>7}" for s in SCORES))
    rows += [
        "",
        "Targets (issue 4) against what any tool could reach (floors: see floors()):",
        f"{'package':<12} {'human: git':>10} {'target':>7} {'floor':>6} {'patchkit':>9}   "
        f"{'drop-ap: git':>12} {'target':>7} {'floor':>6} {'patchkit':>9}",
    ]
    for r in all_results:
        tools: dict[str, Any] = r["tools"]  # type: ignore[assignment]
        fl: dict[str, Any] = r.get("floors", {})  # type: ignore[assignment]
        if "git rebase" not in tools or "patchkit" not in tools:
            continue
        g, pk = tools["git rebase"]["scores"], tools["patchkit"]["scores"]
        rows.append(
            f"{r['package']:<12} {g['needs-human']:>10} {g['needs-human'] / 2:>7} {fl.get('needs_human', '?'):>6} "
            f"{pk['needs-human']:>9}   {g['dropped-but-applied']:>12} {g['dropped-but-applied'] / 2:>7} "
            f"{fl.get('dropped_but_applied', '?'):>6} {pk['dropped-but-applied']:>9}"
        )
    for r in all_results:
        renamed = r.get("floors", {}).get("renamed", {})  # type: ignore[attr-defined]
        if renamed:
            rows.append(
                f"{r['package']}: dropped by name but carried under another (same change set): "
                + ", ".join(f"{a} -> {b}" for a, b in sorted(renamed.items()))
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packages", nargs="*", default=list(DEFAULT_PACKAGES))
    ap.add_argument("--tools", default="patchkit,quilt,quilt0,git")
    ap.add_argument("--json", metavar="OUT", help="write every number and per-patch score here")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument("-v", "--verbose", action="store_true", help="per-patch scores")
    args = ap.parse_args(argv)
    tools = args.tools.split(",")
    results = []
    for pkg in args.packages:
        try:
            r = bench_package(pkg, tools, args.keep)
        except (RuntimeError, FileNotFoundError) as e:  # not on this mirror, or no series
            print(f"skipped {pkg}: {str(e).splitlines()[-1][:200]}", file=sys.stderr)
            continue
        results.append(r)
        if args.verbose:
            names = list(next(iter(r["tools"].values()))["per_patch"])  # type: ignore[attr-defined]
            for n in names:
                print(
                    f"  {pkg}: {n:<50} "
                    + "  ".join(f"{t}={d['per_patch'][n]}" for t, d in r["tools"].items()),
                    file=sys.stderr,
                )  # type: ignore[attr-defined]
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
