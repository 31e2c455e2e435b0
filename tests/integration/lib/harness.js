'use strict';
// Test harness for the avd integration tests: starts a real avd process and
// talks to it with real WebSocket clients.  Every wait is bounded so a broken
// daemon fails a test instead of hanging the suite.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const WebSocket = require('ws');

const REPO = path.resolve(__dirname, '..', '..', '..');
const LISTEN_RE =
  /^avd listening on http:\/\/127\.0\.0\.1:(\d+)\/(?:\?token=([0-9A-Za-z]+))?\s*$/;
const START_TIMEOUT_MS = 5000;
const STOP_GRACE_MS = 3000;

const ERROR_NAMES = {
  PARSE_ERROR: 'ParseError',
  INVALID_REQUEST: 'InvalidRequest',
  UNSUPPORTED_SCHEMA: 'UnsupportedSchema',
  UNAUTHORIZED: 'Unauthorized',
  ENCODING: 'EncodingError',
  PAYLOAD_TOO_LARGE: 'PayloadTooLarge',
  METHOD_NOT_FOUND: 'MethodNotFound',
  ALREADY_REGISTERED: 'AlreadyRegistered',
  BACKEND_UNAVAILABLE: 'BackendUnavailableError',
  TIMEOUT: 'TimeoutError',
  CANCELLED: 'CancelledError',
  QUEUE_FULL: 'QueueFull',
  EVENT_LOOP_CLOSED: 'EventLoopClosed',
  SCRIPT_EXECUTION: 'ScriptExecutionError',
  WINDOW_OPERATION: 'WindowOperationError',
  INTERNAL: 'InternalError',
};

function avdBin() {
  const bin = process.env.AVD_BIN
    ? path.resolve(process.env.AVD_BIN)
    : path.join(REPO, 'daemon', 'avd');
  if (!fs.existsSync(bin)) {
    throw new Error(`avd binary not found at ${bin} (build it or set AVD_BIN)`);
  }
  return bin;
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch (_) { /* already gone */ }
  }
});

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function makeRuntimeDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-test-xdg-'));
  fs.chmodSync(dir, 0o700);
  return dir;
}

function hasFlag(args, ...names) {
  return args.some((a) => names.some((n) => a === n || a.startsWith(n + '=')));
}

// Start avd and wait for its "avd listening on ..." line.
// Adds --port 0 and a random --token unless args set them (opts.port=false,
// opts.token=false: add neither, e.g. when a config file sets them).  opts.startTimeoutMs bounds the wait.
async function startAvd(args = [], env = {}, opts = {}) {
  const bin = avdBin();
  const runtimeDir = env.XDG_RUNTIME_DIR || makeRuntimeDir();
  const ownRuntimeDir = !env.XDG_RUNTIME_DIR;
  let token = null;
  const full = [];
  if (opts.port !== false && !hasFlag(args, '--port')) full.push('--port', '0');
  if (opts.token !== false && !hasFlag(args, '--token', '--token-file', '--no-auth')) {
    token = crypto.randomBytes(16).toString('hex');
    full.push('--token', token);
  }
  full.push(...args);
  const proc = spawn(bin, full, {
    env: { ...process.env, ...env, XDG_RUNTIME_DIR: runtimeDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let stdout = '';
  let stderr = '';
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      resolve(exitInfo);
    });
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
  });
  proc.stdout.setEncoding('utf8');

  const found = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`avd did not print its listening line within ${START_TIMEOUT_MS} ms; ` +
        `args=${JSON.stringify(full)} stdout=${JSON.stringify(stdout)} stderr=${JSON.stringify(stderr)}`));
    }, opts.startTimeoutMs || START_TIMEOUT_MS);
    const onData = (d) => {
      stdout += d;
      for (const line of stdout.split('\n')) {
        const m = LISTEN_RE.exec(line);
        if (m) {
          clearTimeout(timer);
          proc.stdout.off('data', onData);
          proc.stdout.on('data', (more) => { stdout += more; });
          resolve({ port: Number(m[1]), token: m[2] || null, line });
          return;
        }
      }
    };
    proc.stdout.on('data', onData);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`avd exited (code ${code}, signal ${signal}) before listening; ` +
        `args=${JSON.stringify(full)} stdout=${JSON.stringify(stdout)} stderr=${JSON.stringify(stderr)}`));
    });
  });

  if (token !== null && found.token !== null) {
    assert.equal(found.token, token, 'listening line shows the token given with --token');
  }
  const effectiveToken = found.token !== null ? found.token : token;
  const port = found.port;

  const avd = {
    port,
    token: effectiveToken,
    args: full,
    line: found.line,
    runtimeDir,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    proc,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    exitInfo: () => exitInfo,
    // Set by a test that kills avd on purpose.
    allowDirtyExit: false,
    async stop() {
      let killed = false;
      if (!exitInfo) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => {
          if (!exitInfo) { killed = true; proc.kill('SIGKILL'); }
        }, STOP_GRACE_MS + (opts.stopGraceMs || 0));
        await exited;
        clearTimeout(t);
      }
      if (ownRuntimeDir) fs.rmSync(runtimeDir, { recursive: true, force: true });
      // A clean SIGTERM exit is part of every test: a crash, a sanitizer
      // report or a hang at shutdown fails the test that caused it.
      if (!this.allowDirtyExit && (killed || exitInfo.code !== 0)) {
        throw new Error(`avd did not exit cleanly (code ${exitInfo.code}, signal ` +
          `${exitInfo.signal}${killed ? ', killed after the grace period' : ''}); ` +
          `stderr tail:\n${stderr.slice(-4000)}`);
      }
      return exitInfo;
    },
  };
  return avd;
}

