"""The patched tree of a release, in memory, and the Docker build context made from it.

:func:`patched_tree` applies the series (changes of any kind) to a release's blobs the way
`check` does (no checkout) and keeps the result: the files the series changes or adds,
with their modes. :func:`build_context` writes a Docker build context from it::

    OUT/Dockerfile           FROM <image>@<digest>; COPY --chown per owner; run dirs
    OUT/overlay/<path>       exactly the changed and added files, with their modes
    OUT/patchkit-build.json  what was written and why (schema 1)

Owners come from the release's import manifest (what git cannot hold); a file the
series creates gets its parent directory's owner, else root. What the context adds
besides the files (socket directories, the start-up script) is the project's profile's
(:mod:`patchkit.profiles`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from patchkit.core.model import SCHEMA, CheckResult, PatchStatus
from patchkit.core.patchfile import Patch
from patchkit.core.versions import ReleaseStatus
from patchkit.errors import BuildNotReadyError, ConfigError, NotImportedError
from patchkit.git.objects import MODE_EXEC, MODE_LINK, BlobReader
from patchkit.git.store import Store
from patchkit.images.source import SourceKind, parse_source
from patchkit.images.tree import Manifest, load_manifest
from patchkit.kinds import Change
from patchkit.ops.check import apply_series
from patchkit.ops.labels import (
    image_labels,
    label_lines,
    normalize_created,
    project_provenance,
    series_fingerprint_of,
)
from patchkit.ops.platforms import platform_trees
from patchkit.profiles import profile_for
from patchkit.profiles.base import Profile, RunDir

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = [
    "BuildContext",
    "BuildNotReadyError",
    "PatchedTree",
    "RunDir",
    "build_context",
    "patched_tree",
]

_NEW_FILE_MODE = 0o100644  # a file the series adds without saying its mode
_ROOT_OWNER = "0:0"
# A uid or gid: a number, or a user or group name of the image (`COPY --chown` takes both).
Id = int | str


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchedTree:
    """A release with the series applied in memory."""

    version: str
    tree: str
    check: CheckResult
    changes: Mapping[str, bytes | None]  # path -> new content (None: deleted), only touched paths
    modes: Mapping[str, int]  # git mode of every changed or added path
    added: frozenset[str] = field(default_factory=frozenset)
    # "uid:gid" of the paths a change placed whole with a stated owner (an overlay: its owners
    # table, else root); the other paths keep the release's owner (the import manifest).
    owners: Mapping[str, str] = field(default_factory=dict)

    @property
    def changed_paths(self) -> tuple[str, ...]:
        return tuple(sorted(p for p, c in self.changes.items() if c is not None))

    @property
    def deleted_paths(self) -> tuple[str, ...]:
        return tuple(sorted(p for p, c in self.changes.items() if c is None))


def patched_tree(
    reader: BlobReader,
    *,
    version: str,
    tree: str,
    patches: Sequence[Patch | Change],
    store: Store,
) -> PatchedTree:
    """Apply ``patches`` (changes of any kind) to ``tree`` like `check`; keep what they change."""
    applied = apply_series(reader, version=version, tree=tree, patches=patches)
    base, overlay = applied.original, applied.files
    # The modes the changes that were made set (a change that failed sets none).
    modes = {path: int(mode, 8) for path, mode in applied.modes.items()}
    entries = store.ls_tree(tree, sorted(overlay)) if overlay else {}
    # Every overlay path was read from the release before a change changed it.
    changes = {p: c for p, c in overlay.items() if c != base.get(p)}
    for path, data in changes.items():
        if data is not None and path not in modes:
            entry = entries.get(path)
            modes[path] = entry.mode if entry else _NEW_FILE_MODE
    added = frozenset(p for p, c in changes.items() if p not in entries and c is not None)
    owners: dict[str, str] = {}
    for outcome in applied.outcomes:  # in series order: the last change to write a path decides
        placed = {e.path: e.owner or _ROOT_OWNER for e in outcome.result.entries}
        for path in outcome.contents:
            if path in placed:
                owners[path] = placed[path]
            else:
                owners.pop(path, None)
    return PatchedTree(
        version=version,
        tree=tree,
        check=applied.check,
        changes=changes,
        modes=modes,
        added=added,
        owners={p: o for p, o in owners.items() if p in changes},
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
    left_out: tuple[str, ...] = ()  # on a model release: changes whose targets it lacks
    labels: Mapping[str, str] = field(default_factory=dict)  # the image's (ops/labels.py)
    platform: str | None = None  # one platform's context of a multi-platform release
    # A multi-platform release: one context a platform, each in a directory of ``out``
    # (``linux-amd64/``); this record is then the first platform's.
    contexts: tuple[BuildContext, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
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
            "left_out": list(self.left_out),
            "labels": dict(self.labels),
        }
        if self.platform is not None:
            d["platform"] = self.platform
        if self.contexts:
            d["platforms"] = [
                {k: v for k, v in c.to_dict().items() if k not in ("schema", "command")}
                for c in self.contexts
            ]
        return d


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


def _parse_owner(owner: str) -> tuple[Id, Id]:
    """``"101:102"`` -> (101, 102); names stay names (``"redis:redis"``)."""
    user, _, group = owner.partition(":")
    return (
        int(user) if user.isdigit() else user,
        int(group) if group.isdigit() else group,
    )


def _id_key(value: Id) -> tuple[int, int, str]:
    """Numbers in numeric order, then names."""
    return (0, value, "") if isinstance(value, int) else (1, 0, value)


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


def _base_name(source: str, version: str) -> str:
    """The ``base.name`` label: the upstream image and tag FROM names (a local source: the
    name its FROM uses, `_base_image`)."""
    src = parse_source(source)
    if src.kind is SourceKind.DOCKER:
        return f"{src.registry}/{src.name}:{src.tag or version}"
    if src.kind is SourceKind.DOCKER_DAEMON:
        return f"{src.name}:{src.tag or version}"
    return f"patchkit/{version}:{version}"


def _dockerfile(
    base: str,
    digest: str,
    groups: Mapping[tuple[Id, Id], list[str]],
    deleted: Sequence[str],
    run_dirs: Sequence[RunDir],
    start_script: str | None,
    version: str,
    labels: Mapping[str, str],
) -> str:
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Built by `patchkit build {version}`: the release plus exactly the files the series",
        "# changes or adds (overlay/), with their modes and owners from the import manifest.",
        f"FROM {base}",
        "",
        *label_lines(labels),
        "",
    ]
    for (uid, gid), paths in sorted(
        groups.items(), key=lambda kv: (_id_key(kv[0][0]), _id_key(kv[0][1]))
    ):
        for p in paths:
            lines.append(f"COPY --chown={uid}:{gid} {json.dumps(['overlay/' + p, '/' + p])}")
    if deleted:
        lines += ["", "RUN rm -f " + " ".join("/" + p for p in deleted)]
    if run_dirs:
        lines += ["", "# The directories the unix sockets live in, owned by the services' users."]
        for d in run_dirs:
            lines.append(f"RUN install -d -o {d.owner} -g {d.group} -m {d.mode:04o} /{d.path}")
    if start_script:
        lines += ["", f"RUN chmod 0755 /{start_script}"]
    return "\n".join(lines) + "\n"


def build_context(
    workspace: Workspace,
    version: str,
    out: str | os.PathLike[str],
    *,
    profile: Profile | None = None,
    created: str | None = None,
    source: str | None = None,
    revision: str | None = None,
) -> BuildContext:
    """Write the Docker build context for ``version`` into ``out`` (replaced if it is one).

    Raises BuildNotReadyError (exit 1) when a change conflicts, misses its target or needs
    fuzz on this release: a context is only written for a series that applies cleanly.
    ``profile``: default, the one the project chose (:func:`patchkit.profiles.profile_for`).
    ``created`` (RFC 3339) adds the ``created`` label: without it the same project and
    store give the same bytes. ``source``/``revision`` replace what the project's git
    checkout says (ops/labels.py). A multi-platform release gets one context a platform,
    in ``out/<os>-<arch>[-<variant>]/``, and ``out/patchkit-build.json`` lists them.
    """
    vf = workspace.versions
    profile = profile or profile_for(vf)
    rel = vf.release(version)
    workspace.release_tree(version)  # UnknownVersionError / NotImportedError, one line each
    dest = Path(out).absolute()
    _refuse_foreign(dest)
    if rel.platforms:
        platform_trees(workspace.store, rel)  # every platform imported, or one line naming them
    provenance = project_provenance(workspace.root, source=source, revision=revision)
    common = {
        "fingerprint": series_fingerprint_of(workspace),
        "provenance": provenance,
        "created": normalize_created(created) if created else None,
    }
    # Written beside ``dest`` and swapped in at the end: a build that stops half-way (a
    # series that does not apply) leaves an earlier context as it was.
    work = dest.parent / f".{dest.name}.patchkit-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        if not rel.platforms:
            ctx = _write_context(workspace, version, version, work, dest, profile, common)
            warnings = (*provenance.warnings, *ctx.warnings)
            ctx = replace(ctx, warnings=warnings, platform=rel.platform)
        else:
            contexts = tuple(
                replace(
                    _write_context(
                        workspace,
                        version,
                        label,
                        work / _dir(platform),
                        dest / _dir(platform),
                        profile,
                        common,
                    ),
                    platform=platform,
                )
                for platform, label in rel.platform_labels()
            )
            for c in contexts:
                _write_json(work / _dir(c.platform or ""), c)
            ctx = replace(
                contexts[0],
                out=str(dest),
                warnings=(*provenance.warnings, *(w for c in contexts for w in c.warnings)),
                contexts=contexts,
            )
        _write_json(work, ctx)
        _refuse_foreign(dest)
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ctx


def _dir(platform: str) -> str:
    return platform.replace("/", "-")


def _refuse_foreign(dest: Path) -> None:
    """``dest`` may be replaced only when it is missing, empty or an earlier context."""
    if dest.is_dir() and not (dest / "patchkit-build.json").is_file() and any(dest.iterdir()):
        raise ConfigError(
            f"{dest}: exists and is not a patchkit build context; choose an empty --out"
        )
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: exists and is not a directory; choose an empty --out")


def _write_json(dest: Path, ctx: BuildContext) -> None:
    (dest / "patchkit-build.json").write_text(
        json.dumps(ctx.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _write_context(
    workspace: Workspace,
    version: str,
    label: str,
    dest: Path,
    final: Path,
    profile: Profile,
    common: Mapping[str, Any],
) -> BuildContext:
    """One context, written to ``dest`` (named ``final`` in its record): the release's store
    ``label`` (a platform label for a second platform)."""
    vf = workspace.versions
    changes = workspace.changes()
    store = workspace.store
    info = store.release(label)
    if info is None:
        raise NotImportedError(f"{label} is not imported yet; run: patchkit import {version}")
    tree = info.tree
    with store.blob_reader() as reader:
        pt = patched_tree(reader, version=version, tree=tree, patches=changes, store=store)
        manifest = (
            load_manifest(reader.read(info.manifest_blob) or b"")
            if info.manifest_blob
            else Manifest()
        )
    rel = vf.release(version)
    # A model release stands in for the real image with the open-source components only:
    # a change whose files only the real image has (missing-target) is left out, and said
    # so; on a real release it stops the build like any failure.
    left_out = tuple(
        p.name
        for p in pt.check.patches
        if p.status is PatchStatus.MISSING_TARGET and rel.status is ReleaseStatus.MODEL
    )
    bad = [p for p in pt.check.patches if p.needs_attention and p.name not in left_out]
    if bad:
        names = ", ".join(f"{p.name} ({p.status.value})" for p in bad)
        raise BuildNotReadyError(
            f"{label}: the series does not apply cleanly: {names}; run: patchkit check {version}"
        )
    # A second platform's digest is its own manifest's (the store's); the TOML's is the first's.
    digest = (rel.digest if label == version else None) or info.digest
    source = vf.source_for(version)
    base, warnings = _base_image(source, digest, version)
    if left_out:
        warnings = [
            *warnings,
            f"{version} is a model release: left out, their targets are not in it: "
            + ", ".join(left_out),
        ]
    first = store.release(version)
    labels = image_labels(
        base_name=_base_name(source, version),
        # the tag's digest (the index of a multi-arch tag) where the import saw one
        base_digest=(first.tag_digest if first is not None else None) or digest,
        version=version,
        fingerprint=common["fingerprint"],
        provenance=common["provenance"],
        created=common["created"],
    )

    (dest / "overlay").mkdir(parents=True)
    groups: dict[tuple[Id, Id], list[str]] = {}
    files: list[dict[str, Any]] = []
    for path in pt.changed_paths:
        data = pt.changes[path]
        assert data is not None
        mode = pt.modes[path]
        target = dest / "overlay" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        uid: Id
        gid: Id
        if path in pt.owners:  # placed whole: owner and mode as the change states them
            (uid, gid), bits = _parse_owner(pt.owners[path]), None
        else:
            uid, gid, bits = _owner(manifest, path, added=path in pt.added)
        if mode == MODE_LINK:
            target.symlink_to(data.decode("utf-8", "surrogateescape"))
            perm = 0o777
        else:
            target.write_bytes(data)
            perm = bits if bits is not None else (0o755 if mode == MODE_EXEC else 0o644)
            target.chmod(perm)
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
    run_dirs = _needed_run_dirs(pt, profile.run_dirs)
    script = profile.start_script
    start = script if script and pt.changes.get(script) is not None else None
    (dest / "Dockerfile").write_text(
        _dockerfile(base, info.digest, groups, pt.deleted_paths, run_dirs, start, version, labels),
        encoding="utf-8",
    )
    return BuildContext(
        version=version,
        out=str(final),
        base_image=base,
        digest=digest,
        files=tuple(files),
        deleted=pt.deleted_paths,
        run_dirs=run_dirs,
        start_script=start is not None,
        warnings=tuple(warnings),
        left_out=left_out,
        labels=labels,
    )


def _needed_run_dirs(pt: PatchedTree, run_dirs: Sequence[RunDir]) -> tuple[RunDir, ...]:
    """The run dirs some changed file names (a socket path under them, or under its
    ``run/`` form: ``/run`` is ``/var/run`` on the images we know)."""
    text = b"\n".join(c for c in pt.changes.values() if c is not None)
    out = []
    for d in run_dirs:
        short = d.path.removeprefix("var/")
        if f"/{d.path}/".encode() in text or f"/{short}/".encode() in text:
            out.append(d)
    return tuple(out)
