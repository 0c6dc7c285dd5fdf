#!/usr/bin/env python3
"""Import benchmark: patchkit vs `umoci unpack` + `git add -A` + `git commit`.

Builds once, cached under bench/.cache/import/ (needs root, debootstrap and the Debian
mirror of /etc/apt/sources.list.d/debian.sources), two OCI layouts of gzip layers:

  full    Debian bookworm minbase + nginx, redis, rspamd, dovecot, nodejs, npm, python3
          (with recommends) in three layers: the system below usr/share, the rest, and an
          update layer on top (overwrites, whiteouts, an opaque directory, new files, a
          hard link)
  double  the same with a fourth layer: trixie's root filesystem of the same packages
          (about as many bytes again of real files, over the same paths)

Release B of each is A plus a one-file top layer. patchkit is measured as `pip install .`
installs it (its own venv outside the checkout, dependencies from PyPI: isal where it has
wheels). Every round runs each mode once, interleaved, each in a fresh child process;
the figures are medians over --runs rounds, and the ratios are medians of the same-round
ratios (the machine is shared: a slow round slows the peer and patchkit alike):

  full      patchkit full import into a fresh store
  sparse    patchkit sparse import (include etc/**) into a fresh store
  reimport  patchkit import of release B into a store that holds release A
  umoci     umoci unpack --rootless, git init, git add -A, git commit
  floor     the work floor (issue 23): inflate every layer (the installed patchkit's zlib),
            sha256 of the stored and the inflated stream, sha1 (git blob id) of every file;
            one thread, nothing written

Peak RSS is the child's own (getrusage); "+child" adds the peak of the largest process it
started and waited for (git; a helper process, if an import ever starts one): a loose
upper bound of both at once, since Linux counts in a child's peak the pages it shared
with its parent between fork and exec (git itself peaks at ~5 MB here). CPU time counts the
child and the processes it waited for. `--stages` times each kind of work alone
(inflate, tar parse, sha1, deflate, write, layer digests) on the full image.

    bench/import/run.py [--runs 3] [--sizes full,double] [--stages] [--venv DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / ".cache" / "import"
# The image: Debian minbase with the servers poste.io runs, nodejs and npm.
PACKAGES = [
    "nginx",
    "redis-server",
    "rspamd",
    "dovecot-core",
    "dovecot-imapd",
    "nodejs",
    "npm",
    "python3",
]
IMAGE_VERSION = 2  # bump when the layers change, so cached layouts are rebuilt
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


# -- the root filesystems --------------------------------------------------------------


def debian_mirror() -> str:
    text = Path("/etc/apt/sources.list.d/debian.sources").read_text()
    for line in text.splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    raise SystemExit("no URIs: line in /etc/apt/sources.list.d/debian.sources")


def build_rootfs(suite: str) -> Path:
    """Debian ``suite`` minbase plus PACKAGES (cached under bench/.cache/import/)."""
    final = CACHE / f"rootfs-{suite}"
    if final.is_dir():
        return final
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise SystemExit(
            f"building {final} needs root and debootstrap (apt-get install debootstrap)"
        )
    tmp = CACHE / f"rootfs-{suite}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"debootstrap --variant=minbase {suite} {tmp} {debian_mirror()}", file=sys.stderr)
    subprocess.run(
        ["debootstrap", "--variant=minbase", suite, str(tmp), debian_mirror()],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    policy = tmp / "usr/sbin/policy-rc.d"  # no service may start inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # with their recommends (npm's pull in node-gyp and a C toolchain), as an image built
    # with a plain `apt-get install` has them
    apt = ["chroot", str(tmp), "apt-get", "-q", "-y"]
    subprocess.run([*apt, "install", *PACKAGES], check=True, env=env, stdout=subprocess.DEVNULL)
    policy.unlink()
    for deb in (tmp / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for lst in (tmp / "var/lib/apt/lists").glob("*_*"):
        lst.unlink()
    tmp.rename(final)
    return final


# -- the images ------------------------------------------------------------------------


def _key(rel: str) -> tuple[str, ...]:
    return tuple(rel.split("/"))


class _HashWriter:
    def __init__(self, f: Any) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return int(self.f.write(data))

    def flush(self) -> None:
        self.f.flush()


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(self, data: bytes, media: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs/sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media, "digest": digest, "size": len(data)}

    def layer(self, write: Callable[[tarfile.TarFile], None]) -> tuple[dict[str, Any], str]:
        """A gzip layer: (descriptor, diff_id)."""
        tmp = self.root / "blobs" / "tmp.tar.gz"
        with open(tmp, "wb") as raw:
            outer = _HashWriter(raw)
            with gzip.GzipFile(fileobj=outer, mode="wb", compresslevel=6, mtime=0) as gz:  # type: ignore[arg-type]
                inner = _HashWriter(gz)
                with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
                    write(tf)
        digest = "sha256:" + outer.h.hexdigest()
        tmp.rename(self.root / "blobs/sha256" / digest[7:])
        return {
            "mediaType": GZIP_LAYER,
            "digest": digest,
            "size": outer.size,
        }, "sha256:" + inner.h.hexdigest()

    def image(self, layers: list[tuple[dict[str, Any], str]], tag: str) -> str:
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            },
            sort_keys=True,
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": self.put(config, OCI_CONFIG),
                "layers": [desc for desc, _ in layers],
            },
            sort_keys=True,
        ).encode()
        desc = self.put(manifest, OCI_MANIFEST)
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index_path = self.root / "index.json"
        index = (
            json.loads(index_path.read_text())
            if index_path.exists()
            else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        )
        index["manifests"].append(desc)
        index_path.write_text(json.dumps(index, sort_keys=True))
        return str(desc["digest"])


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, *, mode: int = 0o644) -> None:
    import io

    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 0
    tf.addfile(ti, io.BytesIO(data))


def _paths(rootfs: Path) -> list[str]:
    """Every path of ``rootfs`` (not /dev, /proc, /sys contents), parents first."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), rootfs)
            if not rel.startswith(("proc/", "sys/", "dev/")):
                out.append(rel)
    return sorted(out, key=_key)


