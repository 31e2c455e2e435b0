'use strict';
// Black-box tests of avdctl: a real avd, a real backend over WebSocket, and
// the real avdctl binary for every command.  Where avd cannot be made to
// misbehave on cue (no welcome, silence, a dropped connection), a small
// fake server stands in for it.
//
//   AVDCTL_BIN  the avdctl binary (default: $AVD_BUILDDIR/avdctl/avdctl,
//               else avdctl/avdctl next to this directory)
//   AVD_BIN     the avd binary (default: $AVD_BUILDDIR/daemon/avd, else
//               daemon/avd of this source tree)
//
// Every wait is bounded; every process started here is killed at the end.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const SRC = path.resolve(__dirname, '..', '..');
// ws: from NODE_PATH (see avdctl.test), else the project's tests/ install
const WebSocket = (() => {
  try {
    return require('ws');
  } catch (_) {
    return require(path.join(SRC, 'tests', 'node_modules', 'ws'));
  }
})();
// The integration suite's small helpers, not copies of them.
const { sleep, withTimeout } = require(path.join(SRC, 'tests', 'integration', 'lib', 'harness'));
const T = { timeout: 20000 };

function findBin(envName, rel) {
  const cands = [];
  if (process.env[envName]) cands.push(path.resolve(process.env[envName]));
  if (process.env.AVD_BUILDDIR) cands.push(path.join(process.env.AVD_BUILDDIR, rel));
  cands.push(path.join(SRC, rel));
  for (const c of cands) if (fs.existsSync(c)) return c;
  throw new Error(`${envName}: none of ${cands.join(', ')} exists (build it or set ${envName})`);
}
const AVDCTL = findBin('AVDCTL_BIN', 'avdctl/avdctl');
const AVD = findBin('AVD_BIN', 'daemon/avd');

// ---- processes ------------------------------------------------------------

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch (_) { /* gone */ }
  }
});

const tmpDirs = [];
function tmpDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o700);
  tmpDirs.push(d);
  return d;
}
process.on('exit', () => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

async function until(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(30);
  }
}

const LISTEN_RE = /^avd listening on (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]+))\s*$/m;

