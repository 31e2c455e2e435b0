'use strict';
// PROTOCOL.md section 8: limits (message size, queues, pending calls, sessions).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  Client, startAvd, scope, isCall, isEvent, isResponse, isTypedError, assertError, assertErrorResponse, sleep, uniq,
} = require('./lib/harness');

const T = { timeout: 30000 };

describe('--max-message-bytes 65536', () => {
  let avd;
  before(async () => { avd = await startAvd(['--max-message-bytes', '65536']); });
  after(async () => { if (avd) await avd.stop(); });

  test('welcome.config shows maxMessageBytes', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    assert.equal(c.welcome.config.maxMessageBytes, 65536);
  });

  test('a single frame over the limit gets PAYLOAD_TOO_LARGE and the connection still works', T, async (t) => {
    const s = scope(t);
    const ev = uniq('big.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const c = await s.client(avd);
    const msg = JSON.stringify({ type: 'event', event: ev, data: { blob: 'x'.repeat(100000) } });
    c.sendRaw(msg);
    const e = await c.next((m) => isTypedError(m), 3000);
    assertError(e.error, 'PAYLOAD_TOO_LARGE', 'oversized frame');
    assert.equal(e.error.data.limit, 65536);
    if ('size' in e.error.data) assert.equal(e.error.data.size, Buffer.byteLength(msg));
    assert.equal(typeof (await c.callOk('avd.stats')).sessions, 'number');
    await sub.expectNone((m) => isEvent(m, ev), 100, 'the oversized event was delivered');
    assert.equal(c.isOpen(), true);
  });

  test('an oversized call gets PAYLOAD_TOO_LARGE and is not forwarded', T, async (t) => {
    const s = scope(t);
    const m = uniq('big.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const c = await s.client(avd);
    c.send({ id: 'huge', method: m, params: { blob: 'y'.repeat(70000) } });
    const e = await c.next((x) => isTypedError(x) || (isResponse(x) && x.id === 'huge'), 3000);
    assert.equal(e.type, 'error', `PAYLOAD_TOO_LARGE comes as a typed error: ${JSON.stringify(e)}`);
    assertError(e.error, 'PAYLOAD_TOO_LARGE', 'oversized call');
    await be.expectNone((x) => isCall(x, m), 200, 'oversized call forwarded');
    assert.equal(typeof (await c.callOk('avd.stats')).sessions, 'number');
  });

  test('a message fragmented into many frames over the limit gets PAYLOAD_TOO_LARGE and the connection still works', T, async (t) => {
    const s = scope(t);
    const ev = uniq('frag.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const c = await s.client(avd);
    const msg = JSON.stringify({ type: 'event', event: ev, data: { blob: 'z'.repeat(200000) } });
    const step = 1000;
    for (let i = 0; i < msg.length; i += step) {
      const part = msg.slice(i, i + step);
      c.ws.send(part, { binary: false, fin: i + step >= msg.length });
    }
    const e = await c.next((m) => isTypedError(m), 3000);
    assertError(e.error, 'PAYLOAD_TOO_LARGE', 'fragmented oversized message');
    assert.equal(e.error.data.limit, 65536);
    assert.equal(typeof (await c.callOk('avd.stats')).sessions, 'number');
    await sub.expectNone((m) => isEvent(m, ev), 100, 'the oversized event was delivered');
    // one error only for the whole fragmented message
    await c.expectNone((m) => isTypedError(m), 200, 'more than one error for one message');
  });

  test('a message under the limit fragmented into many frames is reassembled and delivered', T, async (t) => {
    const s = scope(t);
    const ev = uniq('frag-ok.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const c = await s.client(avd);
    const blob = 'ok'.repeat(25000);
    const msg = JSON.stringify({ type: 'event', event: ev, data: { blob } });
    const step = 777;
    for (let i = 0; i < msg.length; i += step) {
      c.ws.send(msg.slice(i, i + step), { binary: false, fin: i + step >= msg.length });
    }
    const got = await sub.next((m) => isEvent(m, ev), 3000);
    assert.equal(got.data.blob, blob);
    await c.expectNone((m) => isTypedError(m), 100, 'error for a valid fragmented message');
  });

  test('a message exactly at the limit is accepted', T, async (t) => {
    const s = scope(t);
    const ev = uniq('edge.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const c = await s.client(avd);
    const head = JSON.stringify({ type: 'event', event: ev, data: { b: '' } });
    const msg = head.replace('"b":""', `"b":"${'q'.repeat(65536 - head.length)}"`);
    assert.equal(Buffer.byteLength(msg), 65536);
    c.sendRaw(msg);
    const got = await sub.next((m) => isEvent(m, ev), 3000);
    assert.equal(got.data.b.length, 65536 - head.length);
  });

  test('a binary message gets a typed INVALID_REQUEST and the connection still works', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    c.ws.send(Buffer.from(JSON.stringify({ id: 1, method: 'avd.stats' })), { binary: true });
    const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000);
    assert.equal(e.type, 'error', `binary message got ${JSON.stringify(e)}`);
    assertError(e.error, 'INVALID_REQUEST', 'binary message');
    assert.equal(typeof (await c.callOk('avd.stats')).sessions, 'number');
  });
});

test('pending calls over --max-pending-calls get QUEUE_FULL', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--max-pending-calls', '3']);
  const m = uniq('slow.m');
  const be = await s.client(avd, { role: 'backend' });
  await be.callOk('avd.register', { methods: [m] });
  const fe = await s.client(avd);
  const pending = [1, 2, 3].map((i) => fe.startCall(m, { i }, { timeout_ms: 0 }));
  const fwd = [];
  for (let i = 0; i < 3; i++) fwd.push(await be.next((x) => isCall(x, m), 2000));
  const res = await fe.call(m, { i: 4 }, { timeout_ms: 0 }, 2000);
  const err = assertErrorResponse(res, 'QUEUE_FULL', 'fourth pending call');
  assert.equal(typeof err.data.queue_len, 'number');
  await be.expectNone((x) => isCall(x, m), 100, 'the refused call was forwarded');
  // another session has its own budget
  const fe2 = await s.client(avd);
  const other = fe2.startCall(m, { i: 5 }, { timeout_ms: 0 });
  const f5 = await be.next((x) => isCall(x, m), 2000);
  be.send({ id: f5.id, ok: true, result: 5 });
  assert.equal((await other.response).result, 5);
  // once one finishes, the caller may call again
  be.send({ id: fwd[0].id, ok: true, result: 'first' });
  assert.equal((await pending[0].response).result, 'first');
  be.serve(m, (p) => p.i);
  assert.equal(await fe.callOk(m, { i: 6 }), 6);
});

test('sessions over --max-sessions get HTTP 503', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--max-sessions', '2']);
  const a = await s.client(avd);
  await s.client(avd);
  assert.equal(await Client.upgradeStatus(avd), 503);
  // a freed slot can be used again
  await a.close(2000);
  let status = 0;
  for (let i = 0; i < 20 && status !== 101; i++) {
    status = await Client.upgradeStatus(avd);
    if (status !== 101) await sleep(50);
  }
  assert.equal(status, 101, 'a new session is accepted once one left');
});

