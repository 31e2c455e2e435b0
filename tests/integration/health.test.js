'use strict';
// PROTOCOL.md section 5: backend health, heartbeats and fail-fast.
// avd runs with --heartbeat-interval-ms 100 --heartbeat-timeout-ms 400.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isCall, isEvent, assertErrorResponse, sleep, uniq, withTimeout,
} = require('./lib/harness');

const T = { timeout: 15000 };

function healthOf(session, status) {
  return (m) => isEvent(m, 'backend_health') && m.data && m.data.session === session &&
    (status === undefined || m.data.status === status);
}

describe('health with a 100 ms heartbeat interval and 400 ms timeout', () => {
  let avd;
  before(async () => {
    avd = await startAvd(['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '400']);
  });
  after(async () => { if (avd) await avd.stop(); });

  // A ready backend owning method m; autoPong as given.
  async function readyBackend(s, autoPong) {
    const name = uniq('hb-be');
    const m = uniq('hb.m');
    const be = await s.client(avd, { role: 'backend', name, autoPong });
    be.send({ type: 'ready', handlers: [m] });
    // avd handles one session's messages in order, so once this answer is
    // back the ready has been processed and a call from any session routes.
    await be.callOk('avd.methods');
    return { be, m, name };
  }

  test('welcome announces the heartbeat settings', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    assert.equal(fe.welcome.heartbeat_interval_ms, 100);
    assert.equal(fe.welcome.config.heartbeatTimeoutMs, 400);
  });

  test('avd pings a silent backend with __ping__ and an __av_ping_ id', T, async (t) => {
    const s = scope(t);
    const { be } = await readyBackend(s, false);
    const t0 = Date.now();
    const ping = await be.next((m) => isCall(m, '__ping__'), 2000);
    const elapsed = Date.now() - t0;
    assert.match(String(ping.id), /^__av_ping_/);
    assert.equal(typeof ping.id, 'string');
    assert.equal(ping.params.schema_version, 1);
    assert.equal(typeof ping.params.ts, 'number');
    assert.ok(Math.abs(ping.params.ts - Date.now()) < 60000, `ping ts is wall-clock ms (${ping.params.ts})`);
    assert.ok(elapsed < 1000, `first ping after ${elapsed} ms of silence (interval 100)`);
    be.send({ id: ping.id, ok: true, result: { status: 'pong' } });
    await be.expectNone((m) => m.type === 'error', 100, 'the pong was refused');
  });

  test('a backend that answers pings stays healthy over 1.5 s', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const { be, m } = await readyBackend(s, true);
    be.serve(m, () => 'alive');
    await fe.next((x) => isEvent(x, 'backend_ready') && x.data.session === be.session, 2000);
    await sleep(1500);
    assert.ok(be.pings.length >= 3, `avd pinged ${be.pings.length} times in 1.5 s with interval 100`);
    const bad = fe.drain((x) => (healthOf(be.session, 'unhealthy')(x)) ||
      (isEvent(x, 'backend_error') && x.data.session === be.session));
    assert.deepEqual(bad, [], 'no unhealthy/backend_error for a backend answering pings');
    assert.equal(await fe.callOk(m), 'alive');
  });

  test('a silent backend becomes unhealthy: backend_health unhealthy and backend_error heartbeat, fatal false', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const { be, name } = await readyBackend(s, false);
    const t0 = Date.now();
    const h = await fe.next(healthOf(be.session, 'unhealthy'), 3000);
    const elapsed = Date.now() - t0;
    assert.equal(h.data.backend, name);
    assert.equal(typeof h.data.ts, 'number');
    assert.equal(h.data.schema_version, 1);
    assert.ok(elapsed >= 300, `unhealthy after ${elapsed} ms, before the 400 ms timeout`);
    assert.ok(elapsed < 2000, `unhealthy after ${elapsed} ms, long after the 400 ms timeout`);
    const e = await fe.next((x) => isEvent(x, 'backend_error') && x.data.session === be.session, 2000);
    assert.equal(e.data.backend, name);
    assert.equal(e.data.source, 'heartbeat');
    assert.equal(e.data.fatal, false);
    assert.equal(typeof e.data.message, 'string');
    assert.ok(e.data.message.length > 0);
    assert.equal(e.data.schema_version, 1);
  });

  test('calls to an unhealthy backend get BACKEND_UNAVAILABLE at once', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const { be, m, name } = await readyBackend(s, false);
    await fe.next(healthOf(be.session, 'unhealthy'), 3000);
    const t0 = Date.now();
    const res = await fe.call(m, {}, {}, 2000);
    const elapsed = Date.now() - t0;
    const err = assertErrorResponse(res, 'BACKEND_UNAVAILABLE');
    assert.equal(err.data.method, m);
    assert.equal(err.data.backend, name);
    assert.equal(err.data.session, be.session);
    assert.equal(typeof err.data.reason, 'string');
    assert.ok(elapsed < 100, `BACKEND_UNAVAILABLE took ${elapsed} ms`);
    await be.expectNone((x) => isCall(x, m), 100, 'the call was forwarded to an unhealthy backend');
  });

  test('a call pending when its backend turns unhealthy fails with BACKEND_UNAVAILABLE', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    // Alive (answering pings) until the call reaches it, then silent: on a
    // slow build a backend silent from the start could turn unhealthy before
    // the call is forwarded, and the call would fail fast instead.
    const { be, m } = await readyBackend(s, true);
    const { response } = fe.startCall(m, {}, { timeout_ms: 0 }, 4000);
    await be.next((x) => isCall(x, m), 2000);
    be._autoPong = false;
    const res = await response;
    assertErrorResponse(res, 'BACKEND_UNAVAILABLE');
    // the unhealthy transition was announced too
    await fe.next(healthOf(be.session, 'unhealthy'), 1000);
  });

  test('the next message from an unhealthy backend makes it alive again', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const { be, m } = await readyBackend(s, false);
    await fe.next(healthOf(be.session, 'unhealthy'), 3000);
    be.enableAutoPong();
    be.serve(m, () => 'back');
    be.send({ type: 'event', event: uniq('life.'), data: {} });
    const h = await fe.next(healthOf(be.session, 'alive'), 2000);
    assert.equal(h.data.status, 'alive');
    assert.equal(await fe.callOk(m), 'back');
  });

  test('backend_health events sent by a backend reach frontends with backend and session added', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const { be, name } = await readyBackend(s, true);
    const ts = Date.now();
    be.send({ type: 'event', event: 'backend_health', data: { status: 'alive', ts, schema_version: 1 } });
    const h = await fe.next((x) => healthOf(be.session, 'alive')(x) && x.data.ts === ts, 2000);
    assert.equal(h.data.backend, name);
    assert.equal(h.data.session, be.session);
    assert.equal(h.data.schema_version, 1);
  });

  test('any message from a backend counts as a sign of life', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const { be } = await readyBackend(s, false);
    const ev = uniq('beat.');
    for (let i = 0; i < 12; i++) {
      await sleep(100);
      be.send({ type: 'event', event: ev, data: { i } });
    }
    const bad = fe.drain(healthOf(be.session, 'unhealthy'));
    assert.deepEqual(bad, [], 'a backend sending events every 100 ms was marked unhealthy');
  });

  test('frontends are not pinged with __ping__ calls', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    await fe.expectNone((x) => isCall(x, '__ping__'), 700, 'a frontend got a __ping__ call');
    assert.equal(fe.isOpen(), true, 'a quiet frontend stays connected');
  });
});

