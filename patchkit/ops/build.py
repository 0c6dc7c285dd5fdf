"""The patched tree of a release, in memory, and the Docker build context made from it.

:func:`patched_tree` applies the series to a release's blobs the way `check` does (no
checkout) and keeps the result: the files the series changes or adds, with their
modes. :func:`build_context` writes a Docker build context from it::

    OUT/Dockerfile           FROM <image>@<digest>; COPY --chown per owner; run dirs
    OUT/overlay/<path>       exactly the changed and added files, with their modes
    OUT/patchkit-build.json  what was written and why (schema 1)

Owners come from the release's import manifest (what git cannot hold); a file the
series creates gets its parent directory's owner, else root.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from patchkit.core.model import SCHEMA, CheckResult, PatchStatus
from patchkit.core.patchfile import Patch
from patchkit.errors import ConfigError, PatchkitError
from patchkit.git.objects import MODE_EXEC, MODE_LINK, BlobReader
from patchkit.git.store import Store
from patchkit.images.source import SourceKind, parse_source
from patchkit.images.tree import Manifest, load_manifest
from patchkit.ops.check import apply_series

if TYPE_CHECKING:
    from patchkit.project import Project

__all__ = [
    "RUN_DIRS",
    "START_SCRIPT",
    "BuildContext",
    "BuildNotReadyError",
    "PatchedTree",
    "RunDir",
    "build_context",
    "patched_tree",
]

# The start-up script the series ships (issue 7); built into the context when present.
START_SCRIPT = "etc/cont-init.d/25-bind-hostname.sh"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDir:
    """A directory the unix sockets of the patched configs live in."""

    path: str
    owner: str
    group: str
    mode: int


# One place: the socket directories the patch set points services at, and who owns them.
RUN_DIRS: tuple[RunDir, ...] = (
    RunDir(path="var/run/redis", owner="redis", group="redis", mode=0o2775),
    RunDir(path="var/run/rspamd", owner="_rspamd", group="_rspamd", mode=0o2775),
    RunDir(path="var/run/haraka", owner="root", group="root", mode=0o0755),
    RunDir(path="var/run/dovecot", owner="root", group="root", mode=0o0755),
)


class BuildNotReadyError(PatchkitError):
    """The series does not apply cleanly to the release: no context is written."""

    exit_code = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchedTree:
    """A release with the series applied in memory."""

    version: str
    tree: str
    check: CheckResult
    changes: Mapping[str, bytes | None]  # path -> new content (None: deleted), only touched paths
    modes: Mapping[str, int]  # git mode of every changed or added path
    added: frozenset[str] = field(default_factory=frozenset)

    @property
    def changed_paths(self) -> tuple[str, ...]:
        return tuple(sorted(p for p, c in self.changes.items() if c is not None))

    @property
    def deleted_paths(self) -> tuple[str, ...]:
        return tuple(sorted(p for p, c in self.changes.items() if c is None))


def _git_mode(text: str | None) -> int | None:
    return int(text, 8) if text else None


def patched_tree(
    reader: BlobReader, *, version: str, tree: str, patches: Sequence[Patch], store: Store
) -> PatchedTree:
    """Apply ``patches`` to ``tree`` like `check` and keep the files they change."""
    applied = apply_series(reader, version=version, tree=tree, patches=patches)
    check, base, overlay = applied.check, applied.original, applied.files
    modes: dict[str, int] = {}
    for patch, result in zip(patches, check.patches, strict=True):
        if result.status in (PatchStatus.CONFLICT, PatchStatus.MISSING_TARGET, PatchStatus.SKIPPED):
            continue
        for fp in patch.files:
            mode = _git_mode(fp.new_mode) if fp.is_new or fp.new_mode != fp.old_mode else None
            if mode is not None:
                modes[fp.path] = mode
    entries = store.ls_tree(tree, sorted(overlay)) if overlay else {}
    # Every overlay path was read from the release before a patch changed it.
    changes = {p: c for p, c in overlay.items() if c != base.get(p)}
    for path, data in changes.items():
        if data is None:
            continue
        if path not in modes:
            entry = entries.get(path)
            modes[path] = entry.mode if entry else 0o100644
    added = frozenset(p for p in changes if p not in entries and changes[p] is not None)
    return PatchedTree(
        version=version, tree=tree, check=check, changes=changes, modes=modes, added=added
    )


# -- the build context ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildContext:
    """What `build_context` wrote."""

    version: str
    out: str
    base_image: str
    digest: str
    files: tuple[dict[str, Any], ...]
    deleted: tuple[str, ...]
    run_dirs: tuple[RunDir, ...]
    start_script: bool
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "build",
            "version": self.version,
            "out": self.out,
            "from": self.base_image,
            "digest": self.digest,
            "files": list(self.files),
            "deleted": list(self.deleted),
            "run_dirs": [
                {"path": "/" + d.path, "owner": d.owner, "group": d.group, "mode": f"{d.mode:04o}"}
                for d in self.run_dirs
            ],
            "start_script": self.start_script,
            "warnings": list(self.warnings),
        }


def _owner(manifest: Manifest, path: str, *, added: bool) -> tuple[int, int, int | None]:
    """(uid, gid, permission bits or None) for ``path`` from the import manifest."""
    entry = manifest.get(path)
    if entry is not None:
        return entry.uid, entry.gid, entry.mode
    if added:
        parent = PurePosixPath(path).parent
        while str(parent) not in (".", "/", ""):
            pe = manifest.get(str(parent))
            if pe is not None:
                return pe.uid, pe.gid, None
            parent = parent.parent
    return 0, 0, None


def _base_image(source: str, digest: str, version: str) -> tuple[str, list[str]]:
    """The FROM reference and warnings for it."""
    warnings: list[str] = []
    src = parse_source(source)
    if src.kind is SourceKind.DOCKER:
        name = f"{src.registry}/{src.name}"
        if digest.startswith("sha256:"):
            return f"{name}@{digest}", warnings
        warnings.append(f"no digest recorded for {version}: FROM uses the tag, which can move")
        return f"{name}:{src.tag or version}", warnings
    if src.kind is SourceKind.DOCKER_DAEMON:
        if digest.startswith("sha256:"):
            return f"{src.name}@{digest}", warnings
        return f"{src.name}:{src.tag or version}", warnings
    # oci:/docker-archive:/tar:/dir: the image is local (model releases are built here).
    warnings.append(
        f"{version} comes from a local {src.kind.value}: source ({source}); load it into the "
        f"daemon first (e.g. skopeo copy {source} docker-daemon:patchkit/{version}:{version})"
    )
    return f"patchkit/{version}:{version}", warnings


def _dockerfile(
    base: str,
    digest: str,
    groups: Mapping[tuple[int, int], list[str]],
    deleted: Sequence[str],
    run_dirs: Sequence[RunDir],
    start_script: bool,
    version: str,
) -> str:
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Built by `patchkit build {version}`: the release plus exactly the files the series",
        "# changes or adds (overlay/), with their modes and owners from the import manifest.",
        f"FROM {base}",
        "",
    ]
    for (uid, gid), paths in sorted(groups.items()):
        for p in paths:
            lines.append(f"COPY --chown={uid}:{gid} {json.dumps(['overlay/' + p, '/' + p])}")
    if deleted:
        lines += ["", "RUN rm -f " + " ".join("/" + p for p in deleted)]
    if run_dirs:
        lines += ["", "# The directories the unix sockets live in, owned by the services' users."]
        for d in run_dirs:
            lines.append(f"RUN install -d -o {d.owner} -g {d.group} -m {d.mode:04o} /{d.path}")
    if start_script:
        lines += ["", f"RUN chmod 0755 /{START_SCRIPT}"]
    return "\n".join(lines) + "\n"


def build_context(project: Project, version: str, out: str | os.PathLike[str]) -> BuildContext:
    """Write the Docker build context for ``version`` into ``out`` (replaced if it is one).

    Raises BuildNotReadyError (exit 1) when a patch conflicts, misses its target or needs
    fuzz on this release: a context is only written for a series that applies cleanly.
    """
    vf = project.versions
    tree = project.release_tree(version)
    patches = project.patches()
    store = project.store
    info = store.release(version)
    assert info is not None  # release_tree checked
    with store.blob_reader() as reader:
        pt = patched_tree(reader, version=version, tree=tree, patches=patches, store=store)
        manifest = (
            load_manifest(reader.read(info.manifest_blob) or b"")
            if info.manifest_blob
            else Manifest()
        )
    bad = [p for p in pt.check.patches if p.needs_attention]
    if bad:
        names = ", ".join(f"{p.name} ({p.status.value})" for p in bad)
        raise BuildNotReadyError(
            f"{version}: the series does not apply cleanly: {names}; run: patchkit check {version}"
        )
    rel = vf.release(version)
    base, warnings = _base_image(vf.source_for(version), rel.digest or info.digest, version)

    dest = Path(out)
    if dest.exists():
        ours = (dest / "Dockerfile").is_file() and (dest / "patchkit-build.json").is_file()
        if not ours and any(dest.iterdir()):
            raise ConfigError(
                f"{dest}: exists and is not a patchkit build context; choose an empty --out"
            )
        shutil.rmtree(dest)
    (dest / "overlay").mkdir(parents=True)

    groups: dict[tuple[int, int], list[str]] = {}
    files: list[dict[str, Any]] = []
    for path in pt.changed_paths:
        data = pt.changes[path]
        assert data is not None
        mode = pt.modes[path]
        target = dest / "overlay" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == MODE_LINK:
            target.symlink_to(data.decode("utf-8", "surrogateescape"))
            perm = 0o777
        else:
            target.write_bytes(data)
            uid, gid, bits = _owner(manifest, path, added=path in pt.added)
            perm = bits if bits is not None else (0o755 if mode == MODE_EXEC else 0o644)
            target.chmod(perm)
        uid, gid, _ = _owner(manifest, path, added=path in pt.added)
        groups.setdefault((uid, gid), []).append(path)
        files.append(
            {
                "path": "/" + path,
                "mode": f"{perm:04o}",
                "uid": uid,
                "gid": gid,
                "added": path in pt.added,
                "git_mode": f"{mode:06o}",
            }
        )
    run_dirs = _needed_run_dirs(pt)
    start = START_SCRIPT in pt.changes and pt.changes[START_SCRIPT] is not None
    (dest / "Dockerfile").write_text(
        _dockerfile(base, info.digest, groups, pt.deleted_paths, run_dirs, start, version),
        encoding="utf-8",
    )
    ctx = BuildContext(
        version=version,
        out=str(dest),
        base_image=base,
        digest=rel.digest or info.digest,
        files=tuple(files),
        deleted=pt.deleted_paths,
        run_dirs=run_dirs,
        start_script=start,
        warnings=tuple(warnings),
    )
    (dest / "patchkit-build.json").write_text(
        json.dumps(ctx.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return ctx


def _needed_run_dirs(pt: PatchedTree) -> tuple[RunDir, ...]:
    """The run dirs some changed file names (a socket path under them)."""
    text = b"\n".join(c for c in pt.changes.values() if c is not None)
    out = []
    for d in RUN_DIRS:
        short = d.path.removeprefix("var/")
        if f"/{d.path}/".encode() in text or f"/{short}/".encode() in text:
            out.append(d)
    return tuple(out)
