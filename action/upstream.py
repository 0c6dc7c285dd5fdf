"""What action.yml runs in ``mode: watch`` (action/run.sh hands over to it): each new upstream
release becomes a pull request or an issue (docs/github-action.md, docs/upgrading.md).

1. ``patchkit watch --import`` on the checkout: the new releases added to
   upstream-versions.toml and imported; re-pushed and vanished ones only reported.
2. For each new release its upgrade report (``patchkit report``: the forecast of the rebase,
   the audits, the packages, upstream's diff), kept as Markdown, JSON and HTML.
3. Forecast clean and patched audit passed: a commit on ``patchkit/upstream-VERSION`` made
   from HEAD (the TOML with that one release added and, when it is newer than ``base``, the
   series moved onto it by a real ``patchkit rebase --onto``, whose result is audited again),
   and one pull request per release, its body the report. Otherwise one issue per release,
   found again by the report's first line (its marker): the report, what a person must
   resolve first.
4. A re-pushed tag: one issue with both digests and ``diff --touched`` between them (both
   images imported under temporary labels into a scratch project and store, never over the
   tracked release).

Settings (environment; the action's inputs): PATCHKIT_PROJECT, PATCHKIT_OUT (everything under
OUT/upstream), PATCHKIT_BASE_BRANCH (default: the branch checked out), PATCHKIT_GH_LABEL
(issues are found by this label and their marker), PATCHKIT_GH_DRY_RUN and PATCHKIT_GH_ANSWERS
(action/ghcli.py). Outputs to $GITHUB_OUTPUT, a table to $GITHUB_STEP_SUMMARY. Exit 0: every
release handled, whatever was found; 3: something failed (each failure one line); 2: a bad
setting.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bodies
from ghcli import Failure, GitHub, load_answers
from gitrepo import Checkout, Remote

from patchkit import PatchkitError, Project, RebaseState
from patchkit.core.versions import add_releases
from patchkit.core.watch import NewRelease, Repushed
from patchkit.files import atomic_write
from patchkit.output.formats import to_json
from patchkit.output.upgrade import MARKER, report_html, report_markdown

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 3
ERRORS = (PatchkitError, Failure)
LABEL_COLOUR = "5319e7"


class NotClean(Exception):
    """The real rebase, or the audit of its result, disagrees with the forecast: an issue."""

    def __init__(self, message: str, *, audit: str = "") -> None:
        super().__init__(message)
        self.audit = audit  # "failed" when the audit of the branch's result failed


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    project: Path
    out: Path
    base_branch: str
    label: str
    dry_run: bool
    answers: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        flag = env.get("PATCHKIT_GH_DRY_RUN", "").strip().lower()
        if flag not in ("", "0", "false", "no", "1", "true", "yes"):
            raise Failure(f"PATCHKIT_GH_DRY_RUN={flag!r}: use 1/true or 0/false")
        return cls(
            project=Path(env.get("PATCHKIT_PROJECT") or "."),
            out=(Path(env.get("PATCHKIT_OUT") or "patchkit-out") / "upstream").resolve(),
            base_branch=env.get("PATCHKIT_BASE_BRANCH", "").strip(),
            label=env.get("PATCHKIT_GH_LABEL", "").strip() or "patchkit-upstream",
            dry_run=flag in ("1", "true", "yes"),
            answers=env.get("PATCHKIT_GH_ANSWERS", "").strip(),
        )


def log(message: str) -> None:
    print(f"patchkit action: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    """One readable line (an annotation on a runner)."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error title=patchkit watch::{message}", file=sys.stderr, flush=True)
    else:
        log(f"error: {message}")


def output(name: str, value: str) -> None:
    print(f"{name}={value}")
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{name}={value}\n")


