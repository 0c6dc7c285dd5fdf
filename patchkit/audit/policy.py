"""Judging one listener against a profile's policy (data: placeholder, public ports).

* a unix socket is ``ok``;
* a public port bound to the profile's start-up placeholder is ``ok``; any other port on
  it is ``forbidden`` (internal services belong on unix sockets);
* TCP on a wildcard or loopback address is ``forbidden`` (it collides between instances);
* TCP on any other specific address is ``ok``;
* a listener that would be ``forbidden`` in a file that a skipped, offline-unverifiable
  change would change is ``unverified`` (see :func:`judge`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from patchkit.audit.model import Listener, Verdict
from patchkit.profiles.base import Profile

__all__ = ["LOOPBACK", "WILDCARD", "judge"]

# Facts about addresses, the same for every image.
LOOPBACK = ("127.", "::1", "localhost", "0:0:0:0:0:0:0:1")
WILDCARD = frozenset({"*", "0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0", "", "*v4", "*v6"})


def judge(
    listener: Listener, profile: Profile, unverified: Mapping[str, str] | None = None
) -> Listener:
    """``listener`` with its verdict and reason under ``profile``.

    ``unverified`` maps a file to the skipped offline-unverifiable change that would change
    it: a forbidden listener there is ``unverified`` instead.
    """
    judged = _verdict(listener, profile)
    owner = (unverified or {}).get(judged.file)
    if judged.verdict is Verdict.FORBIDDEN and owner:
        return replace(
            judged,
            verdict=Verdict.UNVERIFIED,
            reason=f"{judged.reason}; {owner} would change this file but is offline-unverifiable and skipped here",
        )
    return judged


def _verdict(listener: Listener, profile: Profile) -> Listener:
    if listener.kind == "unix":
        return replace(listener, verdict=Verdict.OK, reason="unix socket")
    addr = (listener.address or "").strip("[]").lower()
    port = listener.port
    if profile.placeholder and profile.placeholder.lower() in addr:
        if port in profile.public_ports:
            return replace(
                listener, verdict=Verdict.OK, reason="public port on the start-up placeholder"
            )
        return replace(
            listener,
            verdict=Verdict.FORBIDDEN,
            reason=f"port {port} is internal: use a unix socket",
        )
    if addr in WILDCARD:
        return replace(
            listener, verdict=Verdict.FORBIDDEN, reason="TCP on every address (wildcard)"
        )
    if addr.startswith(LOOPBACK):
        return replace(listener, verdict=Verdict.FORBIDDEN, reason="TCP on loopback")
    return replace(listener, verdict=Verdict.OK, reason="TCP on a specific address")
