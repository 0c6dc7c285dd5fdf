"""poste.io: its start-up placeholder, public ports, config layout, socket dirs, start script.

Everything the audit and the build context know about poste.io is here (facts in
``../shared/POSTE.md`` and docs/poste.md); the generic code receives it as a
:class:`~patchkit.profiles.base.Profile`. Chosen by ``[upstream] profile = "poste"``, or by
default when ``[upstream] name = "poste.io"``.
"""

from __future__ import annotations

from patchkit.profiles.base import AuditRule, Profile, RunDir
from patchkit.profiles.generic import DOVECOT, REDIS, RSPAMD

__all__ = [
    "HOSTNAME_PLACEHOLDER",
    "PLACEHOLDER",
    "POSTE",
    "PUBLIC_PORTS",
    "RUN_DIRS",
    "START_SCRIPT",
]

# Replaced at container start by the hostname's addresses (the start-up script below).
PLACEHOLDER = "__LISTEN_ON__"
# Replaced at container start by the container's FQDN (webmail's hosts: the start-up script).
HOSTNAME_PLACEHOLDER = "__HOSTNAME__"
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

# Where poste.io's components are told to connect (besides what the rules above report:
# nginx's *_pass, rspamd's redis servers and proxy upstream, dovecot's quota dictionaries).
# Haraka: the plugins each instance enables (config/plugins: rspamd.ini, redis.ini, their
# built-in localhost defaults) and its plugins' own sockets (dovecot_quota.js).
HARAKA_CLIENTS = AuditRule(
    component="haraka", files=("opt/*/config/plugins",), parser="haraka-clients"
)
HARAKA_PLUGINS = AuditRule(component="haraka", files=("opt/*/plugins/*.js",), parser="js-connect")
# Webmail (Roundcube): IMAP, SMTP, ManageSieve.
WEBMAIL = AuditRule(
    component="webmail", files=("opt/www/webmail/config/config.inc.php",), parser="roundcube"
)
# The admin app (2.2: AppBundle, services.yml; 2.3+: Base, services_base.yaml, POSTE.md):
# Predis's redis, quarantine delivery (msmtp), the rspamd statistics (rspamc).
ADMIN_REDIS = AuditRule(
    component="admin",
    files=(
        "opt/admin/config/services_base.yaml",
        "opt/admin/src/AppBundle/Resources/config/services.yml",
    ),
    parser="predis",
)
ADMIN_COMMANDS = AuditRule(
    component="admin",
    files=(
        "opt/admin/src/*/CommandInternal/DeliverQuarantineCommand.php",
        "opt/admin/src/*/Server/System.php",
    ),
    parser="commands",
)
# Health checks and cron scripts (redis-cli, curl), the sieve scripts' rspamc.
SCRIPTS = AuditRule(
    component="scripts",
    files=("healthcheck/*.sh", "bin/poste-redis-statistics", "bin/clear-idle-connections"),
    parser="commands",
)
SIEVE = AuditRule(component="dovecot", files=("etc/dovecot/sieve/*.sieve",), parser="commands")

POSTE = Profile(
    name="poste",
    description="poste.io (analogic/poste.io): services on unix sockets, public ports on __LISTEN_ON__",
    placeholder=PLACEHOLDER,
    public_ports=PUBLIC_PORTS,
    hostname_placeholder=HOSTNAME_PLACEHOLDER,
    audit_roots=("etc", "opt", "usr/share/dovecot", "healthcheck", "bin"),
    rules=(
        REDIS,
        RSPAMD,
        HARAKA_SMTP,
        HARAKA_HTTP,
        DOVECOT,
        NGINX,
        HARAKA_CLIENTS,
        HARAKA_PLUGINS,
        WEBMAIL,
        ADMIN_REDIS,
        ADMIN_COMMANDS,
        SCRIPTS,
        SIEVE,
    ),
    run_dirs=RUN_DIRS,
    start_script=START_SCRIPT,
)
