"""The tar reader against Go's `archive/tar` itself, the reader moby and containerd unpack
layers with, on the test archives of other tar implementations as Debian installs them:
Go's own (`golang-src`: `src/archive/tar/testdata`) and CPython's (`libpython3.11-testsuite`:
`test/testtar.tar`, `recursion.tar`, `testtar.tar.xz`). Nothing is copied into this
repository: the archives are read where the packages put them, and Go reads them through
`tests/helpers/goref`, a small program of ours built here with the installed Go.

Every entry must match (name and link target as bytes, type, size, mode, owner, device
numbers, xattrs, the SHA-1 of the content, sparse files rebuilt), and where Go refuses an
archive, patchkit must refuse it at the same entry. The only differences allowed are
patchkit's documented limits (`_LIMITED`).

Then Hypothesis: archives written by Go's `tar.Writer` (goref -write), in each of its
formats, read by both."""

from __future__ import annotations

import bz2
import hashlib
import json
import lzma
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from patchkit.images.tar import TarError, TarReader
from tests.conftest import in_ci, require_tool
from tests.helpers.strategies import tar_component as _component
from tests.helpers.strategies import tar_ids as _ids
from tests.helpers.strategies import tar_names as _names
from tests.helpers.tarstreams import BytesSource

GOREF = Path(__file__).resolve().parents[1] / "helpers" / "goref"
_MAX_READ = 1 << 30  # goref's maxRead: larger contents are not hashed

# Archives patchkit refuses on purpose where Go reads them: a limit of docs/sources.md.
_LIMITED = {
    "gnu-sparse-big.tar": "bytes of holes",  # 60 GB of declared zeros > max_sparse_bytes
    "pax-sparse-big.tar": "bytes of holes",
}


def _archives() -> list[Path]:
    found: list[Path] = []
    try:
        out = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True)
        found += sorted((Path(out.stdout.strip()) / "src/archive/tar/testdata").glob("*.tar*"))
    except (OSError, subprocess.CalledProcessError):
        pass
    for test_dir in sorted(Path("/usr/lib").glob("python3*/test")):
        found += sorted(p for p in test_dir.glob("*.tar*") if p.name != "testtar.tar.gz")
    return found


ARCHIVES = _archives()


@pytest.fixture(scope="module")
def goref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = require_tool("go")
    work = tmp_path_factory.mktemp("goref")
    env = {
        **os.environ,
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",  # the standard library only: nothing to download
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    binary = work / "goref"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=GOREF, env=env, check=True)
    return binary


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".bz2":
        return bz2.decompress(data)
    if path.suffix == ".xz":
        return lzma.decompress(data)
    return data


def _ours(data: bytes) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reader = TarReader(BytesSource(data))
    try:
        while (e := reader.next()) is not None:
            row = {
                "name": e.name.encode("utf-8", "surrogateescape").hex(),
                "type": e.type.decode("latin-1"),
                "link": e.link.encode("utf-8", "surrogateescape").hex(),
                "size": e.size,
                "mode": e.mode,
                "uid": e.uid,
                "gid": e.gid,
                "major": e.major,
                "minor": e.minor,
                "xattrs": {k: v.hex() for k, v in (e.xattrs or {}).items()},
                "sha1": "not read",
            }
            if e.size <= _MAX_READ:
                h = hashlib.sha1()
                for chunk in reader.content(e):
                    h.update(chunk)
                row["sha1"] = h.hexdigest()
            rows.append(row)
    except TarError as err:
        rows.append({"error": f"{err.why} (entry {err.entry!r})"})
        return rows
    rows.append({"end": True})
    return rows


def _go(goref: Path, data: bytes, tmp_path: Path) -> list[dict[str, Any]]:
    plain = tmp_path / "layer.tar"
    plain.write_bytes(data)
    out = subprocess.run([str(goref), str(plain)], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a runtime unpacks: Go keeps a header-only entry's (unused) size field and
    reports an old GNU sparse file as type S; patchkit gives 0 and a regular file."""
    out = []
    for row in rows:
        row = dict(row)
        if row.get("type") in ("1", "2", "3", "4", "5", "6"):
            row.pop("size")
        if row.get("type") == "S":
            row["type"] = "0"
        if "error" in row:
            row["error"] = True  # where, not the wording
        out.append(row)
    return out


def test_the_reference_archives_are_there() -> None:
    """Without them the comparison below would pass on nothing."""
    if not ARCHIVES:
        if in_ci():
            pytest.fail(
                "no Go or CPython tar test archives (apt-get install golang-go "
                "libpython3.11-testsuite; scripts/test.sh installs them)"
            )
        pytest.skip("no Go or CPython tar test archives installed")
    assert len(ARCHIVES) >= 40


def _id(path: Path) -> str:
    return f"{'go' if 'archive' in path.parts else 'cpython'}:{path.name}"


@pytest.mark.parametrize("archive", ARCHIVES, ids=[_id(p) for p in ARCHIVES])
def test_reads_what_gos_archive_tar_reads(archive: Path, goref: Path, tmp_path: Path) -> None:
    data = _plain(archive)
    ours, go = _ours(data), _go(goref, data, tmp_path)
    if archive.name in _LIMITED:
        assert "end" in go[-1], "Go reads it"
        assert _LIMITED[archive.name] in ours[-1].get("error", ""), ours[-1]
        return
    assert _comparable(ours) == _comparable(go)


# -- Go's writer: what docker save, BuildKit and go-containerregistry write -------------


@st.composite
def _spec(draw: st.DrawFn) -> dict[str, Any]:
    entries = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["0", "5", "2", "1", "3", "4", "6"]))
        entry: dict[str, Any] = {
            "name": draw(_names),
            "type": kind,
            "link": draw(_names) if kind in ("1", "2") else "",
            "mode": draw(st.integers(0, 0o7777)),
            "uid": draw(_ids),
            "gid": draw(_ids),
            "major": draw(st.integers(0, 4095)) if kind in ("3", "4") else 0,
            "minor": draw(st.integers(0, 255)) if kind in ("3", "4") else 0,
            "data": draw(st.binary(max_size=1500)).hex() if kind == "0" else "",
            "xattrs": {},
        }
        if kind == "0" and draw(st.booleans()):
            entry["xattrs"] = {"user." + draw(_component): draw(st.binary(max_size=40)).hex()}
        entries.append(entry)
    return {"format": draw(st.sampled_from(["USTAR", "PAX", "GNU"])), "entries": entries}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_spec())
def test_reads_what_gos_writer_writes(goref: Path, spec: dict[str, Any]) -> None:
    """Hypothesis: Go's `tar.Writer` writes the archive (long names, big ids, xattrs, every
    entry type, in each of its formats); patchkit reads what Go's reader reads."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "go.tar"
        done = subprocess.run(
            [str(goref), "-write", str(out)],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            check=True,
        )
        assume("written" in done.stdout)  # a header this format cannot hold
        data = out.read_bytes()
        go = _go(goref, data, Path(tmp))
    assert "end" in go[-1]
    assert _comparable(_ours(data)) == _comparable(go)
    names = [bytes.fromhex(row["name"]).decode() for row in go[:-1]]
    assert names == [e["name"] for e in spec["entries"]]
