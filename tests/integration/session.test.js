'use strict';
// PROTOCOL.md section 2: session start over WebSocket.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  Client, startAvd, scope, isEvent, assertError, sleep, uniq,
} = require('./lib/harness');

const T = { timeout: 15000 };

describe('session start (hello/welcome)', () => {
  let avd;
  before(async () => {
    avd = await startAvd([
      '--call-timeout-ms', '12345',
      '--heartbeat-interval-ms', '1500',
      '--heartbeat-timeout-ms', '4500',
      '--max-message-bytes', '200000',
      '--hello-timeout-ms', '300',
    ]);
  });
  after(async () => { if (avd) await avd.stop(); });

  test('welcome carries schema_version, session, server, heartbeat interval and config from flags', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd, { name: 'console' });
    const w = c.welcome;
    assert.equal(w.type, 'welcome');
    assert.equal(w.schema_version, 1);
    assert.equal(typeof w.session, 'string');
    assert.ok(w.session.length > 0, 'session id is not empty');
    assert.match(w.server, /^avd\/\d+\.\d+\.\d+/);
    assert.equal(w.heartbeat_interval_ms, 1500);
    assert.ok(w.config && typeof w.config === 'object', 'welcome.config is an object');
    assert.equal(w.config.callTimeoutMs, 12345);
    assert.equal(w.config.backendFailFast, true);
    assert.equal(w.config.heartbeatTimeoutMs, 4500);
    assert.equal(w.config.maxMessageBytes, 200000);
  });

  test('each session gets a distinct session id', T, async (t) => {
    const s = scope(t);
    const a = await s.client(avd);
    const b = await s.client(avd);
    const c = await s.client(avd, { role: 'backend' });
    assert.equal(new Set([a.session, b.session, c.session]).size, 3);
  });

  test('the avd.v1 subprotocol offered by a client is selected', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    assert.equal(c.ws.protocol, 'avd.v1');
  });

  test('a client offering no subprotocol is accepted', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd, { protocol: null });
    assert.equal(c.welcome.type, 'welcome');
    const stats = await c.callOk('avd.stats');
    assert.equal(typeof stats.sessions, 'number');
  });

  test('role defaults to frontend, a backend name defaults to backend-<session>', T, async (t) => {
    const s = scope(t);
    const f = await s.client(avd, { name: 'my-console' });
    const b = await s.client(avd, { role: 'backend' });
    const res = await f.callOk('avd.sessions');
    assert.ok(Array.isArray(res.sessions), 'avd.sessions result has a sessions array');
    const fe = res.sessions.find((x) => x.session === f.session);
    const be = res.sessions.find((x) => x.session === b.session);
    assert.ok(fe, 'frontend listed by avd.sessions');
    assert.ok(be, 'backend listed by avd.sessions');
    assert.equal(fe.role, 'frontend');
    assert.equal(fe.name, 'my-console');
    assert.equal(be.role, 'backend');
    assert.equal(be.name, `backend-${b.session}`);
  });

  test('avd.sessions entries carry the documented fields', T, async (t) => {
    const s = scope(t);
    const m = uniq('sess.m');
    const ev = uniq('sess.ev');
    const c = await s.client(avd, { role: 'backend', name: 'fields-backend', subscribe: [ev] });
    await c.callOk('avd.register', { methods: [m] });
    const res = await c.callOk('avd.sessions');
    const me = res.sessions.find((x) => x.session === c.session);
    assert.ok(me, 'own session listed');
    assert.equal(me.role, 'backend');
    assert.equal(me.name, 'fields-backend');
    assert.equal(typeof me.transport, 'string');
    assert.equal(typeof me.health, 'string');
    assert.equal(typeof me.queue_bytes, 'number');
    assert.equal(typeof me.pending_calls, 'number');
    assert.deepEqual(me.methods, [m]);
    assert.deepEqual(me.subscriptions, [ev]);
  });

  test('token in hello instead of the URL is accepted', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd, { urlToken: false, token: avd.token });
    assert.equal(c.welcome.type, 'welcome');
    const stats = await c.callOk('avd.stats');
    assert.equal(typeof stats.sessions, 'number');
  });

  test('bad token in the URL gets HTTP 401 at the upgrade', T, async () => {
    const status = await Client.upgradeStatus(avd, { urlToken: 'deadbeef'.repeat(4) });
    assert.equal(status, 401);
  });

  test('an empty token in the URL gets HTTP 401', T, async () => {
    assert.equal(await Client.upgradeStatus(avd, { urlToken: '' }), 401);
  });

  test('token of the wrong length in the URL gets HTTP 401', T, async () => {
    assert.equal(await Client.upgradeStatus(avd, { urlToken: avd.token + '00' }), 401);
    assert.equal(await Client.upgradeStatus(avd, { urlToken: avd.token.slice(0, -1) }), 401);
  });

  test('bad token in hello gets UNAUTHORIZED and close 1008', T, async (t) => {
    const s = scope(t);
    const c = await s.open(avd, { urlToken: false });
    c.send({ type: 'hello', schema_version: 1, token: '0'.repeat(32) });
    const e = await c.next((m) => m.type === 'error' || m.type === 'welcome', 2000);
    assert.equal(e.type, 'error', `expected an error, got ${JSON.stringify(e)}`);
    assertError(e.error, 'UNAUTHORIZED', 'hello with bad token');
    const cl = await c.waitClose(2000);
    assert.equal(cl.code, 1008);
  });

  test('no token at all (neither URL nor hello) gets UNAUTHORIZED and close 1008', T, async (t) => {
    const s = scope(t);
    const c = await s.open(avd, { urlToken: false });
    c.send({ type: 'hello', schema_version: 1 });
    const e = await c.next((m) => m.type === 'error' || m.type === 'welcome', 2000);
    assert.equal(e.type, 'error', `expected an error, got ${JSON.stringify(e)}`);
    assertError(e.error, 'UNAUTHORIZED', 'hello without token');
    const cl = await c.waitClose(2000);
    assert.equal(cl.code, 1008);
  });

  test('schema_version 2 gets UNSUPPORTED_SCHEMA and close 1002', T, async (t) => {
    const s = scope(t);
    const c = await s.open(avd);
    c.send({ type: 'hello', schema_version: 2 });
    const e = await c.next((m) => m.type === 'error' || m.type === 'welcome', 2000);
    assert.equal(e.type, 'error', `expected an error, got ${JSON.stringify(e)}`);
    assertError(e.error, 'UNSUPPORTED_SCHEMA', 'hello schema_version 2');
    const cl = await c.waitClose(2000);
    assert.equal(cl.code, 1002);
  });

  test('a first message that is not hello gets INVALID_REQUEST and close 1008', T, async (t) => {
    const s = scope(t);
    const c = await s.open(avd);
    c.send({ id: 1, method: 'avd.stats' });
    const e = await c.next((m) => m.type === 'error' || 'id' in m, 2000);
    assert.equal(e.type, 'error', `expected a typed error, got ${JSON.stringify(e)}`);
    assertError(e.error, 'INVALID_REQUEST', 'call before hello');
    const cl = await c.waitClose(2000);
    assert.equal(cl.code, 1008);
    assert.equal(c.log.some((m) => m.type === 'welcome'), false, 'no welcome was sent');
  });

  test('no hello within --hello-timeout-ms gets INVALID_REQUEST and close 1008', T, async (t) => {
    const s = scope(t);
    const t0 = Date.now();
    const c = await s.open(avd);
    const e = await c.next((m) => m.type === 'error', 3000);
    const elapsed = Date.now() - t0;
    assertError(e.error, 'INVALID_REQUEST', 'hello timeout');
    const cl = await c.waitClose(2000);
    assert.equal(cl.code, 1008);
    assert.ok(elapsed >= 250, `hello timeout fired too early (${elapsed} ms, configured 300)`);
    assert.ok(elapsed < 2000, `hello timeout fired too late (${elapsed} ms, configured 300)`);
  });

  test('a failed handshake does not disturb other sessions', T, async (t) => {
    const s = scope(t);
    const good = await s.client(avd);
    const bad = await s.open(avd);
    bad.send({ type: 'hello', schema_version: 7 });
    await bad.waitClose(2000);
    const stats = await good.callOk('avd.stats');
    assert.equal(typeof stats.sessions, 'number');
  });

  test('hello subscribe list is applied', T, async (t) => {
    const s = scope(t);
    const ev = uniq('hello.sub');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: ev, data: { n: 1 } });
    const got = await sub.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(got.data, { n: 1 });
  });
});

