'use strict';
// PROTOCOL.md section 3 (methods and calls) and section 7 (streaming).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isCall, isEvent, isResponse, assertError, assertErrorResponse, sleep, uniq,
} = require('./lib/harness');

const T = { timeout: 15000 };

// A backend owning method m, and a frontend to call it.
async function pair(s, avd, opts = {}) {
  const m = uniq('api.m');
  const name = uniq('be');
  const be = await s.client(avd, { role: 'backend', name, ...opts.backend });
  const reg = await be.callOk('avd.register', { methods: [m] });
  assert.deepEqual(reg, { methods: [m] });
  const fe = await s.client(avd, { name: uniq('fe') });
  return { be, fe, m, name };
}

describe('calls (default settings)', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  test('rule 1: no owner gives METHOD_NOT_FOUND at once, with data.method', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const m = uniq('nobody.');
    const t0 = Date.now();
    const res = await fe.call(m, { a: 1 }, {}, 2000);
    const elapsed = Date.now() - t0;
    const err = assertErrorResponse(res, 'METHOD_NOT_FOUND');
    assert.equal(err.data.method, m);
    assert.ok(elapsed < 100, `METHOD_NOT_FOUND took ${elapsed} ms (must not wait for a timeout)`);
  });

  test('an unknown avd.* daemon method gets METHOD_NOT_FOUND', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const err = assertErrorResponse(await fe.call('avd.nope', {}), 'METHOD_NOT_FOUND');
    assert.equal(err.data.method, 'avd.nope');
  });

  test('avd.stats sessions matches the sessions avd.sessions lists', T, async (t) => {
    const s = scope(t);
    const a = await s.client(avd);
    await s.client(avd, { role: 'backend' });
    const list = (await a.callOk('avd.sessions')).sessions;
    const stats = await a.callOk('avd.stats');
    assert.equal(stats.sessions, list.length);
    assert.ok(list.length >= 2);
  });

  test('avd.register returns the methods and avd.methods lists them with owner and owner_name', T, async (t) => {
    const s = scope(t);
    const be = await s.client(avd, { role: 'backend', name: 'lister' });
    const a = uniq('list.a');
    const b = uniq('list.b');
    const reg = await be.callOk('avd.register', { methods: [a, b] });
    assert.deepEqual(reg, { methods: [a, b] });
    const res = await be.callOk('avd.methods');
    assert.ok(Array.isArray(res.methods), 'avd.methods result has a methods array');
    for (const name of [a, b]) {
      const e = res.methods.find((x) => x.method === name);
      assert.deepEqual(e, { method: name, owner: be.session, owner_name: 'lister' });
    }
  });

  test('rule: ALREADY_REGISTERED carries method/owner/owner_name and registers none (all-or-nothing)', T, async (t) => {
    const s = scope(t);
    const owner = await s.client(avd, { role: 'backend', name: 'first-owner' });
    const other = await s.client(avd, { role: 'backend', name: 'second' });
    const taken = uniq('taken.');
    const free = uniq('free.');
    await owner.callOk('avd.register', { methods: [taken] });
    const res = await other.call('avd.register', { methods: [free, taken] });
    const err = assertErrorResponse(res, 'ALREADY_REGISTERED');
    assert.equal(err.data.method, taken);
    assert.equal(err.data.owner, owner.session);
    assert.equal(err.data.owner_name, 'first-owner');
    // nothing was registered: `free` has no owner
    const caller = await s.client(avd);
    const r2 = await caller.call(free, {});
    assertErrorResponse(r2, 'METHOD_NOT_FOUND', `call to ${free} after a refused registration`);
    const methods = await caller.callOk('avd.methods');
    assert.equal(methods.methods.some((x) => x.method === free), false, `${free} must not be listed`);
    const t2 = methods.methods.find((x) => x.method === taken);
    assert.equal(t2.owner, owner.session, 'owner unchanged');
    // and the free one alone can still be registered
    assert.deepEqual(await other.callOk('avd.register', { methods: [free] }), { methods: [free] });
  });

  test('forwarding adds caller and timeout_ms, uses avd\'s own id, and maps the answer back', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, { text: '你好' }, { id: 'av_call_1', timeout_ms: 5000 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.deepEqual(fwd.params, { text: '你好' });
    assert.equal(fwd.caller, fe.session);
    assert.equal(fwd.timeout_ms, 5000);
    assert.ok(typeof fwd.id === 'string' || Number.isInteger(fwd.id), `forwarded id is a string or integer: ${JSON.stringify(fwd.id)}`);
    be.send({ id: fwd.id, ok: true, result: { text: fwd.params.text } });
    const res = await p;
    assert.deepEqual(res, { id: 'av_call_1', ok: true, result: { text: '你好' } });
  });

  test('two callers using the same id reach the callee under distinct avd ids and get their own answers', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const fe2 = await s.client(avd);
    const p1 = fe.call(m, { who: 1 }, { id: 1 });
    const p2 = fe2.call(m, { who: 2 }, { id: 1 });
    const c1 = await be.next((x) => isCall(x, m), 2000);
    const c2 = await be.next((x) => isCall(x, m), 2000);
    assert.notDeepEqual(c1.id, c2.id, 'avd uses its own ids towards the callee');
    const byWho = { [c1.params.who]: c1, [c2.params.who]: c2 };
    assert.equal(byWho[1].caller, fe.session);
    assert.equal(byWho[2].caller, fe2.session);
    // answer in reverse order
    be.send({ id: byWho[2].id, ok: true, result: 'two' });
    be.send({ id: byWho[1].id, ok: true, result: 'one' });
    assert.deepEqual(await p1, { id: 1, ok: true, result: 'one' });
    assert.deepEqual(await p2, { id: 1, ok: true, result: 'two' });
  });

  test('timeout_ms absent: the callee sees the default callTimeoutMs (30000)', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    assert.equal(fe.welcome.config.callTimeoutMs, 30000);
    const p = fe.call(m, { a: 1 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.timeout_ms, 30000);
    be.send({ id: fwd.id, ok: true, result: null });
    const res = await p;
    assert.equal(res.ok, true);
    assert.equal(res.result, null);
  });

  test('rule 3: expiry gives TIMEOUT to the caller and cancel reason timeout to the callee; a late answer is dropped and counted', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const before = await fe.callOk('avd.stats');
    const t0 = Date.now();
    const { id, response } = fe.startCall(m, { x: 1 }, { timeout_ms: 200 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.timeout_ms, 200);
    const res = await response;
    const elapsed = Date.now() - t0;
    const err = assertErrorResponse(res, 'TIMEOUT');
    assert.equal(err.data.method, m);
    assert.equal(err.data.timeout_ms, 200);
    assert.ok(elapsed >= 180, `TIMEOUT after ${elapsed} ms, before timeout_ms 200`);
    assert.ok(elapsed < 1500, `TIMEOUT after ${elapsed} ms, long after timeout_ms 200`);
    const cancel = await be.next((x) => x.type === 'cancel', 1000);
    assert.equal(cancel.id, fwd.id);
    assert.equal(cancel.reason, 'timeout');
    // late answer: dropped, counted, callee not told
    be.send({ id: fwd.id, ok: true, result: 'late' });
    await fe.expectNone((x) => x.id === id, 300, 'late answer reached the caller');
    await be.expectNone((x) => x.type === 'error' || (isResponse(x) && x.id === fwd.id), 100, 'callee told about its late answer');
    const after = await fe.callOk('avd.stats');
    assert.equal(after.late_answers, before.late_answers + 1, 'late_answers counted');
    assert.equal(after.calls_timed_out, before.calls_timed_out + 1, 'calls_timed_out counted');
  });

  test('rule 4: caller cancel gives CANCELLED to the caller and cancel reason cancelled to the callee', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const { id, response } = fe.startCall(m, {}, { timeout_ms: 0 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    fe.send({ type: 'cancel', id });
    const res = await response;
    assertErrorResponse(res, 'CANCELLED');
    const cancel = await be.next((x) => x.type === 'cancel', 1000);
    assert.deepEqual({ id: cancel.id, reason: cancel.reason }, { id: fwd.id, reason: 'cancelled' });
    // the callee's answer after the cancel does not reach the caller
    be.send({ id: fwd.id, ok: true, result: 'too late' });
    await fe.expectNone((x) => x.id === id, 200, 'answer after cancel reached the caller');
  });

  test('cancel of an unknown or finished id is silently ignored', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    be.serve(m, () => 'done');
    const res = await fe.call(m, {}, { id: 'finished-1' });
    assert.equal(res.result, 'done');
    fe.send({ type: 'cancel', id: 'finished-1' });
    fe.send({ type: 'cancel', id: 'never-existed' });
    await fe.expectNone((x) => !isEvent(x), 200, 'reply to a cancel of an unknown id');
    await be.expectNone((x) => x.type === 'cancel', 100, 'callee got a cancel for a finished call');
    assert.equal(typeof (await fe.callOk('avd.stats')).sessions, 'number');
  });

  test('rule 5: callee closing its socket mid-call gives BACKEND_UNAVAILABLE within 100 ms, to every pending call', T, async (t) => {
    const s = scope(t);
    const { be, fe, m, name } = await pair(s, avd);
    const c1 = fe.startCall(m, { n: 1 }, { timeout_ms: 0 });
    const c2 = fe.startCall(m, { n: 2 });
    await be.next((x) => isCall(x, m), 2000);
    await be.next((x) => isCall(x, m), 2000);
    const beSession = be.session;
    const t0 = Date.now();
    be.ws.close(1000);
    const [r1, r2] = await Promise.all([c1.response, c2.response]);
    const elapsed = Date.now() - t0;
    for (const r of [r1, r2]) {
      const err = assertErrorResponse(r, 'BACKEND_UNAVAILABLE');
      assert.equal(err.data.method, m);
      assert.equal(err.data.backend, name);
      assert.equal(err.data.session, beSession);
      assert.equal(typeof err.data.reason, 'string');
    }
    assert.ok(elapsed < 100, `BACKEND_UNAVAILABLE took ${elapsed} ms after the callee closed`);
  });

  test('rule 5: callee whose TCP connection drops mid-call gives BACKEND_UNAVAILABLE within 100 ms', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const c1 = fe.startCall(m, {});
    await be.next((x) => isCall(x, m), 2000);
    const t0 = Date.now();
    be.terminate();
    const r = await c1.response;
    const elapsed = Date.now() - t0;
    assertErrorResponse(r, 'BACKEND_UNAVAILABLE');
    assert.ok(elapsed < 100, `BACKEND_UNAVAILABLE took ${elapsed} ms after the callee's TCP reset`);
  });

  test('rule 5: caller leaving gives the callee a cancel with reason caller_gone', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    fe.startCall(m, {}, { timeout_ms: 0 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    fe.terminate();
    const cancel = await be.next((x) => x.type === 'cancel', 2000);
    assert.equal(cancel.id, fwd.id);
    assert.equal(cancel.reason, 'caller_gone');
    // the answer to a gone caller harms nobody
    be.send({ id: fwd.id, ok: true, result: 1 });
    assert.equal(typeof (await be.callOk('avd.stats')).sessions, 'number');
  });

  test('rule 6: an error without code gets code BACKEND_ERROR, keeping message and data', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, {});
    const fwd = await be.next((x) => isCall(x, m), 2000);
    be.send({ id: fwd.id, ok: false, error: { message: 'boom', data: { detail: 42 } } });
    const res = await p;
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'BACKEND_ERROR');
    assert.equal(res.error.message, 'boom');
    assert.deepEqual(res.error.data, { detail: 42 });
  });

  test('rule 6: an error with a code passes through unchanged', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, {});
    const fwd = await be.next((x) => isCall(x, m), 2000);
    const error = { code: 'SCRIPT_EXECUTION', name: 'ScriptExecutionError', message: 'bad js', data: { script_preview: 'x(' } };
    be.send({ id: fwd.id, ok: false, error });
    const res = await p;
    assert.equal(res.ok, false);
    assert.deepEqual(res.error, error);
  });

  test('rule 6: a custom error code and extra fields pass through unchanged', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, {});
    const fwd = await be.next((x) => isCall(x, m), 2000);
    const error = { code: 'MY_APP_ERROR', name: 'MyAppError', message: 'nope', data: { a: [1, 2] }, extra: true };
    be.send({ id: fwd.id, error });
    const res = await p;
    assert.equal(res.ok, false);
    assert.deepEqual(res.error, error);
  });

  test('rule 7: a backend may call a frontend\'s method', T, async (t) => {
    const s = scope(t);
    const m = uniq('window.main.eval_js_');
    const fe = await s.client(avd, { name: 'page' });
    assert.deepEqual(await fe.callOk('avd.register', { methods: [m] }), { methods: [m] });
    const be = await s.client(avd, { role: 'backend' });
    const { id, response } = be.startCall(m, { script: '1+1' });
    const fwd = await fe.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.caller, be.session);
    assert.deepEqual(fwd.params, { script: '1+1' });
    fe.send({ id: fwd.id, ok: true, result: 2 });
    assert.deepEqual(await response, { id, ok: true, result: 2 });
  });

  test('an answer {id, result} without ok is accepted as success', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, {}, { id: 'no-ok' });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    be.send({ id: fwd.id, result: { fine: true } });
    assert.deepEqual(await p, { id: 'no-ok', ok: true, result: { fine: true } });
  });

  test('a call with "type":"call" is accepted', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    be.serve(m, (params) => params);
    const res = await fe.call(m, { v: 3 }, { type: 'call' });
    assert.equal(res.ok, true);
    assert.deepEqual(res.result, { v: 3 });
  });

  test('a call without params reaches the callee with params null', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m);
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.params === undefined ? null : fwd.params, null);
    be.send({ id: fwd.id, ok: true, result: 'ok' });
    assert.equal((await p).result, 'ok');
  });

  test('ready registers its handlers and frontends get backend_ready', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const name = uniq('ready-be');
    const m1 = uniq('ready.a');
    const m2 = uniq('ready.b');
    const be = await s.client(avd, { role: 'backend', name });
    be.send({ type: 'ready', handlers: [m1, m2] });
    const ev = await fe.next((x) => isEvent(x, 'backend_ready') && x.data.session === be.session, 2000);
    assert.deepEqual(ev.data, { backend: name, session: be.session, handlers: [m1, m2], schema_version: 1 });
    be.serve(m2, () => 'from ready');
    assert.equal(await fe.callOk(m2), 'from ready');
    const methods = await fe.callOk('avd.methods');
    assert.equal(methods.methods.find((x) => x.method === m1).owner, be.session);
  });

  test('avd.unregister removes methods and returns the removed ones', T, async (t) => {
    const s = scope(t);
    const be = await s.client(avd, { role: 'backend' });
    const a = uniq('unreg.a');
    const b = uniq('unreg.b');
    await be.callOk('avd.register', { methods: [a, b] });
    be.serve(b, () => 'b still here');
    assert.deepEqual(await be.callOk('avd.unregister', { methods: [a] }), { methods: [a] });
    const fe = await s.client(avd);
    assertErrorResponse(await fe.call(a, {}), 'METHOD_NOT_FOUND', 'call to an unregistered method');
    assert.equal(await fe.callOk(b), 'b still here');
    // unregistering what one does not own removes nothing
    assert.deepEqual(await fe.callOk('avd.unregister', { methods: [b] }), { methods: [] });
    assert.equal(await fe.callOk(b), 'b still here');
    // another session may now take the freed name
    assert.deepEqual(await fe.callOk('avd.register', { methods: [a] }), { methods: [a] });
  });

  test('a session\'s methods vanish when it leaves', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    await be.close(2000);
    assertErrorResponse(await fe.call(m, {}), 'METHOD_NOT_FOUND', 'call to a method of a gone session');
    const methods = await fe.callOk('avd.methods');
    assert.equal(methods.methods.some((x) => x.method === m), false);
    const be2 = await s.client(avd, { role: 'backend' });
    assert.deepEqual(await be2.callOk('avd.register', { methods: [m] }), { methods: [m] });
  });

  test('string and integer ids both work and keep their JSON type', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    be.serve(m, (p) => p.n);
    for (const [i, id] of [['s', 'abc'], ['zero', 0], ['int', 42], ['big', 9007199254740991], ['neg', -7]].entries()) {
      const res = await fe.call(m, { n: i }, { id: id[1] });
      assert.equal(res.id, id[1], `${id[0]} id echoed with its type`);
      assert.equal(res.ok, true, `${id[0]} id: ${JSON.stringify(res)}`);
      assert.equal(res.result, i);
    }
    // the same for a daemon method
    const r = await fe.call('avd.stats', null, { id: 7 });
    assert.equal(r.id, 7);
    assert.equal(r.ok, true);
  });

  test('avd.stats has the documented counters and counts completed calls', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    be.serve(m, () => 1);
    const before = await fe.callOk('avd.stats');
    for (const k of ['sessions', 'calls_started', 'calls_completed', 'calls_failed', 'calls_timed_out',
      'late_answers', 'events_published', 'events_delivered', 'events_dropped']) {
      assert.equal(typeof before[k], 'number', `avd.stats.${k} is a number`);
    }
    assert.ok(before.sessions >= 2, `sessions counts at least our two (${before.sessions})`);
    await fe.callOk(m);
    await fe.callOk(m);
    const after = await fe.callOk('avd.stats');
    assert.ok(after.calls_started >= before.calls_started + 2, 'calls_started grew by the two calls');
    assert.ok(after.calls_completed >= before.calls_completed + 2, 'calls_completed grew by the two calls');
  });

  test('streaming: chunks reach the caller in order under its id, before the final response', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const id = 'stream-1';
    const p = fe.call(m, {}, { id });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    for (let i = 0; i < 20; i++) be.send({ type: 'chunk', id: fwd.id, data: { i } });
    be.send({ id: fwd.id, ok: true, result: 'end' });
    const res = await p;
    assert.equal(res.result, 'end');
    const chunks = fe.drain((x) => x.type === 'chunk');
    assert.deepEqual(chunks.map((c) => c.id), new Array(20).fill(id));
    assert.deepEqual(chunks.map((c) => c.data.i), [...Array(20).keys()]);
    const order = fe.log.filter((x) => x.id === id).map((x) => x.type || 'response');
    assert.equal(order[order.length - 1], 'response', 'final response came after all chunks');
  });

  test('streaming: each chunk re-arms the call timeout', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, {}, { timeout_ms: 300 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    for (let i = 0; i < 5; i++) {
      await sleep(150);
      be.send({ type: 'chunk', id: fwd.id, data: i });
    }
    await sleep(150);
    be.send({ id: fwd.id, ok: true, result: 'survived' });
    const res = await p;
    assert.equal(res.ok, true, `a call with chunks every 150 ms outlived timeout_ms 300: ${JSON.stringify(res)}`);
    assert.equal(fe.drain((x) => x.type === 'chunk').length, 5);
  });
});

