"""``patchkit forecast`` and ``patchkit report`` through ``main``: exit codes, JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchkit.cli import main
from tests.helpers.projectbuilder import FORECAST_EXPECTED, forecast_scenario, rebase_scenario


def test_forecast_json_exits_1_when_a_person_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = forecast_scenario(tmp_path).root
    assert main(["--project", str(root), "forecast", "2.0", "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert {k: doc[k] for k in ("schema", "command", "base", "onto", "clean", "starts")} == {
        "schema": 1,
        "command": "forecast",
        "base": "1.0",
        "onto": "2.0",
        "clean": False,
        "starts": True,
    }
    assert {p["name"]: p["status"] for p in doc["patches"]} == FORECAST_EXPECTED
    for p in doc["patches"]:
        assert {"name", "kind", "status", "files", "conflicts", "risks", "changes"} <= set(p)
    assert "Forecast of a rebase 1.0 → 2.0" in err  # the table goes to stderr


def test_forecast_exits_0_when_the_rebase_would_go_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = rebase_scenario(tmp_path)
    (project.root / "patches/series").write_text("a.patch\nd.patch\n")
    assert main(["--project", str(project.root), "forecast", "1.1"]) == 0
    assert "a rebase would go through on its own" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("version", "words"),
    [("9.9", "not tracked"), ("1.0", "already based on 1.0")],
)
def test_forecast_bad_input_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, words: str
) -> None:
    root = rebase_scenario(tmp_path).root
    assert main(["--project", str(root), "forecast", version, "--json"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["markdown", "html", "json"])
def test_report_writes_to_stdout_and_exits_0_even_when_a_person_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    root = forecast_scenario(tmp_path).root
    assert main(["--project", str(root), "report", "2.0", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        doc = json.loads(out)
        assert doc["command"] == "report" and doc["forecast"]["clean"] is False
    else:
        assert "conflict.patch" in out and "etc/conflict.conf" in out


def test_report_to_a_file_and_bad_input_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = forecast_scenario(tmp_path).root
    out = tmp_path / "report.md"
    assert main(["--project", str(root), "-q", "report", "2.0", "-o", str(out)]) == 0
    assert out.read_text().startswith("<!-- patchkit-report test 2.0 -->\n")
    assert capsys.readouterr().out == ""
    other = tmp_path / "other.md"
    assert main(["--project", str(root), "report", "7.7", "-o", str(other)]) == 3
    assert not other.exists() and "7.7" in capsys.readouterr().err
