"""Overlays: whole files placed over the image (a ``dir/`` series line, ``patches/dir/``).

Every file under ``patches/dir/`` is placed at the same path in the image, added or replacing
upstream's. Its mode is the file's executable bit (100755 or 100644); its owner is root unless
the overlay's owners table says otherwise. The table, and the overlay's header, live in
``patches/dir/.overlay.toml`` (not placed in the image)::

    description = "rspamd workers on unix sockets"
    upstream-versions = ">=2.2"

    [owners]
    "var/lib/redis/redis.conf" = "101:103"

A file identical to upstream's is ``already-applied``. A file that replaces one upstream
changed since the series' base carries the flag ``upstream-changed: PATH``: someone must look
at upstream's new version. A path that is, or lies below, a symlink on the release is refused
(``conflict``): an overlay never writes through a link.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from patchkit.core.model import ChangeKind, OverlayEntry, PatchResult, PatchStatus
from patchkit.core.patchfile import check_relative_path
from patchkit.core.ranges import check_range, in_range
from patchkit.errors import OverlayError, PatchParseError
from patchkit.kinds.base import NO_CONTEXT, ApplyContext, ChangeOutcome, PathLister, skipped_result
from patchkit.kinds.dep3 import TomlHeader

__all__ = ["META_FILE", "OverlayChange", "OverlayFile", "load_overlay"]

META_FILE = ".overlay.toml"  # the overlay's header and owners table, inside its directory
_OWNER = re.compile(r"(?:\d+|[a-z_][a-z0-9_-]*):(?:\d+|[a-z_][a-z0-9_-]*)")
MODE_FILE = "100644"
MODE_EXEC = "100755"


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlayFile:
    """One file of an overlay, as read from ``patches/``."""

    data: bytes
    executable: bool = False

    @property
    def mode(self) -> str:
        return MODE_EXEC if self.executable else MODE_FILE


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlayChange(TomlHeader):
    """An overlay directory seen through the :class:`~patchkit.kinds.base.Change` protocol."""

    name: str  # the series line, with its trailing slash
    files: Mapping[str, OverlayFile]  # image path -> file, sorted by path
    header: Mapping[str, str] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)  # image path -> "uid:gid"
    meta: bytes = b""

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind.OVERLAY

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self.files)

    def applies_to(self, version: str) -> bool:
        return in_range(self.upstream_versions, version, where=f"patches/{self.name}{META_FILE}")

    def targets(self, lister: PathLister) -> tuple[str, ...]:
        return tuple(self.files)

    def render(self) -> bytes:
        """A deterministic listing (path, mode, content hash, owner) and the owners file:
        what a cache key needs to change whenever any file of the overlay does."""
        rows = [
            f"{f.mode} {hashlib.sha256(f.data).hexdigest()} {self.owners.get(p, '')} {p}\n"
            for p, f in self.files.items()
        ]
        return "".join(rows).encode("utf-8", "surrogateescape") + b"\0" + self.meta

    def apply(
        self,
        files: Mapping[str, bytes | None],
        *,
        version: str,
        context: ApplyContext = NO_CONTEXT,
    ) -> ChangeOutcome:
        if not self.applies_to(version):
            skipped = skipped_result(self.name, self.paths, self.upstream_versions, version)
            return ChangeOutcome(result=replace(skipped, kind=ChangeKind.OVERLAY))
        entries: list[OverlayEntry] = []
        contents: dict[str, bytes | None] = {}
        modes: dict[str, str] = {}
        for path, placed in self.files.items():
            owner = self.owners.get(path, "")
            upstream = files.get(path)
            if path in context.symlinked:
                entries.append(
                    OverlayEntry(
                        path=path,
                        status=PatchStatus.CONFLICT,
                        action="refused",
                        mode=placed.mode,
                        owner=owner,
                        message="the release has a symlink on this path: an overlay never writes through one",
                    )
                )
                continue
            if upstream == placed.data:
                entries.append(
                    OverlayEntry(
                        path=path,
                        status=PatchStatus.ALREADY_APPLIED,
                        action="unchanged",
                        mode=placed.mode,
                        owner=owner,
                    )
                )
                continue
            flags: tuple[str, ...] = ()
            base = context.base
            if upstream is not None and base is not None and base.get(path) != upstream:
                flags = (f"upstream-changed: {path}",)
            entries.append(
                OverlayEntry(
                    path=path,
                    status=PatchStatus.APPLIED,
                    action="added" if upstream is None else "replaced",
                    mode=placed.mode,
                    owner=owner,
                    flags=flags,
                )
            )
            contents[path] = placed.data
            modes[path] = placed.mode
        statuses = {e.status for e in entries}
        refused = [e for e in entries if e.status is PatchStatus.CONFLICT]
        if refused:
            status = PatchStatus.CONFLICT
            contents, modes = {}, {}
        elif statuses == {PatchStatus.ALREADY_APPLIED}:
            status = PatchStatus.ALREADY_APPLIED
        else:
            status = PatchStatus.APPLIED
        result = PatchResult(
            name=self.name,
            status=status,
            files=self.paths,
            message="; ".join(f"{e.path}: {e.message}" for e in refused),
            flags=tuple(f for e in entries for f in e.flags),
            kind=ChangeKind.OVERLAY,
            entries=tuple(entries),
        )
        return ChangeOutcome(result=result, contents=contents, modes=modes)


def load_overlay(
    name: str, files: Mapping[str, OverlayFile], *, meta: bytes | None = None
) -> OverlayChange:
    """An overlay from its files (image path -> file) and its ``.overlay.toml`` (if any).

    Raises :class:`~patchkit.errors.OverlayError` naming ``patches/NAME...`` for a path that
    would escape the image root, an empty overlay, or a bad owners table.
    """
    where = f"patches/{name}"
    if not files:
        raise OverlayError(f"{where}: the overlay directory holds no file")
    for path in files:
        problem = check_relative_path(path)
        if problem:
            raise OverlayError(f"{where}{path}: {problem}: an overlay stays inside the image root")
    header: dict[str, str] = {}
    owners: dict[str, str] = {}
    if meta is not None:
        meta_where = f"{where}{META_FILE}"
        try:
            doc = tomllib.loads(meta.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise OverlayError(
                f"{meta_where}: not UTF-8 text ({e.reason} at byte {e.start})"
            ) from e
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column \d+\)", str(e))
            line = m.group(1) if m else "1"
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
            raise OverlayError(f"{meta_where}:{line}: invalid TOML: {msg}") from e
        lines = meta.decode("utf-8").split("\n")

        def line_of(key: str) -> int:
            return next(
                (
                    no
                    for no, ln in enumerate(lines, 1)
                    if re.match(rf'\s*"?{re.escape(key)}"?\s*=', ln)
                ),
                1,
            )

        for key, value in doc.items():
            if key == "owners":
                if not isinstance(value, dict):
                    raise OverlayError(f"{meta_where}:{line_of(key)}: [owners] must be a table")
                for path, owner in value.items():
                    if path not in files:
                        raise OverlayError(
                            f"{meta_where}:{line_of(path)}: owner for '{path}', which the overlay does not hold"
                        )
                    if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
                        raise OverlayError(
                            f"{meta_where}:{line_of(path)}: owner {owner!r} for '{path}': give \"uid:gid\""
                        )
                    owners[path] = owner
            elif isinstance(value, str):
                header[key] = value
            else:
                raise OverlayError(
                    f"{meta_where}:{line_of(key)}: '{key}': header keys are strings, owners go in [owners]"
                )
        if "upstream-versions" in header:
            try:
                check_range(
                    header["upstream-versions"], f"{meta_where}:{line_of('upstream-versions')}"
                )
            except PatchParseError as e:
                raise OverlayError(str(e)) from e
    ordered = {p: files[p] for p in sorted(files)}
    return OverlayChange(name=name, files=ordered, header=header, owners=owners, meta=meta or b"")
