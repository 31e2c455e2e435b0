'use strict';
// avd as a long-running service: dead peers, /metrics, SIGHUP reload,
// --check-config, the unix socket and machine-readable logs.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const {
  scope, uniq, httpGet, runAvd, isEvent, assertErrorResponse, sleep,
} = require('./lib/harness');

function tmpdir(t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-svc-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function rawPeer(port, payload) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      if (payload) s.write(payload);
      s.destroy();
      resolve();
    });
    s.on('error', resolve);
  });
}

test('peers that connect and vanish mid-handshake never disturb avd', async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const fe = await s.client(avd);
  const payloads = [null, 'GET /he', 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n',
    '\x16\x03\x01\x00\x05hello', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'];
  for (let round = 0; round < 20; round++) {
    await Promise.all(payloads.map((p) => rawPeer(avd.port, p)));
  }
  await sleep(100);
  const st = await fe.callOk('avd.stats');
  assert.equal(st.sessions, 1, 'only the real client is a session');
  const h = await httpGet(avd, '/healthz');
  assert.equal(h.status, 200);
});

// Parse Prometheus text: {name{labels}: value}, checking every line's shape.
function parseProm(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

test('/metrics needs the token, parses as Prometheus text, and its counters move', async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  assert.equal((await httpGet(avd, '/metrics')).status, 401);
  assert.equal((await httpGet(avd, '/metrics?token=wrong')).status, 401);
  const before = parseProm((await httpGet(avd, `/metrics?token=${avd.token}`)).body);
  assert.equal(before['avd_sessions{role="frontend"}'], 0);

  const be = await s.client(avd, { role: 'backend' });
  const m = uniq('api.m');
  await be.callOk('avd.register', { methods: [m] });
  be.serve(m, (params) => ({ ok: true, result: params }));
  const fe = await s.client(avd, { subscribe: ['tick'] });
  const pub = await s.client(avd);
  for (let i = 0; i < 5; i++) assert.equal((await fe.call(m, { i })).ok, true);
  assertErrorResponse(await fe.call('api.nobody'), 'METHOD_NOT_FOUND');
  pub.send({ type: 'event', event: 'tick', data: {} });
  await fe.next((x) => isEvent(x, 'tick'));

  const res = await httpGet(avd, '/metrics', { Authorization: `Bearer ${avd.token}` });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const after = parseProm(res.body);
  assert.equal(after['avd_sessions{role="frontend"}'], 2);
  assert.equal(after['avd_sessions{role="backend"}'], 1);
  assert.equal(after.avd_calls_completed_total - before.avd_calls_completed_total, 5);
  assert.equal(after['avd_calls_failed_by_code_total{code="METHOD_NOT_FOUND"}'], 1);
  assert.equal(after.avd_events_published_total, 1);
  assert.ok(after.avd_events_delivered_total >= 1);
  assert.ok(after.avd_bytes_in_total > before.avd_bytes_in_total);
  assert.equal(after.avd_call_duration_seconds_count, 5);
  assert.equal(after['avd_call_duration_seconds_bucket{le="+Inf"}'], 5);
  // avd.stats carries the same figures.
  const st = await fe.callOk('avd.stats');
  assert.equal(st.calls_completed, after.avd_calls_completed_total);
  assert.equal(st.call_latency.count, 5);
  assert.equal(st.failed_by_code.METHOD_NOT_FOUND, 1);
});

test('--check-config names every problem with its key and exits 2; a good file exits 0', async (t) => {
  const dir = tmpdir(t);
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({
    port: '80', heartbeat_intervl_ms: 5, log_level: 'loud',
    backends: [{ name: 'a' }, { name: 'b', command: 'x', restart: 'sometimes' }],
  }));
  const r = await runAvd(['--check-config', bad]);
  assert.equal(r.code, 2);
  for (const key of ['"port"', 'heartbeat_intervl_ms', '"log_level"', 'backends[0].command',
    'backends[1].restart']) {
    assert.ok(r.stderr.includes(key), `problem with ${key} reported:\n${r.stderr}`);
  }
  const good = path.join(dir, 'good.json');
  fs.writeFileSync(good, JSON.stringify({ port: 7777, log_level: 'warn' }));
  const g = await runAvd(['--check-config', good]);
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stdout, /OK/);
  const broken = path.join(dir, 'broken.json');
  fs.writeFileSync(broken, '{"port": ');
  const b = await runAvd(['--check-config', broken]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /broken\.json:1:/);
});

