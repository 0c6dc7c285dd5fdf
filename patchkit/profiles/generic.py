"""The neutral profile: Debian's standard config locations, no placeholder, nothing added.

A project whose ``[upstream]`` names no ``profile`` (and is not poste.io) gets this one:
the audit reads redis, rspamd, dovecot and nginx where Debian installs them and forbids TCP
on loopback and wildcard addresses; the build context adds no directories and no script.
"""

from __future__ import annotations

from patchkit.profiles.base import AuditRule, Profile

__all__ = ["DOVECOT", "GENERIC", "NGINX", "REDIS", "RSPAMD"]

# redis: no `port` means 6379; no `bind` means every interface (the parser's defaults).
REDIS = AuditRule(component="redis", files=("etc/redis/redis.conf",), parser="redis")
# rspamd: workers in rspamd.conf; local.d (priority 1) and override.d (10) replace bind_socket.
RSPAMD = AuditRule(
    component="rspamd",
    files=("etc/rspamd/rspamd.conf",),
    parser="rspamd",
    defaults={"confdir": "etc/rspamd", "local_confdir": "etc/rspamd"},
)
# dovecot: `listen`, inet_listener blocks, the built-in listeners of the enabled protocols;
# Debian keeps the protocols.d files under usr/share/dovecot.
DOVECOT = AuditRule(component="dovecot", files=("etc/dovecot/dovecot.conf",), parser="dovecot")
# nginx: nginx.conf and what it includes (paths relative to etc/nginx).
NGINX = AuditRule(
    component="nginx",
    files=("etc/nginx/nginx.conf",),
    parser="nginx",
    defaults={"root": "etc/nginx"},
)

GENERIC = Profile(
    name="generic",
    description="Debian's config locations; TCP only on specific addresses; nothing added",
    audit_roots=("etc", "usr/share/dovecot"),
    rules=(REDIS, RSPAMD, DOVECOT, NGINX),
)
