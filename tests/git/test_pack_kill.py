"""A killed import leaves no temporary pack behind once the next command opens the store;
a live writer's files are never taken for a killed one's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from patchkit.git.pack import PackWriter, clear_stale_packs
from patchkit.git.store import Store
from tests.helpers.fresh import modules_loaded
from tests.helpers.imagebuilder import Layer, build_oci_layout

# The child kills itself the moment the pack writer is asked to finish: every object is in
# the temporary pack, nothing is renamed yet. A kill timed from outside raced the writer
# (CI: the pack was already done after 0.2 s, and after 0.02 s on a loaded machine too).
_CHILD = """
import os, signal, sys
from patchkit.git import pack
from patchkit.git.store import Store

def _killed(self):
    os.kill(os.getpid(), signal.SIGKILL)

pack.PackWriter.finish = _killed
from patchkit.images import parse_source
from patchkit.ops.importing import import_release
import_release(Store.open(sys.argv[1]), "1", parse_source(sys.argv[2]))
"""


def _tmp(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "objects" / "pack").glob("tmp_pack_*"))


def test_sigkill_mid_import_then_the_next_command_clears_the_temporary_pack(
    tmp_path: Path,
) -> None:
    layer = Layer()
    for i in range(40):
        layer.file(f"f/{i:03}", os.urandom(10_000))
    built = build_oci_layout(tmp_path / "img", [layer])
    store = tmp_path / "store"
    Store.open(store)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(store), built.source], env=env, timeout=120
    )
    assert child.returncode == -signal.SIGKILL
    left = _tmp(store)
    assert any(n.endswith(".lock") for n in left) and len(left) >= 2, left
    Store.open(store)  # the next command
    assert _tmp(store) == []
    assert Store.open(store).git("for-each-ref").stdout == b""


def test_a_live_writers_files_are_kept(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    writer = PackWriter(store.path)
    writer.add(b"alive\n")
    before = _tmp(store.path)
    assert len(before) == 2
    assert clear_stale_packs(store.path / "objects" / "pack") == []
    Store.open(store.path)
    assert _tmp(store.path) == before
    writer.finish()
    assert _tmp(store.path) == []


def test_files_of_an_older_writer_without_a_lock_are_kept_until_old(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    legacy = store.path / "objects" / "pack" / "tmp_pack_pk_a1b2c3d4"
    legacy.write_bytes(b"PACK")
    Store.open(store.path)
    assert legacy.exists()
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    Store.open(store.path)
    assert not legacy.exists()


def test_opening_a_store_does_not_load_the_pack_writer(tmp_path: Path) -> None:
    # Every command opens the store (and clears a killed import's files); only imports write
    # packs: the writer's thread, zlib and hashing stay unloaded for the others (cold matrix).
    Store.open(tmp_path / "store")
    code = "import sys\nfrom patchkit.git.store import Store\nStore.open(sys.argv[1])"
    assert modules_loaded(code, ["patchkit.git.pack"], str(tmp_path / "store")) == []
