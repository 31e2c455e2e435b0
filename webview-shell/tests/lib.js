'use strict';
// Processes and a protocol peer for the avd-shell end-to-end tests.
// Every wait here is bounded; every process started is stopped by stop().

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const crypto = require('node:crypto');

const HERE = __dirname;
const SHELL_DIR = path.dirname(HERE);
const REPO = path.dirname(SHELL_DIR);
const AVD_BIN = process.env.AVD_BIN || path.join(REPO, 'daemon', 'avd');
const SHELL_BIN = process.env.AVD_SHELL_BIN || path.join(SHELL_DIR, 'avd-shell');
const CLIENT_DIR = path.join(REPO, 'client-js');
const ARTIFACTS = process.env.AVD_SHELL_ARTIFACTS || path.join(HERE, 'artifacts');

function loadWs() {
  const tries = ['ws', path.join(REPO, 'tests', 'node_modules', 'ws'),
    path.join(REPO, 'client-js', 'node_modules', 'ws')];
  for (const t of tries) {
    try { return require(t); } catch (_) { /* next */ }
  }
  return null;
}
const WebSocket = loadWs();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir || '.', cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch (_) { /* next */ }
  }
  return null;
}

async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last && last.message ? last.message : JSON.stringify(last)})`);
    await sleep(50);
  }
}

// A child process whose exit can be awaited and which is killed on stop().
class Child {
  constructor(name, cmd, args, opts) {
    this.name = name;
    this.out = '';
    this.err = '';
    this.proc = spawn(cmd, args, { ...opts, stdio: opts.stdio || ['ignore', 'pipe', 'pipe'] });
    if (this.proc.stdout) this.proc.stdout.on('data', (d) => { this.out += d; });
    if (this.proc.stderr) this.proc.stderr.on('data', (d) => { this.err += d; });
    this.exited = new Promise((resolve) => {
      this.proc.on('error', (e) => { this.spawnError = e; resolve({ code: null, signal: null, error: e }); });
      this.proc.on('exit', (code, signal) => resolve({ code, signal }));
    });
    this.exit = null;
    this.exited.then((e) => { this.exit = e; });
  }

  get pid() { return this.proc.pid; }

  async waitExit(timeoutMs) {
    const t = sleep(timeoutMs).then(() => null);
    return Promise.race([this.exited, t]);
  }

  // SIGTERM, then SIGKILL if it lingers.
  async stop(graceMs = 3000) {
    if (this.exit || this.spawnError) return this.exit;
    try { this.proc.kill('SIGTERM'); } catch (_) { /* gone */ }
    let e = await this.waitExit(graceMs);
    if (!e) {
      try { this.proc.kill('SIGKILL'); } catch (_) { /* gone */ }
      e = await this.waitExit(2000);
    }
    return e;
  }
}

// Xvfb on a display it picks itself (-displayfd), so parallel runs and a
// desktop session never collide.  Resolves {child, display} or rejects with
// the reason it could not start.
async function startXvfb() {
  if (!which('Xvfb')) throw new Error('Xvfb is not installed (apt-get install xvfb)');
  const child = new Child('Xvfb', 'Xvfb',
    ['-displayfd', '3', '-screen', '0', '1280x800x24', '-nolisten', 'tcp', '-noreset'],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let fd3 = '';
  child.proc.stdio[3].on('data', (d) => { fd3 += d; });
  const display = await Promise.race([
    waitFor(() => (/^\d+\n/.test(fd3) ? `:${fd3.trim()}` : null), 10000, 'Xvfb to report its display'),
    child.exited.then((e) => { throw new Error(`Xvfb exited (${JSON.stringify(e)}): ${child.err.trim().split('\n').slice(-3).join(' | ')}`); }),
  ]).catch(async (e) => { await child.stop(500); throw e; });
  return { child, display };
}

// avd on a free port, with its own runtime dir (so the shell finds the
// url/token files there and never those of a real avd of the user).
async function startAvd({ runtimeDir, uiDir, token, port = 0 }) {
  token = token || crypto.randomBytes(16).toString('hex');
  const args = ['--port', String(port), '--token', token, '--ui', uiDir, '--log-level', 'warn'];
  if (fs.existsSync(path.join(CLIENT_DIR, 'avd.global.js'))) args.push('--client-dir', CLIENT_DIR);
  const child = new Child('avd', AVD_BIN, args,
    { env: { ...process.env, XDG_RUNTIME_DIR: runtimeDir } });
  const m = await Promise.race([
    waitFor(() => child.out.match(/avd listening on http:\/\/127\.0\.0\.1:(\d+)\//), 10000, 'avd to listen'),
    child.exited.then((e) => { throw new Error(`avd exited (${JSON.stringify(e)}): ${child.err}`); }),
  ]);
  const bound = Number(m[1]);
  return { child, port: bound, token, wsUrl: `ws://127.0.0.1:${bound}/ws`, httpUrl: `http://127.0.0.1:${bound}` };
}

