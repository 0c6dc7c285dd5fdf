// local_own_addresses: connections from this container's own listen addresses are local.
// Part of the patchkit poste.io isolation patch set (both Haraka instances, Haraka 3.x).
//
// Nothing listens on 127.0.0.1 any more, so the admin app, webmail and msmtp reach
// Haraka through the hostname: their connections come from one of our own listen
// addresses, not from loopback. Treat them as loopback was treated: the connection is
// local (remote.is_local) and may relay, and a note says why. The addresses come from
// config/bind_hostname.ini (written at start by /etc/cont-init.d/25-bind-hostname.sh);
// with LISTEN_ON=* they are every address of the machine's interfaces.

const net = require('node:net')
const os = require('node:os')

exports.register = function () {
    this.load_ini()
    this.register_hook('connect_init', 'mark_local')
}

exports.load_ini = function () {
    const cfg = this.config.get('bind_hostname.ini', () => this.load_ini())
    const listed = String((cfg.main && cfg.main.listen_on) || '')
        .split(',')
        .map((a) => a.trim().replace(/^\[|\]$/g, '').toLowerCase())
        .filter(Boolean)
    this.every_interface = listed.includes('*')
    this.own = new Set(listed.filter((a) => net.isIP(a)))
    if (!listed.length) this.logwarn('bind_hostname.ini lists no listen addresses: no connection is marked local')
}

exports.own_addresses = function () {
    if (!this.every_interface) return this.own
    const all = new Set()
    for (const list of Object.values(os.networkInterfaces())) {
        for (const a of list || []) all.add(a.address.toLowerCase())
    }
    return all
}

exports.mark_local = function (next, connection) {
    let ip = String(connection.remote.ip || '').toLowerCase()
    if (ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7))) ip = ip.slice(7)
    if (ip && this.own_addresses().has(ip)) {
        connection.remote.is_local = true
        connection.relaying = true
        connection.notes.local_own_address = ip
        connection.results.add(this, { pass: 'own listen address' })
        connection.loginfo(this, `${ip} is one of our own listen addresses: local, relaying allowed`)
    }
    next()
}
