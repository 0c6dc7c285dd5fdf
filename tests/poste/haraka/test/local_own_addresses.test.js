// node --test: the local_own_addresses plugin with haraka-test-fixtures' connection.
const { describe, it } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const fixtures = require('haraka-test-fixtures')

function setup(t, listen_on) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loa-'))
    fs.mkdirSync(path.join(dir, 'config'))
    fs.writeFileSync(path.join(dir, 'config', 'bind_hostname.ini'), `[main]\nlisten_on=${listen_on}\n`)
    const plugin = new fixtures.plugin('local_own_addresses')
    plugin.config = plugin.config.module_config(dir)
    plugin.register()
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    return plugin
}

function connect(plugin, ip) {
    const conn = fixtures.connection.createConnection()
    conn.remote.ip = ip
    conn.remote.is_local = false
    return new Promise((resolve) => plugin.mark_local(() => resolve(conn), conn))
}

describe('local_own_addresses', () => {
    it('marks a connection from an own listen address local and relaying', async (t) => {
        const conn = await connect(setup(t, '192.0.2.10,2001:db8::10'), '192.0.2.10')
        assert.strictEqual(conn.remote.is_local, true)
        assert.strictEqual(conn.relaying, true)
        assert.strictEqual(conn.notes.local_own_address, '192.0.2.10')
    })
    it('matches IPv6 case-insensitively and IPv4-mapped IPv6', async (t) => {
        const plugin = setup(t, '192.0.2.10,2001:DB8::10')
        assert.strictEqual((await connect(plugin, '2001:db8::10')).relaying, true)
        assert.strictEqual((await connect(plugin, '::ffff:192.0.2.10')).relaying, true)
    })
    it('leaves every other address alone', async (t) => {
        const plugin = setup(t, '192.0.2.10')
        for (const ip of ['192.0.2.11', '198.51.100.1', '2001:db8::10']) {
            const conn = await connect(plugin, ip)
            assert.strictEqual(conn.relaying, false)
            assert.strictEqual(conn.remote.is_local, false)
            assert.strictEqual(conn.notes.local_own_address, undefined)
        }
    })
    it('with LISTEN_ON=* treats every interface address as own', async (t) => {
        const plugin = setup(t, '*')
        const lo = Object.values(os.networkInterfaces()).flat().find((a) => a.family === 'IPv4').address
        assert.strictEqual((await connect(plugin, lo)).relaying, true)
        assert.strictEqual((await connect(plugin, '198.51.100.1')).relaying, false)
    })
    it('registers on connect_init', (t) => {
        assert.deepStrictEqual(setup(t, '192.0.2.10').hooks.connect_init, ['mark_local'])
    })
})
