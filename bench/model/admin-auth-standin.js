'use strict'
// patchkit MODEL STAND-IN for poste.io's admin app's auth endpoint. NOT poste.io's code.
//
// poste.io's nginx protects the rspamd and Haraka web UIs with `auth_request .auth;`; the
// `.auth` location asks the admin app (PHP, through FastCGI on /var/run/php-fpm-admin.sock)
// at /admin/auth-ws whether the session may pass (POSTE.md, "poste.io 2.5.x's own nginx
// templates"). The model releases have no admin app, so this small FastCGI responder
// stands in for that one answer, written by the patchkit project (bench/model/build.py
// places it in the model's own layer):
//
//   /admin/auth-ws  200 when the request carries the cookie patchkit_model_session with the
//                   value of $MODEL_ADMIN_SESSION (the proof sets it), 401 otherwise
//   anything else   404
//
// Each request is logged as one JSON line on stdout (what the "admin app" saw: the URI,
// Host, HTTPS, the peer address, the answer), so a proof can show what reached it.
//
//   node admin-auth-standin.js [SOCKET]      (default /var/run/php-fpm-admin.sock)

const fs = require('fs')
const net = require('net')

const SOCKET = process.argv[2] || '/var/run/php-fpm-admin.sock'
const COOKIE = 'patchkit_model_session'
const SESSION = process.env.MODEL_ADMIN_SESSION || ''
const AUTH_PATH = '/admin/auth-ws'

// FastCGI record types (the FastCGI 1.0 specification)
const BEGIN_REQUEST = 1
const ABORT_REQUEST = 2
const END_REQUEST = 3
const PARAMS = 4
const STDIN = 5
const STDOUT = 6
const GET_VALUES = 9
const GET_VALUES_RESULT = 10
const KEEP_CONN = 1

function record(type, id, content) {
  const out = []
  for (let off = 0; off === 0 || off < content.length; off += 65535) {
    const chunk = content.subarray(off, off + 65535)
    const head = Buffer.alloc(8)
    head[0] = 1
    head[1] = type
    head.writeUInt16BE(id, 2)
    head.writeUInt16BE(chunk.length, 4)
    out.push(head, chunk)
  }
  return Buffer.concat(out)
}

function nameValues(buf) {
  const out = {}
  let i = 0
  const len = () => {
    if (buf[i] < 128) return buf[i++]
    const n = buf.readUInt32BE(i) & 0x7fffffff
    i += 4
    return n
  }
  while (i < buf.length) {
    const n = len()
    const v = len()
    out[buf.toString('latin1', i, i + n)] = buf.toString('latin1', i + n, i + n + v)
    i += n + v
  }
  return out
}

function cookies(header) {
  const out = {}
  for (const part of (header || '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim()
  }
  return out
}

function answer(params) {
  const uri = (params.DOCUMENT_URI || params.REQUEST_URI || '').split('?')[0]
  if (uri !== AUTH_PATH) return [404, 'patchkit model stand-in: not the admin app\n']
  const ok = SESSION !== '' && cookies(params.HTTP_COOKIE)[COOKIE] === SESSION
  return ok ? [200, 'session ok\n'] : [401, 'no session\n']
}

function respond(sock, id, params, keep) {
  const [status, body] = answer(params)
  const reason = { 200: 'OK', 401: 'Unauthorized', 404: 'Not Found' }[status]
  console.log(
    JSON.stringify({
      uri: params.REQUEST_URI || '',
      host: params.HTTP_HOST || '',
      https: params.HTTPS || '',
      remote_addr: params.REMOTE_ADDR || '',
      server_addr: params.SERVER_ADDR || '',
      cookie_present: COOKIE in cookies(params.HTTP_COOKIE),
      status,
    }),
  )
  const http = Buffer.from(
    `Status: ${status} ${reason}\r\nContent-Type: text/plain\r\n\r\n${body}`,
    'latin1',
  )
  const end = Buffer.alloc(8) // appStatus 0, FCGI_REQUEST_COMPLETE
  sock.write(
    Buffer.concat([
      record(STDOUT, id, http),
      record(STDOUT, id, Buffer.alloc(0)),
      record(END_REQUEST, id, end),
    ]),
  )
  if (!keep) sock.end()
}

function serve(sock) {
  let buf = Buffer.alloc(0)
  const requests = new Map()
  sock.on('error', () => sock.destroy())
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk])
    while (buf.length >= 8) {
      const len = buf.readUInt16BE(4)
      const pad = buf[6]
      if (buf.length < 8 + len + pad) break
      const type = buf[1]
      const id = buf.readUInt16BE(2)
      const content = buf.subarray(8, 8 + len)
      buf = buf.subarray(8 + len + pad)
      if (type === BEGIN_REQUEST) {
        requests.set(id, { params: [], keep: (content[2] & KEEP_CONN) !== 0 })
      } else if (type === PARAMS && requests.has(id)) {
        requests.get(id).params.push(Buffer.from(content))
      } else if (type === STDIN && len === 0 && requests.has(id)) {
        const req = requests.get(id)
        requests.delete(id)
        respond(sock, id, nameValues(Buffer.concat(req.params)), req.keep)
      } else if (type === ABORT_REQUEST) {
        requests.delete(id)
        sock.write(record(END_REQUEST, id, Buffer.alloc(8)))
      } else if (type === GET_VALUES) {
        sock.write(record(GET_VALUES_RESULT, 0, Buffer.alloc(0)))
      }
    }
  })
}

fs.rmSync(SOCKET, { force: true })
const server = net.createServer(serve)
server.listen(SOCKET, () => {
  fs.chmodSync(SOCKET, 0o666) // nginx's workers (www-data) connect, as to php-fpm's socket
  console.log(
    JSON.stringify({ listening: SOCKET, session_configured: SESSION !== '' }),
  )
})
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0)) // closing the server removes its socket file
    setTimeout(() => process.exit(0), 1000).unref()
  })
}
