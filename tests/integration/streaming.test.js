'use strict';
// PROTOCOL.md section 7: text deltas cut inside a surrogate pair.
// Raw JSON is sent so that lone surrogate escapes reach avd as written.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isCall, isEvent, isResponse, uniq,
} = require('./lib/harness');

const T = { timeout: 15000 };

describe('text deltas', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  // Start a call to a fresh backend method; returns the pieces needed to
  // stream raw chunks back.
  async function streamingCall(s, callId) {
    const m = uniq('stream.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    fe.send({ id: callId, method: m, params: {} });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    const fid = JSON.stringify(fwd.id);
    const chunk = (deltaJson) => be.sendRaw(`{"type":"chunk","id":${fid},"data":{"delta":"${deltaJson}"}}`);
    const finish = async () => {
      be.send({ id: fwd.id, ok: true, result: null });
      const res = await fe.next((x) => isResponse(x) && x.id === callId, 2000);
      assert.equal(res.ok, true);
      return fe.log.filter((x) => x.type === 'chunk' && x.id === callId).map((c) => c.data.delta);
    };
    return { chunk, finish, fe };
  }

  test('a surrogate pair split across two chunk deltas arrives whole in the later one', T, async (t) => {
    const s = scope(t);
    const { chunk, finish } = await streamingCall(s, 'split-1');
    chunk('a\\ud83d');
    chunk('\\ude00b');
    assert.deepEqual(await finish(), ['a', '\u{1F600}b']);
  });

  test('a chunk whose delta is only the first half is still delivered, with ""', T, async (t) => {
    const s = scope(t);
    const { chunk, finish } = await streamingCall(s, 'split-2');
    chunk('\\ud83d');
    chunk('\\ude01');
    chunk('c');
    assert.deepEqual(await finish(), ['', '\u{1F601}', 'c']);
  });

  test('a held half whose partner never comes becomes U+FFFD in front of the next delta', T, async (t) => {
    const s = scope(t);
    const { chunk, finish } = await streamingCall(s, 'split-3');
    chunk('x\\ud83d');
    chunk('y');
    assert.deepEqual(await finish(), ['x', '\uFFFDy']);
  });

  test('a call ending while holding a half gets a last chunk with U+FFFD before the final response', T, async (t) => {
    const s = scope(t);
    const { chunk, finish, fe } = await streamingCall(s, 'split-4');
    chunk('tail\\ud83d');
    const deltas = await finish();
    assert.deepEqual(deltas, ['tail', '\uFFFD']);
    const order = fe.log.filter((x) => x.id === 'split-4').map((x) => (x.type === 'chunk' ? 'chunk' : 'response'));
    assert.deepEqual(order, ['chunk', 'chunk', 'response']);
  });

  test('event deltas of one message_id are joined across a split surrogate pair', T, async (t) => {
    const s = scope(t);
    const ev = 'agui:text_message_content';
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const send = (mid, delta) => pub.sendRaw(
      `{"type":"event","event":"${ev}","data":{"message_id":"${mid}","delta":"${delta}"}}`);
    send('msg-1', 'Hi \\ud83d');
    send('msg-1', '\\ude00!');
    send('msg-1', 'end');
    const got = [];
    for (let i = 0; i < 3; i++) {
      const e = await sub.next((m) => isEvent(m, ev), 2000);
      assert.equal(e.data.message_id, 'msg-1');
      got.push(e.data.delta);
    }
    assert.deepEqual(got, ['Hi ', '\u{1F600}!', 'end']);
  });

  test('a lone surrogate in a delta-less string of a chunk still becomes U+FFFD', T, async (t) => {
    const s = scope(t);
    const m = uniq('stream.x');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    fe.send({ id: 'plain', method: m, params: {} });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    be.sendRaw(`{"type":"chunk","id":${JSON.stringify(fwd.id)},"data":{"text":"q\\ud83d"}}`);
    be.send({ id: fwd.id, ok: true, result: 1 });
    const c = await fe.next((x) => x.type === 'chunk' && x.id === 'plain', 2000);
    assert.equal(c.data.text, 'q\uFFFD');
    assert.equal((await fe.next((x) => isResponse(x) && x.id === 'plain', 2000)).result, 1);
  });
});
