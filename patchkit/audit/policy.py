"""Judging one listener or one connection against a profile's policy (data: placeholders,
public ports).

Listeners:

* a unix socket is ``ok``;
* a public port bound to the profile's start-up placeholder is ``ok``; any other port on
  it is ``forbidden`` (internal services belong on unix sockets);
* TCP on a wildcard or loopback address is ``forbidden`` (it collides between instances);
* TCP on any other specific address is ``ok``.

Connections (where a config tells a component to connect):

* a unix socket is ``ok``;
* the container's own hostname (nginx ``$hostname``, PHP ``gethostname()``, shell
  ``$(hostname)``, the profile's hostname placeholder) or the start-up placeholder is ``ok``;
* TCP to loopback or a wildcard address is ``forbidden``: after the isolation it reaches
  whatever else listens there (the host's or another instance's service), a leak;
* a target that cannot work as written (an nginx variable host without a resolver) is a
  ``problem``;
* TCP to a specific non-loopback address is ``ok``;
* a host name that is none of these, or a target computed at run time, is ``unverified``
  (the audit cannot tell where it leads).

Either kind that would be ``forbidden`` in a file that a skipped, offline-unverifiable change
would change is ``unverified`` (see :func:`judge`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar

from patchkit.audit.model import Connection, Listener, Verdict
from patchkit.profiles.base import Profile

__all__ = ["LOOPBACK", "OWN_HOSTNAME", "WILDCARD", "is_loopback", "judge", "judge_connection"]

# Facts about addresses, the same for every image.
LOOPBACK = ("127.", "::1", "localhost", "0:0:0:0:0:0:0:1")
WILDCARD = frozenset({"*", "0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0", "", "*v4", "*v6"})
# Names that mean loopback on Debian (/etc/hosts) besides `localhost`.
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback", "localhost6"})
# Expressions that evaluate to the container's own hostname, by language: nginx's variable,
# PHP's function, the shell's command substitution, the environment variable.
OWN_HOSTNAME = frozenset(
    {
        "$hostname",
        "${hostname}",
        "gethostname()",
        "$(hostname)",
        "$(hostname -f)",
        "$(hostname --fqdn)",
        "`hostname`",
        "`hostname -f`",
        "$HOSTNAME",
        "${HOSTNAME}",
    }
)

_Judged = TypeVar("_Judged", Listener, Connection)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name, brackets allowed) is loopback."""
    h = host.strip().strip("[]").lower().rstrip(".")
    if h in _LOOPBACK_NAMES or h.startswith("localhost.") or h.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:  # not an address: only the address prefixes count
        return h.startswith(tuple(x for x in LOOPBACK if x != "localhost"))
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


def _unverified_where_skipped(judged: _Judged, unverified: Mapping[str, str] | None) -> _Judged:
    owner = (unverified or {}).get(judged.file)
    if judged.verdict is Verdict.FORBIDDEN and owner:
        return replace(
            judged,
            verdict=Verdict.UNVERIFIED,
            reason=f"{judged.reason}; {owner} would change this file but is offline-unverifiable and skipped here",
        )
    return judged


def judge(
    listener: Listener, profile: Profile, unverified: Mapping[str, str] | None = None
) -> Listener:
    """``listener`` with its verdict and reason under ``profile``.

    ``unverified`` maps a file to the skipped offline-unverifiable change that would change
    it: a forbidden listener there is ``unverified`` instead.
    """
    return _unverified_where_skipped(_verdict(listener, profile), unverified)


def judge_connection(
    connection: Connection, profile: Profile, unverified: Mapping[str, str] | None = None
) -> Connection:
    """``connection`` with its verdict and reason under ``profile`` (``unverified`` as for
    :func:`judge`)."""
    return _unverified_where_skipped(_connection_verdict(connection, profile), unverified)


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
    if is_loopback(addr):
        return replace(listener, verdict=Verdict.FORBIDDEN, reason="TCP on loopback")
    return replace(listener, verdict=Verdict.OK, reason="TCP on a specific address")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _connection_verdict(c: Connection, profile: Profile) -> Connection:
    def verdict(v: Verdict, reason: str) -> Connection:
        # the parser's note (where in the config: a location, a worker) follows the verdict's
        return replace(c, verdict=v, reason=f"{reason}; {c.reason}" if c.reason else reason)

    if c.missing:
        return verdict(Verdict.PROBLEM, c.missing)
    if c.kind == "unix":
        return verdict(Verdict.OK, "unix socket")
    host = (c.host or "").strip()
    bare = host.strip("[]")
    low = bare.lower()
    if bare in OWN_HOSTNAME or (
        profile.hostname_placeholder and bare == profile.hostname_placeholder
    ):
        return verdict(Verdict.OK, "the container's own hostname")
    if profile.placeholder and profile.placeholder.lower() in low:
        return verdict(Verdict.OK, "the start-up placeholder (the hostname's addresses)")
    if c.kind == "variable" or not bare:
        return verdict(
            Verdict.UNVERIFIED, f"target computed at run time ({host or '?'}): not judged"
        )
    if low in WILDCARD:
        return verdict(
            Verdict.FORBIDDEN, "a wildcard address as target: it reaches loopback (a leak)"
        )
    if is_loopback(low):
        return verdict(
            Verdict.FORBIDDEN,
            "loopback: after the isolation it reaches whatever else listens there (a leak)",
        )
    if _is_address(low):
        return verdict(Verdict.OK, "a specific address, not loopback")
    return verdict(
        Verdict.UNVERIFIED,
        f"host name {bare!r} resolved at run time (neither loopback nor this container's): not judged",
    )
