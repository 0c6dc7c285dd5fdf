#!/bin/sh
# 25-bind-hostname.sh: bind poste.io to its hostname's addresses (patchkit poste.io patch set).
#
# Run by s6 (cont-init.d) before any service starts. Resolves the container's
# fully-qualified hostname and writes the addresses into the configs that cannot
# read variables: nginx listen placeholders, Haraka smtp.ini listen= (both
# instances), dovecot listen, the lists the Haraka plugins read, and the host
# names services use to reach each other (msmtp, dovecot submission_host, the
# admin mailer DSN, webmail). Every file is rendered to a temporary file first and
# only moved into place once all of them rendered; unchanged files are left alone,
# so a second run changes nothing. Last, it removes nginx's internal unix sockets
# (/var/run/nginx-http*.sock) left by an unclean stop: nginx does not reuse a stale
# socket file, it fails to start ("bind() ... failed (98: Address already in use)").
#
# Environment:
#   LISTEN_ON         host (default: the FQDN's addresses) | * | list of IPs
#   SEND_ON           list of IPs or * (default: the listen list)
#   OUTBOUND_MAIL_IP  default source address of outbound mail (default: first send address)
#   PATCHKIT_ROOT     root of the tree to rewrite (default: /); for tests
# Name lookups go through `hostname -f` and `getent ahosts`.
set -eu

ROOT=${PATCHKIT_ROOT:-/}
ROOT=${ROOT%/}
ME=25-bind-hostname
PLACEHOLDER=__LISTEN_ON__
MARK='patchkit-bind:'

log() { printf '%s: %s\n' "$ME" "$*"; }
die() { printf '%s: error: %s\n' "$ME" "$*" >&2; exit 1; }

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/$ME.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$STAGE"' EXIT
trap 'exit 1' HUP INT TERM
: >"$STAGE/plan"

# -- addresses ------------------------------------------------------------------------

is_ipv4() {
    printf '%s\n' "$1" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}$'
}
is_ipv6() {
    printf '%s\n' "$1" | grep -Eq '^[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*$'
}
is_loopback() {
    case $1 in 127.*|::1|0:0:0:0:0:0:0:1) return 0 ;; esac
    return 1
}
is_link_local() {
    case $1 in fe80:*|FE80:*|169.254.*) return 0 ;; esac
    return 1
}

# Normalise a user list (commas and/or blanks, optional [brackets]) into one
# address a line, IPv4 first, duplicates removed; dies on anything not an IP.
parse_list() { # $1 variable name, $2 value
    printf '%s\n' "$2" | tr ',[:blank:]' '\n' | sed -e 's/^\[//' -e 's/\]$//' -e '/^$/d' >"$STAGE/raw"
    [ -s "$STAGE/raw" ] || die "$1 is empty: give host, * or a list of IP addresses"
    while read -r a; do
        if is_ipv4 "$a"; then printf '4 %s\n' "$a"
        elif is_ipv6 "$a"; then printf '6 %s\n' "$a"
        else die "$1: '$a' is not an IP address (use host, * or a list of IP addresses)"
        fi
    done <"$STAGE/raw" >"$STAGE/fam"
    awk '!seen[$2]++' "$STAGE/fam" | sort -s -k1,1 | cut -d' ' -f2
}

FQDN=$(hostname -f 2>/dev/null || hostname 2>/dev/null) || FQDN=
FQDN=${FQDN%.}
case $FQDN in
    '') die "cannot determine the container's hostname (hostname -f failed); set a fully-qualified hostname" ;;
    *.*) ;;
    *) die "hostname '$FQDN' is not fully qualified: give the container a name like mail.example.com" ;;
esac

host_addresses() {
    getent ahosts "$FQDN" 2>/dev/null | awk '!seen[$1]++ {print $1}' >"$STAGE/resolved" || true
    : >"$STAGE/usable"
    while read -r a; do
        if is_loopback "$a" || is_link_local "$a"; then
            log "ignoring $a for $FQDN (loopback or link-local)" >>"$STAGE/notes"
        else
            printf '%s\n' "$a" >>"$STAGE/usable"
        fi
    done <"$STAGE/resolved"
    [ -s "$STAGE/usable" ] || die "hostname '$FQDN' resolves to no usable address (loopback and link-local do not count): fix DNS or /etc/hosts"
    parse_list "addresses of $FQDN" "$(cat "$STAGE/usable")"
}

LISTEN_MODE=${LISTEN_ON:-host}
case $LISTEN_MODE in
    host) LISTEN=$(host_addresses) ;;
    '*') LISTEN='*' ;;
    *) LISTEN=$(parse_list LISTEN_ON "$LISTEN_MODE") ;;
esac

