"""What `patchkit watch` found: new releases, re-pushed tags, vanished tags (records only).

The JSON is the contract of docs/json.md (`"command": "watch"`); `attention` is exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patchkit.core.model import SCHEMA
from patchkit.core.versions import parse_label

__all__ = ["NewRelease", "Repushed", "Vanished", "WatchResult", "newer_than"]


def newer_than(version: str, base: str) -> bool:
    """Whether ``version`` is a later release than ``base``: both parse as PEP 440 versions
    and it is greater (a label that does not parse is ordered after them, never newer)."""
    new, old = parse_label(version), parse_label(base)
    return new is not None and old is not None and new > old


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRelease:
    """A tag the rules take for a release that ``upstream-versions.toml`` does not track."""

    version: str  # the tag, which becomes the label
    digest: str  # what the tag points to (an index for multi-arch images): its `tag-digest`
    newer_than_base: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "newer_than_base": self.newer_than_base,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Repushed:
    """A tracked tag that points elsewhere than recorded: never taken silently."""

    version: str
    recorded: str  # `tag-digest` (or, for a release recorded before it, the platform `digest`)
    current: str  # what the tag (or, compared with a `digest`, its platform manifest) is now

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "recorded": self.recorded, "current": self.current}


@dataclass(frozen=True, slots=True, kw_only=True)
class Vanished:
    """A tracked release whose tag the image no longer lists."""

    version: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version}


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchResult:
    """The image's tags through ``[upstream.watch]``, against the tracked releases."""

    image: str  # docker://REGISTRY/NAME, or oci:PATH as the TOML writes it
    tags: int = 0  # how many tags the image lists
    new: tuple[NewRelease, ...] = ()  # by version
    repushed: tuple[Repushed, ...] = ()
    vanished: tuple[Vanished, ...] = ()
    applied: bool = False  # `new` was added to upstream-versions.toml (`--apply`)
    imported: tuple[str, ...] = ()  # releases imported (`--import`), in version order

    @property
    def attention(self) -> bool:
        """Something for a person or the workflow to act on (exit 1)."""
        return bool(self.new or self.repushed or self.vanished)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": "watch",
            "image": self.image,
            "new": [n.to_dict() for n in self.new],
            "repushed": [r.to_dict() for r in self.repushed],
            "vanished": [v.to_dict() for v in self.vanished],
            "applied": self.applied,
        }