// A real avd on a free port with its own runtime directory.
async function startAvd() {
  const token = crypto.randomBytes(16).toString('hex');
  const runtime = tmpDir('avdctl-test-xdg-');
  const proc = spawn(AVD, ['--port', '0', '--token', token], {
    env: { ...process.env, XDG_RUNTIME_DIR: runtime },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { err += d; });
  proc.stdout.setEncoding('utf8');
  const exited = new Promise((r) => proc.on('exit', (code, signal) => {
    live.delete(proc);
    r({ code, signal });
  }));
  const m = await withTimeout(new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const mm = LISTEN_RE.exec(out);
      if (mm) resolve(mm);
    });
    proc.on('exit', (code) => reject(new Error(`avd exited ${code}: ${err}`)));
  }), 5000, 'avd listening line');
  assert.equal(m[3], token, 'the listening line shows our token');
  return {
    token,
    port: Number(m[2]),
    line: m[1],
    runtime,
    wsUrl: `ws://127.0.0.1:${m[2]}/ws`,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

// Runs avdctl to its end.  env: added to a clean environment where
// neither AVD_URL, AVD_TOKEN nor a runtime directory can point anywhere.
function baseEnv(env) {
  const e = { ...process.env };
  delete e.AVD_URL;
  delete e.AVD_TOKEN;
  e.XDG_RUNTIME_DIR = emptyRuntime;
  return { ...e, ...env };
}

function spawnCtl(args, env = {}, stdin = null) {
  const proc = spawn(AVDCTL, args, {
    env: baseEnv(env),
    stdio: [stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  live.add(proc);
  const r = { proc, stdout: '', stderr: '' };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { r.stdout += d; });
  proc.stderr.on('data', (d) => { r.stderr += d; });
  // 'close', not 'exit': by then stdout and stderr are read to the end
  r.exited = new Promise((resolve) => proc.on('close', (code, signal) => {
    live.delete(proc);
    resolve({ code, signal });
  }));
  if (stdin !== null) proc.stdin.end(stdin);
  return r;
}

async function runCtl(args, env = {}, { stdin = null, timeoutMs = 10000 } = {}) {
  const started = Date.now();
  const r = spawnCtl(args, env, stdin);
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; r.proc.kill('SIGKILL'); }, timeoutMs);
  const { code, signal } = await r.exited;
  clearTimeout(timer);
  return { code, signal, timedOut, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

function show(r) {
  return `code=${r.code} signal=${r.signal} stdout=${JSON.stringify(r.stdout)} stderr=${JSON.stringify(r.stderr)}`;
}

// avd's error object, the one JSON value on stderr.
function stderrError(r) {
  let err;
  assert.doesNotThrow(() => { err = JSON.parse(r.stderr); }, `stderr holds one JSON value: ${show(r)}`);
  assert.equal(typeof err.code, 'string', 'the error has a code');
  return err;
}

// ---- WebSocket peers ------------------------------------------------------

// A session of our own with avd: frontend or backend, with call().
async function connect(avd, { role = 'frontend', name = 'test', onCall = null } = {}) {
  const ws = new WebSocket(avd.wsUrl, 'avd.v1');
  const c = {
    ws, session: null, events: [], cancels: [], calls: [],
    pending: new Map(), nextId: 1,
    send(m) { ws.send(JSON.stringify(m)); },
    call(method, params) {
      const id = `t${c.nextId++}`;
      c.send({ id, method, params });
      return withTimeout(new Promise((res) => c.pending.set(id, res)), 5000, `answer to ${method}`);
    },
    close() { ws.terminate(); },
  };
  const welcomed = new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.type === 'welcome') {
        c.session = m.session;
        resolve();
      } else if (m.type === 'event') {
        c.events.push(m);
      } else if (m.type === 'cancel') {
        c.cancels.push(m);
      } else if (m.method === '__ping__') {
        c.send({ id: m.id, ok: true, result: { status: 'pong' } });
      } else if (m.method) {
        c.calls.push(m);
        if (onCall) onCall(c, m);
      } else if (m.id !== undefined && c.pending.has(m.id)) {
        const res = c.pending.get(m.id);
        c.pending.delete(m.id);
        res(m);
      }
    });
  });
  await withTimeout(new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); }), 5000, 'ws open');
  c.send({ type: 'hello', schema_version: 1, role, name, token: avd.token });
  await withTimeout(welcomed, 5000, 'welcome');
  return c;
}

// The backend every test calls.
function backendHandler(c, m) {
  const reply = (x) => c.send({ id: m.id, ...x });
  switch (m.method) {
    case 'api.echo': reply({ ok: true, result: m.params }); break;
    case 'api.fail': reply({ ok: false, error: { code: 'BOOM', name: 'Boom', message: 'it broke', data: { x: 1 } } }); break;
    case 'api.failnocode': reply({ ok: false, error: { message: 'no code here' } }); break;
    case 'api.hang': break; // never answers
    case 'api.stream':
      for (let i = 0; i < 3; i++) c.send({ type: 'chunk', id: m.id, data: { delta: `part${i}` } });
      reply({ ok: true, result: { done: true } });
      break;
    case 'api.slowstream': { // n chunks, every ms apart, then the result
      const { n, every } = m.params;
      let i = 0;
      const iv = setInterval(() => {
        if (i < n) {
          c.send({ type: 'chunk', id: m.id, data: i++ });
        } else {
          clearInterval(iv);
          reply({ ok: true, result: 'finished' });
        }
      }, every);
      break;
    }
    case 'api.big': reply({ ok: true, result: { s: 'x'.repeat(m.params.n), nul: 'a\u0000b', e: '😀' } }); break;
    default: reply({ ok: false, error: { code: 'INTERNAL', message: 'unexpected' } });
  }
}
const METHODS = ['api.echo', 'api.fail', 'api.failnocode', 'api.hang', 'api.stream', 'api.slowstream', 'api.big'];

async function startBackend(avd) {
  const b = await connect(avd, { role: 'backend', name: 'nodeback', onCall: backendHandler });
  const r = await b.call('avd.register', { methods: METHODS });
  assert.equal(r.ok, true, `register: ${JSON.stringify(r)}`);
  return b;
}