test('SIGHUP reload changes the log level and starts a newly added backend', async (t) => {
  const s = scope(t);
  const dir = tmpdir(t);
  const cfg = path.join(dir, 'avd.json');
  const backend = path.join(dir, 'hup_backend.py');
  fs.writeFileSync(backend, [
    'import json, sys',
    'print(json.dumps({"type": "ready", "handlers": ["hup.ping"]}), flush=True)',
    'for line in sys.stdin:',
    '    m = json.loads(line)',
    '    if "method" in m:',
    '        print(json.dumps({"id": m["id"], "ok": True, "result": "pong"}), flush=True)',
  ].join('\n') + '\n');
  fs.writeFileSync(cfg, JSON.stringify({ log_level: 'info' }));
  const avd = await s.avd(['--config', cfg]);
  const fe = await s.client(avd);
  assertErrorResponse(await fe.call('hup.ping'), 'METHOD_NOT_FOUND');
  assert.doesNotMatch(avd.stderr(), /debug:/);

  fs.writeFileSync(cfg, JSON.stringify({
    log_level: 'debug',
    backends: [{ name: 'hup', command: `python3 ${backend}` }],
  }));
  avd.proc.kill('SIGHUP');
  const ready = await fe.next((x) => isEvent(x, 'backend_ready') && x.data.backend === 'hup', 5000);
  assert.deepEqual(ready.data.handlers, ['hup.ping']);
  const res = await fe.call('hup.ping');
  assert.equal(res.result, 'pong');
  fe.send({ id: 'nobody-asked', ok: true, result: 1 }); // avd logs this at debug
  await sleep(100);
  assert.match(avd.stderr(), /reload: applied: log_level/);
  assert.match(avd.stderr(), /debug:/, 'debug lines appear after the reload');

  // A broken file is refused and the running configuration stays.
  fs.writeFileSync(cfg, '{"port": "x"}');
  avd.proc.kill('SIGHUP');
  await sleep(300);
  assert.match(avd.stderr(), /the running configuration stays/);
  assert.equal((await fe.call('hup.ping')).result, 'pong');
});

test('--log-format json writes one JSON object per line', async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--log-format', 'json']);
  await s.client(avd, { name: 'json-logger' });
  await sleep(100);
  const lines = avd.stderr().trim().split('\n').filter(Boolean);
  assert.ok(lines.length >= 1);
  for (const line of lines) {
    const j = JSON.parse(line);
    assert.match(j.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(j.level));
    assert.equal(typeof j.msg, 'string');
  }
  assert.ok(lines.some((l) => JSON.parse(l).msg.includes('json-logger')));
});

test('--unix: socket 0600 in a 0700 directory, same-user peers without token, no replacing a live socket', async (t) => {
  const s = scope(t);
  const dir = path.join(tmpdir(t), 'run');
  const sock = path.join(dir, 'avd.sock');
  const avd = await s.avd(['--unix', sock]);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  const st = fs.lstatSync(sock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  // HTTP over the socket.
  const health = await new Promise((resolve, reject) => {
    require('node:http').get({ socketPath: sock, path: '/healthz' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
  assert.equal(health.status, 200);
  // A WebSocket session over the socket, with no token at all.
  const WebSocket = require('ws');
  const ws = new WebSocket('ws+unix://' + sock + ':/ws');
  const welcome = await new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', schema_version: 1, name: 'unix' })));
    ws.on('message', (d) => resolve(JSON.parse(d)));
    ws.on('error', reject);
  });
  assert.equal(welcome.type, 'welcome');
  ws.close();
  // A second avd must not take over the live socket.
  const second = await runAvd(['--port', '0', '--token', 'abcdefgh1234', '--unix', sock]);
  assert.equal(second.code, 2);
  assert.match(second.stderr, /in use/);
  assert.ok(fs.lstatSync(sock).isSocket(), 'the live socket is still there');
  // Another user is refused (only testable as root, with the nobody account).
  if (process.getuid() === 0 && spawnSync('id', ['nobody']).status === 0) {
    fs.chmodSync(dir, 0o711); fs.chmodSync(sock, 0o666); // let it reach connect()
    const r = spawnSync('su', ['nobody', '-s', '/bin/sh', '-c',
      `exec ${process.execPath} -e "const s=require('net').connect('${sock}');` +
      `s.on('connect',()=>s.write('GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));` +
      `s.on('data',d=>{process.stdout.write(d);process.exit(0)});` +
      `s.on('close',()=>{console.log('CLOSED');process.exit(0)});` +
      `s.on('error',e=>{console.log('ERR',e.code);process.exit(0)})"`], { encoding: 'utf8', timeout: 5000 });
    assert.doesNotMatch(r.stdout, /200 OK/, 'a peer of another uid gets no answer');
    assert.match(r.stdout, /CLOSED|ERR/);
    fs.chmodSync(dir, 0o700); fs.chmodSync(sock, 0o600);
  }
});

test('an Origin too long to read is refused with 403, not taken for no Origin', async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const WebSocket = require('ws');
  const status = (origin) => new Promise((resolve) => {
    const ws = new WebSocket(`${avd.wsUrl}?token=${avd.token}`, { origin });
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (req, res) => resolve(res.statusCode));
    ws.on('error', () => resolve(-1));
  });
  assert.equal(await status(`http://${'a'.repeat(300)}.example`), 403);
  assert.equal(await status(`http://${'a'.repeat(2000)}.example`), 403);
  assert.equal(await status(`http://127.0.0.1:${avd.port}`), 101);
});
