'use strict';
// avd forwards params, results and event data as the sender wrote them
// (validated, not re-encoded) whenever it can, and through jansson when it
// must.  Either way the receiver must read exactly what was sent, and
// whatever jansson refuses stays refused.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isCall, isEvent, isResponse, isTypedError, assertError, uniq,
} = require('./lib/harness');

const T = { timeout: 20000 };

// Payload texts, as they go on the wire.  Some take the scanned path, some
// (exponents, lone surrogates, line breaks) the full one.
const PAYLOADS = [
  '{}', '[]', 'null', 'true', 'false', '""', '0', '-0.5', '123456789012345678',
  '-123456789012345678', '3.14159', '1e300', '1.5E-7', '-2e-3',
  '{"s":"quote \\" backslash \\\\ slash \\/ nl \\n tab \\t cr \\r bs \\b ff \\f"}',
  '{"u":"\\u2028\\u2029 \\u00e9 \\u4e2d \\ud83d\\ude00", "raw":"é 中 😀 \u2028"}',
  '{"nul":"a\\u0000b"}',
  '{"lone":"x\\ud83dy"}',
  '{ "spaced" : [ 1 , 2 , { "k" : null } ] , "tab":\t1 }',
  '{\n  "pretty": [\n    1,\n    2\n  ]\n}',
  '{"dup":1,"dup":2}',
  '[' + '['.repeat(1200) + ']'.repeat(1200) + ']',
  JSON.stringify({ big: 'x'.repeat(70000), arr: Array.from({ length: 500 }, (_, i) => ({ i, f: i / 7 })) }),
];

// What a JSON reader makes of the text (the receivers use JSON.parse),
// with lone surrogates as U+FFFD: avd repairs them (PROTOCOL.md, UTF-8).
const parsed = (text) => (text.includes('\\ud')
  ? JSON.parse(text, (k, v) => (typeof v === 'string' ? v.toWellFormed() : v))
  : JSON.parse(text));

// Compared as text: assert.deepEqual recurses too deep for the nested case.
function same(actual, expected, what) {
  assert.equal(JSON.stringify(actual), JSON.stringify(expected), what);
}