// A port where nothing listens (bound, then closed).
async function deadPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// A fake avd: answers the upgrade, then behaves as `mode` says.
async function fakeAvd(mode) {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, path: '/ws' });
  await new Promise((r) => wss.on('listening', r));
  const seen = [];
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      seen.push(m);
      if (m.type === 'hello') {
        if (mode === 'close-before-welcome') { ws.close(1011, 'not today'); return; }
        if (mode === 'no-welcome') return;
        ws.send(JSON.stringify({ type: 'welcome', schema_version: 1, session: 's1', server: 'fake', config: { callTimeoutMs: 30000 } }));
      } else if (m.method) {
        if (mode === 'close-during-call') ws.close(1001, 'going away');
        // 'silent': never answers
      }
    });
  });
  const port = wss.address().port;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    seen,
    close: () => new Promise((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close(r);
    }),
  };
}

// ---- shared fixtures -------------------------------------------------------

let avd;
let backend;
let emptyRuntime;

before(async () => {
  emptyRuntime = tmpDir('avdctl-test-empty-');
  avd = await startAvd();
  backend = await startBackend(avd);
});

after(async () => {
  if (backend) backend.close();
  if (avd) await avd.stop();
});

function auth() {
  return ['--url', avd.wsUrl, '--token', avd.token];
}

// ---- the command line itself ----------------------------------------------

test('--version prints the version and exits 0', T, async () => {
  const r = await runCtl(['--version']);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^avdctl \d+\.\d+\.\d+\n$/);
});

test('--help lists the commands, options and exit statuses of the man page', T, async () => {
  const r = await runCtl(['--help']);
  assert.equal(r.code, 0, show(r));
  const man = fs.readFileSync(path.join(SRC, 'avdctl', 'avdctl.1'), 'utf8')
    .replace(/\\-/g, '-').replace(/\\f[BIRP]/g, '');
  const opts = (s) => new Set(s.match(/--[a-z][a-z-]+/g));
  assert.deepEqual([...opts(r.stdout)].sort(), [...opts(man)].sort(), 'the same long options');
  for (const cmd of ['call', 'emit', 'sub', 'sessions', 'methods', 'stats', 'health']) {
    assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `help lists ${cmd}`);
    assert.match(man, new RegExp(`^\\.(B|BI) "?${cmd}\\b`, 'm'), `man page lists ${cmd}`);
  }
  // the exit status table: the same numbers, in the same order
  const helpCodes = r.stdout.split('Exit status:')[1].match(/^ {2}(\d+)/gm).map((s) => Number(s));
  const manCodes = man.split('.SH EXIT STATUS')[1].split('.SH')[0]
    .match(/^\.B (\d+)$/gm).map((s) => Number(s.slice(3)));
  assert.deepEqual(helpCodes, manCodes);
  assert.deepEqual(helpCodes, [0, 1, 2, 3, 4, 5, 130]);
  for (const env of ['AVD_URL', 'AVD_TOKEN', 'XDG_RUNTIME_DIR']) {
    assert.ok(r.stdout.includes(env) && man.includes(env), `both mention ${env}`);
  }
});

test('usage errors exit 2 with a message on stderr', T, async () => {
  for (const args of [[], ['bogus'], ['call'], ['call', 'a', '{bad'], ['call', 'a', '1', '2'],
    ['emit'], ['sub'], ['stats', 'extra'], ['--timeout', 'abc', 'stats'], ['--timeout', '-1', 'stats'],
    ['--nope', 'stats'], ['--url'], ['--url', 'ftp://x', 'stats'], ['--url', 'ws://h:99999/ws', 'stats']]) {
    const r = await runCtl(args);
    assert.equal(r.code, 2, `${JSON.stringify(args)}: ${show(r)}`);
    assert.match(r.stderr, /^avdctl: /, `${JSON.stringify(args)}: a message`);
    assert.equal(r.stdout, '', `${JSON.stringify(args)}: nothing on stdout`);
  }
});

// ---- call ------------------------------------------------------------------

