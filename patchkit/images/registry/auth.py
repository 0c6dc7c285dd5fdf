"""Anonymous Bearer token auth (the Docker token protocol), without I/O.

A registry answers ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``;
the transport asks the realm for a pull token (:func:`token_url`) and reads it out of the reply
(:func:`token_from_reply`). Basic challenges are not answered: patchkit pulls anonymously only.
"""

from __future__ import annotations

import json
import re
import urllib.parse

__all__ = ["parse_challenge", "token_from_reply", "token_url"]

_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate`` -> (lower-case scheme, lower-case parameter names -> values).

    >>> parse_challenge('Bearer realm="https://auth.example/token",service="reg"')
    ('bearer', {'realm': 'https://auth.example/token', 'service': 'reg'})
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace(
            '\\"', '"'
        )
        for m in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


def token_url(params: dict[str, str], repository: str) -> urllib.parse.SplitResult | str:
    """Where to ask for a pull token, or (a ``str``) why the challenge cannot be answered.

    The scope is the challenge's own, else ``repository:NAME:pull``.
    """
    realm = params.get("realm")
    if not realm:
        return "Bearer challenge without a realm"
    query = {"scope": params.get("scope") or f"repository:{repository}:pull"}
    if "service" in params:
        query["service"] = params["service"]
    realm_url = urllib.parse.urlsplit(realm)
    if realm_url.scheme not in ("http", "https") or not realm_url.hostname:
        return "Bearer realm is not an HTTP URL"
    sep = "&" if realm_url.query else ""
    return realm_url._replace(query=realm_url.query + sep + urllib.parse.urlencode(query))


def token_from_reply(body: bytes) -> str | None:
    """The token of a token server's JSON reply (``token`` or OAuth2's ``access_token``)."""
    try:
        doc = json.loads(body)
        token = doc.get("token") or doc.get("access_token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None
