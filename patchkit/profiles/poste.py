"""poste.io: its start-up placeholder, public ports, config layout, socket dirs, start script.

Everything the audit and the build context know about poste.io is here (facts in
``../shared/POSTE.md`` and docs/poste.md); the generic code receives it as a
:class:`~patchkit.profiles.base.Profile`. Chosen by ``[upstream] profile = "poste"``, or by
default when ``[upstream] name = "poste.io"``.
"""

from __future__ import annotations

from patchkit.profiles.base import AuditRule, Profile, RunDir
from patchkit.profiles.generic import DOVECOT, REDIS, RSPAMD

__all__ = ["PLACEHOLDER", "POSTE", "PUBLIC_PORTS", "RUN_DIRS", "START_SCRIPT"]

# Replaced at container start by the hostname's addresses (the start-up script below).
PLACEHOLDER = "__LISTEN_ON__"
# SMTP, HTTP(S), POP3(S), IMAP(S), submission(s), ManageSieve: what poste.io serves publicly.
PUBLIC_PORTS = frozenset({25, 80, 110, 143, 443, 465, 587, 993, 995, 4190})
# The start-up script the series ships (issue 7); built into the context when present.
START_SCRIPT = "etc/cont-init.d/25-bind-hostname.sh"
# The socket directories the patch set points services at, and who owns them.
RUN_DIRS = (
    RunDir(path="var/run/redis", owner="redis", group="redis", mode=0o2775),
    RunDir(path="var/run/rspamd", owner="_rspamd", group="_rspamd", mode=0o2775),
    RunDir(path="var/run/haraka", owner="root", group="root", mode=0o0755),
    RunDir(path="var/run/dovecot", owner="root", group="root", mode=0o0755),
)

# Haraka instances under opt/: smtp.ini `listen` (default [::0]:25); http.ini `listen`
# (no listen: no server).
HARAKA_SMTP = AuditRule(component="haraka", files=("opt/*/config/smtp.ini",), parser="haraka-smtp")
HARAKA_HTTP = AuditRule(component="haraka", files=("opt/*/config/http.ini",), parser="haraka-http")
# nginx: nginx.conf and what it includes, plus poste.io's templates (rendered into
# sites-enabled at start, where poste.io's init puts the port numbers in: POSTE.md).
NGINX = AuditRule(
    component="nginx",
    files=("etc/nginx/nginx.conf", "etc/nginx/sites-enabled.templates/*"),
    parser="nginx",
    defaults={"root": "etc/nginx", "ports": {"__HTTP_PORT__": 80, "__HTTPS_PORT__": 443}},
)

POSTE = Profile(
    name="poste",
    description="poste.io (analogic/poste.io): services on unix sockets, public ports on __LISTEN_ON__",
    placeholder=PLACEHOLDER,
    public_ports=PUBLIC_PORTS,
    audit_roots=("etc", "opt", "usr/share/dovecot"),
    rules=(REDIS, RSPAMD, HARAKA_SMTP, HARAKA_HTTP, DOVECOT, NGINX),
    run_dirs=RUN_DIRS,
    start_script=START_SCRIPT,
)