test('call prints the result as compact JSON and exits 0', T, async () => {
  const params = { text: '你好', n: [1, 2, { deep: null }] };
  const r = await runCtl([...auth(), 'call', 'api.echo', JSON.stringify(params)]);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, JSON.stringify(params) + '\n', 'one compact line when stdout is not a terminal');
  const seen = backend.calls.filter((m) => m.method === 'api.echo').pop();
  assert.deepEqual(seen.params, params, 'the backend got the params');
});

test('call sends --timeout as timeout_ms; no params means none', T, async () => {
  const before_ = backend.calls.length;
  const r = await runCtl([...auth(), '--timeout', '4321', 'call', 'api.echo']);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout, 'null\n');
  const seen = backend.calls.slice(before_).find((m) => m.method === 'api.echo');
  assert.ok(seen, 'the backend got the call');
  assert.equal(seen.timeout_ms, 4321);
  assert.ok(seen.params === undefined || seen.params === null, `no params: ${JSON.stringify(seen.params)}`);
});

test('call - reads the params from stdin; --pretty indents', T, async () => {
  const r = await runCtl([...auth(), '--pretty', 'call', 'api.echo', '-'], {}, { stdin: '{"a":[1,2]}\n' });
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout, '{\n  "a": [\n    1,\n    2\n  ]\n}\n');
});

test('options may follow the command; -- protects a negative number', T, async () => {
  const r = await runCtl(['call', 'api.echo', '--url', avd.wsUrl, '--token', avd.token, '--', '-5']);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout, '-5\n');
});

test('a callee error goes to stderr as JSON, exit 1', T, async () => {
  const r = await runCtl([...auth(), 'call', 'api.fail', '{}']);
  assert.equal(r.code, 1, show(r));
  assert.equal(r.stdout, '');
  const err = stderrError(r);
  assert.deepEqual(err, { code: 'BOOM', name: 'Boom', message: 'it broke', data: { x: 1 } });

  const r2 = await runCtl([...auth(), 'call', 'api.failnocode']);
  assert.equal(r2.code, 1, show(r2));
  assert.equal(stderrError(r2).code, 'BACKEND_ERROR', 'avd adds BACKEND_ERROR');
});

test('METHOD_NOT_FOUND at once, exit 1', T, async () => {
  const r = await runCtl([...auth(), 'call', 'api.nobody', '{}']);
  assert.equal(r.code, 1, show(r));
  const err = stderrError(r);
  assert.equal(err.code, 'METHOD_NOT_FOUND');
  assert.equal(err.data.method, 'api.nobody');
  assert.ok(r.ms < 3000, `fast, not a timeout (${r.ms} ms)`);
});

test('avd\'s TIMEOUT exits 4 with the error on stderr', T, async () => {
  const r = await runCtl([...auth(), '--timeout', '300', 'call', 'api.hang']);
  assert.equal(r.code, 4, show(r));
  const err = stderrError(r);
  assert.equal(err.code, 'TIMEOUT', 'the error users see is avd\'s, not avdctl\'s');
  assert.equal(err.data.timeout_ms, 300);
  assert.ok(r.ms >= 300 && r.ms < 5000, `took ${r.ms} ms`);
});

test('streamed chunks are printed as {"chunk":...} lines before the result', T, async () => {
  const r = await runCtl([...auth(), 'call', 'api.stream']);
  assert.equal(r.code, 0, show(r));
  assert.deepEqual(r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)), [
    { chunk: { delta: 'part0' } }, { chunk: { delta: 'part1' } }, { chunk: { delta: 'part2' } },
    { done: true },
  ]);
});

test('every chunk re-arms avdctl\'s own wait, as it does avd\'s', T, async () => {
  // 12 chunks 150 ms apart: 1.8 s in all, never 300 ms of silence.  avdctl
  // would give up at 1.3 s if it counted from the start.
  const r = await runCtl([...auth(), '--timeout', '300', 'call', 'api.slowstream', '{"n":12,"every":150}']);
  assert.equal(r.code, 0, show(r));
  const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 13);
  assert.deepEqual(lines[12], 'finished');
  assert.deepEqual(lines[5], { chunk: 5 });
});

