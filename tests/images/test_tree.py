"""patchkit.images.tree: the packed tree gives what the plain tree gives, on any layers.

`RootFS.pack` moves plain regular files out of their directory's dict into `Packed`
bytes as the layers are read (issue 15: the tree's memory). The reference here is the
same import with packing switched off: every OCI rule (whiteouts of lower layers only,
opaque directories, hard links, a directory over a file, a file as a parent, duplicate
entries) must come out the same, refusals included, whether a file is packed at once
(`_PACK_EVERY = 1`, with blob ids filled in at once so that a layer's own files are
packed while it is read) or never. The rules themselves are checked against umoci in
test_interop.py and test_hostile_layers.py, both run packed and unpacked too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import patchkit.images.layers as layers_module
from patchkit.errors import PatchkitError
from patchkit.git.store import Store
from patchkit.images import parse_source
from patchkit.images.tree import RootFS
from patchkit.ops.importing import import_release
from tests.helpers.imagebuilder import Layer, build_oci_layout

NAMES = st.sampled_from(["a", "b", "a/x", "a/y", "b/x", "a/c", "a/c/z", "b/c"])
MODES = st.sampled_from([0o644, 0o755, 0o600, 0o4755])
CONTENTS = st.sampled_from([b"", b"one", b"two", b"three\n"])


@st.composite
def operations(draw: st.DrawFn) -> tuple[str, ...]:
    kind = draw(
        st.sampled_from(
            ["file", "file", "file", "dir", "symlink", "hardlink", "whiteout", "opaque"]
        )
    )
    path = draw(NAMES)
    if kind == "file":
        return (kind, path, draw(CONTENTS).decode(), str(draw(MODES)))
    if kind in ("symlink", "hardlink"):
        return (kind, path, draw(NAMES))
    return (kind, path)


def build(ops: list[list[tuple[str, ...]]]) -> list[Layer]:
    out = []
    for layer_ops in ops:
        layer = Layer()
        for op in layer_ops:
            kind, path = op[0], op[1]
            if kind == "file":
                layer.file(path, op[2].encode(), mode=int(op[3]))
            elif kind == "dir":
                layer.dir(path)
            elif kind == "symlink":
                layer.symlink(path, op[2])
            elif kind == "hardlink":
                layer.hardlink(path, op[2])
            elif kind == "whiteout":
                layer.whiteout(path)
            else:
                layer.opaque(path)
        out.append(layer)
    return out


def outcome(root: Path, layers: list[Layer]) -> object:
    """The trees of a fresh store's refs after importing ``layers`` twice (read, then
    replayed from the layer cache), or the one-line error of the refusal. Trees, not
    commits: a release's commit message names its source, here a path of its own."""
    built = build_oci_layout(root / "img", layers, tag="1")
    store = Store.open(root / "store")
    try:
        import_release(store, "1", parse_source(built.source))
        import_release(store, "2", parse_source(built.source))  # from the layer cache
    except PatchkitError as e:
        return (type(e).__name__, str(e))
    return {
        ref: store.git("rev-parse", f"{commit}^{{tree}}").stdout.strip()
        for ref, commit in store.ref_targets("refs/").items()
    }


@pytest.fixture
def never_packed() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(operations(), min_size=1, max_size=8), min_size=1, max_size=4))
def test_packing_never_changes_an_import(
    never_packed: pytest.MonkeyPatch, ops: list[list[tuple[str, ...]]]
) -> None:
    layers = build(ops)
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(layers_module, "_PACK_EVERY", 1)
            mp.setattr(layers_module, "_PENDING", 1)  # ids filled in at once: packable
            packed = outcome(Path(tmp) / "packed", layers)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(RootFS, "pack", lambda self, busy=(): None)
            plain = outcome(Path(tmp) / "plain", layers)
    assert packed == plain


def test_packing_really_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential test above compares something: files do end up packed."""
    seen: list[int] = []
    original = RootFS.pack

    def pack(self: RootFS, busy: object = ()) -> None:
        original(self, busy)  # type: ignore[arg-type]
        stack = [self.root]
        while stack:
            d = stack.pop()
            assert d.children is not None
            if d.packed is not None:
                seen.append(len(d.packed.metas))
            stack.extend(c for c in d.children.values() if c.children is not None)

    monkeypatch.setattr(RootFS, "pack", pack)
    monkeypatch.setattr(layers_module, "_PACK_EVERY", 2)
    lower = Layer().dir("etc").file("etc/a", b"a").file("etc/b", b"b").file("etc/c", b"c")
    upper = Layer().whiteout("etc/a").file("etc/d", b"d").hardlink("etc/e", "etc/b")
    built = build_oci_layout(tmp_path / "img", [lower, upper], tag="1")
    store = Store.open(tmp_path / "store")
    import_release(store, "1", parse_source(built.source))
    assert max(seen) >= 3
    assert set(store.ls_tree(Store.release_ref("1"))) >= {"etc/b", "etc/c", "etc/d", "etc/e"}
    assert "etc/a" not in store.ls_tree(Store.release_ref("1"))