def _tree_layer(rootfs: Path, paths: list[str]) -> Callable[[tarfile.TarFile], None]:
    """A layer holding ``paths`` of ``rootfs`` and every parent directory they need."""
    dirs = {"/".join(_key(p)[:i]) for p in paths for i in range(1, len(_key(p)))}
    members = sorted(dirs | set(paths), key=_key)

    def write(tf: tarfile.TarFile) -> None:
        for rel in members:
            tf.add(rootfs / rel, arcname=rel, recursive=False)

    return write


def build_image(size: str) -> Path:
    """The OCI layout of one benchmark image, releases A and B (B = A + a small top layer).

    ``full`` is the issue's image: bookworm minbase + PACKAGES in three gzip layers (the
    system below usr/share; usr/share and the rest; an update layer on top with overwrites,
    whiteouts, an opaque directory, new files and a hard link). ``double`` is the same with a
    fourth layer holding the trixie root filesystem of the same packages: about as many
    bytes again of real, mostly different files, over the same paths.
    """
    out = CACHE / f"image-{size}-v{IMAGE_VERSION}"
    if (out / "index.json").exists():
        return out
    rootfs = build_rootfs("bookworm")
    second = build_rootfs("trixie") if size == "double" else None
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    paths = _paths(rootfs)
    leaves = [p for p in paths if not (rootfs / p).is_dir() or (rootfs / p).is_symlink()]
    system = [p for p in leaves if p.startswith("usr/") and not p.startswith("usr/share/")]
    rest = [p for p in leaves if p not in set(system)]
    layout = _Layout(tmp)
    print(f"building {out.name}: {len(paths)} paths", file=sys.stderr, flush=True)
    layers = [layout.layer(_tree_layer(rootfs, system)), layout.layer(_tree_layer(rootfs, rest))]
    etc_files = [
        p
        for p in rest
        if p.startswith("etc/") and (rootfs / p).is_file() and not (rootfs / p).is_symlink()
    ]
    docs = sorted(
        {"/".join(_key(p)[:4]) for p in rest if p.startswith("usr/share/doc/") and len(_key(p)) > 4}
    )

    def update(tf: tarfile.TarFile) -> None:
        for i, rel in enumerate(etc_files):
            if i % 5 == 0:
                _add_bytes(tf, rel, (rootfs / rel).read_bytes() + b"\n# updated\n")
        for i, d in enumerate(docs):
            if i % 3 == 0:
                head, _, name = d.rpartition("/")
                _add_bytes(tf, f"{head}/.wh.{name}", b"")
        if (rootfs / "usr/share/man").is_dir():
            _add_bytes(tf, "usr/share/man/.wh..wh..opq", b"")
            _add_bytes(tf, "usr/share/man/man1/app.1", b".TH APP 1\n")
        for i in range(500):
            _add_bytes(tf, f"opt/app/lib/module{i:03}.py", b"# module %d\n" % i * 40)
        _add_bytes(tf, "opt/app/bin/app", b"#!/bin/sh\nexec true\n", mode=0o755)
        ti = tarfile.TarInfo("usr/local/bin/app")
        ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, "opt/app/bin/app", 0o755
        tf.addfile(ti)

    layers.append(layout.layer(update))
    if second is not None:
        layers.append(layout.layer(_tree_layer(second, _paths(second))))

    def top(release: str) -> Callable[[tarfile.TarFile], None]:
        def write(tf: tarfile.TarFile) -> None:
            _add_bytes(tf, "etc/patchkit-release", f"release {release}\n".encode())

        return write

    layout.image(layers, "A")
    layout.image([*layers, layout.layer(top("B"))], "B")
    tmp.rename(out)
    return out