@dataclass
class Outcome:
    """What the run did with one new release (an entry of the ``results`` output)."""

    version: str
    report: str = ""
    forecast_clean: bool = False
    audit: str = "not run"  # the patched release's: passed | failed | not run
    clean: bool = False  # a pull request: forecast clean, audits passed, the rebase went through
    action: str = "failed"  # pull-request | issue | left-alone | failed
    branch: str | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        keys = ("version", "clean", "forecast_clean", "audit", "action", "branch", "report")
        return {key: getattr(self, key) for key in keys}


@dataclass
class Run:
    settings: Settings
    checkout: Checkout
    project: Project
    image: str  # as watch names it: docker://REGISTRY/NAME or oci:PATH
    gh: GitHub

    @property
    def name(self) -> str:
        return self.project.versions.upstream.name

    def pinned(self, digest: str) -> str:
        """The watched image at ``digest``, as a source."""
        if self.image.startswith("oci:"):
            path = Path(self.image.removeprefix("oci:"))
            return f"oci:{path if path.is_absolute() else self.project.root / path}:{digest}"
        return f"{self.image}@{digest}"

    # -- a new release --------------------------------------------------------------------

    def new_release(self, new: NewRelease) -> Outcome:
        version = new.version
        out = Outcome(version=version)
        where = self.settings.out / version
        where.mkdir(parents=True, exist_ok=True)
        report = self.project.report(version)
        markdown = report_markdown(report)
        atomic_write(where / "report.md", markdown.encode())
        atomic_write(where / "report.json", (to_json(report) + "\n").encode())
        atomic_write(where / "report.html", report_html(report).encode())
        out.report = str(where / "report.md")
        f = report.forecast
        out.forecast_clean = f.clean
        if report.audit is not None:
            out.audit = "failed" if report.audit.failed else "passed"
        log(
            f"{version}: forecast {'clean' if f.clean else 'needs a person'}, "
            f"patched audit {out.audit} (report: {out.report})"
        )
        marker = MARKER.format(name=self.name, version=version)
        if f.clean:
            # The report audits the series as it stands on the release (a patch that only
            # merges 3-way is not in it); the branch's own audit, of the rebased series, decides.
            in_report = out.audit
            try:
                commit = self.release_commit(new, where)
            except NotClean as e:
                out.reasons.append(str(e))
                out.audit = e.audit or out.audit
            else:
                out.clean, out.audit = True, "passed"
                out.branch = bodies.BRANCH.format(version=version)
                footer = bodies.pr_footer(
                    version,
                    base=self.project.versions.base,
                    into=self.checkout.branch,
                    rebased=new.newer_than_base,
                    report_audit=in_report,
                )
                title = bodies.pr_title(self.name, version, rebased=new.newer_than_base)
                body = f"{markdown}\n\n---\n{footer}"
                out.action = self.pull_request(version, commit, title, body, where / "body.md")
                self.close_issue(marker, version)
                return out
        else:
            stops = ", ".join(p.name for p in f.patches if p.left_out)
            out.reasons.append(
                f"`patchkit forecast {version}`: a rebase would stop on {stops}"
                if f.starts
                else f"the series does not apply to its base {f.base}"
            )
            if out.audit != "passed":
                out.reasons.append(f"the audit of {version} with the series applied: {out.audit}")
        footer = bodies.issue_footer(version, into=self.checkout.branch, reasons=out.reasons)
        out.action = self.issue(
            marker,
            bodies.issue_title(self.name, version),
            f"{markdown}\n\n---\n{footer}",
            where / "body.md",
            keep_closed=lambda _: True,  # a person closed it: they decided
        )
        return out

    def release_commit(self, new: NewRelease, where: Path) -> str:
        """The commit of ``patchkit/upstream-VERSION``: HEAD, the release added and, when it is
        newer than base, the series rebased onto it (:class:`NotClean` when that fails)."""
        version = new.version
        rel = self.project.versions.release(version)
        entry = {"version": version, "status": rel.status.value}
        for key, value in (("tag-digest", rel.tag_digest), ("digest", rel.digest)):
            if value:
                entry[key] = value
        with self.checkout.worktree(where / "worktree") as tree:
            root = tree / self.checkout.prefix
            toml = root / "upstream-versions.toml"
            atomic_write(toml, add_releases(toml.read_text(encoding="utf-8"), [entry]).encode())
            branch_project = Project.open(root, store=self.project.store_dir)
            old_base = branch_project.versions.base
            moved = ""
            if new.newer_than_base:
                result = branch_project.rebase(version)
                if result.state is not RebaseState.COMPLETED:
                    stopped = ", ".join(
                        p.name for p in result.patches if p.status.value == "conflict"
                    )
                    branch_project.rebase_abort()
                    raise NotClean(f"`patchkit rebase --onto {version}` stopped on {stopped}")
                moved = f", series rebased onto it (base {old_base} -> {version})"
            if branch_project.audit(version).failed:
                raise NotClean(
                    f"the audit of {version} with the series as the branch would commit it failed",
                    audit="failed",
                )
            commit = self.checkout.commit(
                tree,
                f"patchkit: {self.name} {version}",
                f"Tracks upstream {self.name} {version} (status {rel.status.value}){moved}.",
                version,
            )
        branch = bodies.BRANCH.format(version=version)
        if not self.checkout.local_branch(branch, commit):  # for a person reading a dry run
            log(f"{version}: no local branch {branch} (checked out somewhere?)")
        log(f"{version}: {branch} at {commit[:12]}{moved}")
        return commit

    def pull_request(self, version: str, commit: str, title: str, body: str, file: Path) -> str:
        """Open or update the pull request of ``version``'s branch (``commit`` pushed first)."""
        atomic_write(file, body.encode())
        branch = bodies.BRANCH.format(version=version)
        prs = self.gh.lookup(
            *("gh", "pr", "list", "--head", branch, "--state", "all"),
            *("--json", "number,state,title,body,url", "--limit", "20"),
        )
        open_prs = [p for p in prs if p.get("state") == "OPEN"]
        if prs and not open_prs:
            log(
                f"{version}: pull request #{prs[0].get('number')} was closed by a person: left "
                f"alone (reopen it, or delete {branch}, to have it updated)"
            )
            return "left-alone"
        self.push(version, branch, commit)
        if not open_prs:
            url = self.gh.write(
                *("gh", "pr", "create", "--base", self.checkout.branch, "--head", branch),
                *("--title", title, "--body-file", str(file)),
            )
            if url.strip():
                log(f"{version}: opened {url.strip()}")
            return "pull-request"
        pr = open_prs[0]
        if bodies.same(pr.get("title"), title) and bodies.same(pr.get("body"), body):
            log(f"{version}: pull request #{pr.get('number')} says this already")
        else:
            number = str(pr.get("number"))
            self.gh.write("gh", "pr", "edit", number, "--title", title, "--body-file", str(file))
        return "pull-request"

    def push(self, version: str, branch: str, commit: str) -> None:
        state, tip, theirs = self.checkout.remote(branch, commit, version)
        if state is Remote.SAME:
            log(f"{version}: {branch} on origin holds this change already")
        elif state is Remote.THEIRS:
            log(
                f"{version}: {branch} has commits that are not the workflow's "
                f"({', '.join(c[:12] for c in theirs)}): not pushed over (delete the branch to "
                "have the workflow make it again)"
            )
        else:  # absent (the lease: still absent), or the workflow's own (still that commit)
            lease = f"--force-with-lease=refs/heads/{branch}:{tip}"
            self.gh.write("git", "push", lease, "origin", f"{commit}:refs/heads/{branch}")

    # -- issues ---------------------------------------------------------------------------

    def issues(self) -> list[dict[str, Any]]:
        return self.gh.lookup(
            *("gh", "issue", "list", "--label", self.settings.label, "--state", "all"),
            *("--json", "number,state,title,body,url", "--limit", "500"),
        )

    def issue(
        self,
        marker: str,
        title: str,
        body: str,
        file: Path,
        *,
        keep_closed: Callable[[dict[str, Any]], bool],
    ) -> str:
        """Open or update the one issue whose body starts with ``marker``; a closed one that
        ``keep_closed`` says a person has decided is left alone."""
        atomic_write(file, body.encode())
        mine = [i for i in self.issues() if bodies.first_line(i.get("body")) == marker]
        open_issues = [i for i in mine if i.get("state") == "OPEN"]
        if open_issues:
            found = open_issues[0]
            number = str(found.get("number"))
            if bodies.same(found.get("title"), title) and bodies.same(found.get("body"), body):
                log(f"issue #{number} says this already")
            else:
                self.gh.write(
                    "gh", "issue", "edit", number, "--title", title, "--body-file", str(file)
                )
            return "issue"
        closed = [i for i in mine if keep_closed(i)]
        if closed:
            log(f"issue #{closed[0].get('number')} was closed by a person: left alone ({title})")
            return "left-alone"
        self.ensure_label()
        url = self.gh.write(
            *("gh", "issue", "create", "--title", title, "--body-file", str(file)),
            *("--label", self.settings.label),
        )
        if url.strip():
            log(f"opened {url.strip()}")
        return "issue"

    def ensure_label(self) -> None:
        labels = self.gh.lookup("gh", "label", "list", "--json", "name", "--limit", "500")
        if any(label.get("name") == self.settings.label for label in labels):
            return
        self.gh.write(
            *("gh", "label", "create", self.settings.label, "--color", LABEL_COLOUR),
            *("--description", "patchkit: an upstream release that needs a person"),
        )
        labels.append({"name": self.settings.label})

    def close_issue(self, marker: str, version: str) -> None:
        """A release that needed a person and is clean now: its issue is closed, saying so."""
        branch = bodies.BRANCH.format(version=version)
        for found in self.issues():
            if bodies.first_line(found.get("body")) == marker and found.get("state") == "OPEN":
                note = f"{version} is clean now: the pull request from `{branch}` tracks it."
                self.gh.write("gh", "issue", "close", str(found.get("number")), "--comment", note)

    # -- a re-pushed tag ------------------------------------------------------------------

    def repushed(self, moved: Repushed) -> str:
        version = moved.version
        where = self.settings.out / f"repushed-{version}"
        where.mkdir(parents=True, exist_ok=True)
        log(f"{version}: re-pushed ({moved.recorded[:19]} -> {moved.current[:19]})")
        stat, diff, why = self.repush_diff(moved, where)
        body = bodies.repushed_body(
            name=self.name,
            version=version,
            image=self.image,
            recorded=moved.recorded,
            current=moved.current,
            pin=self.pinned(moved.recorded),
            stat=stat,
            diff=diff,
            why=why,
        )
        return self.issue(
            bodies.REPUSHED_MARKER.format(name=self.name, version=version),
            bodies.repushed_title(self.name, version),
            body,
            where / "body.md",
            # closed by a person for this push; the tag moving again opens a new issue
            keep_closed=lambda found: moved.current in str(found.get("body", "")),
        )

    def repush_diff(self, moved: Repushed, where: Path) -> tuple[str, str, str]:
        """``diff --touched --stat`` and ``diff --touched`` from the recorded to the current
        image, both imported into a scratch project and store; or why they could not be."""
        version = moved.version
        rel = self.project.versions.release(version)
        scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=where))
        try:
            shutil.copytree(self.project.patches_dir, scratch / "patches", symlinks=True)
            labels = (f"{version}-recorded", f"{version}-current")
            entries = []
            for label, digest in zip(labels, (moved.recorded, moved.current), strict=True):
                entry = {
                    "version": label,
                    "status": rel.status.value,
                    "source": self.pinned(digest),
                }
                if rel.platform:
                    entry["platform"] = rel.platform
                entries.append(entry)
            text = self.project.versions_path.read_text(encoding="utf-8")
            (scratch / "upstream-versions.toml").write_text(add_releases(text, entries))
            other = Project.open(scratch, store=scratch / "store.git")
            for label, what in zip(labels, ("recorded", "current"), strict=True):
                try:
                    other.import_release(label)
                except PatchkitError as e:
                    return "", "", f"the {what} image could not be imported ({e})"
            stat = other.diff(*labels, touched=True, stat=True).text
            return stat, other.diff(*labels, touched=True).text, ""
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


