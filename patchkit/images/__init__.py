"""Image formats, layer flattening and the source syntax.

>>> from patchkit.images import open_image, parse_source
>>> with open_image(parse_source("oci:./layout:1.0")) as plan:  # doctest: +SKIP
...     print(plan.digest, len(plan.layers))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from patchkit.errors import SourceError
from patchkit.images.base import ImagePlan, LayerBlob
from patchkit.images.source import Source, SourceKind, parse_source
from patchkit.lazy import lazy_names

if TYPE_CHECKING:
    from patchkit.images.layers import (
        DEFAULT_LIMITS,
        Limits,
        ProgressEvent,
        TarballLayer,
        flatten,
    )
    from patchkit.images.tree import Manifest, ManifestEntry, WrittenTree, load_manifest

# The layer reader and the tree (the tar reader, the decoders, the pack hand-off) load when
# first named: `watch` and the other commands that only resolve a source or a reference skip
# their start-up cost (docs/architecture.md, "start-up").
_LAZY = {
    "DEFAULT_LIMITS": "patchkit.images.layers",
    "Limits": "patchkit.images.layers",
    "ProgressEvent": "patchkit.images.layers",
    "TarballLayer": "patchkit.images.layers",
    "flatten": "patchkit.images.layers",
    "Manifest": "patchkit.images.tree",
    "ManifestEntry": "patchkit.images.tree",
    "WrittenTree": "patchkit.images.tree",
    "load_manifest": "patchkit.images.tree",
}

__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "DEFAULT_LIMITS",
    "ImagePlan",
    "LayerBlob",
    "Limits",
    "Manifest",
    "ManifestEntry",
    "Opener",
    "ProgressEvent",
    "Source",
    "SourceKind",
    "TarballLayer",
    "WrittenTree",
    "flatten",
    "load_manifest",
    "open_image",
    "parse_source",
]

Opener = Callable[..., contextlib.AbstractContextManager[ImagePlan]]


def _oci(source: Source, *, platform: str | None, strip: int, mirror: str | None) -> Any:
    from patchkit.images.oci import open_oci

    return open_oci(source, platform=platform, strip=strip)


def _docker_archive(source: Source, *, platform: str | None, strip: int, mirror: str | None) -> Any:
    from patchkit.images.archive import open_docker_archive

    return open_docker_archive(source, platform=platform, strip=strip)


def _tarball(source: Source, *, platform: str | None, strip: int, mirror: str | None) -> Any:
    from patchkit.images.archive import open_tarball

    return open_tarball(source, platform=platform, strip=strip)


def _no_strip(source: Source, strip: int) -> None:
    if strip:
        raise SourceError(f"{source}: --strip only applies to tar: sources")


# The registry and daemon readers are imported when first used (http.client, subprocess and
# friends cost start-up time); a failing import there is a bug and propagates as one.
def _registry(source: Source, *, platform: str | None, strip: int, mirror: str | None) -> Any:
    from patchkit.images.registry import open_registry_image

    _no_strip(source, strip)
    return open_registry_image(source, platform=platform, mirror=mirror)


def _daemon(source: Source, *, platform: str | None, strip: int, mirror: str | None) -> Any:
    from patchkit.images.daemon import open_daemon_image

    _no_strip(source, strip)
    return open_daemon_image(source, platform=platform)


def _directory(source: Source, *, platform: str | None, strip: int, mirror: str | None) -> Any:
    raise SourceError(f"{source}: a directory has no layers; import it with import_release")


# One entry a form: replacing an opener is a one-line change.
OPENERS: dict[SourceKind, Opener] = {
    SourceKind.OCI: _oci,
    SourceKind.DOCKER_ARCHIVE: _docker_archive,
    SourceKind.TAR: _tarball,
    SourceKind.DOCKER: _registry,
    SourceKind.DOCKER_DAEMON: _daemon,
    SourceKind.DIR: _directory,
}


def open_image(
    source: Source,
    *,
    platform: str | None = None,
    strip: int = 0,
    mirror: str | None = None,
) -> contextlib.AbstractContextManager[ImagePlan]:
    """Resolve ``source`` to an ImagePlan (manifests and configs verified, layers not read).

    ``platform`` is `os/arch[/variant]` (default linux/amd64); ``strip`` applies to
    `tar:` only; ``mirror`` is handed to the registry reader for `docker://`.
    """
    if strip < 0:
        raise SourceError(f"{source}: --strip must be 0 or more, not {strip}")
    result: contextlib.AbstractContextManager[ImagePlan] = OPENERS[source.kind](
        source, platform=platform, strip=strip, mirror=mirror
    )
    return result