function shellEnv(display, runtimeDir, extra) {
  const env = { ...process.env, DISPLAY: display, XDG_RUNTIME_DIR: runtimeDir,
    NO_AT_BRIDGE: '1', GSETTINGS_BACKEND: 'memory', ...extra };
  delete env.WAYLAND_DISPLAY;
  delete env.AVD_URL;
  delete env.AVD_TOKEN;
  for (const k of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY']) delete env[k];
  return env;
}

function startShell(args, env) {
  return new Child('avd-shell', SHELL_BIN, args, { env });
}

// A protocol peer: hello, calls with answers, events, and methods of its own.
class Peer {
  static async connect(avd, { role = 'backend', name = 'test-backend' } = {}) {
    const p = new Peer();
    await p.open(avd, role, name);
    return p;
  }

  async open(avd, role, name) {
    this.ws = new WebSocket(avd.wsUrl, 'avd.v1');
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.eventWaiters = [];
    // avd pings silent backends; a test backend must not turn unhealthy.
    this.handlers = new Map([['__ping__', () => ({ status: 'pong' })]]);
    this.closed = false;
    const welcome = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no welcome from avd')), 5000);
      this.ws.on('error', (e) => { clearTimeout(t); reject(e); });
      this.ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m.type === 'welcome') { clearTimeout(t); this.session = m.session; resolve(m); return; }
        this.onMessage(m);
      });
    });
    this.ws.on('close', () => {
      this.closed = true;
      for (const [, p] of this.pending) p.reject(new Error('connection closed'));
      this.pending.clear();
    });
    await new Promise((resolve, reject) => { this.ws.once('open', resolve); this.ws.once('error', reject); });
    this.ws.send(JSON.stringify({ type: 'hello', schema_version: 1, role, name, token: avd.token }));
    return welcome;
  }

  onMessage(m) {
    if (m.type === 'event') {
      this.events.push(m);
      for (const w of this.eventWaiters.slice()) {
        if (w.match(m)) { this.eventWaiters.splice(this.eventWaiters.indexOf(w), 1); w.resolve(m); }
      }
    } else if (m.method !== undefined && m.id !== undefined) {
      const h = this.handlers.get(m.method);
      Promise.resolve()
        .then(() => (h ? h(m.params, m) : Promise.reject({ code: 'METHOD_NOT_FOUND' })))
        .then((result) => this.send({ id: m.id, ok: true, result }),
          (error) => this.send({ id: m.id, ok: false, error }));
    } else if (m.id !== undefined && this.pending.has(m.id)) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p.resolve(m);
    }
  }

  send(obj) { this.ws.send(JSON.stringify(obj)); }

  // Resolves the whole response ({id, ok, result|error}); bounded.
  call(method, params, { timeout_ms, wait = 15000 } = {}) {
    const id = `t${this.nextId++}`;
    const msg = { id, method, params };
    if (timeout_ms !== undefined) msg.timeout_ms = timeout_ms;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.pending.delete(id); reject(new Error(`no answer to ${method} within ${wait} ms`)); }, wait);
      this.pending.set(id, {
        resolve: (m) => { clearTimeout(t); resolve(m); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      this.send(msg);
    });
  }

  // The result of a call that must succeed.
  async ok(method, params, opts) {
    const r = await this.call(method, params, opts);
    if (!r.ok) throw new Error(`${method} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async register(methods) {
    for (const [name, fn] of Object.entries(methods)) this.handlers.set(name, fn);
    return this.ok('avd.register', { methods: Object.keys(methods) });
  }

  emit(event, data) { this.send({ type: 'event', event, data }); }

  // The first event (already received or still to come) matching; from
  // `since` (an index into this.events) on.
  waitEvent(name, { since = 0, match = () => true, timeout = 10000 } = {}) {
    const pred = (m) => m.event === name && match(m.data, m);
    const seen = this.events.slice(since).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { match: pred, resolve: (m) => { clearTimeout(t); resolve(m); } };
      const t = setTimeout(() => {
        this.eventWaiters.splice(this.eventWaiters.indexOf(w), 1);
        reject(new Error(`no ${name} event within ${timeout} ms (got: ${this.events.slice(since).map((e) => e.event).join(', ') || 'none'})`));
      }, timeout);
      this.eventWaiters.push(w);
    });
  }

  mark() { return this.events.length; }

  close() { try { this.ws.close(); } catch (_) { /* already */ } }
}

// The shell's methods as avd lists them, once registered.
async function shellMethods(peer, label) {
  const r = await peer.ok('avd.methods', {});
  const list = Array.isArray(r) ? r : r.methods;
  return list.filter((m) => (m.method || m).startsWith(`window.${label}.`));
}

// A PNG of the whole X screen, or null with the reason it could not be made.
function screenshot(display, file) {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (e) {
    return { error: `cannot create ${path.dirname(file)}: ${e.message}` };
  }
  if (which('import')) {
    const r = spawnSync('import', ['-display', display, '-window', 'root', file],
      { timeout: 15000, encoding: 'utf8' });
    if (r.status === 0 && fs.existsSync(file)) return { file };
    return { error: `import failed: ${r.stderr || r.error}` };
  }
  if (which('xwd')) {
    const xwdFile = file.replace(/\.png$/, '.xwd');
    const r = spawnSync('xwd', ['-root', '-silent', '-display', display, '-out', xwdFile], { timeout: 15000 });
    if (r.status === 0) return { file: xwdFile, note: 'no ImageMagick: saved XWD, not PNG' };
  }
  return { error: 'neither ImageMagick import nor xwd is installed' };
}

// Distinct colours in an image (ImageMagick identify), or null if unknown.
function colourCount(file) {
  if (!which('identify')) return null;
  const r = spawnSync('identify', ['-format', '%k', file], { timeout: 15000, encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

// A TCP port that was free a moment ago.
function freePort() {
  const net = require('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

function tmpdir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o700);
  return d;
}

module.exports = {
  REPO, SHELL_BIN, AVD_BIN, ARTIFACTS, WebSocket, sleep, which, waitFor, Child,
  startXvfb, startAvd, shellEnv, startShell, Peer, shellMethods, screenshot, colourCount, tmpdir, freePort,
};
