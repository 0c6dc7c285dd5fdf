"""`Project`: the maintainer's project directory, and the API build scripts import."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchkit.core import versions as versions_mod
from patchkit.core.model import ChangeKind, CheckResult, ImportResult, Matrix, RebaseResult
from patchkit.core.patchfile import Patch
from patchkit.core.series import Series, SeriesEntry, parse_series
from patchkit.core.versions import VersionsFile
from patchkit.errors import ConfigError, NotImportedError, OverlayError, SeriesError
from patchkit.files import atomic_write, project_lock, sweep_scratch
from patchkit.git.store import Store
from patchkit.kinds import Change, DiffChange, kind_of, load_change
from patchkit.ops.check import apply_series

if TYPE_CHECKING:
    from patchkit.audit import AuditResult
    from patchkit.core.forecast import ForecastResult
    from patchkit.core.report import AuditSummary, UpgradeReport
    from patchkit.core.watch import WatchResult
    from patchkit.images.source import Source
    from patchkit.ops.bisect import BisectResult
    from patchkit.ops.build import BuildContext
    from patchkit.ops.edit import EditOutcome, EditStatus
    from patchkit.ops.materialize import MaterializeResult
    from patchkit.ops.show import UpstreamDiff

__all__ = ["Project"]

VERSIONS_FILE = "upstream-versions.toml"
SERIES_FILE = "patches/series"


class Project:
    """A directory holding `upstream-versions.toml` and `patches/`.

    >>> project = Project.open(".")                      # doctest: +SKIP
    >>> project.check().summary["conflict"]              # doctest: +SKIP
    0
    """

    def __init__(self, root: Path, *, state_dir: Path | None = None, store_dir: Path | None = None):
        self.root = root
        self.state_dir = state_dir or root / ".patchkit"
        self.store_dir = store_dir or self.state_dir / "store.git"
        self._store: Store | None = None

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] = ".", *, store: str | os.PathLike[str] | None = None
    ) -> Project:
        root = Path(path).resolve()
        if not (root / VERSIONS_FILE).is_file():
            raise ConfigError(f"{root / VERSIONS_FILE}: not found (is {root} a patchkit project?)")
        project = cls(root, store_dir=Path(store).resolve() if store else None)
        # What a killed forecast left (its scratch repository and worktree): the next command
        # clears it. One stat when there is nothing.
        sweep_scratch(project.state_dir)
        return project

    # -- the two files ----------------------------------------------------

    @property
    def versions_path(self) -> Path:
        return self.root / VERSIONS_FILE

    @property
    def patches_dir(self) -> Path:
        return self.root / "patches"

    @property
    def series_path(self) -> Path:
        return self.root / SERIES_FILE

    def _read(self, path: Path) -> str:
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read ({e.strerror})") from e

    @property
    def versions(self) -> VersionsFile:
        return versions_mod.parse_versions(self._read(self.versions_path), path=VERSIONS_FILE)

    @property
    def series(self) -> Series:
        if not self.series_path.exists():
            return parse_series("", path=SERIES_FILE)
        return parse_series(self._read(self.series_path), path=SERIES_FILE)

    def changes(self, series: Series | None = None) -> list[Change]:
        """Every entry of the series, parsed into its kind of change, in order."""
        series = series or self.series
        return [_read_change(self.patches_dir, entry) for entry in series.entries]

    def patches(self, series: Series | None = None) -> list[Patch]:
        """Every diff of the series, parsed, in order (the other kinds: :meth:`changes`)."""
        return [c.patch for c in self.changes(series) if isinstance(c, DiffChange)]

    def write_versions_text(self, text: str) -> None:
        versions_mod.parse_versions(text, path=VERSIONS_FILE)  # never write a file we cannot read
        atomic_write(self.versions_path, text.encode("utf-8"))

    # -- store --------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.store_dir)
        return self._store

    def lock(self) -> Any:
        return project_lock(self.state_dir)

    def imported(self) -> set[str]:
        if not (self.store_dir / "HEAD").exists():
            return set()
        return self.store.imported_versions()

    def release_tree(self, version: str) -> str:
        self.versions.release(version)  # UnknownVersionError if not tracked
        info = self.store.release(version)
        if info is None:
            raise NotImportedError(
                f"version '{version}' is not imported yet; run: patchkit import {version}"
            )
        return info.tree

    def import_release(
        self,
        version: str,
        source: str | None = None,
        *,
        platform: str | None = None,
        progress: Callable[[Any], None] | None = None,
        replace: bool = False,
    ) -> ImportResult:
        """Import ``version`` from ``source`` (default: the TOML's) and record its digest.

        ``replace``: the release changed upstream (a re-pushed tag, a rebuilt model):
        import it over the one in the store and record the new digest instead of refusing.
        """
        from patchkit.images.source import parse_source
        from patchkit.ops.edit import edit_guard
        from patchkit.ops.importing import import_platforms, import_release
        from patchkit.ops.rebase import Rebaser

        with self.lock():
            # An import records digests in upstream-versions.toml, which --abort restores.
            Rebaser(self).guard()
            edit_guard(self.state_dir, "import")
            vf = self.versions
            rel = vf.release(version)
            # A source given here is relative to the CWD; one from the TOML, to the project.
            src = parse_source(source) if source else self.resolve_source(vf.source_for(version))
            always = self.touched_paths()
            include = list(vf.upstream.include) or None
            options: dict[str, Any] = {
                "strip": rel.strip,
                "include": include,
                "exclude": list(vf.upstream.exclude),
                "always": always,
                "expected_digest": rel.digest,
                "progress": progress,
                "replace": replace,
                "expected_tag_digest": rel.tag_digest,
            }
            if rel.platforms:  # every platform, each in its own tree (docs/toml.md)
                if platform is not None:
                    raise ConfigError(
                        f"{vf.path}:{rel.line}: {version} lists its platforms "
                        f"({', '.join(rel.platforms)}): --platform does not apply"
                    )
                result = import_platforms(self.store, src, rel.platform_labels(), **options)
            else:
                result = import_release(
                    self.store, version, src, platform=platform or rel.platform, **options
                )
            # Model releases are rebuilt from moving Debian suites: their digest stays in the store.
            if rel.status is not versions_mod.ReleaseStatus.MODEL:
                old = text = self._read(self.versions_path)
                if rel.digest != result.digest:
                    text = versions_mod.set_digest(text, version, result.digest)
                # ... and what its tag pointed to (`watch` compares it to find a re-push)
                if result.tag_digest and rel.tag_digest != result.tag_digest:
                    text = versions_mod.set_tag_digest(text, version, result.tag_digest)
                if text != old:
                    self.write_versions_text(text)
            return result

    def watch(
        self,
        *,
        apply: bool = False,
        import_releases: bool = False,
        progress: Callable[[Any], None] | None = None,
    ) -> WatchResult:
        """The image's tags through ``[upstream.watch]``: new, re-pushed and vanished releases.

        ``apply``: add the new ones to ``upstream-versions.toml`` (the rules' status, their
        tag digests). ``import_releases`` (implies ``apply``): then import each of them.
        Re-pushed and vanished releases are reported, never changed (docs/cli.md).
        """
        from dataclasses import replace

        from patchkit.ops.watch import watch

        if import_releases:
            from patchkit.ops.edit import edit_guard

            edit_guard(self.state_dir, "watch --import")  # before anything is written
        result = watch(self, apply=apply or import_releases)
        if import_releases and result.new:
            imported = [self.import_release(n.version, progress=progress) for n in result.new]
            result = replace(result, imported=tuple(r.version for r in imported))
        return result

    def resolve_source(self, text: str) -> Source:
        """Parse a TOML ``source``; a relative path (oci:, docker-archive:, dir:, tar:) is
        taken relative to the project directory, so commands work from any CWD."""
        from dataclasses import replace

        from patchkit.images.source import SourceKind, parse_source

        src = parse_source(text)
        if (
            src.kind in (SourceKind.DOCKER, SourceKind.DOCKER_DAEMON)
            or Path(src.path).is_absolute()
        ):
            return src
        return replace(src, path=str(self.root / src.path))

    def build_context(
        self,
        version: str,
        out: str | os.PathLike[str],
        *,
        created: str | None = None,
        source: str | None = None,
        revision: str | None = None,
    ) -> BuildContext:
        """Write a Docker build context for ``version`` (see :mod:`patchkit.ops.build`);
        ``created`` (RFC 3339), ``source`` and ``revision`` set those image labels."""
        from patchkit.ops.build import build_context

        return build_context(self, version, out, created=created, source=source, revision=revision)

    def touched_paths(self) -> set[str]:
        """Every path any patch of the series reads or writes."""
        return {path for change in self.changes() for path in change.paths}

    # -- engine -------------------------------------------------------------

    def check(self, version: str | None = None) -> CheckResult:
        """The series against one release (default: base), without a checkout."""
        base = self.versions.base
        version = version or base
        changes = self.changes()
        tree = self.release_tree(version)
        base_info = self.store.release(base) if version != base else None
        with self.store.blob_reader() as reader:
            result = apply_series(
                reader,
                version=version,
                tree=tree,
                patches=changes,
                base_tree=base_info.tree if base_info else None,
            ).check
            if not self.versions.release(version).platforms:
                return result
            from patchkit.ops.platforms import check_platforms

            return check_platforms(self, result, reader, changes)

    def matrix(
        self,
        versions: Sequence[str] | None = None,
        *,
        jobs: int = 0,
        cache: bool = True,
        warn: Callable[[str], None] | None = None,
    ) -> Matrix:
        """Every requested (default: every tracked and imported) release x every patch.

        Cached and parallel; see :func:`patchkit.ops.matrix.compute_matrix`.
        """
        from patchkit.ops.matrix import compute_matrix

        def compute() -> Matrix:
            return compute_matrix(self, versions, jobs=jobs, cache=cache, warn=warn)

        if not cache:
            return compute()
        from functools import partial

        from patchkit.ops.matrix import snapshot
        from patchkit.output.formats import to_json

        # Nothing changed since the last run: its matrix, from one file (docs/matrix.md).
        return snapshot.cached(
            root=str(self.root),
            state_dir=str(self.state_dir),
            store_dir=str(self.store_dir),
            versions=versions,
            compute=compute,
            render=partial(to_json, pretty=False),
        )

    # -- rebase -------------------------------------------------------------

    def rebase(self, onto: str) -> RebaseResult:
        """Replay the series from base onto ``onto``; stops on a conflict."""
        from patchkit.ops.rebase import Rebaser

        return Rebaser(self).start(onto)

    def rebase_continue(self) -> RebaseResult:
        from patchkit.ops.rebase import Rebaser

        return Rebaser(self).resume()

    def rebase_skip(self) -> RebaseResult:
        from patchkit.ops.rebase import Rebaser

        return Rebaser(self).skip()

    def rebase_abort(self) -> RebaseResult:
        from patchkit.ops.rebase import Rebaser

        return Rebaser(self).abort()

    def rebase_status(self) -> RebaseResult | None:
        from patchkit.ops.rebase import Rebaser

        return Rebaser(self).status()

    def forecast(self, onto: str) -> ForecastResult:
        """What ``rebase(onto)`` would do to every change, without stopping at a conflict and
        without changing anything (docs/rebase.md, "Forecast")."""
        from patchkit.ops.forecast import forecast

        return forecast(self, onto)

    def report(self, version: str) -> UpgradeReport:
        """The upgrade report of ``version``: the release, the forecast of a rebase onto it,
        upstream's diff of the files the series touches, the audit's findings that appeared or
        disappeared upstream and the patched release's verdict, the packages that changed."""
        from patchkit.audit import audit_release
        from patchkit.audit.findings import summarise
        from patchkit.ops.report import build_report

        def audit(v: str, patched: bool) -> AuditSummary:
            return summarise(audit_release(self, v, patched=patched))

        return build_report(self, version, audit=audit)

    def refresh(self) -> tuple[str, ...]:
        """Rewrite patches that apply to base only with offset/fuzz so they apply exactly."""
        from patchkit.ops.edit import edit_guard
        from patchkit.ops.rebase import Rebaser

        edit_guard(self.state_dir, "refresh")
        return Rebaser(self).refresh_to_base()

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        image: str | None = None,
        version: str | None = None,
        source: str | None = None,
    ) -> Project:
        """Create a new project (``upstream-versions.toml``, ``patches/series``, ``.gitignore``)
        in a directory that has none, and open it. Never overwrites."""
        from patchkit.ops.init import init_project

        init_project(Path(path).resolve(), image=image, version=version, source=source)
        return cls.open(path)

    def show(self, version: str, path: str, *, patched: bool = False) -> bytes:
        """A file of an imported release, read from the store (``patched``: series applied)."""
        from patchkit.ops.show import show_file

        return show_file(self, version, path, patched=patched)

    def diff(
        self,
        v1: str,
        v2: str,
        paths: Sequence[str] = (),
        *,
        touched: bool = False,
        stat: bool = False,
    ) -> UpstreamDiff:
        """What upstream changed from release ``v1`` to ``v2`` (``touched``: only the files the
        series touches)."""
        from patchkit.ops.show import upstream_diff

        return upstream_diff(self, v1, v2, paths, touched=touched, stat=stat)

    def materialize(
        self, patch: str, version: str | None = None, *, replace: bool = False
    ) -> MaterializeResult:
        """The unified diff ``patch`` (any kind) makes on ``version`` (default base);
        ``replace`` writes it as ``NAME.patch`` in the change's place in the series."""
        from patchkit.ops.materialize import materialize

        return materialize(self, patch, version=version, replace=replace)

    # -- authoring: the edit worktree (docs/authoring.md) ---------------------------

    def edit(
        self, patch: str | None = None, *, version: str | None = None, add: Sequence[str] = ()
    ) -> EditOutcome:
        """Open (or re-open) the edit worktree on ``version`` (default base), HEAD at ``patch``
        (default: the last), sparse on the files the series touches plus ``add`` globs."""
        from patchkit.ops.edit import Editor

        return Editor(self).open(patch, version=version, add=add)

    def edit_save(self) -> EditOutcome:
        """Write the worktree's changes back to ``patches/`` (stops on a replay conflict)."""
        from patchkit.ops.edit import Editor

        return Editor(self).save()

    def edit_continue(self) -> EditOutcome:
        from patchkit.ops.edit import Editor

        return Editor(self).cont()

    def edit_abort(self) -> EditOutcome:
        from patchkit.ops.edit import Editor

        return Editor(self).abort()

    def edit_done(self) -> EditOutcome:
        """Save, then remove the worktree and its state."""
        from patchkit.ops.edit import Editor

        return Editor(self).done()

    def edit_discard(self, *, force: bool = False) -> EditOutcome:
        """Drop the worktree without saving (unsaved changes need ``force``)."""
        from patchkit.ops.edit import Editor

        return Editor(self).discard(force=force)

    def edit_status(self) -> EditStatus:
        from patchkit.ops.edit import Editor

        return Editor(self).status()

    def new(
        self, name: str, *, after: str | None = None, message: str | None = None
    ) -> EditOutcome:
        """An empty patch ``patches/NAME`` (DEP-3 header) in the series after ``after``
        (default: last); the edit worktree's HEAD moves to it when it is open."""
        from patchkit.ops.edit import Editor

        return Editor(self).new(name, after=after, message=message)

    def bisect(self, patch: str) -> BisectResult:
        """The first imported release (in version order) where ``patch`` stops applying."""
        from patchkit.ops.bisect import bisect_patch

        return bisect_patch(self, patch)

    def audit(
        self, version: str | None = None, *, patched: bool = True, strict: bool = False
    ) -> AuditResult:
        """Every network listener and connection in the (patched) release's configs; see
        docs/audit.md."""
        from patchkit.audit import audit_release

        return audit_release(self, version, patched=patched, strict=strict)


