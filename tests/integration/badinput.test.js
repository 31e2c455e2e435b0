'use strict';
// PROTOCOL.md sections 7 and 8: malformed input and text repair.
// After every bad input the same connection must still answer avd.stats.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isCall, isEvent, isResponse, isTypedError, assertError, uniq,
} = require('./lib/harness');

const T = { timeout: 20000 };

async function stillWorks(c, what) {
  const res = await c.call('avd.stats', null, {}, 3000);
  assert.equal(res.ok, true, `${what}: avd.stats after the bad input: ${JSON.stringify(res)}`);
  assert.equal(typeof res.result.sessions, 'number');
}

describe('bad input', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  test('malformed JSON gets a typed PARSE_ERROR', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    for (const raw of ['{"a":', '{', 'nul', '{"id":1,"method":"avd.stats",}', '\u00ff{}', '{"a":1}}']) {
      c.sendRaw(raw);
      const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000, `error for ${JSON.stringify(raw)}`);
      assert.equal(e.type, 'error', `${JSON.stringify(raw)} got ${JSON.stringify(e)}`);
      assertError(e.error, 'PARSE_ERROR', `malformed ${JSON.stringify(raw)}`);
      await stillWorks(c, raw);
    }
  });

  test('an empty text message gets PARSE_ERROR', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    c.sendRaw('');
    const e = await c.next((m) => isTypedError(m), 2000);
    assertError(e.error, 'PARSE_ERROR', 'empty message');
    await stillWorks(c, 'empty message');
  });

  test('JSON that is not an object gets a typed INVALID_REQUEST', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    for (const raw of ['[]', '42', '"x"', 'null', 'true', '[{"id":1,"method":"avd.stats"}]']) {
      c.sendRaw(raw);
      const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000, `error for ${raw}`);
      assert.equal(e.type, 'error', `${raw} got ${JSON.stringify(e)}`);
      assertError(e.error, 'INVALID_REQUEST', `non-object ${raw}`);
      await stillWorks(c, raw);
    }
  });

  test('a call whose method is not a string gets INVALID_REQUEST as a response to its id', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    for (const [id, method] of [[1, 5], ['m-null', null], ['m-obj', {}], ['m-arr', ['avd.stats']]]) {
      c.send({ id, method });
      const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000, `error for method ${JSON.stringify(method)}`);
      assert.ok(isResponse(e), `expected a response for id ${id}, got ${JSON.stringify(e)}`);
      assert.equal(e.id, id);
      assert.equal(e.ok, false);
      assertError(e.error, 'INVALID_REQUEST', `method ${JSON.stringify(method)}`);
      await stillWorks(c, `method ${JSON.stringify(method)}`);
    }
  });

  test('an unreadable id (object, array, float, bool) gets a typed INVALID_REQUEST', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    for (const id of [{}, [1], 1.5, true]) {
      c.send({ id, method: 'avd.stats' });
      const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000, `error for id ${JSON.stringify(id)}`);
      assert.equal(e.type, 'error', `id ${JSON.stringify(id)} got ${JSON.stringify(e)}`);
      assertError(e.error, 'INVALID_REQUEST', `id ${JSON.stringify(id)}`);
      await stillWorks(c, `id ${JSON.stringify(id)}`);
    }
  });

  test('avd.register with params that are not an object gets INVALID_REQUEST as a response', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    const cases = ['x', 5, { methods: 'api.x' }, { methods: [1] }, { methods: [uniq('r.'), 7] }, null];
    for (const [i, params] of cases.entries()) {
      const res = await c.call('avd.register', params, { id: `reg-${i}` }, 2000);
      assert.equal(res.id, `reg-${i}`);
      assert.equal(res.ok, false, `avd.register ${JSON.stringify(params)} accepted: ${JSON.stringify(res)}`);
      assertError(res.error, 'INVALID_REQUEST', `avd.register ${JSON.stringify(params)}`);
    }
    // nothing was registered by the refused requests
    const listed = (await c.callOk('avd.methods')).methods.filter((x) => x.owner === c.session);
    assert.deepEqual(listed, []);
    await stillWorks(c, 'bad avd.register');
  });

  test('an unknown message type gets INVALID_REQUEST (a response when it has an id)', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    c.send({ type: 'bogus', id: 3 });
    const r = await c.next((m) => isTypedError(m) || isResponse(m), 2000);
    assert.ok(isResponse(r), `expected a response to id 3, got ${JSON.stringify(r)}`);
    assert.equal(r.id, 3);
    assertError(r.error, 'INVALID_REQUEST', 'type bogus with id');
    c.send({ type: 'bogus' });
    const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000);
    assert.equal(e.type, 'error', `expected a typed error, got ${JSON.stringify(e)}`);
    assertError(e.error, 'INVALID_REQUEST', 'type bogus without id');
    c.send({ type: 42 });
    const e2 = await c.next((m) => isTypedError(m) || isResponse(m), 2000);
    assertError(e2.error, 'INVALID_REQUEST', 'numeric type');
    await stillWorks(c, 'unknown type');
  });

  test('an object that is no kind of message gets a typed INVALID_REQUEST', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    for (const msg of [{}, { foo: 1 }, { params: {} }]) {
      c.send(msg);
      const e = await c.next((m) => isTypedError(m) || isResponse(m), 2000, `error for ${JSON.stringify(msg)}`);
      assert.equal(e.type, 'error', `${JSON.stringify(msg)} got ${JSON.stringify(e)}`);
      assertError(e.error, 'INVALID_REQUEST', JSON.stringify(msg));
      await stillWorks(c, JSON.stringify(msg));
    }
  });

  test('a second hello on an established session does not break it', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    c.send({ type: 'hello', schema_version: 1 });
    // whatever avd answers (an error, or nothing), the session keeps working
    await stillWorks(c, 'second hello');
    assert.equal(c.isOpen(), true);
  });

  test('a response to an id nobody asked for is dropped without harm', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    c.send({ id: 'never-asked', ok: true, result: 1 });
    c.send({ id: 99999, ok: false, error: { code: 'X', message: 'y' } });
    await stillWorks(c, 'stray responses');
  });

  test('deeply nested JSON is refused without crashing avd', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    const depth = 100000;
    c.sendRaw('{"id":1,"method":"avd.stats","params":' + '['.repeat(depth) + ']'.repeat(depth) + '}');
    const e = await c.next((m) => isTypedError(m) || isResponse(m), 3000);
    const err = e.error;
    assert.ok(err && ['PARSE_ERROR', 'INVALID_REQUEST'].includes(err.code),
      `deep nesting gave ${JSON.stringify(e).slice(0, 300)}`);
    await stillWorks(c, 'deep nesting');
  });

  test('invalid UTF-8 in a text message closes the connection with 1007; others are unaffected', T, async (t) => {
    const s = scope(t);
    const other = await s.client(avd);
    const c = await s.client(avd);
    c.sendRaw(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    const cl = await c.waitClose(3000);
    assert.equal(cl.code, 1007);
    await stillWorks(other, 'after another session sent invalid UTF-8');
  });

  test('an overlong UTF-8 encoding and a CESU surrogate in a text message close with 1007', T, async (t) => {
    const s = scope(t);
    for (const bytes of [[0x22, 0xc0, 0xaf, 0x22], [0x22, 0xed, 0xa0, 0xbd, 0x22]]) {
      const c = await s.client(avd);
      c.sendRaw(Buffer.from(bytes), { binary: false });
      const cl = await c.waitClose(3000);
      assert.equal(cl.code, 1007, `bytes ${Buffer.from(bytes).toString('hex')}`);
    }
  });

  test('a lone surrogate escape in a string is delivered as U+FFFD', T, async (t) => {
    const s = scope(t);
    const ev = uniq('surr.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    pub.sendRaw(`{"type":"event","event":"${ev}","data":{"s":"a\\ud83db","t":"\\ude00","u":["x\\udfff"],"ok":"\\ud83d\\ude00"}}`);
    const got = await sub.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(got.data, { s: 'a\uFFFDb', t: '\uFFFD', u: ['x\uFFFD'], ok: '\u{1F600}' });
    await pub.expectNone((m) => isTypedError(m), 100, 'publisher got an error for a lone surrogate');
  });

  test('a lone surrogate in call params is repaired on the way to the callee', T, async (t) => {
    const s = scope(t);
    const m = uniq('surr.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    fe.sendRaw(`{"id":"ls1","method":"${m}","params":{"text":"\\ud800end"}}`);
    const fwd = await be.next((x) => isCall(x, m), 2000);
    assert.equal(fwd.params.text, '\uFFFDend');
    be.sendRaw(`{"id":${JSON.stringify(fwd.id)},"ok":true,"result":"back\\udbff"}`);
    const res = await fe.next((x) => isResponse(x) && x.id === 'ls1', 2000);
    assert.equal(res.result, 'back\uFFFD');
  });

  test('\\u0000 inside a string value passes through intact', T, async (t) => {
    const s = scope(t);
    const ev = uniq('nul.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    pub.sendRaw(`{"type":"event","event":"${ev}","data":{"s":"a\\u0000b","end":"\\u0000"}}`);
    const got = await sub.next((m) => isEvent(m, ev), 2000);
    assert.equal(got.data.s, 'a\u0000b');
    assert.equal(got.data.end, '\u0000');
  });

  test('\\u0000 in an object key gets ENCODING and the message is not delivered', T, async (t) => {
    const s = scope(t);
    const ev = uniq('nulkey.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    pub.sendRaw(`{"type":"event","event":"${ev}","data":{"a\\u0000b":1}}`);
    const e = await pub.next((m) => isTypedError(m) || isResponse(m), 2000);
    assertError(e.error, 'ENCODING', 'NUL in a key');
    await sub.expectNone((m) => isEvent(m, ev), 200, 'message with a NUL key was delivered');
    await stillWorks(pub, 'NUL in a key');
  });

  test('a flood of 5000 garbage messages from one client does not disturb another client\'s calls', T, async (t) => {
    const s = scope(t);
    const m = uniq('flood.echo');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    be.serve(m, (p) => p);
    const good = await s.client(avd);
    const bad = await s.client(avd);
    const garbage = ['{"a":', '[]', '42', '{"id":{},"method":1}', '{"type":"nope"}', 'xx', '{"type":"event","event":"bad name"}'];
    let sent = 0;
    const flood = (async () => {
      while (sent < 5000) {
        for (let i = 0; i < 250 && sent < 5000; i++, sent++) bad.sendRaw(garbage[sent % garbage.length]);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const latencies = [];
    for (let i = 0; i < 30; i++) {
      const t0 = Date.now();
      const res = await good.call(m, { i }, {}, 3000);
      latencies.push(Date.now() - t0);
      assert.deepEqual(res.result, { i });
    }
    await flood;
    const worst = Math.max(...latencies);
    assert.ok(worst < 1000, `worst call latency during the flood: ${worst} ms`);
    // the flooder is still served once its errors are through
    const res = await bad.call('avd.stats', null, {}, 10000);
    assert.equal(res.ok, true);
    const errors = bad.drain((x) => isTypedError(x)).length;
    assert.equal(errors, 5000, 'the flooder got one typed error per garbage message');
  });
});