test('a large result is reassembled intact, NUL and all', T, async () => {
  const r = await runCtl([...auth(), 'call', 'api.big', '{"n":700000}'], {}, { timeoutMs: 15000 });
  assert.equal(r.code, 0, show({ ...r, stdout: r.stdout.slice(0, 100) }));
  const v = JSON.parse(r.stdout);
  assert.equal(v.s.length, 700000);
  assert.equal(v.nul, 'a\u0000b');
  assert.equal(v.e, '😀');
});

test('params over avd\'s limit: PAYLOAD_TOO_LARGE, exit 1', T, async () => {
  const big = JSON.stringify({ s: 'y'.repeat(1100000) });
  const r = await runCtl([...auth(), 'call', 'api.echo', '-'], {}, { stdin: big });
  assert.equal(r.code, 1, show({ ...r, stdout: '' }));
  assert.equal(stderrError(r).code, 'PAYLOAD_TOO_LARGE');
});

test('SIGINT during a call exits 130 and avd cancels it at the callee', T, async () => {
  const c = spawnCtl([...auth(), 'call', 'api.hang', '{"tag":"sigint"}']);
  await until(() => backend.calls.find((m) => m.params && m.params.tag === 'sigint'), 5000, 'the call to reach the backend');
  const fwd = backend.calls.find((m) => m.params && m.params.tag === 'sigint');
  c.proc.kill('SIGINT');
  const { code } = await withTimeout(c.exited, 5000, 'avdctl to exit');
  assert.equal(code, 130, `stderr ${c.stderr}`);
  await until(() => backend.cancels.find((m) => m.id === fwd.id), 3000, 'a cancel at the callee');
  assert.equal(backend.cancels.find((m) => m.id === fwd.id).reason, 'caller_gone');
});

// ---- emit and sub -----------------------------------------------------------

test('emit publishes; a subscriber gets the event; exit 0', T, async () => {
  const sub = await connect(avd, { name: 'watcher' });
  try {
    const r0 = await sub.call('avd.subscribe', { events: ['progress'] });
    assert.equal(r0.ok, true);
    const r = await runCtl([...auth(), 'emit', 'progress', '{"pct":40}']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '');
    const ev = await until(() => sub.events.find((e) => e.event === 'progress'), 3000, 'the event');
    assert.deepEqual(ev.data, { pct: 40 });
    assert.equal(typeof ev.from, 'string');
    assert.notEqual(ev.from, sub.session);

    const r2 = await runCtl([...auth(), 'emit', 'progress']);
    assert.equal(r2.code, 0, show(r2));
    const ev2 = await until(() => sub.events.filter((e) => e.event === 'progress')[1], 3000, 'the second event');
    assert.deepEqual(ev2.data, {}, 'no data: avd sends {}');
  } finally {
    sub.close();
  }
});

test('emit of a bad event name: INVALID_REQUEST on stderr, exit 1', T, async () => {
  const r = await runCtl([...auth(), 'emit', 'bad name!', '{}']);
  assert.equal(r.code, 1, show(r));
  assert.equal(stderrError(r).code, 'INVALID_REQUEST');
});

// Waits until avd shows an avdctl session subscribed to exactly patterns.
async function waitSubscribed(probe, patterns, known = new Set()) {
  return until(async () => {
    const r = await probe.call('avd.sessions');
    return r.result.sessions.find((s) => s.name === 'avdctl' && !known.has(s.session) &&
      JSON.stringify([...s.subscriptions].sort()) === JSON.stringify([...patterns].sort()));
  }, 5000, `an avdctl session subscribed to ${patterns}`);
}

test('sub prints matching events as JSON lines; SIGINT exits 0', T, async () => {
  const pub = await connect(avd, { name: 'publisher' });
  const c = spawnCtl([...auth(), 'sub', 'prog*', 'other']);
  try {
    await waitSubscribed(pub, ['prog*', 'other']);
    pub.send({ type: 'event', event: 'progress', data: { pct: 1 } });
    pub.send({ type: 'event', event: 'unrelated', data: { no: true } });
    pub.send({ type: 'event', event: 'other', data: [1, 'two'] });
    pub.send({ type: 'event', event: 'progress.more', detail: { alias: true } });
    await until(() => c.stdout.split('\n').length > 3, 5000, 'three lines from sub');
    const lines = c.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { event: 'progress', data: { pct: 1 }, from: pub.session },
      { event: 'other', data: [1, 'two'], from: pub.session },
      { event: 'progress.more', data: { alias: true }, from: pub.session },
    ]);
    c.proc.kill('SIGINT');
    const { code, signal } = await withTimeout(c.exited, 5000, 'sub to exit after SIGINT');
    assert.equal(signal, null);
    assert.equal(code, 0, `stderr ${c.stderr}`);
  } finally {
    pub.close();
  }
});

