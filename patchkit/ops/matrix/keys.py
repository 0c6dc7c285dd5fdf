"""What a matrix cell's answer depends on, as digests: the cache keys and the series fingerprint."""

from __future__ import annotations

import functools
import hashlib
import os

from patchkit._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from patchkit.kinds import Change

__all__ = ["CACHE_FORMAT", "cell_keys", "change_digest", "engine_fingerprint", "series_fingerprint"]

CACHE_FORMAT = 1

# The source that decides a cell's answer, relative to the package: the engine, the kinds
# (every module of kinds/, so a new kind counts without a change here), the globs and tree
# walking that resolve an edit's targets, and the matrix's own unit and risk code. A changed file means other answers may come: the cache must not serve them.
_ENGINE = (
    "core/apply.py",
    "core/globs.py",
    "core/lines.py",
    "core/merge.py",
    "core/patchfile.py",
    "core/series.py",
    "core/versions.py",
    "git/objects.py",
    "ops/check.py",
    "ops/matrix/compute.py",
    "ops/matrix/keys.py",
    "ops/matrix/risk.py",
    "ops/matrix/units.py",
)


@functools.cache
def engine_fingerprint() -> str:
    """patchkit's version and the source of the code that decides a cell's answer (read once
    a process: the code that runs is the code that was loaded)."""
    h = hashlib.sha256(f"patchkit {__version__} cache {CACHE_FORMAT}\0".encode())
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    kinds = sorted(
        f"kinds/{n}" for n in os.listdir(os.path.join(package, "kinds")) if n.endswith(".py")
    )
    for name in [*_ENGINE, *kinds]:
        h.update(f"{name}\0".encode())
        try:
            with open(os.path.join(package, name), "rb") as f:
                h.update(f.read())
        except OSError:  # an installed package without sources still works
            pass
    return h.hexdigest()


def change_digest(change: Change, strip: int) -> str:
    """One change as its series line (name, ``-pN``), its kind and its rendered bytes."""
    from patchkit.core.model import ChangeKind

    h = hashlib.sha256(f"{change.name}\0-p{strip}\0".encode())
    # A diff's digest has no kind field, as before kinds existed: results written by an older
    # patchkit keep their fingerprint and still `--merge` with new ones.
    if change.kind is not ChangeKind.DIFF:
        h.update(f"kind {change.kind}\0".encode())
    h.update(change.render())
    return h.hexdigest()


def series_fingerprint(digests: Sequence[str]) -> str:
    """One id for the series: its changes' digests, in order."""
    h = hashlib.sha256(b"patchkit series\0")
    for d in digests:
        h.update(d.encode() + b"\n")
    return "sha256:" + h.hexdigest()


def cell_keys(
    engine: str, label: str, tree: str, base_tree: str, digests: Sequence[str]
) -> list[str]:
    """Cell i's key covers changes 0..i: a change to an earlier one changes every later key."""
    chain = hashlib.sha256(f"{engine}\0{label}\0{tree}\0{base_tree}".encode()).hexdigest()
    keys = []
    for d in digests:
        chain = hashlib.sha256(f"{chain}\0{d}".encode()).hexdigest()
        keys.append(chain)
    return keys