# -- child processes -------------------------------------------------------------------


def child(mode: str, layout: str, store: str) -> None:
    """One measured run (in its own process); prints rusage as JSON on stdout."""
    import patchkit

    try:
        from patchkit.compress import ZLIB_NAME
    except ImportError:  # a --baseline from before patchkit/compress.py
        from patchkit.core.codec import ZLIB_NAME  # type: ignore[import-not-found,no-redef]
    from patchkit.git.store import Store
    from patchkit.images import parse_source
    from patchkit.ops.importing import import_release

    if mode == "floor":
        floor(Path(layout))
    else:
        st = Store.open(Path(store))
        include = ["etc/**"] if mode == "sparse" else None
        version = "B" if mode == "reimport" else "A"
        res = import_release(st, version, parse_source(f"oci:{layout}:{version}"), include=include)
        assert not res.reused
    me = resource.getrusage(resource.RUSAGE_SELF)
    # the processes the import started and waited for (git): counted here
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "rss_kb": me.ru_maxrss,
                "child_rss_kb": kids.ru_maxrss,
                "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                "zlib": ZLIB_NAME,
                "patchkit": patchkit.__file__,
            }
        )
    )


def _layer_blobs(layout: Path, tag: str = "A") -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    desc = next(
        d
        for d in index["manifests"]
        if d["annotations"]["org.opencontainers.image.ref.name"] == tag
    )
    manifest = json.loads((layout / "blobs/sha256" / desc["digest"][7:]).read_text())
    return [layout / "blobs/sha256" / d["digest"][7:] for d in manifest["layers"]]


def _decompress(path: Path, module: Any) -> Iterator[bytes]:
    d = module.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            yield d.decompress(chunk)
    yield d.flush()


