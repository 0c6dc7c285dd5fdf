"""patchkit.kinds.overlay: whole files over the image (statuses, flags, modes, owners, bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchkit.core.model import ChangeKind, PatchStatus
from patchkit.core.series import SeriesEntry
from patchkit.errors import OverlayError
from patchkit.kinds import OverlayFile, load_overlay
from patchkit.kinds.base import ApplyContext
from patchkit.project import _read_change

WORKER = b"bind_socket = /var/run/rspamd/normal.sock mode=0666;\n"
SCRIPT = b"#!/bin/sh\necho bind\n"


def overlay(meta: bytes | None = None):  # type: ignore[no-untyped-def]
    return load_overlay(
        "isolation/",
        {
            "etc/rspamd/override.d/worker-normal.inc": OverlayFile(data=WORKER),
            "etc/cont-init.d/25-bind-hostname.sh": OverlayFile(data=SCRIPT, executable=True),
        },
        meta=meta,
    )


def test_added_and_replaced_files_with_their_modes() -> None:
    change = overlay()
    outcome = change.apply(
        {
            "etc/rspamd/override.d/worker-normal.inc": None,
            "etc/cont-init.d/25-bind-hostname.sh": b"old\n",
        },
        version="1",
    )
    assert outcome.status is PatchStatus.APPLIED
    actions = {e.path: e.action for e in outcome.result.entries}
    assert actions == {
        "etc/rspamd/override.d/worker-normal.inc": "added",
        "etc/cont-init.d/25-bind-hostname.sh": "replaced",
    }
    assert outcome.modes == {
        "etc/rspamd/override.d/worker-normal.inc": "100644",
        "etc/cont-init.d/25-bind-hostname.sh": "100755",
    }
    assert outcome.contents["etc/cont-init.d/25-bind-hostname.sh"] == SCRIPT
    d = outcome.result.to_dict()
    assert d["kind"] == "overlay" and len(d["entries"]) == 2


def test_identical_upstream_files_are_already_applied() -> None:
    change = overlay()
    outcome = change.apply(
        {
            "etc/rspamd/override.d/worker-normal.inc": WORKER,
            "etc/cont-init.d/25-bind-hostname.sh": SCRIPT,
        },
        version="1",
    )
    assert outcome.status is PatchStatus.ALREADY_APPLIED and outcome.contents == {}


def test_a_replaced_file_upstream_changed_since_base_is_flagged() -> None:
    change = overlay()
    outcome = change.apply(
        {
            "etc/rspamd/override.d/worker-normal.inc": b"new upstream\n",
            "etc/cont-init.d/25-bind-hostname.sh": None,
        },
        version="2",
        context=ApplyContext(
            base={
                "etc/rspamd/override.d/worker-normal.inc": b"old upstream\n",
                "etc/cont-init.d/25-bind-hostname.sh": None,
            }
        ),
    )
    assert outcome.status is PatchStatus.APPLIED
    assert outcome.result.flags == ("upstream-changed: etc/rspamd/override.d/worker-normal.inc",)
    unchanged = change.apply(
        {
            "etc/rspamd/override.d/worker-normal.inc": b"same\n",
            "etc/cont-init.d/25-bind-hostname.sh": None,
        },
        version="2",
        context=ApplyContext(base={"etc/rspamd/override.d/worker-normal.inc": b"same\n"}),
    )
    assert unchanged.result.flags == ()


def test_a_path_through_an_upstream_symlink_is_refused_and_nothing_is_written() -> None:
    change = overlay()
    outcome = change.apply(
        {},
        version="1",
        context=ApplyContext(symlinked=frozenset({"etc/rspamd/override.d/worker-normal.inc"})),
    )
    assert outcome.status is PatchStatus.CONFLICT and outcome.contents == {}
    assert "symlink" in outcome.result.message


def test_header_range_and_owners_table() -> None:
    change = overlay(
        b'description = "workers"\nupstream-versions = ">=2.2"\n[owners]\n"etc/rspamd/override.d/worker-normal.inc" = "101:103"\n'
    )
    assert change.kind is ChangeKind.OVERLAY and change.description == "workers"
    assert change.apply({}, version="2.1").status is PatchStatus.SKIPPED
    entry = change.apply({}, version="2.5").result.entries
    assert {e.path: e.owner for e in entry}["etc/rspamd/override.d/worker-normal.inc"] == "101:103"


def test_render_changes_with_any_file_mode_or_owner() -> None:
    base = overlay().render()
    other = load_overlay(
        "isolation/",
        {
            "etc/rspamd/override.d/worker-normal.inc": OverlayFile(data=WORKER),
            "etc/cont-init.d/25-bind-hostname.sh": OverlayFile(data=SCRIPT, executable=False),
        },
    ).render()
    assert base != other


@pytest.mark.parametrize(
    ("files", "meta", "words"),
    [
        ({"../etc/passwd": OverlayFile(data=b"x")}, None, "'..' in path"),
        ({"/etc/passwd": OverlayFile(data=b"x")}, None, "absolute path"),
        ({}, None, "holds no file"),
        ({"a": OverlayFile(data=b"x")}, b'[owners]\n"b" = "1:1"\n', "does not hold"),
        ({"a": OverlayFile(data=b"x")}, b'[owners]\n"a" = "root"\n', "uid:gid"),
        ({"a": OverlayFile(data=b"x")}, b"[owners\n", "invalid TOML"),
    ],
)
def test_bad_overlays_are_refused_in_one_line(
    files: dict[str, OverlayFile], meta: bytes | None, words: str
) -> None:
    with pytest.raises(OverlayError) as info:
        load_overlay("isolation/", files, meta=meta)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("patches/isolation/")


def test_an_overlay_directory_is_read_with_modes_and_its_meta_file(tmp_path: Path) -> None:
    root = tmp_path / "isolation"
    (root / "etc/cont-init.d").mkdir(parents=True)
    (root / "etc/cont-init.d/25-bind-hostname.sh").write_bytes(SCRIPT)
    (root / "etc/cont-init.d/25-bind-hostname.sh").chmod(0o755)
    (root / ".overlay.toml").write_text('description = "d"\n')
    change = _read_change(tmp_path, SeriesEntry(name="isolation/", strip=1, line=3))
    assert change.paths == ("etc/cont-init.d/25-bind-hostname.sh",)
    outcome = change.apply({}, version="1")
    assert outcome.modes == {"etc/cont-init.d/25-bind-hostname.sh": "100755"}


def test_a_symlink_inside_an_overlay_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "isolation/etc"
    root.mkdir(parents=True)
    (root / "shadow").symlink_to("/etc/shadow")
    with pytest.raises(OverlayError, match="a symlink"):
        _read_change(tmp_path, SeriesEntry(name="isolation/", strip=1, line=3))