def _missing(entry: SeriesEntry) -> SeriesError:
    return SeriesError(
        f"{SERIES_FILE}:{entry.line}: names '{entry.name}', but patches/{entry.name} does not exist"
    )


def _read_change(patches_dir: Path, entry: SeriesEntry) -> Change:
    """Read one series entry from ``patches/``: a file, or a directory for an overlay."""
    path = patches_dir / entry.name
    if kind_of(entry.name) is not ChangeKind.OVERLAY:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _missing(entry) from None
        except OSError as e:
            raise SeriesError(f"patches/{entry.name}: cannot read ({e.strerror})") from e
        return load_change(data, name=entry.name, strip=entry.strip)
    from patchkit.kinds.overlay import META_FILE, OverlayFile, load_overlay

    if path.is_symlink() or not path.is_dir():
        if path.exists() or path.is_symlink():
            raise OverlayError(
                f"patches/{entry.name}: an overlay is a directory (not a link or file)"
            )
        raise _missing(entry)
    files: dict[str, OverlayFile] = {}
    meta: bytes | None = None
    try:
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            for name in sorted(dirnames + filenames):
                full = here / name
                rel = full.relative_to(path).as_posix()
                if full.is_symlink():
                    raise OverlayError(
                        f"patches/{entry.name}{rel}: a symlink; an overlay holds regular files only"
                    )
                if full.is_dir():
                    continue
                if not full.is_file():
                    raise OverlayError(f"patches/{entry.name}{rel}: not a regular file")
                data = full.read_bytes()
                if rel == META_FILE:
                    meta = data
                    continue
                files[rel] = OverlayFile(data=data, executable=bool(full.stat().st_mode & 0o111))
    except OSError as e:
        raise SeriesError(f"patches/{entry.name}: cannot read ({e.strerror})") from e
    return load_overlay(entry.name, files, meta=meta)