class _Chunks:
    def __init__(self, it: Iterator[bytes]) -> None:
        self.it = it
        self.buf = b""

    def read(self, n: int = -1) -> bytes:
        while len(self.buf) < n:
            try:
                self.buf += next(self.it)
            except StopIteration:
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def floor(layout: Path) -> None:
    """The work floor of an import (issue 23): inflate every layer with the installed
    patchkit's zlib (isal), sha256 of the stored and of the inflated stream, the git
    blob id (sha1) of every regular file; one thread, nothing written. Finding the files
    takes the cheapest walk of the tar there is (the size field of each header)."""
    from patchkit.compress import ZLIB

    for blob in _layer_blobs(layout):
        raw_hash, tar_hash = hashlib.sha256(), hashlib.sha256()
        d = ZLIB.decompressobj(16 + zlib.MAX_WBITS)
        buf = b""
        at = 0  # offset in buf of the next header
        file_left = 0  # bytes of the current file still to hash
        pad = 0
        h: Any = None
        with open(blob, "rb") as f:
            while chunk := f.read(1 << 18):
                raw_hash.update(chunk)
                piece = d.decompress(chunk)
                tar_hash.update(piece)
                buf = buf[at:] + piece
                at = 0
                while True:
                    if file_left:
                        take = min(file_left, len(buf) - at)
                        h.update(memoryview(buf)[at : at + take])
                        file_left -= take
                        at += take
                        if file_left:
                            break
                        h.digest()
                    if pad:
                        take = min(pad, len(buf) - at)
                        pad -= take
                        at += take
                        if pad:
                            break
                    if len(buf) - at < 512:
                        break
                    head = buf[at : at + 512]
                    at += 512
                    if head[0] == 0:
                        continue  # the end marker (and what pads the stream)
                    size = int(head[124:136].strip(b" \0") or b"0", 8)
                    pad = -size % 512
                    if head[156:157] in (b"0", b"\0"):
                        h = hashlib.sha1(b"blob %d\0" % size)
                        file_left = size
                        if not size:
                            h.digest()
                    elif head[156:157] in (b"x", b"g", b"L", b"K"):
                        pad += size  # a meta header's data: skipped
        tar_hash.update(d.flush())
        raw_hash.digest()
        tar_hash.digest()


def installed_python(where: Path) -> str:
    """A venv at ``where`` with this checkout installed by `pip install .` (as a user has it)."""
    python = where / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        check=True,
    )
    return str(python)


PYTHON = sys.executable  # replaced in main() by the installed venv's
BASE_PYTHON = ""  # --baseline: a venv with that commit installed the same way


def baseline_python(rev: str, where: Path) -> str:
    """A venv at ``where`` with commit ``rev`` of this checkout installed by `pip install`."""
    src = where / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    python = where / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        check=True,
    )
    return str(python)


def measure(mode: str, layout: Path, store: Path) -> dict[str, Any]:
    python = PYTHON
    if mode == "base":  # the full import, by the --baseline install
        mode, python = "full", BASE_PYTHON
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(
        [python, __file__, "--child", mode, str(layout), str(store)],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",  # nothing of the checkout on sys.path: the installed patchkit is imported
    )
    wall = time.perf_counter() - start
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall": wall,
        "cpu": usage["cpu"],
        "rss": usage["rss_kb"] / 1024,
        # the process and its largest child (git) at their peaks: a bound of the sum
        "rss_all": (usage["rss_kb"] + usage.get("child_rss_kb", 0)) / 1024,
        "zlib": usage["zlib"],
        "patchkit": usage["patchkit"],
        "load": load,
    }


def umoci_run(layout: Path, work: Path) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script = (
        f"umoci unpack --rootless --image {layout}:A {work}/bundle >/dev/null && "
        f"cd {work}/bundle/rootfs && git init -q && git add -A && "
        "git -c user.name=b -c user.email=b@localhost commit -q -m import"
    )
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    wall = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    return {"wall": wall, "cpu": float("nan"), "rss": float("nan"), "rss_all": float("nan")}