test('sub ends with 0 on SIGTERM and shows system events only when asked', T, async () => {
  const probe = await connect(avd, { name: 'probe' });
  const c = spawnCtl([...auth(), 'sub', 'avd:session_*']);
  try {
    await waitSubscribed(probe, ['avd:session_*']);
    const other = await connect(avd, { name: 'newcomer' });
    other.close();
    await until(() => c.stdout.includes('session_left'), 5000, 'join and leave events');
    const lines = c.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    const joined = lines.find((l) => l.event === 'avd:session_joined' && l.data.name === 'newcomer');
    assert.ok(joined, c.stdout);
    assert.equal(joined.from, null, 'avd\'s own events have from null');
    assert.ok(!lines.some((l) => l.event.startsWith('backend_')), 'no unasked system events');
    c.proc.kill('SIGTERM');
    const { code } = await withTimeout(c.exited, 5000, 'sub to exit after SIGTERM');
    assert.equal(code, 0, `stderr ${c.stderr}`);
  } finally {
    probe.close();
  }
});

test('sub exits 5 when avd goes away', T, async () => {
  const own = await startAvd();
  const probe = await connect(own, { name: 'probe' });
  const c = spawnCtl(['--url', own.wsUrl, '--token', own.token, 'sub', '*']);
  try {
    await waitSubscribed(probe, ['*']);
    probe.close();
    await own.stop();
    const { code } = await withTimeout(c.exited, 5000, 'sub to notice');
    assert.equal(code, 5, `stderr ${c.stderr}`);
    assert.match(c.stderr, /^avdctl: connection to avd .* lost/m);
  } finally {
    c.proc.kill('SIGKILL');
    await own.stop();
  }
});

// ---- sessions, methods, stats, health ---------------------------------------

test('sessions, methods and stats print avd\'s answers as JSON', T, async () => {
  const s = await runCtl([...auth(), 'sessions']);
  assert.equal(s.code, 0, show(s));
  const sessions = JSON.parse(s.stdout).sessions;
  assert.ok(sessions.some((x) => x.session === backend.session && x.name === 'nodeback' && x.role === 'backend'));
  assert.ok(sessions.some((x) => x.name === 'avdctl' && x.role === 'frontend'), 'avdctl itself, a frontend');

  const m = await runCtl([...auth(), 'methods']);
  assert.equal(m.code, 0, show(m));
  const methods = JSON.parse(m.stdout).methods;
  assert.deepEqual(methods.filter((x) => x.owner === backend.session).map((x) => x.method).sort(), [...METHODS].sort());

  const st = await runCtl([...auth(), 'stats']);
  assert.equal(st.code, 0, show(st));
  const stats = JSON.parse(st.stdout);
  for (const k of ['sessions', 'calls_started', 'calls_completed', 'events_published']) {
    assert.equal(typeof stats[k], 'number', `stats.${k}`);
  }
  assert.ok(stats.calls_started > 0);
});

test('health prints /healthz and exits 0; nothing there: exit 3', T, async () => {
  // No token at all: /healthz needs none.
  const r = await runCtl(['--url', avd.wsUrl, 'health']);
  assert.equal(r.code, 0, show(r));
  const h = JSON.parse(r.stdout);
  assert.equal(h.status, 'ok');
  assert.equal(typeof h.sessions, 'number');

  const dead = await runCtl(['--url', `ws://127.0.0.1:${await deadPort()}/ws`, 'health']);
  assert.equal(dead.code, 3, show(dead));
  assert.match(dead.stderr, /^avdctl: cannot connect/);
});

// ---- connecting ----------------------------------------------------------------

