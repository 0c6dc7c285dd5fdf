"""The tar reader against two peers: `tarfile`'s writer (Hypothesis round trips over
what both agree on) and GNU tar's extraction (a differential test on archives GNU tar
writes in each format, sparse files of each kind included)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from patchkit.images.tar import TarReader
from tests.conftest import require_tool
from tests.helpers.strategies import tar_component as _component
from tests.helpers.strategies import tar_ids as _ids
from tests.helpers.strategies import tar_names as _names
from tests.helpers.tarstreams import BytesSource

# -- Hypothesis: tarfile writes, we read ------------------------------------------------


@st.composite
def _entries(draw: st.DrawFn) -> list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]:
    out: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = []
    for _ in range(draw(st.integers(1, 6))):
        info = tarfile.TarInfo(draw(_names))
        info.mode = draw(st.integers(0, 0o7777))
        info.uid, info.gid = draw(_ids), draw(_ids)
        info.mtime = draw(st.integers(0, 2**33))
        kind = draw(st.sampled_from(["file", "dir", "symlink", "link", "fifo", "char"]))
        if kind == "file":
            data = draw(st.binary(max_size=1500))
            info.size = len(data)
            if draw(st.booleans()):
                info.pax_headers = {"SCHILY.xattr.user." + draw(_component): draw(_component)}
            out.append((info, data))
            continue
        info.type = {
            "dir": tarfile.DIRTYPE,
            "symlink": tarfile.SYMTYPE,
            "link": tarfile.LNKTYPE,
            "fifo": tarfile.FIFOTYPE,
            "char": tarfile.CHRTYPE,
        }[kind]
        if kind in ("symlink", "link"):
            info.linkname = draw(_names)
        if kind == "char":
            info.devmajor, info.devminor = draw(st.integers(0, 4095)), draw(st.integers(0, 255))
        out.append(info)
    return out


def _write(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tf:
        for item in entries:
            info, data = item if isinstance(item, tuple) else (item, None)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=_entries(),
    fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
)
def test_round_trip_against_tarfiles_writer(
    entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], fmt: int
) -> None:
    if fmt != tarfile.PAX_FORMAT:  # xattrs are pax records
        for item in entries:
            info = item[0] if isinstance(item, tuple) else item
            info.pax_headers = {}
    try:
        archive = _write(entries, fmt)
    except ValueError:  # too long for ustar, a number too big: nothing both agree on
        assume(False)
        return
    theirs = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:", encoding="utf-8") as tf:
        for m in tf:
            data = tf.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            xattrs = {
                k[len("SCHILY.xattr.") :]: v.encode("utf-8", "surrogateescape")
                for k, v in m.pax_headers.items()
                if k.startswith("SCHILY.xattr.")
            }
            dev = (m.devmajor, m.devminor) if m.ischr() or m.isblk() else (0, 0)
            theirs.append(
                (m.name, m.type, m.mode, m.uid, m.gid, m.linkname, dev, data, xattrs or None)
            )
    reader = TarReader(BytesSource(archive))
    mine = []
    while (e := reader.next()) is not None:
        data = b"".join(reader.content(e)) if e.is_file else b""
        name = e.name.rstrip("/") if e.type == b"5" else e.name
        dev = (e.major, e.minor) if e.type in (b"3", b"4") else (0, 0)
        mine.append((name, e.type, e.mode, e.uid, e.gid, e.link, dev, data, e.xattrs))
    assert mine == theirs


# -- GNU tar: it writes each format, it extracts, we compare ---------------------------


def _tree(root: Path, *, long: bool) -> None:
    (root / "d/sub").mkdir(parents=True)
    (root / "d/small").write_bytes(b"small\n")
    (root / "d/sub/empty").write_bytes(b"")
    (root / "d/big").write_bytes(os.urandom(70_000))
    (root / "d/exec").write_bytes(b"#!/bin/sh\n")
    (root / "d/exec").chmod(0o755)
    os.symlink("small", root / "d/link")
    os.link(root / "d/small", root / "d/hard")
    if long:
        deep = root / "d" / ("x" * 60) / ("y" * 60)
        deep.mkdir(parents=True)
        (deep / ("z" * 120)).write_bytes(b"long name\n")
        os.symlink("t" * 150, root / "d/longlink")
    with open(root / "d/sparse", "wb") as f:  # holes GNU tar finds with SEEK_HOLE
        f.write(b"head" * 1000)
        f.seek(1 << 20)
        f.write(b"middle" * 2000)
        f.seek(3 << 20)
        f.write(b"tail")
        f.truncate(4 << 20)


def _extracted(root: Path) -> dict[str, tuple[str, bytes | str]]:
    out: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d", "")
            else:
                out[rel] = ("f", p.read_bytes())
                out[rel + ":mode"] = ("m", oct(p.stat().st_mode & 0o777))
    return out


def _read(archive: bytes) -> dict[str, tuple[str, bytes | str]]:
    out: dict[str, tuple[str, bytes | str]] = {}
    reader = TarReader(BytesSource(archive))
    while (e := reader.next()) is not None:
        name = e.name.rstrip("/").removeprefix("./")
        if e.type == b"5":
            out[name] = ("d", "")
        elif e.type == b"2":
            out[name] = ("l", e.link)
        elif e.type == b"1":
            out[name] = out[e.link.removeprefix("./")]
            out[name + ":mode"] = out[e.link.removeprefix("./") + ":mode"]
        else:
            assert e.is_file, e
            out[name] = ("f", b"".join(reader.content(e)))
            out[name + ":mode"] = ("m", oct(e.mode & 0o777))
    return out


@pytest.mark.parametrize(
    "args",
    [
        ["--format=gnu"],
        ["--format=posix"],
        ["--format=ustar"],
        ["--format=v7"],
        ["--format=gnu", "--sparse"],
        ["--format=posix", "--sparse", "--sparse-version=0.0"],
        ["--format=posix", "--sparse", "--sparse-version=0.1"],
        ["--format=posix", "--sparse", "--sparse-version=1.0"],
    ],
    ids=lambda a: " ".join(a),
)
def test_differential_against_gnu_tar_extraction(tmp_path: Path, args: list[str]) -> None:
    tar = require_tool("tar")
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    _tree(src, long=args[0] in ("--format=gnu", "--format=posix"))
    archive = tmp_path / "a.tar"
    subprocess.run(
        [tar, "-c", "-f", str(archive), "-C", str(src), "--owner=0", "--group=0", *args, "d"],
        check=True,
        capture_output=True,
    )
    raw = archive.read_bytes()
    if "--sparse" in args:
        reader = TarReader(BytesSource(raw))
        sparse = []
        while (e := reader.next()) is not None:
            if e.sparse is not None:
                sparse.append((e.name, e.type, e.size, len(e.sparse) >= 3))
        kind = b"S" if args[0] == "--format=gnu" else b"0"
        assert sparse == [("d/sparse", kind, 4 << 20, True)]  # 3 data fragments at least
    subprocess.run([tar, "-x", "-f", str(archive), "-C", str(out)], check=True)
    assert _read(raw) == _extracted(out)