SEND_MODE=${SEND_ON:-}
case $SEND_MODE in
    '') SEND=$LISTEN ;;
    host) SEND=$(host_addresses) ;;
    '*') SEND='*' ;;
    *) SEND=$(parse_list SEND_ON "$SEND_MODE") ;;
esac

if [ -n "${OUTBOUND_MAIL_IP:-}" ]; then
    OUT=$(parse_list OUTBOUND_MAIL_IP "$OUTBOUND_MAIL_IP")
    case $OUT in *"
"*) die "OUTBOUND_MAIL_IP must be one address, not a list" ;; esac
    if [ "$SEND" != '*' ] && ! printf '%s\n' "$SEND" | grep -Fxq "$OUT"; then
        die "OUTBOUND_MAIL_IP $OUT is not one of the send addresses ($(printf '%s' "$SEND" | tr '\n' ' ')): add it to SEND_ON"
    fi
elif [ "$SEND" = '*' ]; then
    OUT='*'
else
    OUT=$(printf '%s\n' "$SEND" | head -n 1)
fi

[ ! -f "$STAGE/notes" ] || sort -u "$STAGE/notes"
one_line() { printf '%s' "$1" | tr '\n' ',' ; }
log "hostname $FQDN; listen on $(one_line "$LISTEN"); send from $(one_line "$SEND"); outbound default $OUT"

# -- rendering helpers ----------------------------------------------------------------

# Stage new content for a file; moved into place at the end only if it differs.
stage() { # $1 target, $2 file holding the new content
    if [ -f "$1" ] && cmp -s "$1" "$2"; then
        log "unchanged: ${1#"$ROOT"}"
        rm -f "$2"
        return 0
    fi
    printf '%s\n' "$1" >>"$STAGE/plan"
    mv "$2" "$STAGE/new.$(wc -l <"$STAGE/plan" | tr -d ' ')"
}

newfile() { mktemp "$STAGE/render.XXXXXX"; }

skipped() { log "skipped: not present: ${1#"$ROOT"}"; }

# "addr:port" items for Haraka (IPv6 in brackets), comma separated.
haraka_listen() { # $1 ports (blank separated)
    out=
    for port in $1; do
        if [ "$LISTEN" = '*' ]; then
            out="$out,[::0]:$port"
        else
            for a in $LISTEN; do
                case $a in *:*) out="$out,[$a]:$port" ;; *) out="$out,$a:$port" ;; esac
            done
        fi
    done
    printf '%s' "${out#,}"
}

# -- nginx: lines holding the placeholder -------------------------------------------

# A line `listen __LISTEN_ON__:443 ssl;` is kept as a comment (`# patchkit-bind: ...`)
# followed by one generated line with one listen directive per address; a later run
# regenerates that line from the comment, so the address list can change.
render_nginx() { # $1 file
    out=$(newfile)
    awk -v ph="$PLACEHOLDER" -v mark="$MARK" -v addrs="$(one_line "$LISTEN")" '
        function render(tpl, indent,    n, a, i, line, d, v6only) {
            n = split(addrs, a, ",")
            line = ""
            v6only = index(tpl, "[" ph "]") > 0
            for (i = 1; i <= n; i++) {
                if (a[i] == "") continue
                if (a[i] == "*") {
                    d = tpl; gsub("\\[" ph "\\]", "[::]", d)
                    if (v6only) { line = line (line ? " " : "") d; continue }
                    d4 = tpl; sub(ph ":", "", d4)
                    d6 = tpl; gsub(ph, "[::]", d6)
                    line = line (line ? " " : "") d4 " " d6
                    continue
                }
                if (index(a[i], ":") > 0) {
                    d = tpl; gsub("\\[" ph "\\]", ph, d); gsub(ph, "[" a[i] "]", d)
                } else {
                    if (v6only) continue
                    d = tpl; gsub(ph, a[i], d)
                }
                line = line (line ? " " : "") d
            }
            return indent line
        }
        skip { skip = 0; next }
        {
            if (match($0, "^[ \t]*#[ \t]*" mark "[ \t]*")) {
                indent = $0; sub("[^ \t].*$", "", indent)
                tpl = substr($0, RSTART + RLENGTH)
                print
                print render(tpl, indent)
                skip = 1
                next
            }
            code = $0; sub("#.*$", "", code)
            if (index(code, ph) > 0) {
                indent = $0; sub("[^ \t].*$", "", indent)
                tpl = $0; sub("^[ \t]+", "", tpl)
                print indent "# " mark " " tpl
                print render(tpl, indent)
                next
            }
            print
        }' "$1" >"$out"
    stage "$1" "$out"
}

