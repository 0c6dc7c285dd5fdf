#!/bin/sh
# patchkit MODEL entrypoint -- bench/isolation/model-init.sh. NOT poste.io's init.
#
# poste.io's image starts with its own init (s6). The model releases (bench/model) have
# none, so the live isolation proof adds this one to the images it builds from them. It
# does, for the services a model release has, what poste.io's init does, in its order:
#   1. every /etc/cont-init.d/* script, in order (the patched image's 25-bind-hostname.sh);
#      a failing script stops the container;
#   2. first-start steps poste.io does itself: self-signed TLS certificates when none exist
#      (Haraka, nginx), the nginx site from its template (https, with __HTTP_PORT__ and
#      __HTTPS_PORT__ replaced by 80 and 443, as poste.io's init does), the run directories
#      Debian's systemd units would make (only when missing: the image's own win);
#   3. redis, rspamd, dovecot, nginx, the two Haraka instances and the model's stand-in for
#      the admin app's auth endpoint (/usr/share/patchkit-model/admin-auth-standin.js, a
#      FastCGI responder on /var/run/php-fpm-admin.sock, NOT poste.io's admin app), in the
#      foreground, each logging to /var/log/model-init/<name>.log; TERM or INT stops them all.
#
# Test-only settings, only when the proof sets them:
#   MODEL_QUEUE_TARGET=host:port   queue/smtp_forward's target for inbound mail (the model
#                                  keeps Haraka's default localhost:2555, where nothing is)
#   MODEL_RSPAMD_CHECK_PRIVATE=1   haraka-plugin-rspamd also scans clients on private and
#                                  local addresses (the proof's clients are in TEST-NETs)
#   MODEL_ADMIN_SESSION=TOKEN      the session the auth stand-in lets pass (cookie
#                                  patchkit_model_session); unset: it lets none pass
# dovecot logs to stderr (there is no syslog in the container): a wrapper config includes
# /etc/dovecot/dovecot.conf unchanged (after its dovecot_config_version line, on 2.4).
set -u
LOG=/var/log/model-init
RUN=/run/model-init
mkdir -p "$LOG" "$RUN"
say() { printf 'model-init: %s\n' "$*"; }

# -- 1. cont-init ---------------------------------------------------------------------
for f in /etc/cont-init.d/*; do
    [ -f "$f" ] || continue
    say "cont-init $f"
    if ! sh "$f"; then
        say "cont-init $f failed: stopping"
        exit 1
    fi
done

# -- 2. first start -------------------------------------------------------------------
FQDN=$(hostname -f 2>/dev/null || hostname)
mkdir -p /data/ssl
if [ ! -s /data/ssl/server.crt ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=$FQDN" \
        -keyout /data/ssl/server.key -out /data/ssl/server.crt 2>/dev/null
    say "made a self-signed certificate for $FQDN (test only)"
fi
for inst in smtp submission; do
    cfg=/opt/haraka-$inst/config
    [ -s "$cfg/tls_cert.pem" ] || cp /data/ssl/server.crt "$cfg/tls_cert.pem"
    [ -s "$cfg/tls_key.pem" ] || cp /data/ssl/server.key "$cfg/tls_key.pem"
done
printf '%s\n' "# model-init: the certificate of /data/ssl (poste.io keeps its own there)" \
    "ssl_certificate /data/ssl/server.crt;" "ssl_certificate_key /data/ssl/server.key;" \
    >/etc/nginx/conf.d/model-init-tls.conf
# poste.io's init renders sites-enabled from sites-enabled.templates (https when TLS is on),
# replacing its port placeholders; the model's stand-in templates hold the same ones.
if [ -f /etc/nginx/sites-enabled.templates/https ]; then
    sed -e 's/__HTTP_PORT__/80/g' -e 's/__HTTPS_PORT__/443/g' \
        /etc/nginx/sites-enabled.templates/https >/etc/nginx/sites-enabled/poste
    say "rendered nginx's site from its https template (__HTTP_PORT__=80, __HTTPS_PORT__=443)"
fi
for d in redis:redis rspamd:_rspamd dovecot:root haraka:root; do
    dir=/run/${d%%:*}
    if [ ! -d "$dir" ]; then
        install -d -o "${d#*:}" -g "${d#*:}" -m 0755 "$dir"
        say "made $dir (as Debian's systemd unit would)"
    fi
done
if [ -n "${MODEL_QUEUE_TARGET:-}" ]; then
    printf '; model-init (test only): inbound mail goes to the proof sink\n[main]\nhost=%s\nport=%s\n' \
        "${MODEL_QUEUE_TARGET%:*}" "${MODEL_QUEUE_TARGET##*:}" >/opt/haraka-smtp/config/smtp_forward.ini
fi
if [ "${MODEL_RSPAMD_CHECK_PRIVATE:-}" = 1 ]; then
    for inst in smtp submission; do
        printf '\n; model-init (test only)\n[check]\nprivate_ip=true\nlocal_ip=true\n' \
            >>/opt/haraka-$inst/config/rspamd.ini
    done
fi
# Dovecot 2.4 wants dovecot_config_version as the first setting of the file it reads.
{
    grep -m 1 '^dovecot_config_version' /etc/dovecot/dovecot.conf || true
    printf '!include /etc/dovecot/dovecot.conf\nlog_path = /dev/stderr\n'
} >"$RUN/dovecot.conf"

# -- 3. services ----------------------------------------------------------------------
pids=
start() { # $1 name, then the command
    name=$1
    shift
    "$@" >>"$LOG/$name.log" 2>&1 &
    pids="$pids $!"
    say "started $name (pid $!): $*"
}
stop() {
    say "stopping"
    # shellcheck disable=SC2086 # one word per pid
    kill $pids 2>/dev/null
    wait
    exit 0
}
trap stop TERM INT

start redis setpriv --reuid=redis --regid=redis --init-groups \
    /usr/bin/redis-server /etc/redis/redis.conf --daemonize no --supervised no --logfile ''
start rspamd /usr/bin/rspamd -f -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf
start dovecot /usr/sbin/dovecot -F -c "$RUN/dovecot.conf"
start nginx /usr/sbin/nginx -g 'daemon off;'
for inst in smtp submission; do
    start "haraka-$inst" /usr/bin/node /usr/lib/node_modules/Haraka/bin/haraka -c "/opt/haraka-$inst"
done
standin=/usr/share/patchkit-model/admin-auth-standin.js
if [ -f "$standin" ]; then
    start admin-auth /usr/bin/node "$standin" /var/run/php-fpm-admin.sock
fi
wait
