"""Profiles: one image's policy and layout as data (see docs/profiles.md).

The audit and the build context are generic; they receive a :class:`Profile`. A project
chooses its profile with ``[upstream] profile = "NAME"`` in ``upstream-versions.toml``;
without one, a project named ``poste.io`` gets :data:`POSTE` (so existing poste.io
projects keep their behaviour) and any other :data:`GENERIC`.

A new profile: a module here defining a :class:`Profile`, and one line in :data:`PROFILES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from patchkit.core.versions import VersionsFile
from patchkit.errors import ConfigError
from patchkit.profiles.base import AuditRule, Profile, RunDir
from patchkit.profiles.generic import GENERIC
from patchkit.profiles.poste import POSTE

__all__ = [
    "GENERIC",
    "POSTE",
    "PROFILES",
    "AuditRule",
    "Profile",
    "RunDir",
    "get_profile",
    "profile_for",
]

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (GENERIC, POSTE)})

# The upstream names whose projects get a profile without saying so (before profiles existed,
# the audit and build were poste.io's): name (lower case) -> profile.
_BY_UPSTREAM_NAME: Mapping[str, Profile] = MappingProxyType({"poste.io": POSTE})


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``ConfigError`` naming the known ones if there is none)."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(f"profile '{name}' is not known (known: {known})") from None


def profile_for(versions: VersionsFile) -> Profile:
    """The profile a project chose: ``[upstream] profile``, else by its upstream's name."""
    up = versions.upstream
    if up.profile is None:
        return _BY_UPSTREAM_NAME.get(up.name.lower(), GENERIC)
    profile = PROFILES.get(up.profile)
    if profile is None:
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(
            f"{versions.path}:{up.line}: [upstream]: profile '{up.profile}' is not known "
            f"(known: {known})"
        )
    return profile
