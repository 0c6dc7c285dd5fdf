"""The Debian runtime a model release needs to run as a container (bench/isolation only).

A model release (bench/model/build.py) holds only the components at poste.io's paths: no
libc, no shell, no node, no users. poste.io's real image is Debian with those packages
installed by apt. This module makes that Debian part, once per suite (cached):

    debootstrap --variant=minbase SUITE  +  apt-get install (in the chroot) of the model's
    own Debian packages, nodejs and openssl (maintainer scripts run: users, state dirs,
    dovecot's certificate), with services kept from starting (policy-rc.d exit 101)

and packs it as ``runtime.tar`` *minus every file the model release has*, so that added on
top of the model (``FROM oci:<model layout>`` then ``ADD runtime.tar /``) it only adds what
is missing: the model's files stay the model's. Docs, man pages, locales, apt's caches and
device nodes are left out. The full chroot is kept: the proof's "host" redis runs from it.

Needs root, debootstrap, tar and the Debian mirror of /etc/apt/sources.list.d/debian.sources.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL_BUILD = REPO / "bench" / "model" / "build.py"
RUNTIME_VERSION = 1  # bump when what goes into the runtime changes
EXTRA_PACKAGES = ["nodejs", "openssl"]
# Never in the runtime layer: documentation, caches, and what the engine provides.
DROP_PREFIXES = (
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
    "usr/share/lintian/",
    "var/cache/apt/",
    "var/cache/debconf/",
    "var/lib/apt/lists/",
    "dev/",
    "proc/",
    "sys/",
    "run/",
    "tmp/",
)
DROP_FILES = {"etc/hostname", "etc/hosts", "etc/resolv.conf", "usr/sbin/policy-rc.d"}


def _model_build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("patchkit_model_build", MODEL_BUILD)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def model_packages() -> list[str]:
    """The Debian packages the model releases are made of (bench/model/build.py)."""
    mod = _model_build_module()
    return [p for group in mod.DEBIAN_PACKAGES.values() for p in group]


def model_paths(layout: Path) -> set[str]:
    """Every non-directory path in the model release's layers (its OCI layout)."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs/sha256" / digest).read_text())
    paths: set[str] = set()
    for layer in manifest["layers"]:
        blob = layout / "blobs/sha256" / layer["digest"].split(":", 1)[1]
        with gzip.open(blob) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if not member.isdir():
                    paths.add(member.name.lstrip("./").rstrip("/"))
    return paths


def _sh(cmd: list[str], *, what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{what} failed: {' | '.join(tail)}")


def build_rootfs(suite: str, dest: Path, log: Callable[[str], None]) -> None:
    """debootstrap + the packages, in ``dest`` (replaced)."""
    mirror = _model_build_module().debian_mirror()
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"runtime {suite}: debootstrap --variant=minbase from {mirror}")
    _sh(["debootstrap", "--variant=minbase", suite, str(dest), mirror], what="debootstrap")
    # Maintainer scripts run (users, directories, dovecot's certificate); services must not
    # start on this machine: policy-rc.d refuses every start (removed from the tar).
    policy = dest / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    packages = [*model_packages(), *EXTRA_PACKAGES]
    log(f"runtime {suite}: apt-get install {' '.join(packages)}")
    _sh(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'mount -t proc proc "{dest}/proc" && DEBIAN_FRONTEND=noninteractive chroot "{dest}" '
            "apt-get install -y -q --no-install-recommends " + " ".join(packages),
        ],
        what=f"apt-get install in the {suite} chroot",
    )
    _sh(["chroot", str(dest), "apt-get", "clean"], what="apt-get clean")
    log(f"runtime {suite}: chroot ready ({time.monotonic() - started:.0f}s)")


def runtime_tar(
    suite: str, layout: Path, cache: Path, log: Callable[[str], None]
) -> tuple[Path, Path]:
    """(runtime.tar for the model at ``layout``, the full chroot); both cached in ``cache``."""
    me = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    root_key = json.dumps(
        {"suite": suite, "packages": model_packages() + EXTRA_PACKAGES, "v": RUNTIME_VERSION},
        sort_keys=True,
    )
    base = cache / f"runtime-{suite}"
    rootfs, stamp = base / "rootfs", base / "rootfs.json"
    if not (stamp.exists() and stamp.read_text() == root_key and (rootfs / "bin").exists()):
        build_rootfs(suite, rootfs, log)
        stamp.write_text(root_key)
    model_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    tar_key = json.dumps({"root": root_key, "model": model_digest, "script": me}, sort_keys=True)
    out, out_stamp = base / f"runtime-{layout.name}.tar", base / f"runtime-{layout.name}.json"
    if out.exists() and out_stamp.exists() and out_stamp.read_text() == tar_key:
        return out, rootfs
    skip = model_paths(layout)
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, rootfs)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        if rel_dir.startswith(DROP_PREFIXES):
            dirnames[:] = []
            continue
        if rel_dir:
            names.append(rel_dir.rstrip("/"))
        if rel_dir.startswith("var/log/"):
            continue  # the log directories (owners from the maintainer scripts), no logs
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(Path(dirpath, d))]:
            rel = rel_dir + name
            if rel in skip or rel in DROP_FILES or rel.startswith(DROP_PREFIXES):
                continue
            names.append(rel)
    # Directories the runtime must still carry (empty in the tar): engines mount over them.
    names += ["dev", "proc", "sys", "run", "tmp"]
    listing = base / "runtime.list"
    listing.write_bytes(b"\0".join(n.encode() for n in names) + b"\0")
    tmp = out.with_suffix(".tmp")
    _sh(
        [
            "tar",
            "-C",
            str(rootfs),
            "--numeric-owner",
            "--no-recursion",
            "--null",
            "-T",
            str(listing),
            "-cf",
            str(tmp),
        ],
        what="tar of the runtime",
    )
    tmp.replace(out)
    out_stamp.write_text(tar_key)
    log(
        f"runtime {suite}: {out.name} {out.stat().st_size // 1_000_000} MB "
        f"({len(names)} entries; {len(skip)} model paths left to the model)"
    )
    return out, rootfs
