"""The store's references read from its files, without running git.

A warm ``patchkit matrix`` answers from its cache once it knows that nothing changed, the
releases in the store included; a ``git for-each-ref`` process would cost more than the rest of
that answer. git's ``files`` backend keeps a reference in a loose file (``refs/...``, one
object id) or in ``packed-refs`` (a loose file wins); anything else (the ``reftable``
backend, a symbolic reference, a file that is not one object id) makes :func:`read_refs`
answer ``None``, and the caller asks git.

Imports nothing but ``os``: the warm path loads this module and little else.
"""

from __future__ import annotations

import os

__all__ = ["UPSTREAM_PREFIX", "read_refs"]

UPSTREAM_PREFIX = "refs/patchkit/upstream/"  # a release's commit: UPSTREAM_PREFIX + its label

_HEX = frozenset("0123456789abcdef")


def _oid(text: str) -> str | None:
    text = text.strip()
    return text if len(text) in (40, 64) and _HEX.issuperset(text) else None


def read_refs(git_dir: str | os.PathLike[str], prefix: str) -> dict[str, str] | None:
    """Every reference below ``prefix`` (``refs/patchkit/upstream/``) -> its object id, read
    from the files of the bare repository ``git_dir``; ``None`` when they are not in a form
    read here (then ask git), ``{}`` when there is no repository."""
    root = os.fspath(git_dir)
    if not os.path.isfile(os.path.join(root, "HEAD")):
        return {}
    if os.path.exists(os.path.join(root, "reftable")) or os.path.exists(
        os.path.join(root, "commondir")
    ):
        return None
    refs: dict[str, str] = {}
    try:
        with open(os.path.join(root, "packed-refs"), encoding="utf-8") as f:
            packed = f.read()
    except FileNotFoundError:
        packed = ""
    except (OSError, UnicodeDecodeError):
        return None
    for line in packed.splitlines():
        if not line or line[0] in "#^":
            continue
        oid, _, name = line.partition(" ")
        if name.startswith(prefix):
            if _oid(oid) is None:
                return None
            refs[name] = oid
    top = os.path.join(root, *prefix.rstrip("/").split("/"))
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in files:
            if name.endswith(".lock"):  # a write in flight: the reference is still the old one
                continue
            path = os.path.join(directory, name)
            try:
                with open(path, encoding="utf-8") as f:
                    loose = _oid(f.read())
            except (OSError, UnicodeDecodeError):
                return None
            if loose is None:  # a symbolic reference, or not a reference at all
                return None
            refs[os.path.relpath(path, root).replace(os.sep, "/")] = loose
    return refs
