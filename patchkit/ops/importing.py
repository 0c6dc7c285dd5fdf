"""Import one upstream release into the store: resolve, verify, flatten, commit.

>>> result = import_release(store, "2.5.24", parse_source("oci:./layout:2.5.24"))  # doctest: +SKIP
>>> result.tree, result.reused  # doctest: +SKIP

Re-importing the digest a version is recorded with is free (nothing is read);
a different digest is an error. Blobs are written to a pack of our own
(`Store.fast_import(pack=True)`): a failure mid-way deletes its temporary file
before git ever sees it, and trees, commits and refs are only written (by
`git fast-import`) once every layer has been read and verified, so no ref moves
and the store is as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from patchkit.compress import ZLIB_NAME
from patchkit.core.globs import Selector
from patchkit.core.model import ImportResult, ReleaseInfo
from patchkit.core.objects import MODE_FILE, TreeEntry
from patchkit.errors import DigestMismatchError, StoreError
from patchkit.git.pack import FastImport
from patchkit.git.store import MANIFEST_PREFIX, Store
from patchkit.images import open_image
from patchkit.images.base import ImagePlan
from patchkit.images.cache import LayerCache
from patchkit.images.directory import scan_directory
from patchkit.images.layers import DEFAULT_LIMITS, Limits, ProgressEvent, flatten
from patchkit.images.source import Source, SourceKind
from patchkit.images.tree import WrittenTree

__all__ = ["ZLIB_NAME", "ProgressEvent", "import_platforms", "import_release", "manifest_ref"]


def manifest_ref(version: str) -> str:
    """Where the manifest blob of ``version`` is kept reachable (a one-file commit)."""
    return MANIFEST_PREFIX + version


class _CacheStore:
    """The store as the layer cache reads it (`images.sink.CacheStore`): images/ never
    imports git/, so the two meet here."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def ref_targets(self, prefix: str) -> dict[str, str]:
        return self._store.ref_targets(prefix)

    def read_blob(self, spec: str) -> bytes | None:
        proc = self._store.git("cat-file", "blob", spec, check=False)
        return proc.stdout if proc.returncode == 0 else None

    def missing_objects(self, oids: Iterable[str]) -> set[str]:
        return self._store.missing_objects(oids)


def _check_digest(
    store: Store,
    version: str,
    source: str,
    digest: str,
    expected: str | None,
    replace: bool = False,
) -> ReleaseInfo | None:
    if replace:
        existing = store.release(version)
        return existing if existing is not None and existing.digest == digest else None
    if expected is not None and expected != digest:
        raise DigestMismatchError(
            f"version {version} is recorded with digest {expected} but {source} has {digest}"
            " (if upstream really replaced it, import again with --replace)"
        )
    existing = store.release(version)
    if existing is not None and existing.digest != digest:
        raise DigestMismatchError(
            f"version {version} is recorded with digest {existing.digest} but {source} has {digest}"
            " (if upstream really replaced it, import again with --replace)"
        )
    return existing


def _check_tag_digest(
    version: str, source: Source, current: str | None, expected: str | None, replace: bool
) -> None:
    """A tag recorded (by `watch` or an import) pointing elsewhere now: a re-push, never taken
    silently."""
    if replace or expected is None or current is None or current == expected:
        return
    raise DigestMismatchError(
        f"version {version}: the tag was re-pushed: recorded tag-digest {expected} but {source}"
        f" now points to {current} (if upstream really replaced it, import again with --replace)"
    )


def _commit(
    fi: FastImport,
    version: str,
    flat: WrittenTree,
    *,
    source: str,
    digest: str,
    layers: Sequence[str],
    plan: ImagePlan | None = None,
) -> None:
    manifest_blob = None
    if flat.extras:
        manifest_blob = fi.blob(flat.manifest.to_json())
        fi.commit(
            manifest_ref(version),
            {"manifest.json": TreeEntry(mode=MODE_FILE, blob=manifest_blob)},
            f"patchkit: manifest of upstream {version}\n",
        )
    sizes = [layer.size for layer in plan.layers] if plan is not None else []
    message = Store.release_message(
        version,
        source=source,
        digest=digest,
        layers=layers,
        manifest_blob=manifest_blob,
        platform=plan.platform if plan is not None else None,
        created=plan.created if plan is not None else None,
        config=plan.config_digest if plan is not None else None,
        size=sum(s for s in sizes if s is not None) if sizes and None not in sizes else None,
        tag_digest=plan.tag_digest if plan is not None else None,
    )
    fi.commit_tree(Store.release_ref(version), flat.tree, message)


