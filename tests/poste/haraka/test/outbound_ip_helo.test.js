// node --test: the outbound_ip_helo plugin, loaded by haraka-test-fixtures (Haraka's
// plugin loader), with Haraka 3.1's own TODOItem, HarakaMx, haraka-config and yaml.
const { describe, it, beforeEach, afterEach } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const fixtures = require('haraka-test-fixtures')
const net_utils = require('haraka-net-utils')
const { Address } = require('address-rfc2821')
const TODOItem = require('Haraka/outbound/todo')
const constants = require('haraka-constants')

const V4 = '192.0.2.10'
const V4B = '192.0.2.11'
const V6 = '2001:db8::10'

function setup(t, { send_on = `${V4},${V4B},${V6}`, outbound_ip = V4, yml } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oih-'))
    fs.mkdirSync(path.join(dir, 'config'))
    const hosts = path.join(dir, 'outbound-hosts.yml')
    fs.writeFileSync(
        path.join(dir, 'config', 'bind_hostname.ini'),
        `[main]\nhostname=mail.example.com\nlisten_on=${send_on}\nsend_on=${send_on}\noutbound_ip=${outbound_ip}\n` +
            `[outbound]\nhosts_file=${hosts}\n`,
    )
    if (yml !== undefined) fs.writeFileSync(hosts, yml)
    const plugin = new fixtures.plugin('outbound_ip_helo')
    plugin.config = plugin.config.module_config(dir)
    plugin.logs = []
    for (const level of ['logerror', 'loginfo', 'logwarn']) plugin[level] = (msg) => plugin.logs.push([level, msg])
    plugin.register()
    // The plugin lives in Haraka's vm context: copy results into this realm to compare them.
    plugin.pick = (domain) => ({ ...plugin.choose(domain) })
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    return { plugin, hosts, dir }
}

const errors = (plugin) => plugin.logs.filter(([l]) => l === 'logerror').map(([, m]) => m)

const DOC = `
default:
  helo: out.example.com
  ip: ${V4}
example.org:
  helo: mx.example.org
  ip: ${V4B}
v6.example:
  helo: six.example.net
  ip: '[${V6}]'
any.example:
  helo: any.example.com
  ip: '*'
`

