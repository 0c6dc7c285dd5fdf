"""`patchkit watch`: the image's tags through ``[upstream.watch]``, against the tracked releases.

>>> result = watch(project)                  # doctest: +SKIP
>>> [n.version for n in result.new], result.attention  # doctest: +SKIP
(['2.5.25'], True)

*New*: tags the rules take that no ``[[version]]`` tracks (by label, or by a ``source`` naming
that tag of the image). *Re-pushed*: a tracked tag pointing elsewhere than its recorded
``tag-digest`` (a release recorded before tag digests were: its platform manifest against
``digest``). *Vanished*: a tracked tag the image no longer lists. Releases whose source is
another image, a digest or another kind of source are not watched.

All network reads happen before anything is written: a registry error leaves every file as
it was. ``apply`` adds the new releases under the project lock, re-reading the file first, so
two overlapping runs add each release once.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from patchkit.core import versions as versions_mod
from patchkit.core.versions import Release, VersionsFile, WatchRules, sort_tags
from patchkit.core.watch import NewRelease, Repushed, Vanished, WatchResult, newer_than
from patchkit.errors import ConfigError, SourceError
from patchkit.files import project_lock
from patchkit.images.registry import RegistryRef, RetryPolicy, parse_reference
from patchkit.images.registry.tags import PAGE_SIZE, WORKERS, TagDigest, TagReader
from patchkit.images.source import Source, SourceKind, parse_source

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = ["LOCK_WAIT", "watch"]

LOCK_WAIT = 60.0  # seconds `--apply` waits for another patchkit process to let the lock go


@dataclass(frozen=True, slots=True, kw_only=True)
class _Image:
    """The watched image: a registry repository, or an OCI layout."""

    display: str  # what the JSON's `image` says
    ref: RegistryRef | None = None
    layout: Path | None = None


def _image(vf: VersionsFile, root: Path) -> _Image:
    image = vf.upstream.image
    where = f"{vf.path}:{vf.upstream.line}: [upstream]"
    if not image:
        raise ConfigError(f"{where}: no 'image' to watch (docker://REGISTRY/NAME or oci:PATH)")
    if image.startswith("oci:"):
        src = parse_source(image)
        layout = Path(src.path) if Path(src.path).is_absolute() else root / src.path
        return _Image(display=f"oci:{src.path}", layout=layout)
    try:
        ref = parse_reference(image if "://" in image else f"docker://{image}")
    except SourceError as e:
        raise ConfigError(f"{where}: image {image!r}: {e}") from None
    ref = dataclasses.replace(ref, tag=None, digest=None)
    return _Image(display=str(ref), ref=ref)


def _tag_of(release: Release, vf: VersionsFile, image: _Image, root: Path) -> str | None:
    """The tag of the watched image ``release`` is imported from, if it is one."""
    src = parse_source(release.source or vf.source_for(release.version))
    if image.ref is not None and src.kind is SourceKind.DOCKER:
        ref = parse_reference(str(src))
        same = (ref.registry, ref.repository) == (image.ref.registry, image.ref.repository)
        return ref.tag if same and ref.digest is None else None
    if image.layout is not None and src.kind is SourceKind.OCI and src.ref:
        path = Path(src.path) if Path(src.path).is_absolute() else root / src.path
        pinned = src.ref.startswith(("sha256:", "sha512:"))
        same = os.path.normpath(path) == os.path.normpath(image.layout)
        return src.ref if same and not pinned else None
    return None


def _pinned(image: _Image, digest: str) -> Source:
    if image.ref is not None:
        return parse_source(image.ref.pinned(digest))
    assert image.layout is not None
    return Source(kind=SourceKind.OCI, path=str(image.layout), ref=digest)


def _repushed(
    release: Release, current: TagDigest, image: _Image, mirror: str | None
) -> Repushed | None:
    if release.tag_digest is not None:
        if current.digest == release.tag_digest:
            return None
        return Repushed(
            version=release.version, recorded=release.tag_digest, current=current.digest
        )
    recorded = release.digest
    if recorded is None or not recorded.startswith("sha256:") or current.digest == recorded:
        return None
    # Recorded before tag digests were: compare the platform's manifest (the tag may name an
    # index, whose digest was never recorded).
    from patchkit.images import open_image  # the readers and the flattener: only here

    with open_image(
        _pinned(image, current.digest), platform=release.platform, mirror=mirror
    ) as plan:
        platform_digest = plan.digest
    if platform_digest == recorded:
        return None
    return Repushed(version=release.version, recorded=recorded, current=platform_digest)


def watch(
    ws: Workspace,
    *,
    apply: bool = False,
    mirror: str | None = None,
    page_size: int = PAGE_SIZE,
    workers: int = WORKERS,
    retry: RetryPolicy | None = None,
    lock_wait: float = LOCK_WAIT,
) -> WatchResult:
    """Compare the image's tags with the tracked releases; ``apply``: add the new ones."""
    vf = ws.versions
    rules = vf.upstream.watch or WatchRules(where=f"{vf.path}: [upstream.watch]")
    image = _image(vf, ws.root)
    tracked: dict[str, Release] = {}
    for release in vf.releases:
        tag = _tag_of(release, vf, image, ws.root)
        if tag is not None:
            tracked[tag] = release

    labels = set(vf.labels)
    recorded = [t for t, release in tracked.items() if release.tag_digest or release.digest]

    def candidates_of(listed: tuple[str, ...]) -> list[str]:
        return [t for t in rules.select(listed) if t not in tracked and t not in labels]

    if image.ref is not None:
        reader = TagReader(image.ref, mirror=mirror, retry=retry)
        listed, digests = reader.tags_and_digests(
            recorded, candidates_of, page_size=page_size, workers=workers
        )
    else:
        from patchkit.images.oci import layout_tags

        assert image.layout is not None
        layout = layout_tags(str(image.layout))
        listed = tuple(layout)
        digests = {
            t: TagDigest(digest=layout[t]) if t in layout else None
            for t in [*recorded, *candidates_of(listed)]
        }
    present = set(listed)
    candidates = candidates_of(listed)
    checked = [t for t in recorded if t in present]
    new = tuple(
        NewRelease(version=tag, digest=found.digest, newer_than_base=newer_than(tag, vf.base))
        for tag in candidates
        if (found := digests[tag]) is not None
    )
    gone = [t for t in tracked if t not in present or (t in digests and digests[t] is None)]
    by_label = {tracked[t].version: t for t in gone}
    vanished = tuple(Vanished(version=label) for label in sort_tags(by_label))
    repushed_found: list[Repushed] = []
    for tag in checked:
        current = digests[tag]
        moved = _repushed(tracked[tag], current, image, mirror) if current is not None else None
        if moved is not None:
            repushed_found.append(moved)
    order = {label: i for i, label in enumerate(sort_tags(r.version for r in repushed_found))}
    repushed = tuple(sorted(repushed_found, key=lambda r: order[r.version]))

    result = WatchResult(
        image=image.display, tags=len(listed), new=new, repushed=repushed, vanished=vanished
    )
    if apply and new:
        _apply(ws, image, rules, new, lock_wait)
        result = dataclasses.replace(result, applied=True)
    return result


def _apply(
    ws: Workspace,
    image: _Image,
    rules: WatchRules,
    new: tuple[NewRelease, ...],
    lock_wait: float,
) -> None:
    """Add ``new`` to upstream-versions.toml: under the lock, against the file as it is then
    (another run may have added some), in one atomic write."""
    from patchkit.ops.rebase import Rebaser

    with project_lock(ws.state_dir, wait=lock_wait):
        Rebaser(ws).guard()  # --abort restores the file as it was before the rebase
        try:
            text = ws.versions_path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{ws.versions_path}: cannot read ({e})") from e
        vf = versions_mod.parse_versions(text, path=ws.versions_path.name)
        taken = set(vf.labels) | {
            tag
            for release in vf.releases
            if (tag := _tag_of(release, vf, image, ws.root)) is not None
        }
        entries = [
            {"version": n.version, "status": rules.status.value, "tag-digest": n.digest}
            for n in new
            if n.version not in taken
        ]
        if entries:
            ws.write_versions_text(versions_mod.add_releases(text, entries))