describe('calls with --call-timeout-ms 300', () => {
  let avd;
  before(async () => { avd = await startAvd(['--call-timeout-ms', '300']); });
  after(async () => { if (avd) await avd.stop(); });

  test('timeout_ms absent uses --call-timeout-ms: callee sees 300 and the caller gets TIMEOUT', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    assert.equal(fe.welcome.config.callTimeoutMs, 300);
    const t0 = Date.now();
    const p = fe.call(m, {});
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.timeout_ms, 300);
    const res = await p;
    const elapsed = Date.now() - t0;
    const err = assertErrorResponse(res, 'TIMEOUT');
    assert.deepEqual(err.data, { method: m, timeout_ms: 300 });
    assert.ok(elapsed >= 280 && elapsed < 2000, `TIMEOUT after ${elapsed} ms for a 300 ms timeout`);
  });

  test('timeout_ms 0 means no timeout', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const { id, response } = fe.startCall(m, {}, { timeout_ms: 0 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.timeout_ms, 0);
    await fe.expectNone((x) => x.id === id, 800, 'a timeout_ms 0 call ended on its own');
    await be.expectNone((x) => x.type === 'cancel', 10, 'callee got a cancel for a timeout_ms 0 call');
    be.send({ id: fwd.id, ok: true, result: 'patient' });
    const res = await response;
    assert.equal(res.ok, true);
    assert.equal(res.result, 'patient');
  });

  test('an explicit timeout_ms overrides --call-timeout-ms', T, async (t) => {
    const s = scope(t);
    const { be, fe, m } = await pair(s, avd);
    const p = fe.call(m, {}, { timeout_ms: 1000 });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.timeout_ms, 1000);
    await sleep(500);
    be.send({ id: fwd.id, ok: true, result: 'in time' });
    const res = await p;
    assert.equal(res.ok, true, `answer after 500 ms within timeout_ms 1000: ${JSON.stringify(res)}`);
  });
});

test('errors from avd carry code, name, non-empty message and data', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const fe = await s.client(avd);
  const res = await fe.call('no.such.method', {});
  assertError(res.error, 'METHOD_NOT_FOUND');
});
