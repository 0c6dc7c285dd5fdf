"""The upgrade report rendered: Markdown that GitHub renders (checked with a CommonMark parser
with GFM tables), self-contained HTML, JSON valid against docs/schemas/upgrade.schema.json;
on a test-built project and on the model releases of poste.io (bench/.cache/models)."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # (check-jsonschema's; no stubs)
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from patchkit import Project
from patchkit.cli import main
from patchkit.core.report import UpgradeReport
from patchkit.output.formats import to_json
from patchkit.output.upgrade import report_html, report_markdown
from tests.conftest import in_ci
from tests.helpers.projectbuilder import forecast_scenario, report_scenario

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "bench" / ".cache" / "models"
LABELS = ("model-bookworm", "model-trixie")
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "upgrade.schema.json").read_text())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Project:
    missing = [label for label in LABELS if not (MODELS / label / "index.json").is_file()]
    if missing:
        msg = f"model layouts missing ({', '.join(missing)}): run python bench/model/build.py"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    root = tmp_path_factory.mktemp("poste") / "project"
    root.mkdir()
    shutil.copy(ROOT / "upstream-versions.toml", root)
    shutil.copytree(ROOT / "patches", root / "patches")
    for label in LABELS:
        args = ["--project", str(root), "-q", "import", label, f"oci:{MODELS / label}:{label}"]
        assert main(args) == 0
    return Project.open(root)


# -- what a renderer must get right, checked on any report -----------------------------------


def _markdown_checks(r: UpgradeReport, text: str) -> None:
    assert text.splitlines()[0] == f"<!-- patchkit-report {r.name} {r.release.version} -->"
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    tables = [i for i, t in enumerate(tokens) if t.type == "table_open"]
    # The release, the forecast, ... : every table GitHub renders, with its header row.
    assert len(tables) >= 2
    rows = 0
    i = next(i for i in tables if _header(tokens, i)[:3] == ["change", "kind", "status"])
    while tokens[i].type != "table_close":
        rows += tokens[i].type == "tr_open"
        i += 1
    assert rows == 1 + len(r.forecast.patches)
    # Every <details> is an HTML block closed by one, with Markdown (a blank line) inside.
    blocks = "".join(t.content for t in tokens if t.type == "html_block")
    assert blocks.count("<details>") == blocks.count("</details>") == text.count("<details>")
    assert "<details>" not in "".join(t.content for t in tokens if t.type == "inline")
    # ... and the code inside each is a code block, not swallowed into the HTML block.
    fence_lines = sum(line.startswith("```") for line in text.splitlines())
    assert sum(t.type == "fence" for t in tokens) * 2 == fence_lines
    html = md.render(text)
    assert "<table>" in html and "<details><summary>" in html
    for p in r.forecast.patches:
        assert f"<code>{p.name}</code>" in html


def _header(tokens: list[Token], start: int) -> list[str]:
    out: list[str] = []
    for t in tokens[start:]:
        if t.type == "thead_close":
            return out
        if t.type == "inline":
            out.append(t.content)
    return out


class _Tags(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(f"{tag} {name}={value}")
        if tag in ("script", "link", "img", "iframe"):
            self.external.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def _html_checks(r: UpgradeReport, text: str) -> None:
    tags = _Tags()
    tags.feed(text)
    tags.close()
    assert tags.stack == [] and tags.external == []
    assert "@import" not in text and "url(" not in text
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<tr>") >= 1 + len(r.forecast.patches)


def _json_checks(r: UpgradeReport, text: str) -> None:
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    assert doc["command"] == "report" and doc["forecast"]["onto"] == r.release.version
    jsonschema.validate(doc["forecast"], SCHEMA)


def _all_formats(r: UpgradeReport) -> None:
    _markdown_checks(r, report_markdown(r))
    _html_checks(r, report_html(r))
    _json_checks(r, to_json(r))


# -- the reports -------------------------------------------------------------------------------


def test_a_report_with_audit_and_package_changes_renders_in_all_formats(tmp_path: Path) -> None:
    r = report_scenario(tmp_path).report("2.0")
    _all_formats(r)
    text = report_markdown(r)
    assert "| appeared | `tcp 127.0.0.1:8080` | nginx |" in text
    assert "| `redis-server` | debian | `5:7.0.15-1` | `5:8.0.2-3` |" in text
    assert "What a person must resolve" not in text  # a clean forecast


def test_a_report_with_conflicts_shows_each_side_first(tmp_path: Path) -> None:
    r = forecast_scenario(tmp_path).report("2.0")
    _all_formats(r)
    text = report_markdown(r)
    assert text.index("What a person must resolve") < text.index("### The release")
    assert "<details><summary>etc/conflict.conf line 4</summary>" in text
    assert "```\nconflict 4 upstream\n```" in text and "```\nconflict 4 ours\n```" in text
    html = report_html(r)
    assert "<pre>conflict 4 upstream\n</pre>" in html


def test_the_forecast_json_is_valid_against_the_schema(tmp_path: Path) -> None:
    doc = json.loads(to_json(forecast_scenario(tmp_path).forecast("2.0")))
    jsonschema.validate(doc, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "clean": "no"}, SCHEMA)


def test_the_report_of_the_model_releases_in_all_formats(models: Project) -> None:
    r = models.report("model-trixie")
    _all_formats(r)
    # The models hold the poste.io-only changes' targets in neither release: the series does
    # not apply to its base, and the report says which changes keep a rebase from starting.
    assert not r.forecast.starts
    refused = {p.name for p in r.forecast.patches if p.refused}
    assert "webmail-hostname.edit.toml" in refused
    # Haraka moved from 3.0.x to 3.1.x between the models (bench/model/build.py).
    haraka = next(c for c in r.packages if c.name == "Haraka")
    assert (
        haraka.old
        and haraka.old.startswith("3.0.")
        and haraka.new
        and haraka.new.startswith("3.1.")
    )
    # Upstream's own changes in the files the series touches (dovecot, nginx, rspamd ...).
    assert r.upstream.files and r.upstream.diffs
    assert r.audit is not None and r.audit.patched


def test_the_report_cli_writes_each_format(models: Project, tmp_path: Path) -> None:
    for fmt, check in (
        ("markdown", "<!-- patchkit-report"),
        ("html", "<!DOCTYPE html>"),
        ("json", '"command": "report"'),
    ):
        out = tmp_path / f"report.{fmt}"
        argv = [
            "--project",
            str(models.root),
            "-q",
            "report",
            "model-trixie",
            "--format",
            fmt,
            "-o",
            str(out),
        ]
        assert main(argv) == 0  # written, although the forecast is not clean
        assert check in out.read_text()


def test_markdown_stays_under_githubs_body_limit_by_leaving_out_diffs(tmp_path: Path) -> None:
    r = forecast_scenario(tmp_path).report("2.0")
    full = report_markdown(r)
    assert len(full) < 60_000 and full.count("```diff") == len(r.upstream.diffs) >= 3
    limit = len(full) - 1
    short = report_markdown(r, limit=limit)
    assert len(short) <= limit
    assert short.count("```diff") == len(r.upstream.diffs) - 1
    last = r.upstream.diffs[-1].path
    assert f"Not shown (over the report's limit): `{last}`" in short
    _markdown_checks(r, short)