nginx_files=0
for f in "$ROOT"/etc/nginx/sites-enabled.templates/* "$ROOT"/etc/nginx/sites-enabled/* "$ROOT"/etc/nginx/conf.d/*.conf; do
    if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
    if grep -q -e "$PLACEHOLDER" -e "$MARK" "$f"; then
        render_nginx "$f"
        nginx_files=$((nginx_files + 1))
    fi
done
[ "$nginx_files" -gt 0 ] || skipped "/etc/nginx listen placeholders ($PLACEHOLDER)"

# -- Haraka: smtp.ini listen= and the plugins' lists ----------------------------------

render_smtp_ini() { # $1 file, $2 default ports
    ports=$(sed -n -e 's/^[[:blank:]]*listen[[:blank:]]*=//p' "$1" | tr ',' '\n' | sed -n 's/.*:\([0-9][0-9]*\)[[:blank:]]*$/\1/p' | awk '!seen[$0]++' | tr '\n' ' ')
    [ -n "$ports" ] || ports=$2
    out=$(newfile)
    {
        printf '; %s LISTEN_ON, written by /etc/cont-init.d/%s.sh at every start\n' "$MARK" "$ME"
        printf 'listen=%s\n' "$(haraka_listen "$ports")"
        grep -v -e '^[[:blank:]]*listen[[:blank:]]*=' -e "^; $MARK LISTEN_ON" "$1" || true
    } >"$out"
    stage "$1" "$out"
}

render_plugin_ini() { # $1 file
    out=$(newfile)
    {
        printf '; Written by /etc/cont-init.d/%s.sh at every container start: edits are lost.\n' "$ME"
        printf '; Read by the plugins outbound_ip_helo and local_own_addresses.\n'
        printf '[main]\n'
        printf 'hostname=%s\n' "$FQDN"
        printf 'listen_on=%s\n' "$(one_line "$LISTEN")"
        printf 'send_on=%s\n' "$(one_line "$SEND")"
        printf 'outbound_ip=%s\n' "$OUT"
    } >"$out"
    stage "$1" "$out"
}

for inst in smtp:25 submission:'587 465'; do
    name=${inst%%:*}
    dir="$ROOT/opt/haraka-$name/config"
    if [ -f "$dir/smtp.ini" ]; then
        render_smtp_ini "$dir/smtp.ini" "${inst#*:}"
        render_plugin_ini "$dir/bind_hostname.ini"
    else
        skipped "/opt/haraka-$name/config/smtp.ini"
    fi
done

# -- dovecot: listen, submission_host -------------------------------------------------

if [ "$LISTEN" = '*' ]; then
    DOVECOT_LISTEN='*, ::'
else
    DOVECOT_LISTEN=$(printf '%s\n' "$LISTEN" | paste -sd, - | sed 's/,/, /g')
fi

conf="$ROOT/etc/dovecot/dovecot.conf"
if [ -f "$conf" ]; then
    out=$(newfile)
    # Replace every top-level listen; if there is none, add one after the commented default.
    awk -v v="$DOVECOT_LISTEN" '
        /^listen[ \t]*=/ { if (!done) print "listen = " v; done = 1; next }
        { print }
        /^#listen[ \t]*=/ && !done { print "listen = " v; done = 1 }
        END { if (!done) print "listen = " v }' "$conf" >"$out"
    stage "$conf" "$out"
else
    skipped /etc/dovecot/dovecot.conf
fi
local_conf="$ROOT/etc/dovecot/local.conf"
if [ -f "$local_conf" ] && grep -q '^listen[[:blank:]]*=' "$local_conf"; then
    out=$(newfile)
    sed "s/^listen[[:blank:]]*=.*/listen = $DOVECOT_LISTEN/" "$local_conf" >"$out"
    stage "$local_conf" "$out"
fi

# The host part of "host:port" values is replaced by the FQDN; the port is kept.
found=0
for f in "$ROOT"/etc/dovecot/dovecot.conf "$ROOT"/etc/dovecot/local.conf "$ROOT"/etc/dovecot/conf.d/*.conf; do
    if [ ! -f "$f" ] || ! grep -q '^[[:blank:]]*submission_host[[:blank:]]*=' "$f"; then continue; fi
    found=1
    out=$(newfile)
    sed -E "s/^([[:blank:]]*submission_host[[:blank:]]*=[[:blank:]]*)[^:[:blank:]]+/\\1$FQDN/" "$f" >"$out"
    stage "$f" "$out"
done
[ "$found" = 1 ] || skipped "/etc/dovecot submission_host (LDA submission host)"

# -- services that reach each other through the hostname -----------------------------

f="$ROOT/etc/msmtprc"
if [ -f "$f" ]; then
    out=$(newfile)
    sed -E "s/^([[:blank:]]*host[[:blank:]]+)[^[:blank:]]+/\\1$FQDN/" "$f" >"$out"
    stage "$f" "$out"
else
    skipped /etc/msmtprc
fi

found=0
for f in "$ROOT"/opt/admin/.env "$ROOT"/opt/admin/.env.local; do
    if [ ! -f "$f" ] || ! grep -Eq '^[[:blank:]]*MAILER_(DSN|URL)=' "$f"; then continue; fi
    found=1
    out=$(newfile)
    # smtp://[user:pass@]HOST[:port][?...]
    sed -E "s#^([[:blank:]]*MAILER_(DSN|URL)=[\"']?smtps?://([^@/\"' ]*@)?)[^:/?\"' ]+#\\1$FQDN#" "$f" >"$out"
    stage "$f" "$out"
done
f="$ROOT/opt/admin/app/config/parameters.yml"
if [ -f "$f" ] && grep -Eq '^[[:blank:]]*mailer_host:' "$f"; then
    found=1
    out=$(newfile)
    sed -E "s/^([[:blank:]]*mailer_host:[[:blank:]]*).*/\\1$FQDN/" "$f" >"$out"
    stage "$f" "$out"