describe('late-joining frontend gets the present backend state', () => {
  test('a late frontend gets backend_ready for a ready backend', T, async (t) => {
    const s = scope(t);
    const avd = await s.avd();
    const name = uniq('late-be');
    const m = uniq('late.m');
    const be = await s.client(avd, { role: 'backend', name });
    be.send({ type: 'ready', handlers: [m] });
    // avd handles a session's messages in order: this answer means the ready
    // was processed, and then the handler is callable from another session.
    await be.callOk('avd.methods');
    const probe = await s.client(avd);
    be.serve(m, () => 'pong');
    assert.equal(await probe.callOk(m), 'pong');

    const fe = await s.client(avd);
    const ev = await fe.next((x) => isEvent(x, 'backend_ready'), 2000);
    assert.equal(ev.data.backend, name);
    assert.equal(ev.data.session, be.session);
    assert.deepEqual(ev.data.handlers, [m]);
    assert.equal(ev.data.schema_version, 1);
    // exactly one for this backend
    await fe.expectNone((x) => isEvent(x, 'backend_ready') && x.data && x.data.session === be.session, 200,
      'second backend_ready for the same backend');
  });

  test('a late frontend gets backend_health unhealthy for an unhealthy backend', T, async (t) => {
    const s = scope(t);
    const avd = await s.avd(['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '300']);
    const name = uniq('sick-be');
    const watcher = await s.client(avd);
    const be = await s.client(avd, { role: 'backend', name, autoPong: false });
    be.send({ type: 'ready', handlers: [uniq('sick.m')] });
    await watcher.next((x) => isEvent(x, 'backend_health') && x.data.session === be.session &&
      x.data.status === 'unhealthy', 3000, 'backend_health unhealthy on the watcher');

    const fe = await s.client(avd);
    const ev = await fe.next((x) => isEvent(x, 'backend_health') && x.data.session === be.session, 2000,
      'backend_health for the sick backend on the late frontend');
    assert.equal(ev.data.status, 'unhealthy');
    assert.equal(ev.data.backend, name);
    assert.equal(typeof ev.data.ts, 'number');
    assert.equal(ev.data.schema_version, 1);
  });

  test('a late frontend gets no backend_ready for a backend that never sent ready', T, async (t) => {
    const s = scope(t);
    const avd = await s.avd();
    const be = await s.client(avd, { role: 'backend', name: uniq('notready') });
    await be.callOk('avd.stats');
    const fe = await s.client(avd);
    await fe.expectNone((x) => isEvent(x, 'backend_ready'), 300, 'backend_ready for a backend that is not ready');
  });
});

test('welcome is the first message a session receives', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const be = await s.client(avd, { role: 'backend' });
  be.send({ type: 'ready', handlers: [uniq('first.m')] });
  await sleep(100);
  const fe = await s.client(avd);
  assert.equal(fe.log[0].type, 'welcome', `first message was ${JSON.stringify(fe.log[0])}`);
});
