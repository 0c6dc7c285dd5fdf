"""The byte-for-byte backup of ``patches/`` and ``upstream-versions.toml`` a rebase takes
before it changes anything, and its restore (``--abort``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from patchkit.files import atomic_write
from patchkit.ops.rebase.state import BackupManifest
from patchkit.ops.workspace import Workspace

__all__ = ["ProjectBackup"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_temp(path: Path) -> bool:
    """A temp file of :func:`~patchkit.files.atomic_write` (``.name.XXXX.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


class ProjectBackup:
    """The project files a rebase may rewrite, and their copies in ``directory``."""

    def __init__(self, ws: Workspace, directory: Path) -> None:
        self.ws = ws
        self.dir = directory

    def project_files(self) -> list[Path]:
        files = [self.ws.versions_path, self.ws.series_path]
        patches = self.ws.patches_dir
        if patches.is_dir():
            # Every file below patches/: a series may name patches in subdirectories
            # (debian/foo.patch), and those must be backed up and refreshed like the others.
            files += sorted(
                p
                for p in patches.rglob("*")
                if p.is_file()
                and not p.is_symlink()
                and not _is_temp(p)
                and p != self.ws.series_path
            )
        return files

    def take(self) -> BackupManifest:
        """Copy every project file (content-addressed: a rerun after a kill rewrites nothing)."""
        files: list[tuple[str, str | None]] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in self.project_files():
            rel = str(path.relative_to(self.ws.root))
            if not path.exists():
                files.append((rel, None))
                continue
            data = path.read_bytes()
            digest = _sha256(data)
            target = self.dir / digest
            if not target.exists() or target.read_bytes() != data:
                atomic_write(target, data)
            files.append((rel, digest))
        return BackupManifest(files=tuple(files))

    def original(self, manifest: BackupManifest, rel: str) -> bytes:
        """A file as it was before the rebase (``b""``: it did not exist)."""
        digest = manifest.digest(rel)
        if digest is None:
            return b""
        return (self.dir / digest).read_bytes()

    def restore(self, manifest: BackupManifest) -> None:
        """Put every backed-up file back byte for byte (and remove those that were absent)."""
        for rel, digest in manifest.files:
            path = self.ws.root / rel
            if digest is None:
                path.unlink(missing_ok=True)
                continue
            data = (self.dir / digest).read_bytes()
            if not path.exists() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, data)
        # Temp files of an interrupted write that were not there before.
        self.sweep_temps()

    def sweep_temps(self) -> None:
        """Remove temp files an interrupted atomic write left beside the project's files."""
        for path in self.project_files():
            for tmp in path.parent.glob(f".{path.name}.*.tmp"):
                tmp.unlink(missing_ok=True)