describe('slow consumers with --max-queue-bytes 262144', () => {
  let avd;
  before(async () => {
    avd = await startAvd(['--max-queue-bytes', '262144',
      '--heartbeat-interval-ms', '60000', '--heartbeat-timeout-ms', '120000']);
  });
  after(async () => { if (avd) await avd.stop(); });

  test('a frozen subscriber does not slow others; once resumed it gets avd:dropped with the count', T, async (t) => {
    const s = scope(t);
    const ev = uniq('flood.');
    const fast = await s.client(avd, { subscribe: [ev] });
    const frozen = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const before = await pub.callOk('avd.stats');
    frozen.pause();
    const N = 3000;
    const BATCH = 25; // 100 KB in flight at most, well under the queue limit
    const pad = 'p'.repeat(4000);
    const t0 = Date.now();
    const fastSeqs = [];
    for (let i = 0; i < N; i += BATCH) {
      for (let j = i; j < i + BATCH; j++) pub.send({ type: 'event', event: ev, data: { seq: j, pad } });
      const last = await fast.next((m) => isEvent(m, ev) && m.data.seq === i + BATCH - 1, 3000,
        `event ${i + BATCH - 1} on the fast subscriber`);
      fastSeqs.push(...fast.drain((m) => isEvent(m, ev)).map((m) => m.data.seq), last.data.seq);
    }
    const fastMs = Date.now() - t0;
    assert.deepEqual(fastSeqs, [...Array(N).keys()], 'the fast subscriber got every event in order');
    assert.deepEqual(fast.drain((m) => isEvent(m, 'avd:dropped')), [], 'nothing dropped for the fast subscriber');
    assert.ok(fastMs < 10000, `fast subscriber took ${fastMs} ms`);
    const mid = await pub.callOk('avd.stats');
    assert.ok(mid.events_dropped > before.events_dropped, 'events_dropped counted');

    frozen.resume();
    const dropped = await frozen.next((m) => isEvent(m, 'avd:dropped'), 10000, 'avd:dropped');
    assert.equal(typeof dropped.data.count, 'number');
    assert.ok(dropped.data.count > 0, `avd:dropped count ${dropped.data.count}`);
    assert.equal(typeof dropped.data.reason, 'string');
    await sleep(300);
    const more = frozen.drain((m) => isEvent(m, 'avd:dropped'));
    const droppedTotal = dropped.data.count + more.reduce((a, m) => a + m.data.count, 0);
    const got = frozen.drain((m) => isEvent(m, ev)).map((m) => m.data.seq);
    // everything it got is in order, and got + dropped = published
    for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], 'order kept for the slow subscriber');
    assert.equal(got.length + droppedTotal, N, `received ${got.length} + dropped ${droppedTotal} = ${N}`);
    assert.equal(frozen.isOpen(), true, 'a subscriber over the limit only by events is not closed');
    assert.equal(typeof (await frozen.callOk('avd.stats')).sessions, 'number');
  });

  test('a response overtakes events still queued in avd for the same session', T, async (t) => {
    const s = scope(t);
    const ev = uniq('lane.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const order = [];
    sub.hooks.unshift((m) => { order.push(isEvent(m, ev) ? 'event' : (isResponse(m) ? 'response' : 'other')); return false; });
    sub.pause();
    const pad = 'l'.repeat(4000);
    for (let i = 0; i < 3000; i++) pub.send({ type: 'event', event: ev, data: { seq: i, pad } });
    await pub.callOk('avd.stats', null, {}, 10000); // avd has handled every event by now
    const { response } = sub.startCall('avd.stats', null, {}, 10000);
    await sleep(200);
    sub.resume();
    const res = await response;
    assert.equal(res.ok, true);
    await sub.next((m) => isEvent(m, 'avd:dropped'), 5000, 'avd:dropped after draining');
    const firstResponse = order.indexOf('response');
    const lastEvent = order.lastIndexOf('event');
    assert.ok(firstResponse >= 0, 'response received');
    assert.ok(lastEvent > firstResponse,
      `events queued in avd were delivered after the response (response at ${firstResponse}, last event at ${lastEvent})`);
  });

  test('a frozen caller receiving a stream of big chunks is closed with 1008 and the callee gets caller_gone', T, async (t) => {
    const s = scope(t);
    const m = uniq('stream.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    fe.startCall(m, {}, { timeout_ms: 0 }, 30000);
    const fwd = await be.next((x) => isCall(x, m), 2000);
    fe.pause();
    const chunk = 'c'.repeat(64 * 1024);
    let cancel = null;
    for (let i = 0; i < 300 && !cancel; i++) {
      be.send({ type: 'chunk', id: fwd.id, data: { i, chunk } });
      if (i % 20 === 19) cancel = await be.maybeNext((x) => x.type === 'cancel', 50);
    }
    if (!cancel) cancel = await be.maybeNext((x) => x.type === 'cancel', 3000);
    assert.ok(cancel, 'the callee got a cancel once the slow caller was dropped');
    assert.equal(cancel.id, fwd.id);
    assert.equal(cancel.reason, 'caller_gone');
    fe.resume();
    const cl = await fe.waitClose(5000);
    assert.equal(cl.code, 1008, `slow consumer close code ${cl.code} reason ${JSON.stringify(cl.reason)}`);
    assert.match(cl.reason, /slow consumer/);
    assert.equal(typeof (await be.callOk('avd.stats')).sessions, 'number');
  });

  test('calls to a frozen backend with a full queue get QUEUE_FULL', T, async (t) => {
    const s = scope(t);
    const m = uniq('frozen.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    be.pause();
    const pad = 'f'.repeat(32 * 1024);
    const N = 300;
    const ids = [];
    for (let i = 0; i < N; i++) {
      const id = `frozen-${i}`;
      ids.push(id);
      fe.send({ id, method: m, params: { i, pad }, timeout_ms: 0 });
    }
    const full = await fe.next((x) => isResponse(x) && x.ok === false, 5000, 'a QUEUE_FULL response');
    assertError(full.error, 'QUEUE_FULL', 'call to a frozen backend');
    assert.equal(typeof full.error.data.queue_len, 'number');
    // The backend resumes and answers what reached it.  Every call gets
    // exactly one answer: a result, or QUEUE_FULL (a slow build may still
    // be sending refusals when the backend resumes).
    be.resume();
    be.serve(m, (p) => p.i);
    const answers = new Map([[full.id, full]]);
    for (const id of ids) {
      if (answers.has(id)) continue;
      answers.set(id, await fe.next((x) => isResponse(x) && x.id === id, 10000, `answer to ${id}`));
    }
    const refused = [...answers.values()].filter((r) => !r.ok);
    const accepted = [...answers.values()].filter((r) => r.ok);
    for (const r of refused) assert.equal(r.error.code, 'QUEUE_FULL', JSON.stringify(r.error));
    for (const r of accepted) assert.equal(r.result, Number(r.id.slice('frozen-'.length)));
    assert.ok(refused.length >= 1 && accepted.length >= 1,
      `some calls refused (${refused.length}), some answered (${accepted.length})`);
    assert.equal(refused.length + accepted.length, N);
    await sleep(200);
    assert.equal(fe.drain((x) => isResponse(x) && ids.includes(x.id)).length, 0, 'no call answered twice');
  });
});

test('200 sessions at once can each make a call', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const m = uniq('many.m');
  const be = await s.client(avd, { role: 'backend' });
  await be.callOk('avd.register', { methods: [m] });
  be.serve(m, (p) => p.n * 2);
  const clients = await Promise.all([...Array(200).keys()].map(() => s.client(avd)));
  assert.equal(new Set(clients.map((c) => c.session)).size, 200);
  const results = await Promise.all(clients.map((c, n) => c.callOk(m, { n }, {}, 10000)));
  assert.deepEqual(results, [...Array(200).keys()].map((n) => n * 2));
  const stats = await be.callOk('avd.stats');
  assert.equal(stats.sessions, 201);
});