test('with --backend-fail-fast false a call to an unhealthy backend is still forwarded', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '400',
    '--backend-fail-fast', 'false']);
  const fe = await s.client(avd);
  assert.equal(fe.welcome.config.backendFailFast, false);
  const m = uniq('nff.m');
  const be = await s.client(avd, { role: 'backend', autoPong: false });
  be.send({ type: 'ready', handlers: [m] });
  await fe.next(healthOf(be.session, 'unhealthy'), 3000);
  const { response } = fe.startCall(m, { q: 1 });
  const fwd = await be.next((x) => isCall(x, m), 1000);
  be.send({ id: fwd.id, ok: true, result: 'slow but there' });
  const res = await response;
  assert.equal(res.ok, true, JSON.stringify(res));
  assert.equal(res.result, 'slow but there');
});

test('a frontend that stops answering WebSocket pings is dropped', { timeout: 30000 }, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--heartbeat-interval-ms', '500', '--heartbeat-timeout-ms', '1000']);
  const watcher = await s.client(avd);
  await watcher.callOk('avd.subscribe', { events: ['avd:session_left'] });
  const dead = await s.client(avd, { name: 'dead-peer' });
  dead.pause(); // reads nothing, so answers no ping: like a peer that vanished
  const t0 = Date.now();
  const left = await watcher.next((m) => isEvent(m, 'avd:session_left') && m.data.session === dead.session,
    20000, 'avd:session_left for the unresponsive frontend');
  assert.equal(left.data.name, 'dead-peer');
  const sessions = (await watcher.callOk('avd.sessions')).sessions.map((x) => x.session);
  assert.equal(sessions.includes(dead.session), false);
  t.diagnostic(`dropped after ${Date.now() - t0} ms`);
});

