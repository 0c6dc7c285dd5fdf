"""The labels `patchkit build` writes into the Dockerfile: what the image says about itself.

OCI's pre-defined annotation keys (image-spec ``annotations.md``), as image labels::

    org.opencontainers.image.base.name     the upstream image and tag it is built FROM
    org.opencontainers.image.base.digest   the digest that tag pointed to at import (an index
                                           for a multi-arch tag; else the manifest)
    org.opencontainers.image.version       upstream's version (the release label)
    org.opencontainers.image.source        the project's repository (https, no credentials)
    org.opencontainers.image.revision      the project's commit
    org.opencontainers.image.created       only when asked: a context is reproducible by default

and patchkit's own, under ``io.patchkit.`` (patchkit owns no domain; the prefix is its name)::

    io.patchkit.version                    the patchkit that wrote the context
    io.patchkit.series                     the series fingerprint (:func:`series_fingerprint_of`)

Nothing here reads a clock: ``created`` is a value the caller passes (the CLI's ``--created``).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from patchkit._version import __version__
from patchkit.errors import ConfigError
from patchkit.git.project_repo import ProjectRepo
from patchkit.ops.matrix.keys import change_digest, series_fingerprint

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = [
    "BASE_DIGEST",
    "BASE_NAME",
    "CREATED",
    "PATCHKIT_VERSION",
    "REVISION",
    "SERIES",
    "SOURCE",
    "VERSION",
    "Provenance",
    "image_labels",
    "label_lines",
    "normalize_created",
    "project_provenance",
    "series_fingerprint_of",
]

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
VERSION = "org.opencontainers.image.version"
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
CREATED = "org.opencontainers.image.created"
PATCHKIT_VERSION = "io.patchkit.version"
SERIES = "io.patchkit.series"


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where the image's recipe comes from: the project's repository and commit."""

    source: str | None = None
    revision: str | None = None
    warnings: tuple[str, ...] = ()


def series_fingerprint_of(ws: Workspace) -> str:
    """The series fingerprint (docs/build.md defines it byte by byte): ``sha256:`` over
    ``patchkit series\\0`` and, for each series line in order, the hex sha256 of its name,
    ``-pN``, its kind (edits and overlays) and its bytes as patchkit reads them.

    Every line of ``patches/series`` counts, also one a release range skips: the fingerprint
    names the series, the same on every release (and the same as ``matrix --format json``'s
    ``fingerprint``). Comments and blank lines of ``series`` and files no line names do not.
    """
    strips = {e.name: e.strip for e in ws.series.entries}
    return series_fingerprint([change_digest(c, strips.get(c.name, 0)) for c in ws.changes()])


def project_provenance(
    root: Path, *, source: str | None = None, revision: str | None = None
) -> Provenance:
    """``source``/``revision`` as given, else read from the git checkout ``root`` is in
    (the ``origin`` remote's https address, ``HEAD``). A checkout whose project files differ
    from HEAD gets a warning: the revision names HEAD, the series fingerprint what was built."""
    repo = ProjectRepo.find(root)
    if repo is None:
        return Provenance(source=source, revision=revision)
    warnings: list[str] = []
    if revision is None:
        revision = repo.head()
        changed = repo.changed_since("HEAD") if revision else None
        dirty = sorted(
            p
            for p in (changed or set()) | repo.untracked("patches")
            if p == "upstream-versions.toml" or p.startswith("patches/")
        )
        if dirty:
            shown = ", ".join(dirty[:3]) + (" ..." if len(dirty) > 3 else "")
            warnings.append(
                f"uncommitted changes in the project ({shown}): the revision label names "
                f"HEAD {revision[:12] if revision else ''}, not what was built; commit first"
            )
    if source is None:
        source = repo.remote_url()
    return Provenance(source=source, revision=revision, warnings=tuple(warnings))


def normalize_created(text: str) -> str:
    """An RFC 3339 time as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC); ConfigError when it is not one."""
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(
            f"--created {text!r}: expected an RFC 3339 time with a zone, e.g. 2025-01-31T12:00:00Z"
        )
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_labels(
    *,
    base_name: str,
    base_digest: str,
    version: str,
    fingerprint: str,
    provenance: Provenance,
    created: str | None = None,
) -> dict[str, str]:
    """The labels of one image, by key (only the ones with a value)."""
    labels = {
        BASE_NAME: base_name,
        BASE_DIGEST: base_digest,
        VERSION: version,
        SOURCE: provenance.source,
        REVISION: provenance.revision,
        CREATED: created,
        PATCHKIT_VERSION: __version__,
        SERIES: fingerprint,
    }
    return {k: v for k, v in sorted(labels.items()) if v}


def label_lines(labels: Mapping[str, str]) -> list[str]:
    """Dockerfile ``LABEL`` instructions, one a key, in key order (values JSON-quoted:
    the Dockerfile's double-quoted strings take the same escapes)."""
    return [f"LABEL {key}={json.dumps(value)}" for key, value in sorted(labels.items())]