describe('payloads pass through unchanged', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  test('call params and results, every payload form, both ways', T, async (t) => {
    const s = scope(t);
    const m = uniq('pt.echo');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    for (const [i, text] of PAYLOADS.entries()) {
      fe.sendRaw(`{"id":${i},"method":${JSON.stringify(m)},"params":${text}}`);
      const fwd = await be.next((x) => isCall(x, m), 3000, `call ${i}`);
      same(fwd.params, parsed(text), `params of payload ${i} changed on the way`);
      assert.equal(fwd.caller, fe.session);
      be.sendRaw(`{"id":${JSON.stringify(fwd.id)},"ok":true,"result":${text}}`);
      const res = await fe.next((x) => isResponse(x) && x.id === i, 3000, `answer ${i}`);
      assert.equal(res.ok, true, JSON.stringify(res).slice(0, 300));
      same(res.result, parsed(text), `result of payload ${i} changed on the way`);
    }
  });

  test('event data, every payload form, to a subscriber', T, async (t) => {
    const s = scope(t);
    const ev = uniq('pt.ev');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    for (const [i, text] of PAYLOADS.entries()) {
      pub.sendRaw(`{"type":"event","event":"${ev}","data":${text}}`);
      const got = await sub.next((x) => isEvent(x, ev), 3000, `event ${i}`);
      same(got.data, parsed(text), `data of payload ${i} changed on the way`);
      assert.equal(got.from, pub.session);
    }
    await pub.expectNone((x) => isTypedError(x), 100, 'a valid event was refused');
  });

  test('what jansson refuses stays refused, whichever path the message would take', T, async (t) => {
    const s = scope(t);
    const m = uniq('pt.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    const bad = [
      ['{"id":1,"method":"M","params":12345678901234567890}', 'PARSE_ERROR'], // too big an integer
      ['{"id":2,"method":"M","params":1e999}', 'PARSE_ERROR'], // a real that overflows
      ['{"id":3,"method":"M","params":[1,]}', 'PARSE_ERROR'],
      ['{"id":4,"method":"M","params":01}', 'PARSE_ERROR'],
      ['{"id":5,"method":"M","params":"\\x"}', 'PARSE_ERROR'],
      ['{"id":6,"method":"M","params":{"a":1}} x', 'PARSE_ERROR'],
    ];
    for (const [text, code] of bad) {
      fe.sendRaw(text.replace('"M"', JSON.stringify(m)));
      const err = await fe.next((x) => isTypedError(x) || isResponse(x), 2000, text);
      assertError(err.error, code, text);
    }
    await be.expectNone((x) => isCall(x, m), 200, 'a refused call reached the backend');
    // and the session is still fine
    be.serve(m, (p) => p);
    assert.deepEqual(await fe.callOk(m, { ok: 1 }), { ok: 1 });
  });

  test('a burst of 300 events of 4 KiB arrives complete and in order; calls are answered meanwhile', T, async (t) => {
    const s = scope(t);
    const ev = uniq('pt.burst');
    const m = uniq('pt.side');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    be.serve(m, (p) => p);
    const subs = [await s.client(avd, { subscribe: [ev] }), await s.client(avd, { subscribe: ['*'] })];
    const pub = await s.client(avd);
    const caller = await s.client(avd);
    const pad = 'é中😀'.repeat(400); // about 4 KiB of multi-byte text
    // All 300 sent at once, so avd finds a backlog to read.
    const frames = [];
    for (let i = 0; i < 300; i++) frames.push(JSON.stringify({ type: 'event', event: ev, data: { seq: i, pad } }));
    for (const f of frames) pub.ws.send(f);
    const side = [];
    for (let i = 0; i < 5; i++) side.push(caller.callOk(m, { i }));
    assert.deepEqual(await Promise.all(side), [0, 1, 2, 3, 4].map((i) => ({ i })));
    for (const sub of subs) {
      await sub.next((x) => isEvent(x, ev) && x.data.seq === 299, 10000, 'the last event');
      const got = sub.drain((x) => isEvent(x, ev));
      assert.deepEqual(got.map((x) => x.data.seq), [...Array(299).keys()], 'in order, none missing');
      assert.ok(got.every((x) => x.data.pad === pad), 'every event whole');
    }
  });
});

test('subscribers that vanish in the middle of a burst disturb neither avd nor the others', { timeout: 30000 }, async (t) => {
  const s = scope(t);
  const avd = await s.avd([]); // its own: a crash here must fail this test
  const ev = uniq('pt.vanish');
  const keeper = await s.client(avd, { subscribe: [ev] });
  const pub = await s.client(avd);
  const data = { pad: 'x'.repeat(4000) };
  let seq = 0;
  const got = [];
  for (let round = 0; round < 5; round++) {
    const leavers = await Promise.all(Array.from({ length: 60 }, () => s.client(avd, { subscribe: [ev] })));
    // All gone at once while avd is reading a burst and writing to them.
    for (let i = 0; i < 300; i++) pub.ws.send(JSON.stringify({ type: 'event', event: ev, data: { seq: seq++, ...data } }));
    await new Promise((r) => setTimeout(r, round));
    for (const c of leavers) c.terminate();
    const last = await keeper.next((x) => isEvent(x, ev) && x.data.seq === seq - 1, 10000,
      `the last event of round ${round}`);
    got.push(...keeper.drain((x) => isEvent(x, ev)).map((x) => x.data.seq), last.data.seq);
  }
  assert.deepEqual(got, [...Array(seq).keys()], 'the keeper got every event in order');
  assert.equal((await pub.call('avd.stats', null)).ok, true, 'avd still answers');
});