test('a wrong token in hello: UNAUTHORIZED, exit 3 with a clear message', T, async () => {
  const r = await runCtl(['--url', avd.wsUrl, '--token', 'deadbeef', 'stats']);
  assert.equal(r.code, 3, show(r));
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^avdctl: .*refused the token from --token .*UNAUTHORIZED/);

  const env = await runCtl(['stats'], { AVD_URL: avd.wsUrl, AVD_TOKEN: 'deadbeef' });
  assert.equal(env.code, 3, show(env));
  assert.match(env.stderr, /AVD_TOKEN.*UNAUTHORIZED/);

  const none = await runCtl(['--url', avd.wsUrl, 'stats']);
  assert.equal(none.code, 3, show(none));
  assert.match(none.stderr, /wants a token/);
});

test('a wrong token in the URL: HTTP 401, exit 3, the token not echoed', T, async () => {
  const r = await runCtl(['--url', `${avd.wsUrl}?token=wrongwrong`, 'stats']);
  assert.equal(r.code, 3, show(r));
  assert.match(r.stderr, /401/);
  assert.ok(!r.stderr.includes('wrongwrong'), 'the token stays out of the message');
});

test('the address avd prints (http://...:PORT/?token=T) works as --url', T, async () => {
  const r = await runCtl(['--url', avd.line, 'stats']);
  assert.equal(r.code, 0, show(r));
  assert.equal(typeof JSON.parse(r.stdout).sessions, 'number');
});

test('avd not running: exit 3', T, async () => {
  const port = await deadPort();
  const r = await runCtl(['--url', `ws://127.0.0.1:${port}/ws`, '--token', 'x', 'call', 'api.echo']);
  assert.equal(r.code, 3, show(r));
  assert.match(r.stderr, /^avdctl: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws/);
  assert.ok(r.ms < 5000, `quick (${r.ms} ms)`);

  // a stale runtime directory left behind by an avd that is gone
  const stale = tmpDir('avdctl-test-stale-');
  fs.mkdirSync(path.join(stale, 'avd'), { mode: 0o700 });
  fs.writeFileSync(path.join(stale, 'avd', 'url'), `ws://127.0.0.1:${port}/ws\n`);
  fs.writeFileSync(path.join(stale, 'avd', 'token'), 'abc\n', { mode: 0o600 });
  const r2 = await runCtl(['stats'], { XDG_RUNTIME_DIR: stale });
  assert.equal(r2.code, 3, show(r2));
  assert.ok(r2.stderr.includes(`127.0.0.1:${port}`), 'the message names the address it tried');
});

test('discovery: avd\'s runtime files, then AVD_URL/AVD_TOKEN over them, --url/--token over both', T, async () => {
  const r = await runCtl(['stats'], { XDG_RUNTIME_DIR: avd.runtime });
  assert.equal(r.code, 0, show(r));
  assert.equal(typeof JSON.parse(r.stdout).calls_started, 'number');

  const c = await runCtl(['call', 'api.echo', '"found"'], { XDG_RUNTIME_DIR: avd.runtime });
  assert.equal(c.code, 0, show(c));
  assert.equal(c.stdout, '"found"\n');

  const e = await runCtl(['stats'], { AVD_URL: avd.wsUrl, AVD_TOKEN: avd.token });
  assert.equal(e.code, 0, show(e));

  // the environment wins over the files, the options over the environment
  const port = await deadPort();
  const envWins = await runCtl(['stats'], { XDG_RUNTIME_DIR: avd.runtime, AVD_URL: `ws://127.0.0.1:${port}/ws` });
  assert.equal(envWins.code, 3, show(envWins));
  const optWins = await runCtl(['--url', avd.wsUrl, '--token', avd.token, 'stats'],
    { AVD_URL: `ws://127.0.0.1:${port}/ws`, AVD_TOKEN: 'nope' });
  assert.equal(optWins.code, 0, show(optWins));
});