// Run avd expecting it to exit by itself (CLI errors, --version, --help).
// Returns {code, signal, stdout, stderr, timedOut}.
function runAvd(args, env = {}, timeoutMs = 3000) {
  const bin = avdBin();
  const runtimeDir = env.XDG_RUNTIME_DIR || makeRuntimeDir();
  return new Promise((resolve) => {
    const proc = spawn(bin, args, {
      env: { ...process.env, ...env, XDG_RUNTIME_DIR: runtimeDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      if (!env.XDG_RUNTIME_DIR) fs.rmSync(runtimeDir, { recursive: true, force: true });
      // give the pipes a moment to flush
      setImmediate(() => resolve({ code, signal, stdout, stderr, timedOut }));
    });
  });
}

// Plain HTTP GET with a raw path (no normalisation).  Resolves
// {status, headers, body}.
function httpGet(avd, rawPath, headers = {}, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: avd.port, method: 'GET', path: rawPath, headers,
      agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`HTTP GET ${rawPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// Raw HTTP over a TCP socket, for request lines node's http would refuse.
function rawHttp(avd, requestText, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(avd.port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); resolve(parseRaw(data)); }, timeoutMs);
    sock.setEncoding('latin1');
    sock.on('connect', () => sock.write(requestText));
    sock.on('data', (d) => {
      data += d;
      const r = parseRaw(data);
      if (r.complete) { clearTimeout(timer); sock.destroy(); resolve(r); }
    });
    sock.on('end', () => { clearTimeout(timer); resolve(parseRaw(data)); });
    sock.on('error', (e) => { clearTimeout(timer); if (data) resolve(parseRaw(data)); else reject(e); });
  });
}

function parseRaw(text) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const sep = text.indexOf('\r\n\r\n');
  const head = sep >= 0 ? text.slice(0, sep) : text;
  const body = sep >= 0 ? text.slice(sep + 4) : '';
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const complete = sep >= 0 && cl !== null && Buffer.byteLength(body, 'latin1') >= Number(cl[1]);
  return { status: m ? Number(m[1]) : null, head, body, complete, raw: text };
}

function describeMsg(m) {
  const s = JSON.stringify(m);
  return s === undefined ? String(m) : (s.length > 300 ? s.slice(0, 300) + '…' : s);
}

function isResponse(m) {
  return m !== null && typeof m === 'object' && !Array.isArray(m) &&
    'id' in m && !('method' in m) && m.type !== 'chunk' && m.type !== 'cancel' &&
    ('ok' in m || 'result' in m || 'error' in m);
}

function isCall(m, method) {
  return m !== null && typeof m === 'object' && 'id' in m && typeof m.method === 'string' &&
    (method === undefined || m.method === method);
}

function isEvent(m, name) {
  return m !== null && typeof m === 'object' && m.type === 'event' &&
    (name === undefined || m.event === name);
}

function isTypedError(m, code) {
  return m !== null && typeof m === 'object' && m.type === 'error' &&
    (code === undefined || (m.error && m.error.code === code));
}

// Assert the shape of an error object {code,name,message,data}.
function assertError(err, code, what = 'error') {
  assert.ok(err && typeof err === 'object', `${what}: expected an error object, got ${describeMsg(err)}`);
  assert.equal(err.code, code, `${what}: code (full error ${describeMsg(err)})`);
  if (ERROR_NAMES[code]) assert.equal(err.name, ERROR_NAMES[code], `${what}: name`);
  assert.equal(typeof err.message, 'string', `${what}: message is a string`);
  assert.ok(err.message.length > 0, `${what}: message is not empty`);
  assert.ok(err.data !== null && typeof err.data === 'object' && !Array.isArray(err.data),
    `${what}: data is an object (got ${describeMsg(err.data)})`);
}

// Assert that a response message is a failure with the given code; returns the error.
function assertErrorResponse(res, code, what = 'response') {
  assert.ok(isResponse(res), `${what}: expected a response, got ${describeMsg(res)}`);
  assert.equal(res.ok, false, `${what}: ok=false expected, got ${describeMsg(res)}`);
  assertError(res.error, code, what);
  return res.error;
}

class UpgradeError extends Error {
  constructor(statusCode, body) {
    super(`WebSocket upgrade refused with HTTP ${statusCode}`);
    this.statusCode = statusCode;
    this.body = body;
  }
}

let clientSeq = 0;

class Client {
  constructor() {
    this.ws = null;
    this.buffer = [];
    this.waiters = [];
    this.hooks = [];
    this.log = [];
    this.closed = null;
    this.closeWaiters = [];
    this.seq = 0;
    this.idPrefix = `t${++clientSeq}_`;
    this.session = null;
    this.welcome = null;
    this.pings = [];
  }

  // Open a WebSocket (no hello yet).  Rejects with UpgradeError on an HTTP
  // refusal of the upgrade.
  static open(avd, opts = {}) {
    const c = new Client();
    return c._open(avd, opts).then(() => c);
  }

  // Open and complete hello/welcome.  opts: role, name, subscribe, token (in
  // hello), urlToken (true = avd.token in URL, false = none, string = that),
  // origin, protocol (default 'avd.v1'; null = offer none), autoPong,
  // hello (false = skip), helloExtra (merged into hello).
  static async connect(avd, opts = {}) {
    const c = new Client();
    await c._open(avd, opts);
    if (opts.hello === false) return c;
    try {
      await c.hello(opts);
    } catch (e) {
      c.terminate();
      throw e;
    }
    return c;
  }

  // Expect the upgrade to be refused; returns the HTTP status code, or throws
  // if the upgrade succeeded.
  static async upgradeStatus(avd, opts = {}) {
    try {
      const c = await Client.open(avd, opts);
      c.terminate();
    } catch (e) {
      if (e instanceof UpgradeError) return e.statusCode;
      throw e;
    }
    return 101;
  }

  _open(avd, opts) {
    const urlToken = opts.urlToken === undefined ? true : opts.urlToken;
    let url = avd.wsUrl + (opts.path || '');
    if (urlToken === true && avd.token) url += `?token=${avd.token}`;
    else if (typeof urlToken === 'string') url += `?token=${encodeURIComponent(urlToken)}`;
    const protocol = opts.protocol === undefined ? 'avd.v1' : opts.protocol;
    const wsOpts = { perMessageDeflate: false, handshakeTimeout: 3000, maxPayload: 512 * 1024 * 1024 };
    if (opts.origin) wsOpts.origin = opts.origin;
    const ws = protocol === null ? new WebSocket(url, wsOpts) : new WebSocket(url, protocol, wsOpts);
    this.ws = ws;
    this.role = opts.role || 'frontend';
    const autoPong = opts.autoPong !== undefined ? opts.autoPong : this.role === 'backend';
    if (autoPong) this.enableAutoPong();
    ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
    ws.on('close', (code, reason) => this._onClose(code, reason.toString('utf8')));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('WebSocket open timed out'));
      }, 4000);
      ws.once('open', () => { clearTimeout(timer); resolve(); });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        const chunks = [];
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          req.destroy();
          reject(new UpgradeError(res.statusCode, Buffer.concat(chunks).toString('utf8')));
        };
        res.on('data', (c) => chunks.push(c));
        res.on('end', finish);
        res.on('error', finish);
        res.on('close', finish);
        setTimeout(finish, 500);
      });
      ws.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  async hello(opts = {}) {
    const hello = { type: 'hello', schema_version: 1 };
    if (opts.role !== undefined) hello.role = opts.role;
    if (opts.name !== undefined) hello.name = opts.name;
    if (opts.subscribe !== undefined) hello.subscribe = opts.subscribe;
    if (opts.token !== undefined) hello.token = opts.token;
    Object.assign(hello, opts.helloExtra || {});
    this.send(hello);
    const m = await this.next((x) => x.type === 'welcome' || x.type === 'error', 3000, 'welcome');
    if (m.type === 'error') {
      const e = new Error(`hello refused: ${describeMsg(m)}`);
      e.avdError = m.error;
      throw e;
    }
    this.welcome = m;
    this.session = m.session;
    return m;
  }

  enableAutoPong() {
    if (this._autoPong) return;
    this._autoPong = true;
    this.hooks.push((m) => {
      if (this._autoPong && isCall(m, '__ping__')) {
        this.pings.push(m);
        this.send({ id: m.id, ok: true, result: { status: 'pong', ts: Date.now() } });
        return true;
      }
      return false;
    });
  }

  disableAutoPong() { this._autoPong = false; }

  // Answer calls to `method` with handler(params, msg) (its return value, or
  // awaited promise, is the result; a thrown {code,message} becomes an error).
  serve(method, handler) {
    this.hooks.push((m) => {
      if (!isCall(m, method)) return false;
      Promise.resolve()
        .then(() => handler(m.params, m))
        .then((result) => { if (this.isOpen()) this.send({ id: m.id, ok: true, result: result === undefined ? null : result }); },
          (err) => { if (this.isOpen()) this.send({ id: m.id, ok: false, error: { code: err.code || 'TEST_ERROR', message: err.message || String(err) } }); });
      return true;
    });
  }

  _onMessage(data, isBinary) {
    let m;
    if (isBinary) {
      m = { __binary: data };
    } else {
      const text = data.toString('utf8');
      try { m = JSON.parse(text); } catch (_) { m = { __unparsed: text }; }
    }
    if (m === null || typeof m !== 'object') m = { __value: m };
    this.log.push(m);
    if (this.log.length > 50) this.log.shift();
    for (const h of this.hooks) {
      if (h(m)) return;
    }
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i];
      let ok = false;
      try { ok = w.pred(m); } catch (_) { ok = false; }
      if (ok) {
        this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(m);
        return;
      }
    }
    this.buffer.push(m);
  }

  _onClose(code, reason) {
    this.closed = { code, reason };
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`connection closed (code ${code}, reason ${JSON.stringify(reason)}) ` +
        `while waiting for ${w.label}`));
    }
    for (const w of this.closeWaiters.splice(0)) w(this.closed);
  }

  isOpen() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  send(obj) { this.ws.send(JSON.stringify(obj)); }

  // Send a raw string or Buffer as a text frame (unless opts.binary).
  sendRaw(data, opts = {}) { this.ws.send(data, { binary: false, ...opts }); }

  // The next message matching pred (searching what is already buffered
  // first).  Messages not matched stay buffered.
  next(pred = () => true, timeoutMs = 2000, label) {
    label = label || pred.toString().replace(/\s+/g, ' ').slice(0, 120);
    for (let i = 0; i < this.buffer.length; i++) {
      let ok = false;
      try { ok = pred(this.buffer[i]); } catch (_) { ok = false; }
      if (ok) return Promise.resolve(this.buffer.splice(i, 1)[0]);
    }
    if (this.closed) {
      return Promise.reject(new Error(`connection already closed (code ${this.closed.code}) ` +
        `while waiting for ${label}`));
    }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, label };
      w.timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}; last messages: ` +
          this.log.slice(-5).map(describeMsg).join(' | ')));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // Resolve to the first matching message within ms, or null.
  async maybeNext(pred, ms) {
    try { return await this.next(pred, ms); } catch (_) { return null; }
  }

  // Assert no message matching pred arrives within ms (buffered ones count).
  async expectNone(pred, ms = 200, what = 'unexpected message') {
    const m = await this.maybeNext(pred, ms);
    assert.equal(m, null, `${what}: ${describeMsg(m)}`);
  }

  // All buffered messages matching pred (removed from the buffer).
  drain(pred = () => true) {
    const out = [];
    this.buffer = this.buffer.filter((m) => {
      if (pred(m)) { out.push(m); return false; }
      return true;
    });
    return out;
  }

  newId() { return `${this.idPrefix}${++this.seq}`; }

  // Send a call and return avd's response message.
  // extra may hold id (overrides the auto id), timeout_ms, type, ...
  call(method, params, extra = {}, timeoutMs = 5000) {
    const id = extra.id !== undefined ? extra.id : this.newId();
    const msg = { id, method };
    if (params !== undefined) msg.params = params;
    Object.assign(msg, extra, { id });
    const p = this.next((m) => isResponse(m) && m.id === id, timeoutMs, `response to ${method} id ${JSON.stringify(id)}`);
    this.send(msg);
    return p;
  }

  // Send a call without waiting; returns {id, response: Promise}.
  startCall(method, params, extra = {}, timeoutMs = 5000) {
    const id = extra.id !== undefined ? extra.id : this.newId();
    const response = this.call(method, params, { ...extra, id }, timeoutMs);
    response.catch(() => {});
    return { id, response };
  }

  async callOk(method, params, extra = {}, timeoutMs = 5000) {
    const res = await this.call(method, params, extra, timeoutMs);
    assert.equal(res.ok, true, `${method} failed: ${describeMsg(res)}`);
    return res.result;
  }

  waitClose(timeoutMs = 3000) {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection not closed within ${timeoutMs} ms; ` +
        `last messages: ${this.log.slice(-5).map(describeMsg).join(' | ')}`)), timeoutMs);
      this.closeWaiters.push((c) => { clearTimeout(timer); resolve(c); });
    });
  }

  async close(timeoutMs = 1000) {
    if (!this.ws || this.closed) return;
    if (this.ws._socket && this.ws._socket.isPaused()) this.ws._socket.resume();
    try { this.ws.close(1000); } catch (_) { /* ignore */ }
    try { await this.waitClose(timeoutMs); } catch (_) { this.terminate(); }
  }

  terminate() {
    if (this.ws && !this.closed) this.ws.terminate();
  }

  pause() { this.ws._socket.pause(); }
  resume() { this.ws._socket.resume(); }
}

// Convenience for tests: keeps track of clients and daemons to clean up.
class Scope {
  constructor() { this.clients = []; this.daemons = []; }
  async avd(args = [], env = {}, opts = {}) {
    const a = await startAvd(args, env, opts);
    this.daemons.push(a);
    return a;
  }
  async client(avd, opts = {}) {
    const c = await Client.connect(avd, opts);
    this.clients.push(c);
    return c;
  }
  async open(avd, opts = {}) {
    const c = await Client.open(avd, opts);
    this.clients.push(c);
    return c;
  }
  track(c) { this.clients.push(c); return c; }
  async cleanup() {
    await Promise.all(this.clients.splice(0).map((c) => c.close(500).catch(() => {})));
    const results = await Promise.allSettled(this.daemons.splice(0).map((d) => d.stop()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

// A fresh Scope cleaned up when test t ends.
function scope(t) {
  const s = new Scope();
  t.after(() => s.cleanup());
  return s;
}

let nameSeq = 0;
// A unique method/event name for this test run.
function uniq(prefix = 'm') {
  return `${prefix}${process.pid}_${++nameSeq}`;
}

module.exports = {
  REPO,
  ERROR_NAMES,
  Client,
  Scope,
  UpgradeError,
  assertError,
  assertErrorResponse,
  avdBin,
  describeMsg,
  httpGet,
  isCall,
  isEvent,
  isResponse,
  isTypedError,
  rawHttp,
  runAvd,
  scope,
  sleep,
  startAvd,
  uniq,
  withTimeout,
};