def _result(
    store: Store,
    version: str,
    *,
    flat: WrittenTree | None,
    reused: bool,
    tag_digest: str | None = None,
) -> ImportResult:
    info = store.release(version)
    if info is None:
        raise StoreError(f"import of {version} finished but its ref is missing")
    return ImportResult(
        version=version,
        source=info.source,
        digest=info.digest,
        commit=info.commit,
        tree=info.tree,
        layers=info.layers,
        files=flat.files if flat is not None else 0,
        reused=reused,
        extras=len(flat.extras) if flat is not None else 0,
        zlib=ZLIB_NAME,
        tag_digest=tag_digest,
    )


def import_release(
    store: Store,
    version: str,
    source: Source,
    *,
    platform: str | None = None,
    strip: int = 0,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    always: Collection[str] = (),
    expected_digest: str | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    mirror: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    layer_cache: bool = True,
    replace: bool = False,
    expected_tag_digest: str | None = None,
) -> ImportResult:
    """Import ``source`` as release ``version`` at `Store.release_ref(version)`.

    ``include``/``exclude`` globs make the import sparse (``always`` paths are kept
    regardless); ``expected_digest`` is the digest the project recorded, if any.
    With ``layer_cache`` (the default), layers already in the store's layer cache
    (`refs/patchkit/layers/`, keyed by diff_id) are replayed instead of read, and
    the layers read are added to it. ``replace`` imports over a release already in
    the store with another digest (a rebuilt model, a re-pushed tag) instead of refusing.
    ``expected_tag_digest`` is what the project recorded the tag pointing to (`tag-digest`):
    a tag that points elsewhere now is refused too, unless ``replace``. The result's
    ``tag_digest`` is what the tag points to now; the store records it with the tree.
    """
    if source.kind is SourceKind.DIR:
        scan = scan_directory(Path(source.path), str(source))
        digest = scan.digest
        if _check_digest(store, version, str(source), digest, expected_digest, replace):
            return _result(store, version, flat=None, reused=True)
        with store.fast_import(pack=True) as fi:
            flat = scan.store(fi, Selector(include, exclude, always))
            _commit(fi, version, flat, source=str(source), digest=digest, layers=())
        return _result(store, version, flat=flat, reused=False)

    with open_image(source, platform=platform, strip=strip, mirror=mirror) as plan:
        _check_tag_digest(version, source, plan.tag_digest, expected_tag_digest, replace)
        if _check_digest(store, version, plan.source, plan.digest, expected_digest, replace):
            return _result(store, version, flat=None, reused=True, tag_digest=plan.tag_digest)
        cache = LayerCache(_CacheStore(store)) if layer_cache else None
        with store.fast_import(pack=True) as fi:
            flat = flatten(
                plan,
                fi,
                include=include,
                exclude=exclude,
                always=always,
                limits=limits,
                progress=progress,
                cache=cache,
            )
            _commit(
                fi,
                version,
                flat,
                source=plan.source,
                digest=plan.digest,
                layers=[layer.digest for layer in plan.layers],
                plan=plan,
            )
    return _result(store, version, flat=flat, reused=False, tag_digest=plan.tag_digest)


def import_platforms(
    store: Store,
    source: Source,
    platforms: Sequence[tuple[str, str]],
    **options: Any,
) -> ImportResult:
    """Import each platform of a multi-platform release: ``platforms`` is (platform, store
    label) pairs, the release's own label first (:meth:`Release.platform_labels`).

    The first import resolves the tag; the others read the index it resolved to (a
    ``docker://`` source is pinned to that digest), so a tag re-pushed half-way cannot mix
    two indexes. ``options`` are :func:`import_release`'s; ``expected_digest`` applies to the
    first platform only (the TOML's `digest`); the others are held to what the store has.
    Returns the first platform's result with the others in ``platforms``.
    """
    (first_platform, first_label), *others = platforms
    first = import_release(store, first_label, source, platform=first_platform, **options)
    info = store.release(first_label)
    tag = info.tag_digest if info is not None else None
    if tag and source.kind is SourceKind.DOCKER:
        source = dataclasses.replace(source, digest=tag)
    options = {**options, "expected_digest": None}
    rest = tuple(
        dataclasses.replace(
            import_release(store, label, source, platform=platform, **options), platform=platform
        )
        for platform, label in others
    )
    return dataclasses.replace(first, platform=first_platform, platforms=rest)