test('a runtime directory open to others is ignored', T, async () => {
  const loose = tmpDir('avdctl-test-loose-');
  fs.mkdirSync(path.join(loose, 'avd'));
  fs.copyFileSync(path.join(avd.runtime, 'avd', 'url'), path.join(loose, 'avd', 'url'));
  fs.copyFileSync(path.join(avd.runtime, 'avd', 'token'), path.join(loose, 'avd', 'token'));
  fs.chmodSync(path.join(loose, 'avd'), 0o777);
  // falls back to the default address, where no avd of ours listens
  const r = await runCtl(['--timeout', '2000', 'health'], { XDG_RUNTIME_DIR: loose });
  assert.match(r.stderr, /^avdctl: ignoring .*\/avd: not a private directory/m);
  assert.ok(!r.stderr.includes(`127.0.0.1:${avd.port}`), 'the loose directory\'s address was not used');
});

// ---- against a fake avd ----------------------------------------------------------

test('avdctl sends the hello of the spec', T, async () => {
  const fake = await fakeAvd('silent');
  try {
    const r = await runCtl(['--url', fake.url, '--token', 'tok123', '--timeout', '200', 'call', 'x.y', '{"a":1}']);
    const hello = fake.seen[0];
    assert.deepEqual(hello, { type: 'hello', schema_version: 1, role: 'frontend', name: 'avdctl', token: 'tok123' });
    assert.deepEqual(fake.seen[1], { id: fake.seen[1].id, method: 'x.y', params: { a: 1 }, timeout_ms: 200 });
    // and when avd stays silent past its own timeout, avdctl's wait ends: 4
    assert.equal(r.code, 4, show(r));
    assert.match(r.stderr, /^avdctl: no answer to x\.y from avd within 1200 ms/);
    assert.ok(r.ms >= 1200 && r.ms < 5000, `gave avd its 200 ms and 1000 more (${r.ms} ms)`);
  } finally {
    await fake.close();
  }
});

test('emit and sub wait --timeout ms for avd\'s answer, then exit 4', T, async () => {
  const fake = await fakeAvd('silent');
  try {
    for (const args of [['emit', 'progress'], ['sub', 'progress']]) {
      const r = await runCtl(['--url', fake.url, '--timeout', '300', ...args]);
      assert.equal(r.code, 4, `${args[0]}: ${show(r)}`);
      assert.match(r.stderr, /^avdctl: no answer from avd within 300 ms/);
      assert.ok(r.ms >= 300 && r.ms < 4000, `${args[0]}: ${r.ms} ms`);
    }
    const sub = fake.seen.find((m) => m.method === 'avd.subscribe');
    assert.deepEqual(sub.params, { events: ['progress'] }, 'sub subscribes with avd.subscribe');
  } finally {
    await fake.close();
  }
});

test('health of an avd that is not ok: exit 1, the body still printed', T, async () => {
  const http = require('node:http');
  const srv = http.createServer((req, res) => {
    assert.equal(req.url, '/healthz');
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"status":"stopping","sessions":0,"backends":0}\n');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const r = await runCtl(['--url', `ws://127.0.0.1:${srv.address().port}/ws`, 'health']);
    assert.equal(r.code, 1, show(r));
    assert.deepEqual(JSON.parse(r.stdout), { status: 'stopping', sessions: 0, backends: 0 });
    assert.match(r.stderr, /^avdctl: .*not healthy \(HTTP 503, status stopping\)/);
  } finally {
    await new Promise((r) => srv.close(r));
  }
});

test('no welcome within 5 s, or a close before it: exit 3', T, async () => {
  const fake = await fakeAvd('close-before-welcome');
  try {
    const r = await runCtl(['--url', fake.url, 'stats']);
    assert.equal(r.code, 3, show(r));
    assert.match(r.stderr, /closed the connection before welcome \(close 1011: not today\)/);
  } finally {
    await fake.close();
  }
  const mute = await fakeAvd('no-welcome');
  try {
    const r = await runCtl(['--url', mute.url, 'stats']);
    assert.equal(r.code, 3, show(r));
    assert.match(r.stderr, /no welcome/);
    assert.ok(r.ms >= 4900 && r.ms < 8000, `${r.ms} ms`);
  } finally {
    await mute.close();
  }
});

test('the connection dropping during a call: exit 5', T, async () => {
  const fake = await fakeAvd('close-during-call');
  try {
    const r = await runCtl(['--url', fake.url, 'call', 'x.y']);
    assert.equal(r.code, 5, show(r));
    assert.match(r.stderr, /lost \(close 1001: going away\)/);
  } finally {
    await fake.close();
  }
});