# -- main -----------------------------------------------------------------------------------


def run(settings: Settings) -> int:
    settings.out.mkdir(parents=True, exist_ok=True)
    checkout = Checkout.of(settings.project, settings.base_branch)
    answers = load_answers(settings.answers) if settings.dry_run else {}
    gh = GitHub(
        cwd=checkout.top,
        log=log,
        dry_run=settings.dry_run,
        answers=answers,
        answers_file=settings.answers,
    )
    project = Project.open(settings.project)
    found = project.watch(apply=True, import_releases=True)

    def names(items: Any) -> str:
        return " ".join(item.version for item in items)

    log(
        f"watch {found.image}: {found.tags} tags; new: {names(found.new) or 'none'}; "
        f"re-pushed: {names(found.repushed) or 'none'}; vanished: {names(found.vanished) or 'none'}"
    )
    state = Run(settings=settings, checkout=checkout, project=project, image=found.image, gh=gh)
    failures = 0
    base = project.versions.base
    if found.new and base not in project.imported():
        repushed = {r.version: r for r in found.repushed}
        # a re-pushed base is imported as recorded, by digest
        source = state.pinned(repushed[base].recorded) if base in repushed else None
        try:
            project.import_release(base, source)
        except PatchkitError as e:
            raise Failure(f"base {base} cannot be imported, so nothing can be forecast: {e}") from e
    results: list[Outcome] = []
    for new in found.new:
        try:
            results.append(state.new_release(new))
        except ERRORS as e:
            fail(f"{new.version}: {e}")
            failures += 1
            results.append(Outcome(version=new.version))
    for moved in found.repushed:
        try:
            state.repushed(moved)
        except ERRORS as e:
            fail(f"{moved.version} (re-pushed): {e}")
            failures += 1
    for gone in found.vanished:
        log(
            f"{gone.version}: its tag is no longer listed by {found.image}: reported only (pin "
            'its source to the recorded digest, or remove it: docs/cli.md, "watch")'
        )
    output("new", names(found.new))
    output("clean", " ".join(r.version for r in results if r.clean))
    output("repushed", names(found.repushed))
    output("vanished", names(found.vanished))
    output("results", json.dumps([r.to_dict() for r in results]))
    output("reports", " ".join(r.report for r in results if r.report))
    output("report-dir", str(settings.out))
    if settings.dry_run:
        commands = settings.out / "commands.sh"
        head = f"# patchkit watch, dry run: what a real run runs, in {checkout.top}\n"
        atomic_write(commands, (head + "".join(f"{c}\n" for c in gh.commands)).encode())
        output("commands", str(commands))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        rows = [
            (
                r.version,
                "clean" if r.forecast_clean else "needs a person",
                r.audit,
                r.action + (f" `{r.branch}`" if r.branch else ""),
            )
            for r in results
        ]
        counts = (len(found.new), len(found.repushed), len(found.vanished))
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(bodies.summary(found.image, counts, rows))
    return EXIT_FAILED if failures else EXIT_OK


def main() -> int:
    try:
        settings = Settings.from_env(dict(os.environ))
    except Failure as e:
        fail(str(e))
        return EXIT_USAGE
    try:
        return run(settings)
    except ERRORS as e:
        fail(str(e))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
