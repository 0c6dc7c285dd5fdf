#!/usr/bin/env python3
"""Import benchmark: patchkit vs `umoci unpack` + `git add -A` + `git commit`.

Builds (once, cached under bench/.cache/import/) a Debian bookworm root filesystem
with debootstrap minbase plus a few server packages, splits it into an OCI layout
of gzip layers with whiteouts, an opaque directory and overwrites (releases A and
B differ only in their top layer; a half-size image is built the same way from
half of the files), then times, median of --runs separate child processes:

  full      patchkit full import into a fresh store
  sparse    patchkit sparse import (include etc/**) into a fresh store
  reimport  patchkit import of release B into a store that holds release A
  umoci     umoci unpack --rootless, git init, git add -A, git commit
  floor     decompress and parse every layer's tar, nothing written

Peak RSS is measured per child with getrusage: the Python process itself and the
largest process it waited for (git fast-import, git add, umoci).

    bench/import/run.py [--runs 3] [--sizes full,half] [--gzip]

Needs root (debootstrap, chroot), debootstrap, umoci, git; the Debian mirror is
read from /etc/apt/sources.list.d/debian.sources.
"""

from __future__ import annotations

import argparse
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
PACKAGES = [
    "redis-server",
    "nginx-light",
    "dovecot-core",
    "dovecot-imapd",
    "python3",
    "python3-pip",
    "perl",
    "tzdata",
    "vim-runtime",
    "git",
    "ca-certificates",
]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


# -- the root filesystem ---------------------------------------------------------------


def debian_mirror() -> str:
    text = Path("/etc/apt/sources.list.d/debian.sources").read_text()
    for line in text.splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    raise SystemExit("no URIs: line in /etc/apt/sources.list.d/debian.sources")


def build_rootfs() -> Path:
    final = CACHE / "rootfs-bookworm"
    if final.is_dir():
        return final
    tmp = CACHE / "rootfs-bookworm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"debootstrap --variant=minbase bookworm {tmp} {debian_mirror()}", file=sys.stderr)
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(tmp), debian_mirror()], check=True
    )
    policy = tmp / "usr/sbin/policy-rc.d"  # no service may start inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        [
            "chroot",
            str(tmp),
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *PACKAGES,
        ],
        check=True,
        env=env,
    )
    policy.unlink()
    for deb in (tmp / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for lst in (tmp / "var/lib/apt/lists").glob("*_*"):
        lst.unlink()
    tmp.rename(final)
    return final


# -- the image -------------------------------------------------------------------------


def _layer_of(rel: str) -> int:
    """Which of the four base layers a path of the root filesystem goes to."""
    if rel.startswith(("usr/lib/python3", "usr/share/perl", "usr/lib/x86_64-linux-gnu/perl")):
        return 2
    if rel.startswith("usr/share/"):
        return 1
    if rel.startswith(("usr/", "bin", "sbin", "lib")):
        return 0
    return 3


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
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 0
    import io

    tf.addfile(ti, io.BytesIO(data))


def build_image(rootfs: Path, out: Path, *, half: bool) -> Path:
    """Releases A and B (same lower layers, different top) as one OCI layout at ``out``."""
    if (out / "index.json").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), rootfs)
            if rel.startswith(("proc/", "sys/", "dev/")):
                continue
            full = rootfs / rel
            if half and not full.is_dir() and zlib.crc32(rel.encode()) % 2:
                continue
            paths.append(rel)
    groups: list[list[str]] = [[], [], [], []]
    for rel in paths:
        if not (rootfs / rel).is_dir() or (rootfs / rel).is_symlink():
            groups[_layer_of(rel)].append(rel)
    layout = _Layout(out)

    def base(files: list[str]) -> Callable[[tarfile.TarFile], None]:
        dirs = {"/".join(_key(f)[:i]) for f in files for i in range(1, len(_key(f)))}
        members = sorted(dirs | set(files), key=_key)

        def write(tf: tarfile.TarFile) -> None:
            for rel in members:
                tf.add(rootfs / rel, arcname=rel, recursive=False)

        return write

    layers = [layout.layer(base(g)) for g in groups]
    etc_files = [
        p
        for p in groups[3]
        if p.startswith("etc/") and (rootfs / p).is_file() and not (rootfs / p).is_symlink()
    ]
    docs = sorted(
        {
            "/".join(_key(p)[:4])
            for p in groups[1]
            if p.startswith("usr/share/doc/") and len(_key(p)) > 4
        }
    )

    def update(tf: tarfile.TarFile) -> None:
        # overwrites, whiteouts of whole directories, an opaque directory, new files, a hard link
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

    def top(release: str) -> Callable[[tarfile.TarFile], None]:
        def write(tf: tarfile.TarFile) -> None:
            _add_bytes(tf, "etc/patchkit-release", f"release {release}\n".encode())
            for i, rel in enumerate(etc_files[:200]):
                if i % 4 == 0:
                    _add_bytes(tf, rel, (rootfs / rel).read_bytes() + f"# {release}\n".encode())

        return write

    layout.image([*layers, layout.layer(top("A"))], "A")
    layout.image([*layers, layout.layer(top("B"))], "B")
    return out


# -- child processes -------------------------------------------------------------------


