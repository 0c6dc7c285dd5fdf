"""What a profile is: one image's policy and layout, as data the generic operations read.

The audit and the build context know how to read configs and write a Docker context; a
:class:`Profile` says *which* configs, which listeners the image may keep on TCP, and what
the context must add (socket directories, the start-up script). A new image is a new
profile module next to :mod:`patchkit.profiles.poste`; nothing in ``audit/`` or ``ops/``
changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditRule", "Profile", "RunDir"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRule:
    """Where one component's configs are and which parser reads them.

    A parser reports the listeners and the connections (the places a config tells the
    component to connect) it finds; which files are read is the rule's.
    ``defaults`` overrides the parser's own defaults (the upstream software's built-in
    values, e.g. redis's port 6379) where this image differs, or names its directories.
    """

    component: str
    files: tuple[str, ...]  # globs in the tree; each match is parsed (with its includes)
    parser: str  # key of patchkit.audit.parsers.PARSERS
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDir:
    """A directory the unix sockets of the patched configs live in."""

    path: str  # image-root relative, no leading '/'
    owner: str
    group: str
    mode: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One image's policy: what the audit reads and allows, what the build context adds."""

    name: str
    description: str = ""
    # A word the image's start-up replaces with the host's own addresses: TCP on it is
    # allowed for the public ports only. None: the image has no such placeholder.
    placeholder: str | None = None
    public_ports: frozenset[int] = frozenset()
    # A word the image's start-up replaces with the container's own (fully-qualified)
    # hostname: a connection to it stays inside the container's addresses. None: no such word.
    hostname_placeholder: str | None = None
    # Where in a tree the configs of ``rules`` (and what they include) live: the audit
    # reads only these directories of a release.
    audit_roots: tuple[str, ...] = ()
    rules: tuple[AuditRule, ...] = ()
    # Socket directories the build context creates, each only when a changed file names it.
    run_dirs: tuple[RunDir, ...] = ()
    # The start-up script the series may add; the context makes it executable (0755).
    start_script: str | None = None