test('a silent frontend is pinged, and answering the pings keeps it', { timeout: 30000 }, async (t) => {
  const s = scope(t);
  // Ping interval 1 s (+ up to 1/4 spread); hang-up window 2 x 1 s + 5 s.
  const avd = await s.avd(['--heartbeat-interval-ms', '500', '--heartbeat-timeout-ms', '1000']);
  const watcher = await s.client(avd);
  await watcher.callOk('avd.subscribe', { events: ['avd:session_left'] });
  // Sends nothing after hello; ws answers every ping with a pong by itself.
  const quiet = await s.client(avd, { name: 'quiet-peer' });
  const t0 = Date.now();
  const pings = [];
  let wake = () => {};
  quiet.ws.on('ping', () => { pings.push(Date.now() - t0); wake(); });
  const pinged = (n, ms, what) => withTimeout(new Promise((resolve) => {
    wake = () => { if (pings.length >= n) resolve(); };
    wake();
  }), ms, what);
  // A control that reads nothing, so answers no ping: once it is dropped, a
  // whole hang-up window has passed for the quiet peer too.
  const deaf = await s.client(avd, { name: 'deaf-peer' });
  deaf.pause();

  await pinged(1, 4000, 'a WebSocket ping to the silent frontend');
  assert.ok(pings[0] >= 800 && pings[0] <= 2000,
    `first ping ${pings[0]} ms after hello (interval 1000 ms, spread up to 250 ms)`);
  await watcher.next((m) => isEvent(m, 'avd:session_left') && m.data.session === deaf.session,
    15000, 'avd:session_left for the frontend that answers no ping');
  // Its pong was seen: the next look pings it again instead of dropping it.
  await pinged(2, 10000, 'a second WebSocket ping to the silent frontend');
  t.diagnostic(`pings at ${pings.join(', ')} ms`);

  assert.equal(quiet.closed, null, `the quiet frontend was closed: ${JSON.stringify(quiet.closed)}`);
  const sessions = (await watcher.callOk('avd.sessions')).sessions.map((x) => x.session);
  assert.ok(sessions.includes(quiet.session), 'the quiet frontend is still a session');
  await watcher.expectNone((m) => isEvent(m, 'avd:session_left') && m.data.session === quiet.session,
    50, 'avd:session_left for the frontend that answers pings');
});
