"""The rebase state record: its codec, the migration of schema 1 (files written by the
pre-split code, in tests/ops/rebase_state_v1/), and one-line refusals of what it cannot read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patchkit import PatchStatus, Project, RebaseState
from patchkit.cli import main
from patchkit.core.model import ChangeKind
from patchkit.errors import RebaseStateFileError
from patchkit.ops.rebase import (
    SCHEMA,
    PatchEntry,
    Phase,
    RebaseStateRecord,
    decode_state,
    encode_state,
)
from tests.helpers.projectbuilder import C11, rebase_scenario, snapshot

V1 = Path(__file__).parent / "rebase_state_v1"


def _v1(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((V1 / f"state-v1-{name}.json").read_text())
    return doc


def _decode(doc: dict[str, Any]) -> RebaseStateRecord:
    return decode_state(json.dumps(doc).encode(), path="state.json")


# -- the codec ----------------------------------------------------------------------------


def test_a_stopped_schema_1_state_migrates_field_by_field() -> None:
    doc = _v1("stopped")
    record = _decode(doc)
    assert record.schema == SCHEMA == 2
    assert (record.base, record.onto, record.phase, record.current) == (
        "1.0",
        "1.1",
        Phase.STOPPED,
        3,
    )
    assert record.worktree_ready and record.head == doc["head"]
    assert record.backup.digest("patches/c.patch") == doc["backup"]["patches/c.patch"]
    assert [(e.name, e.status) for e in record.patches] == [
        ("a.patch", PatchStatus.APPLIED),
        ("d.patch", PatchStatus.MERGED),
        ("b.patch", PatchStatus.ALREADY_APPLIED),
        ("c.patch", PatchStatus.CONFLICT),
    ]
    c = record.entry
    assert c.kind is ChangeKind.DIFF and c.strip == 1 and c.conflicts == ("etc/c.conf",)
    assert c.message == "1 conflicting hunk(s) left at etc/c.conf:4"
    assert record.patches[0].result == doc["patches"][0]["result"]


def test_every_schema_1_fixture_migrates_and_round_trips() -> None:
    for path in sorted(V1.glob("state-v1-*.json")):
        record = decode_state(path.read_bytes(), path=path)
        again = decode_state(encode_state(record), path=path)
        assert again == record, path.name
        assert json.loads(encode_state(record))["schema"] == 2


def test_schema_1_specifics_pending_skipped_risk_and_phases() -> None:
    replaying = _decode(_v1("replaying"))
    assert replaying.phase is Phase.REPLAYING and not replaying.worktree_ready
    assert all(e.pending for e in replaying.patches)
    refreshing = _decode(_v1("refreshing"))
    assert refreshing.phase is Phase.REFRESHING and refreshing.done
    rich = _decode(_v1("rich"))
    skip, h, conf = rich.patches
    assert skip.commit is None and skip.status is PatchStatus.SKIPPED
    assert h.status is PatchStatus.MERGED and any("right next to" in r for r in h.risk)
    assert conf.status is PatchStatus.CONFLICT


def test_older_schema_1_files_without_later_fields_get_their_old_defaults() -> None:
    doc = _v1("stopped")
    del doc["worktree_ready"]
    for entry in doc["patches"]:
        for key in ("message", "risk", "changes", "conflicts"):
            del entry[key]
    record = _decode(doc)
    assert record.worktree_ready  # the reader of that writer defaulted it to True
    assert record.entry.message == "" and record.entry.risk == () and record.entry.changes == ()


def test_the_record_is_frozen_and_typed() -> None:
    record = _decode(_v1("stopped"))
    with pytest.raises(AttributeError):
        record.current = 0  # type: ignore[misc]
    entry = PatchEntry(name="x.patch", commit=None)
    assert entry.pending and entry.kind is ChangeKind.DIFF


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.update(phase="picking"), "'picking' is not a valid Phase"),
        (lambda d: d.pop("head"), "no 'head' field"),
        (lambda d: d["patches"][0].update(status="half-done"), "not a valid PatchStatus"),
        (lambda d: d.update(current=9), "current 9 is outside the 4 patches"),
    ],
)
def test_a_schema_1_state_that_cannot_be_migrated_says_how_to_abort_it(
    change: Any, why: str
) -> None:
    doc = _v1("stopped")
    change(doc)
    with pytest.raises(RebaseStateFileError) as e:
        _decode(doc)
    msg = str(e.value)
    assert "\n" not in msg and why in msg
    assert "schema 1" in msg and "patchkit 1.0" in msg and "patchkit rebase --abort" in msg


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{not json", "corrupt rebase state (not JSON"),
        (b"[1, 2]", "corrupt rebase state (not a JSON object)"),
        (b"\xff\xfe", "corrupt rebase state (not JSON"),
        (b'{"schema": 99}', "unknown schema 99"),
        (b'{"schema": "2"}', 'unknown schema "2"'),
        (b'{"base": "1.0"}', "unknown schema null"),
        (b'{"schema": 2, "base": "1.0"}', "corrupt rebase state (no 'backup' field)"),
    ],
)
def test_corrupt_or_unknown_state_is_one_line(data: bytes, why: str) -> None:
    with pytest.raises(RebaseStateFileError) as e:
        decode_state(data, path="/p/.patchkit/rebase/state.json")
    assert "\n" not in str(e.value) and why in str(e.value)
    assert str(e.value).startswith("/p/.patchkit/rebase/state.json: ")


# -- end to end: a schema-1 file in a real project ------------------------------------------


def _as_written_by_v1(project: Project, fixture: str) -> None:
    """Put a schema-1 fixture in place of the current state, its commit ids and digests
    mapped onto this project's store, field by field (the fixture's belong to the store it
    was written in)."""
    state = project.state_dir / "rebase/state.json"
    now = json.loads(state.read_text())
    doc = _v1(fixture)
    ids = {doc[k]: now[k] for k in ("base_commit", "onto_commit")}
    for old, new in zip(doc["patches"], now["patches"], strict=True):
        ids[old["commit"]] = new["commit"]
        if old["result"] is not None:
            ids[old["result"]] = new["result"]
    ids[doc["head"]] = ids.get(doc["head"], now["head"])
    for rel, digest in doc["backup"].items():
        ids[digest] = now["backup"][rel]
    text = (V1 / f"state-v1-{fixture}.json").read_text()
    for old_id, new_id in ids.items():
        text = text.replace(old_id, new_id)
    state.write_text(text)


@pytest.fixture
def stopped(tmp_path: Path) -> Project:
    project = rebase_scenario(tmp_path)
    assert project.rebase("1.1").state is RebaseState.STOPPED
    return project


def test_a_schema_1_stopped_rebase_goes_on_with_this_patchkit(stopped: Project) -> None:
    _as_written_by_v1(stopped, "stopped")
    status = stopped.rebase_status()
    assert status is not None and status.state is RebaseState.STOPPED
    assert status.patches[-1].conflicts == ("etc/c.conf",)
    wt = Path(stopped.state_dir / "rebase/worktree")
    (wt / "etc/c.conf").write_text(C11.replace("line 4 theirs\n", "line 4 theirs+ours\n"))
    done = stopped.rebase_continue()
    assert done.state is RebaseState.COMPLETED and done.dropped == ("b.patch",)
    assert set(done.refreshed) == {"a.patch", "d.patch", "c.patch"}
    assert stopped.versions.base == "1.1"
    assert not (stopped.state_dir / "rebase").exists()


def test_a_schema_1_stopped_rebase_aborts_with_this_patchkit(tmp_path: Path) -> None:
    project = rebase_scenario(tmp_path)
    before = snapshot(project.root)
    project.rebase("1.1")
    _as_written_by_v1(project, "stopped")
    assert project.rebase_abort().state is RebaseState.ABORTED
    assert snapshot(project.root) == before


def test_a_schema_1_rebase_killed_before_its_worktree_resumes(stopped: Project) -> None:
    _as_written_by_v1(stopped, "replaying")
    resumed = stopped.rebase_continue()  # makes the worktree, replays from the first patch
    assert resumed.state is RebaseState.STOPPED
    assert [p.status for p in resumed.patches] == [
        PatchStatus.APPLIED,
        PatchStatus.MERGED,
        PatchStatus.ALREADY_APPLIED,
        PatchStatus.CONFLICT,
    ]
    saved = json.loads((stopped.state_dir / "rebase/state.json").read_text())
    assert saved["schema"] == 2  # written anew in the new schema


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{broken", "corrupt rebase state"),
        (b'{"schema": 7}', "unknown schema 7"),
        (json.dumps({**_v1("stopped"), "phase": "picking"}).encode(), "patchkit rebase --abort"),
    ],
)
def test_cli_on_a_bad_state_file_is_one_line_exit_3(
    stopped: Project, capsys: pytest.CaptureFixture[str], data: bytes, why: str
) -> None:
    (stopped.state_dir / "rebase/state.json").write_bytes(data)
    root = str(stopped.root)
    capsys.readouterr()
    for args in (
        ["rebase", "--status"],
        ["rebase", "--continue"],
        ["rebase", "--abort"],
        ["rebase", "--onto", "1.1"],
        ["refresh"],
        ["import", "1.1"],
    ):
        assert main(["--project", root, *args]) == 3, args
        err = capsys.readouterr().err
        assert err.startswith("patchkit: error: ") and err.count("\n") == 1, (args, err)
        assert why in err and "Traceback" not in err, (args, err)