def bench(layout: Path, runs: int, modes: list[str]) -> dict[str, Any]:
    """Every mode once per round, interleaved; medians and same-round ratios."""
    work = Path(tempfile.mkdtemp(prefix="pk-bench-", dir=CACHE))
    store = work / "store"
    seeded = work / "seeded"
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        if "reimport" in modes:
            measure("full", layout, seeded)
        for r in range(runs):
            got: dict[str, dict[str, Any]] = {}
            for mode in modes:
                shutil.rmtree(store, ignore_errors=True)
                if mode == "reimport":
                    shutil.copytree(seeded, store, symlinks=True)
                if mode == "umoci":
                    got[mode] = umoci_run(layout, work / "umoci")
                else:
                    got[mode] = measure(mode, layout, store)
                rss, rss_all = got[mode].get("rss"), got[mode].get("rss_all")
                print(
                    f"  round {r + 1} {mode:9} {got[mode]['wall']:7.2f} s"
                    + f" cpu {got[mode]['cpu']:6.2f} s"
                    + (f" {rss:4.0f} MB (+child {rss_all:4.0f})" if rss == rss and rss else "")
                    + f"  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            rounds.append(got)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {"rounds": rounds, "median": {}, "ratios": {}}
    for mode in modes:
        out["median"][mode] = {
            k: statistics.median(r[mode][k] for r in rounds)
            for k in ("wall", "cpu", "rss", "rss_all")
        }
    if "umoci" in modes and "full" in modes:
        out["ratios"]["umoci/full"] = statistics.median(
            r["umoci"]["wall"] / r["full"]["wall"] for r in rounds
        )
    if "base" in modes and "full" in modes:
        out["ratios"]["base/full"] = statistics.median(
            r["base"]["wall"] / r["full"]["wall"] for r in rounds
        )
        if "umoci" in modes:
            out["ratios"]["umoci/base"] = statistics.median(
                r["umoci"]["wall"] / r["base"]["wall"] for r in rounds
            )
    if "floor" in modes and "full" in modes:
        out["ratios"]["full/floor"] = statistics.median(
            r["full"]["wall"] / r["floor"]["wall"] for r in rounds
        )
        # on a shared machine the wall ratio mostly measures the other jobs; the CPU ratio
        # is the work itself (an import uses two cores: its wall can be under its CPU)
        out["ratios"]["full/floor cpu"] = statistics.median(
            r["full"]["cpu"] / r["floor"]["cpu"] for r in rounds
        )
        if "umoci" in modes:
            out["ratios"]["umoci/floor"] = statistics.median(
                r["umoci"]["wall"] / r["floor"]["wall"] for r in rounds
            )
    if "floor" in modes and "sparse" in modes:
        out["ratios"]["sparse/floor"] = statistics.median(
            r["sparse"]["wall"] / r["floor"]["wall"] for r in rounds
        )
    return out


def image_stats(layout: Path) -> dict[str, float]:
    blobs = _layer_blobs(layout)
    entries = 0
    raw = 0
    tar = 0
    for blob in blobs:
        with gzip.open(blob, "rb") as f:
            with tarfile.open(fileobj=f, mode="r|") as tf:  # type: ignore[call-overload]
                for m in tf:
                    entries += 1
                    raw += m.size
                    tf.members.clear()
            tar += f.tell()
    return {
        "layers": len(blobs),
        "entries": entries,
        "content_mb": raw / 2**20,
        "tar_mb": tar / 2**20,
        "gzip_mb": sum(b.stat().st_size for b in blobs) / 2**20,
    }


class _BytesSource:
    """The tar reader's source over one inflated layer in memory."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def skip(self, n: int) -> int:
        n = min(n, len(self.data) - self.pos)
        self.pos += n
        return n


def stages(layout: Path) -> dict[str, float]:
    """CPU seconds of each kind of work an import does, each alone, over every layer."""
    import io

    from patchkit.compress import ZLIB

    reader_class: Any = None  # a --baseline from before issue 23: tarfile
    with contextlib.suppress(ImportError):  # the reader the installed patchkit parses with
        from patchkit.images.tar import TarReader as reader_class

    cpu = time.process_time
    t = dict.fromkeys(("inflate", "tar parse", "sha1", "deflate", "write", "sha256"), 0.0)
    with tempfile.TemporaryFile(dir=CACHE) as sink:
        for blob in _layer_blobs(layout):
            raw = blob.read_bytes()
            s = cpu()
            hashlib.sha256(raw).digest()
            t["sha256"] += cpu() - s
            s = cpu()
            tar = b"".join(_decompress(blob, ZLIB))
            t["inflate"] += cpu() - s
            s = cpu()
            hashlib.sha256(tar).digest()
            t["sha256"] += cpu() - s
            contents: list[bytes] = []
            s = cpu()
            if reader_class is not None:
                reader = reader_class(_BytesSource(tar))
                while (e := reader.next()) is not None:
                    if e.is_file:
                        contents.append(b"".join(reader.content(e)))
            else:
                with tarfile.open(fileobj=io.BytesIO(tar), mode="r|") as tf:  # type: ignore[call-overload]
                    for m in tf:
                        tf.members.clear()
                        if m.isreg():
                            f = tf.extractfile(m)
                            assert f is not None
                            contents.append(f.read())
            t["tar parse"] += cpu() - s
            del tar
            s = cpu()
            for c in contents:
                h = hashlib.sha1(b"blob %d\0" % len(c))
                h.update(c)
                h.digest()
            t["sha1"] += cpu() - s
            s = cpu()
            packed = [ZLIB.compress(c, 1) for c in contents]
            t["deflate"] += cpu() - s
            s = time.perf_counter()
            for c in packed:
                sink.write(c)
            sink.flush()
            os.fsync(sink.fileno())
            t["write"] += time.perf_counter() - s
    return t


def main() -> None:
    global PYTHON
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="full,double")
    ap.add_argument("--modes", default="full,umoci,floor,sparse,reimport")
    ap.add_argument("--double-modes", default="full,umoci,floor", help="modes on the double image")
    ap.add_argument("--stages", action="store_true", help="time each kind of work alone")
    ap.add_argument("--venv", help="the venv to install patchkit into (default: a temp dir)")
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also run mode 'base': the full import by commit REV, installed the same way",
    )
    ap.add_argument("--child", nargs=3, metavar=("MODE", "LAYOUT", "STORE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    tmp = Path(tempfile.mkdtemp(prefix="pk-bench-venv-"))
    try:
        PYTHON = installed_python(Path(args.venv) if args.venv else tmp / "venv")
        if args.baseline:
            global BASE_PYTHON
            BASE_PYTHON = baseline_python(args.baseline, tmp / "baseline")
        report: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "runs": args.runs,
            "load": os.getloadavg(),
            "install": "pip install . (own venv, outside the checkout)",
        }
        for size in args.sizes.split(","):
            layout = build_image(size)
            stats = image_stats(layout)
            print(
                f"\n== {size} image: {stats['layers']} layers, {stats['entries']} entries, "
                f"{stats['content_mb']:.0f} MB content, {stats['tar_mb']:.0f} MB tar, "
                f"{stats['gzip_mb']:.0f} MB gzip",
                flush=True,
            )
            if args.stages:
                st = stages(layout)
                report.setdefault("stages", {})[size] = st
                for k, v in st.items():
                    print(f"  {k:10} {v:6.2f} s", flush=True)
                continue
            modes = (args.double_modes if size == "double" else args.modes).split(",")
            if args.baseline and "base" not in modes:
                modes.insert(modes.index("full") + 1, "base")
            res = bench(layout, args.runs, modes)
            report[size] = {"image": stats, **res}
            print_table(res)
        report["load_after"] = os.getloadavg()
        out = CACHE / ("stages.json" if args.stages else "results.json")
        out.write_text(json.dumps(report, indent=2))
        print(f"\nwritten {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(res: dict[str, Any]) -> None:
    med = res["median"]
    first = res["rounds"][0]
    zlib_name = next((r["zlib"] for r in first.values() if "zlib" in r), "?")
    print(f"patchkit's zlib: {zlib_name}")
    print(f"{'mode':10} {'wall s':>8} {'cpu s':>7} {'RSS MB':>7} {'+child':>8}")
    for mode, r in med.items():
        print(
            f"{mode:10} {r['wall']:8.2f} {r['cpu']:7.2f} {r['rss']:7.0f} {r['rss_all']:8.0f}",
            flush=True,
        )
    loads = [r[m]["load"] for r in res["rounds"] for m in r if "load" in r[m]]
    if loads:
        print(f"load average (1 min) at the start of each run: {min(loads):.2f}-{max(loads):.2f}")
    for name, value in res["ratios"].items():
        target = {
            "umoci/full": "(target >= 5x)",
            "sparse/floor": "(target <= 1.5x)",
            "full/floor": "(issue 23: target <= 1.5x)",
        }.get(name, "(speed-up of this commit over --baseline)" if name == "base/full" else "")
        print(f"{name} = {value:.2f}x {target}  (median of same-round ratios)", flush=True)


if __name__ == "__main__":
    main()