def child(mode: str, layout: str, store: str) -> None:
    """One measured run (in its own process); prints rusage as JSON on stdout."""
    from patchkit.git.store import Store
    from patchkit.images import parse_source
    from patchkit.ops.importing import import_release

    if mode == "floor":
        floor(Path(layout))
    elif mode == "gzip-zlib" or mode.startswith("gzip-"):
        gunzip_only(Path(layout), mode.partition("-")[2])
    else:
        st = Store.open(Path(store))
        include = ["etc/**"] if mode == "sparse" else None
        version = "B" if mode == "reimport" else "A"
        res = import_release(st, version, parse_source(f"oci:{layout}:{version}"), include=include)
        assert not res.reused
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"rss_self_kb": me, "rss_children_kb": kids}))


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
    """Decompress (the decoder patchkit uses) and parse every tar header; write nothing."""
    from patchkit.images.layers import GZIP_MODULE

    for blob in _layer_blobs(layout):
        with tarfile.open(fileobj=_Chunks(_decompress(blob, GZIP_MODULE)), mode="r|") as tf:  # type: ignore[call-overload]
            for _ in tf:
                tf.members.clear()


def gunzip_only(layout: Path, which: str) -> None:
    if which == "isal":
        from isal import isal_zlib as module  # type: ignore[import-not-found]
    elif which == "zlib-ng":
        from zlib_ng import zlib_ng as module  # type: ignore[import-not-found]
    else:
        module = zlib
    for blob in _layer_blobs(layout):
        for _ in _decompress(blob, module):
            pass


def measure(mode: str, layout: Path, store: Path, prepare: Callable[[], None]) -> dict[str, float]:
    prepare()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(layout), str(store)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall": wall,
        "rss": usage["rss_self_kb"] / 1024,
        "rss_kids": usage["rss_children_kb"] / 1024,
    }


def umoci_run(layout: Path, work: Path) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script = (
        f"umoci unpack --rootless --image {layout}:A {work}/bundle >/dev/null && "
        f"cd {work}/bundle/rootfs && git init -q && git add -A && "
        "git -c user.name=b -c user.email=b@localhost commit -q -m import"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN keeps the largest child so far: only a new maximum is attributable here.
    return {
        "wall": wall,
        "rss": float("nan"),
        "rss_kids": after / 1024 if after > before else float("nan"),
    }


def gzip_run(which: str, layout: Path) -> Callable[[], dict[str, float]]:
    return lambda: measure(f"gzip-{which}", layout, CACHE / "none", lambda: None)


def median_of(runs: int, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    results = [fn() for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def bench(layout: Path, runs: int, *, with_umoci: bool) -> dict[str, dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="pk-bench-", dir=CACHE))
    store = work / "store"
    seeded = work / "seeded"
    out: dict[str, dict[str, float]] = {}
    try:

        def fresh() -> None:
            shutil.rmtree(store, ignore_errors=True)

        def with_a() -> None:
            fresh()
            shutil.copytree(seeded, store, symlinks=True)

        out["floor"] = median_of(runs, lambda: measure("floor", layout, store, fresh))
        out["full"] = median_of(runs, lambda: measure("full", layout, store, fresh))
        out["sparse"] = median_of(runs, lambda: measure("sparse", layout, store, fresh))
        measure("full", layout, seeded, lambda: shutil.rmtree(seeded, ignore_errors=True))
        out["reimport"] = median_of(runs, lambda: measure("reimport", layout, store, with_a))
        if with_umoci:
            out["umoci"] = median_of(runs, lambda: umoci_run(layout, work / "umoci"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def image_stats(layout: Path) -> dict[str, float]:
    blobs = _layer_blobs(layout)
    entries = 0
    raw = 0
    for blob in blobs:
        with gzip.open(blob, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tf:
            for m in tf:
                entries += 1
                raw += m.size
    return {
        "layers": len(blobs),
        "entries": entries,
        "content_mb": raw / 2**20,
        "gzip_mb": sum(b.stat().st_size for b in blobs) / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="full,half")
    ap.add_argument("--gzip", action="store_true", help="also compare zlib, isal and zlib-ng")
    ap.add_argument("--no-umoci", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "LAYOUT", "STORE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    rootfs = build_rootfs()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "runs": args.runs,
    }
    for size in args.sizes.split(","):
        layout = build_image(rootfs, CACHE / f"image-{size}", half=size == "half")
        stats = image_stats(layout)
        print(
            f"\n== {size} image: {stats['layers']} layers, {stats['entries']} entries, "
            f"{stats['content_mb']:.0f} MB content, {stats['gzip_mb']:.0f} MB gzip",
            flush=True,
        )
        res = bench(layout, args.runs, with_umoci=not args.no_umoci)
        report[size] = {"image": stats, "results": res}
        print_table(res)
        if args.gzip:
            g = {}
            for which in ("zlib", "isal", "zlib-ng"):
                g[which] = median_of(args.runs, gzip_run(which, layout))
                print(f"gunzip {which:8} {g[which]['wall']:7.2f} s", flush=True)
            report[size]["gzip"] = g
    (CACHE / "results.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten {CACHE / 'results.json'}")


def print_table(res: dict[str, dict[str, float]]) -> None:
    umoci = res.get("umoci", {}).get("wall")
    floor_wall = res["floor"]["wall"]
    print(f"{'mode':10} {'wall s':>8} {'py RSS MB':>10} {'git RSS MB':>11}  ratio")
    for mode in ("full", "sparse", "reimport", "umoci", "floor"):
        if mode not in res:
            continue
        r = res[mode]
        ratio = ""
        if mode == "full" and umoci:
            ratio = f"umoci/full = {umoci / r['wall']:.1f}x (target >= 5x)"
        elif mode == "sparse":
            ratio = f"sparse/floor = {r['wall'] / floor_wall:.2f}x (target <= 1.5x)"
        elif mode == "reimport":
            ratio = "target < 2 s"
        print(
            f"{mode:10} {r['wall']:8.2f} {r['rss']:10.0f} {r['rss_kids']:11.0f}  {ratio}",
            flush=True,
        )


if __name__ == "__main__":
    main()