describe('choosing IP and HELO', () => {
    it('uses the built-in default (outbound_ip, hostname) when there is no file', (t) => {
        const { plugin } = setup(t)
        assert.deepStrictEqual(plugin.pick('example.org'), { ip: V4, helo: 'mail.example.com', source: 'built-in default' })
        assert.deepStrictEqual(errors(plugin), [])
    })
    it('uses the entry of the sender domain, case-insensitively', (t) => {
        const { plugin } = setup(t, { yml: DOC })
        assert.deepStrictEqual(plugin.pick('Example.ORG'), { ip: V4B, helo: 'mx.example.org', source: 'example.org' })
    })
    it('uses `default` for a domain that is not listed, and for the null sender', (t) => {
        const { plugin } = setup(t, { yml: DOC })
        assert.deepStrictEqual(plugin.pick('other.example'), { ip: V4, helo: 'out.example.com', source: 'default' })
        assert.deepStrictEqual(plugin.pick(null), { ip: V4, helo: 'out.example.com', source: 'default' })
    })
    it('accepts IPv6 with or without brackets', (t) => {
        const { plugin } = setup(t, { yml: DOC })
        assert.strictEqual(plugin.pick('v6.example').ip, V6)
    })
    it("lets the OS choose for ip: '*'", (t) => {
        const { plugin } = setup(t, { yml: DOC })
        assert.deepStrictEqual(plugin.pick('any.example'), { ip: '*', helo: 'any.example.com', source: 'any.example' })
    })
    it('refuses an ip that is not a send address, logs why, and uses default', (t) => {
        const { plugin } = setup(t, { yml: `${DOC}\nbad.example: { helo: bad.example, ip: 198.51.100.1 }\n` })
        assert.strictEqual(plugin.pick('bad.example').source, 'default')
        assert.match(errors(plugin).join('\n'), /refused entry 'bad.example': ip 198.51.100.1 is not one of this container's send addresses/)
    })
    it('refuses a default whose ip is not a send address and falls back to the built-in default', (t) => {
        const { plugin } = setup(t, { yml: `default: { helo: x.example, ip: 198.51.100.1 }\n` })
        assert.deepStrictEqual(plugin.pick('a.example'), { ip: V4, helo: 'mail.example.com', source: 'built-in default' })
        assert.match(errors(plugin)[0], /refused entry 'default'/)
    })
    it('with SEND_ON=* allows any IP', (t) => {
        const { plugin } = setup(t, { send_on: '*', outbound_ip: '*', yml: `a.example: { helo: a.example, ip: 198.51.100.1 }\n` })
        assert.strictEqual(plugin.pick('a.example').ip, '198.51.100.1')
        assert.strictEqual(plugin.pick('b.example').ip, '*')
    })
})

describe('malformed files never stop mail', () => {
    const cases = {
        'YAML syntax error': 'default: { helo: a.example, ip: [\n',
        'tab indentation': 'default:\n\thelo: x\n',
        'top level is a list': '- helo: a.example\n  ip: 192.0.2.10\n',
        'top level is a scalar': 'just text\n',
        'duplicate keys': `default: { helo: a.example, ip: ${V4} }\ndefault: { helo: b.example, ip: ${V4} }\n`,
    }
    for (const [what, yml] of Object.entries(cases)) {
        it(`${what}: logged, built-in default used`, (t) => {
            const { plugin } = setup(t, { yml })
            assert.deepStrictEqual(plugin.pick('a.example'), { ip: V4, helo: 'mail.example.com', source: 'built-in default' })
            assert.match(errors(plugin).join('\n'), /is malformed, using the built-in default/)
        })
    }
    const entries = {
        'entry is a string': ['a.example: 192.0.2.11\n', /is not a mapping/],
        'entry is a list': ['a.example: [1, 2]\n', /is not a mapping/],
        'entry has no ip': ['a.example: { helo: a.example }\n', /has no ip/],
        'entry has no helo': [`a.example: { ip: ${V4B} }\n`, /has no valid helo/],
        'helo is not a host name': [`a.example: { helo: "a b", ip: ${V4B} }\n`, /has no valid helo/],
        'ip is not an IP': ['a.example: { helo: a.example, ip: mail.example.com }\n', /is not an IP address/],
        'entry is null': ['a.example:\n', /is not a mapping/],
    }
    for (const [what, [yml, why]] of Object.entries(entries)) {
        it(`${what}: refused, logged, default used`, (t) => {
            const { plugin } = setup(t, { yml: `default: { helo: out.example.com, ip: ${V4} }\n${yml}` })
            assert.strictEqual(plugin.pick('a.example').source, 'default')
            assert.match(errors(plugin).join('\n'), why)
        })
    }
    it('an empty file is the built-in default, without an error', (t) => {
        const { plugin } = setup(t, { yml: '' })
        assert.strictEqual(plugin.pick('a.example').source, 'built-in default')
        assert.deepStrictEqual(errors(plugin), [])
    })
    it('an unreadable path (a directory) is logged and the built-in default used', (t) => {
        const { plugin, hosts } = setup(t)
        fs.mkdirSync(hosts)
        assert.strictEqual(plugin.pick('a.example').source, 'built-in default')
        assert.ok(errors(plugin).length >= 1)
    })
})

describe('re-reading', () => {
    let reads, orig
    beforeEach(() => {
        orig = fs.readFileSync
        reads = 0
        fs.readFileSync = function (p, ...rest) {
            if (String(p).endsWith('outbound-hosts.yml')) reads++
            return orig.call(this, p, ...rest)
        }
    })
    afterEach(() => {
        fs.readFileSync = orig
    })
    it('reads the file once while it does not change', (t) => {
        const { plugin } = setup(t, { yml: DOC })
        for (let i = 0; i < 5; i++) plugin.pick('example.org')
        assert.strictEqual(reads, 1)
    })
    it('re-reads when the size changes', (t) => {
        const { plugin, hosts } = setup(t, { yml: DOC })
        plugin.pick('example.org')
        fs.writeFileSync(hosts, `${DOC}\nnew.example: { helo: new.example, ip: ${V4B} }\n`)
        assert.strictEqual(plugin.pick('new.example').source, 'new.example')
        assert.strictEqual(reads, 2)
    })
    it('re-reads when only the mtime changes (same size)', (t) => {
        const { plugin, hosts } = setup(t, { yml: `a.example: { helo: a.example, ip: ${V4B} }\n` })
        assert.strictEqual(plugin.pick('a.example').ip, V4B)
        fs.writeFileSync(hosts, `a.example: { helo: a.example, ip: ${V4} }\n`)
        const later = new Date(Date.now() + 5000)
        fs.utimesSync(hosts, later, later)
        assert.strictEqual(plugin.pick('a.example').ip, V4)
    })
    it('re-reads when the file is replaced by rename (new inode)', (t) => {
        const { plugin, hosts, dir } = setup(t, { yml: `a.example: { helo: a.example, ip: ${V4B} }\n` })
        const st = fs.statSync(hosts)
        assert.strictEqual(plugin.pick('a.example').ip, V4B)
        const tmp = path.join(dir, 'new.yml')
        fs.writeFileSync(tmp, `a.example: { helo: a.example, ip: ${V4} }\n`)
        fs.utimesSync(tmp, st.atime, st.mtime)
        fs.renameSync(tmp, hosts)
        assert.strictEqual(plugin.pick('a.example').ip, V4)
    })
    it('a file fixed after being malformed is used again', (t) => {
        const { plugin, hosts } = setup(t, { yml: 'default: [\n' })
        assert.strictEqual(plugin.pick('example.org').source, 'built-in default')
        fs.writeFileSync(hosts, DOC)
        assert.strictEqual(plugin.pick('example.org').source, 'example.org')
    })
})

describe('the get_mx hook', () => {
    let orig
    beforeEach(() => {
        orig = net_utils.get_mx
    })
    afterEach(() => {
        net_utils.get_mx = orig
    })
    function hmail(from, domain) {
        const txn = { mail_from: from ? new Address(`<${from}>`) : new Address('<>'), notes: {}, uuid: 'A.1', header: {} }
        return { todo: new TODOItem(domain, [new Address(`<rcpt@${domain}>`)], txn) }
    }
    function call(plugin, hm, domain) {
        return new Promise((resolve) => plugin.outbound_get_mx((code, mx) => resolve({ code, mx }), hm, domain))
    }
    it('returns the MX list sorted, each bound to the chosen IP and HELO', async (t) => {
        const { plugin } = setup(t, { yml: DOC })
        net_utils.get_mx = async (d) => [
            new net_utils.HarakaMx({ exchange: 'mx2.dest.example', priority: 20 }, d),
            new net_utils.HarakaMx({ exchange: 'mx1.dest.example', priority: 10 }, d),
        ]
        const { code, mx } = await call(plugin, hmail('someone@example.org', 'dest.example'), 'dest.example')
        assert.strictEqual(code, constants.ok)
        assert.deepStrictEqual(mx.map((m) => [m.exchange, m.bind, m.bind_helo]), [
            ['mx1.dest.example', V4B, 'mx.example.org'],
            ['mx2.dest.example', V4B, 'mx.example.org'],
        ])
        assert.ok(mx.every((m) => m instanceof net_utils.HarakaMx && m.from_dns === 'dest.example'))
    })
    it("leaves bind unset for ip '*'", async (t) => {
        const { plugin } = setup(t, { yml: DOC })
        net_utils.get_mx = async (d) => [new net_utils.HarakaMx({ exchange: 'mx.dest.example', priority: 0 }, d)]
        const { mx } = await call(plugin, hmail('x@any.example', 'dest.example'), 'dest.example')
        assert.strictEqual(mx[0].bind, undefined)
        assert.strictEqual(mx[0].bind_helo, 'any.example.com')
    })
    it('bounces (DENY) a domain that does not exist', async (t) => {
        const { plugin } = setup(t)
        net_utils.get_mx = async () => {
            throw Object.assign(new Error('queryMx ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' })
        }
        assert.strictEqual((await call(plugin, hmail('a@b.example', 'nowhere.example'), 'nowhere.example')).code, constants.deny)
    })
    it('defers (DENYSOFT) on any other DNS failure', async (t) => {
        const { plugin } = setup(t)
        net_utils.get_mx = async () => {
            throw Object.assign(new Error('queryMx ESERVFAIL'), { code: 'ESERVFAIL' })
        }
        assert.strictEqual((await call(plugin, hmail('a@b.example', 'd.example'), 'd.example')).code, constants.denysoft)
    })
    it('bounces (DENY) when there is nowhere to deliver', async (t) => {
        const { plugin } = setup(t)
        net_utils.get_mx = async () => []
        assert.strictEqual((await call(plugin, hmail('a@b.example', 'd.example'), 'd.example')).code, constants.deny)
    })
    it('registers on get_mx', (t) => {
        const { plugin } = setup(t)
        assert.deepStrictEqual(plugin.hooks.get_mx, ['outbound_get_mx'])
    })
})