fi
[ "$found" = 1 ] || skipped "/opt/admin mailer DSN (.env, .env.local, app/config/parameters.yml)"

f="$ROOT/opt/www/webmail/config/config.inc.php"
if [ -f "$f" ]; then
    out=$(newfile)
    # $config['imap_host'|'default_host'|'smtp_host'|'smtp_server'|'managesieve_host'] = '[scheme://]HOST[:port]';
    sed -E "s#^([[:blank:]]*\\\$config\\[['\"](imap_host|default_host|smtp_host|smtp_server|managesieve_host)['\"]\\][[:blank:]]*=[[:blank:]]*['\"]([a-z]+://)?)[^:'\"]+#\\1$FQDN#" "$f" >"$out"
    stage "$f" "$out"
else
    skipped /opt/www/webmail/config/config.inc.php
fi

# -- the admin app's compiled service container ---------------------------------------

# The Predis DSN (admin-predis-socket.edit.toml) is compiled into the Symfony cache: a
# cache older than the services config the series changed is stale. Remove it; the app
# rebuilds it on first use (the image's own cache, untouched since, is not removed again).
cache="$ROOT/opt/admin/var/cache/prod"
if [ -d "$cache" ]; then
    for f in "$ROOT"/opt/admin/config/services_base.yaml "$ROOT"/opt/admin/src/AppBundle/Resources/config/services.yml; do
        if [ -f "$f" ] && [ -n "$(find "$f" -prune -newer "$cache")" ]; then
            rm -rf "$cache" || die "cannot remove the stale admin cache ${cache#"$ROOT"}"
            log "removed the admin cache ${cache#"$ROOT"} (older than ${f#"$ROOT"})"
            break
        fi
    done
else
    skipped /opt/admin/var/cache/prod
fi

# -- commit: every file rendered, now move them into place ----------------------------

n=0
while read -r target; do
    n=$((n + 1))
    new="$STAGE/new.$n"
    if [ -e "$target" ]; then
        chmod --reference="$target" "$new" 2>/dev/null || true
        chown --reference="$target" "$new" 2>/dev/null || true
    else
        chmod 0644 "$new"
    fi
    # Same-directory temp + rename: readers see the old file or the new one, never half.
    tmp=$(mktemp "$(dirname "$target")/.$ME.XXXXXX") || die "cannot write next to $target"
    if ! { cat "$new" >"$tmp" && chmod --reference="$new" "$tmp" && mv -f "$tmp" "$target"; }; then
        rm -f "$tmp"
        die "cannot replace $target"
    fi
    if [ -e "$target" ]; then
        chown --reference="$new" "$target" 2>/dev/null || true
    fi
    log "rewrote: ${target#"$ROOT"}"
done <"$STAGE/plan"

# -- nginx's internal sockets (nginx-listen-hostname.edit.toml) -----------------------

# /var/run outlives `docker restart`; nginx removes its unix sockets when it stops cleanly,
# not when it is killed. Left alone while an nginx master runs (a second run of this script).
nginx_running() {
    pidfile="$ROOT/run/nginx.pid"
    [ -f "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nginx ]
}
stale=0
for sock in "$ROOT"/var/run/nginx-http.sock "$ROOT"/var/run/nginx-https.sock; do
    if [ -S "$sock" ] || { [ -e "$sock" ] && [ ! -d "$sock" ]; }; then
        if nginx_running; then
            log "kept ${sock#"$ROOT"}: nginx is running"
        else
            rm -f "$sock" || die "cannot remove the stale socket ${sock#"$ROOT"}"
            log "removed a stale socket: ${sock#"$ROOT"}"
            stale=$((stale + 1))
        fi
    fi
done
log "done ($n file(s) rewritten, $stale stale socket(s) removed)"
