// outbound_ip_helo: source IP and HELO of outbound mail, per sender domain.
// Part of the patchkit poste.io isolation patch set (smtp instance, Haraka 3.x).
//
// The start-up script (/etc/cont-init.d/25-bind-hostname.sh) writes config/bind_hostname.ini:
//   [main] hostname=  send_on=a,b  outbound_ip=  (outbound_ip: OUTBOUND_MAIL_IP or the first send address)
// /data/outbound-hosts.yml (bind_hostname.ini [outbound] hosts_file= overrides the path):
//   default:      { helo: mail.example.com, ip: 192.0.2.10 }
//   example.org:  { helo: mx.example.org,   ip: 192.0.2.11 }   # ip: '*' lets the OS choose
// Rules: mail from a listed sender domain leaves with that entry's HELO and IP; other mail
// with `default`; an entry whose ip is not a send address (or that is malformed) is refused
// with a logged reason and the default is used; a missing or malformed file never stops
// mail: it is logged and the built-in default (outbound_ip, hostname) is used. The file is
// re-read only when its inode, size or mtime changes.

const fs = require('node:fs')
const net = require('node:net')

const net_utils = require('haraka-net-utils')

const DEFAULT_HOSTS_FILE = '/data/outbound-hosts.yml'

// Haraka 3.1 reads YAML with `yaml` (eemeli/yaml 2.x, through haraka-config >= 1.5);
// older installs have js-yaml 4, whose loader is `load` (safeLoad was removed).
function parse_yaml(text) {
    let yaml
    try {
        yaml = require('yaml')
    } catch {
        return require('js-yaml').load(text)
    }
    return yaml.parse(text)
}

exports.register = function () {
    this.cache = { key: null, hosts: null }
    this.load_ini()
    this.register_hook('get_mx', 'outbound_get_mx')
}

exports.load_ini = function () {
    this.cfg = this.config.get('bind_hostname.ini', { booleans: [] }, () => this.load_ini())
    const main = this.cfg.main || {}
    this.send_on = String(main.send_on || '')
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean)
    this.hosts_file = (this.cfg.outbound && this.cfg.outbound.hosts_file) || DEFAULT_HOSTS_FILE
    this.builtin = {
        ip: process.env.OUTBOUND_MAIL_IP || main.outbound_ip || this.send_on[0] || '*',
        helo: main.hostname || this.config.get('me'),
        source: 'built-in default',
    }
}

// Is `ip` one this container may send from? '*' is always allowed (the OS chooses).
exports.may_send_from = function (ip) {
    if (ip === '*') return true
    if (this.send_on.includes('*')) return net.isIP(ip) !== 0
    return this.send_on.includes(ip)
}

// Validate one entry of the file: returns {ip, helo} or a reason string.
exports.check_entry = function (name, entry) {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
        return `entry '${name}' is not a mapping with helo and ip`
    }
    const ip = entry.ip === undefined || entry.ip === null ? undefined : String(entry.ip).replace(/^\[|\]$/g, '')
    const helo = entry.helo === undefined || entry.helo === null ? undefined : String(entry.helo)
    if (!ip) return `entry '${name}' has no ip`
    if (!helo || !/^[A-Za-z0-9.-]+$/.test(helo)) return `entry '${name}' has no valid helo`
    if (ip !== '*' && net.isIP(ip) === 0) return `entry '${name}': ip '${ip}' is not an IP address`
    if (!this.may_send_from(ip)) {
        return `entry '${name}': ip ${ip} is not one of this container's send addresses (${this.send_on.join(', ')})`
    }
    return { ip, helo }
}

// The parsed file, re-read only when it changed on disk.
exports.hosts = function () {
    let st
    try {
        st = fs.statSync(this.hosts_file)
    } catch (err) {
        if (this.cache.key !== 'absent') {
            if (err.code !== 'ENOENT') this.logerror(`${this.hosts_file}: ${err.message}; using the built-in default`)
            this.cache = { key: 'absent', hosts: null }
        }
        return null
    }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`
    if (key === this.cache.key) return this.cache.hosts
    let hosts = null
    try {
        const doc = parse_yaml(fs.readFileSync(this.hosts_file, 'utf8'))
        if (doc === null || doc === undefined) {
            hosts = {}
        } else if (typeof doc !== 'object' || Array.isArray(doc)) {
            throw new Error('the top level must be a mapping of sender domains (and default)')
        } else {
            hosts = {}
            for (const [name, entry] of Object.entries(doc)) hosts[name.toLowerCase()] = entry
        }
        this.loginfo(`${this.hosts_file}: loaded ${Object.keys(hosts).length} entries`)
    } catch (err) {
        this.logerror(`${this.hosts_file} is malformed, using the built-in default: ${err.message}`)
        hosts = null
    }
    this.cache = { key, hosts }
    return hosts
}

// {ip, helo, source} for mail from `sender_domain` (null for the null sender).
exports.choose = function (sender_domain) {
    const hosts = this.hosts()
    let fallback = this.builtin
    if (hosts && hosts.default !== undefined) {
        const def = this.check_entry('default', hosts.default)
        if (typeof def === 'string') this.logerror(`refused ${def}; using the built-in default`)
        else fallback = { ...def, source: 'default' }
    }
    if (hosts && sender_domain) {
        const name = sender_domain.toLowerCase()
        if (name !== 'default' && Object.hasOwn(hosts, name)) {
            const got = this.check_entry(name, hosts[name])
            if (typeof got !== 'string') return { ...got, source: name }
            this.logerror(`refused ${got}; using ${fallback.source}`)
        }
    }
    return fallback
}

exports.outbound_get_mx = async function (next, hmail, domain) {
    const from = hmail.todo && hmail.todo.mail_from
    const sender_domain = from && from.host ? from.host : null
    const choice = this.choose(sender_domain)
    let mxs
    try {
        mxs = await net_utils.get_mx(domain)
    } catch (err) {
        // Same outcome as Haraka's own lookup: no such domain bounces, anything else retries.
        if (err.code === 'ENOTFOUND' || err.code === 'ENODATA' || err.code === 'NXDOMAIN') {
            return next(DENY, `No MX for ${domain}`)
        }
        return next(DENYSOFT, `MX lookup for ${domain} failed: ${err.message}`)
    }
    if (!mxs || !mxs.length) return next(DENY, `No MX for ${domain}`)
    mxs.sort((a, b) => a.priority - b.priority)
    const bind = choice.ip === '*' ? undefined : choice.ip
    this.loginfo(`${sender_domain || '<>'} -> ${domain}: from ${choice.ip} helo ${choice.helo} (${choice.source})`)
    next(
        OK,
        mxs.map((mx) => {
            const m = new net_utils.HarakaMx(mx, domain)
            m.bind = bind
            m.bind_helo = choice.helo
            return m
        }),
    )
}
