"""One parser per config format; :data:`PARSERS` maps a rule's ``parser`` key to it.

A parser reads one file of a view (and what it includes), calls ``emit`` for every
listener and every connection (a place the config tells the component to connect) it
finds and ``fail(file, line, message)`` for syntax it cannot read, so a gap shows as a
failure, never as silence. It does not judge: the driver does, with the
profile's policy. A new format: a module here and one line in :data:`PARSERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from patchkit.audit.parsers._common import Emit, Fail, Parser
from patchkit.audit.parsers.commands import parse_commands
from patchkit.audit.parsers.dovecot import parse_dovecot
from patchkit.audit.parsers.haraka import (
    parse_haraka_clients,
    parse_haraka_http,
    parse_haraka_smtp,
)
from patchkit.audit.parsers.javascript import parse_js_connect
from patchkit.audit.parsers.nginx import parse_nginx
from patchkit.audit.parsers.predis import parse_predis
from patchkit.audit.parsers.redis import parse_redis
from patchkit.audit.parsers.roundcube import parse_roundcube
from patchkit.audit.parsers.rspamd import parse_rspamd

__all__ = ["PARSERS", "Emit", "Fail", "Parser"]

PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "redis": parse_redis,
        "rspamd": parse_rspamd,
        "haraka-smtp": parse_haraka_smtp,
        "haraka-http": parse_haraka_http,
        "dovecot": parse_dovecot,
        "nginx": parse_nginx,
        "haraka-clients": parse_haraka_clients,
        "js-connect": parse_js_connect,
        "commands": parse_commands,
        "roundcube": parse_roundcube,
        "predis": parse_predis,
    }
)
