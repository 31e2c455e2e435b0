'use strict';
// Issue #5, PROTOCOL.md sections 7 and 8: the encoding corpus
// (tests/data/encoding-corpus.json) through avd.
//
// - every valid string arrives exactly as sent, in call params and results,
//   chunk data (also as a delta) and event data (also as a message_id delta),
//   over WebSocket and through a supervised client-python backend;
// - every cut of a mixed string into two deltas (chunks, events) is rebuilt
//   exactly, with the split character moved whole into the later delta;
// - every invalid UTF-8 sequence in a WebSocket text message closes that
//   connection with 1007 and nobody else notices;
// - the same bytes on a supervised backend's stdout become U+FFFD and are
//   reported as backend_error (source stdout, fatal false).

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isCall, isEvent, isResponse, uniq,
} = require('./lib/harness');
const { corpus, pythonBackend, waitBackendReady } = require('./lib/streaming-helpers');

const T = { timeout: 30000 };
const C = corpus();
const VALID = C.valid;
const MIXED = C.mixed;
const INVALID = C.invalid_utf8.map((b) => ({ ...b, bytes: Buffer.from(b.hex, 'hex') }));

const isHigh = (u) => u >= 0xD800 && u <= 0xDBFF;
const isLow = (u) => u >= 0xDC00 && u <= 0xDFFF;

// What avd delivers for a text cut at UTF-16 position i into two deltas:
// the pieces as sent, except that a surrogate pair split by the cut travels
// whole in the later delta.
function expectedCut(s, i) {
  if (i > 0 && i < s.length && isHigh(s.charCodeAt(i - 1)) && isLow(s.charCodeAt(i))) {
    return [s.slice(0, i - 1), s.slice(i - 1)];
  }
  return [s.slice(0, i), s.slice(i)];
}

function utf8(s) { return Buffer.from(s, 'utf8'); }

// Exact equality of two strings, UTF-16 unit by unit and UTF-8 byte by byte,
// with a readable message.
function assertSame(got, want, what) {
  if (got !== want) {
    assert.fail(`${what}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
  }
  assert.ok(utf8(got).equals(utf8(want)), `${what}: UTF-8 bytes differ`);
}

describe('encoding corpus over WebSocket', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  test('the corpus itself: valid strings are well-formed, the mixed string splits surrogate pairs, invalid bytes are invalid', () => {
    assert.ok(VALID.length >= 30);
    for (const v of VALID) assert.ok(v.text.isWellFormed(), `${v.name} is well-formed UTF-16`);
    const pairs = [...MIXED].filter((ch) => ch.length === 2).length;
    assert.ok(pairs >= 8, `mixed string holds ${pairs} surrogate pairs`);
    assert.ok(MIXED.includes('\u0000') && MIXED.includes('\u200d') && MIXED.includes('\u0301'));
    const fatal = new TextDecoder('utf-8', { fatal: true });
    for (const b of INVALID) assert.throws(() => fatal.decode(b.bytes), TypeError, `${b.name} is invalid UTF-8`);
  });

  test('every valid string round-trips exactly in call params and results', T, async (t) => {
    const s = scope(t);
    const m = uniq('enc.echo');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const seen = new Map();
    be.serve(m, (p) => { seen.set(p.name, p.text); return { text: p.text, list: [p.text], [p.name]: p.text }; });
    const fe = await s.client(avd);
    const results = await Promise.all(VALID.map((v) => fe.callOk(m, { name: v.name, text: v.text })));
    VALID.forEach((v, i) => {
      assertSame(seen.get(v.name), v.text, `${v.name}: params as the callee got them`);
      assertSame(results[i].text, v.text, `${v.name}: result`);
      assertSame(results[i].list[0], v.text, `${v.name}: result array element`);
      assertSame(results[i][v.name], v.text, `${v.name}: result key`);
    });
  });

  test('every valid string round-trips exactly in chunk data, as a delta and as plain data', T, async (t) => {
    const s = scope(t);
    const m = uniq('enc.chunks');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    fe.send({ id: 'chunks', method: m, params: {} });
    const fwd = await be.next((x) => isCall(x, m), 2000);
    for (const v of VALID) be.send({ type: 'chunk', id: fwd.id, data: { delta: v.text, text: v.text, name: v.name } });
    be.send({ id: fwd.id, ok: true, result: 'done' });
    const res = await fe.next((x) => isResponse(x) && x.id === 'chunks', 5000);
    assert.equal(res.ok, true);
    const chunks = fe.drain((x) => x.type === 'chunk' && x.id === 'chunks');
    assert.equal(chunks.length, VALID.length, 'one chunk per string');
    VALID.forEach((v, i) => {
      assert.equal(chunks[i].data.name, v.name, 'chunk order');
      assertSame(chunks[i].data.delta, v.text, `${v.name}: chunk delta`);
      assertSame(chunks[i].data.text, v.text, `${v.name}: chunk text`);
    });
  });

  test('every valid string round-trips exactly in event data, plain and as message_id deltas', T, async (t) => {
    const s = scope(t);
    const plain = uniq('enc.ev.');
    const delta = 'agui:text_message_content';
    const sub = await s.client(avd, { subscribe: [plain, delta] });
    const pub = await s.client(avd);
    const mid = uniq('mid');
    for (const v of VALID) {
      pub.send({ type: 'event', event: plain, data: { name: v.name, text: v.text } });
      pub.send({ type: 'event', event: delta, data: { message_id: mid, delta: v.text, name: v.name } });
    }
    for (const v of VALID) {
      const e = await sub.next((x) => isEvent(x, plain), 3000, `plain event ${v.name}`);
      assert.equal(e.data.name, v.name, 'event order');
      assertSame(e.data.text, v.text, `${v.name}: event data`);
      const d = await sub.next((x) => isEvent(x, delta), 3000, `delta event ${v.name}`);
      assert.equal(d.data.name, v.name, 'delta event order');
      assertSame(d.data.delta, v.text, `${v.name}: event delta`);
      assert.equal(d.data.message_id, mid);
    }
  });

  test('every cut of the mixed string into two chunk deltas is rebuilt exactly', T, async (t) => {
    const s = scope(t);
    const m = uniq('enc.cut');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd);
    // One call per cut, all at once.
    const cuts = [...Array(MIXED.length + 1).keys()];
    for (const i of cuts) fe.send({ id: `cut-${i}`, method: m, params: { i } });
    for (let n = 0; n < cuts.length; n++) {
      const fwd = await be.next((x) => isCall(x, m), 3000);
      const i = fwd.params.i;
      // JSON.stringify writes a lone half as a \udXXX escape
      be.send({ type: 'chunk', id: fwd.id, data: { delta: MIXED.slice(0, i) } });
      be.send({ type: 'chunk', id: fwd.id, data: { delta: MIXED.slice(i) } });
      be.send({ id: fwd.id, ok: true, result: i });
    }
    let split = 0;
    for (const i of cuts) {
      const res = await fe.next((x) => isResponse(x) && x.id === `cut-${i}`, 3000);
      assert.equal(res.result, i);
      const deltas = fe.drain((x) => x.type === 'chunk' && x.id === `cut-${i}`).map((c) => c.data.delta);
      const want = expectedCut(MIXED, i);
      if (want[0].length !== i) split++;
      assert.deepEqual(deltas, want, `cut at ${i}`);
      assertSame(deltas.join(''), MIXED, `cut at ${i} joined`);
      for (const d of deltas) assert.ok(d.isWellFormed(), `cut at ${i}: only whole characters`);
    }
    assert.ok(split >= 8, `${split} cuts split a surrogate pair`);
  });

  test('every cut of the mixed string into two events with the same message_id is rebuilt exactly', T, async (t) => {
    const s = scope(t);
    const ev = 'agui:text_message_content';
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const base = uniq('cut');
    for (let i = 0; i <= MIXED.length; i++) {
      const message_id = `${base}-${i}`;
      pub.send({ type: 'event', event: ev, data: { message_id, delta: MIXED.slice(0, i) } });
      pub.send({ type: 'event', event: ev, data: { message_id, delta: MIXED.slice(i) } });
    }
    for (let i = 0; i <= MIXED.length; i++) {
      const got = [];
      for (let k = 0; k < 2; k++) {
        const e = await sub.next((x) => isEvent(x, ev), 3000, `event ${k} of cut ${i}`);
        assert.equal(e.data.message_id, `${base}-${i}`, 'event order');
        got.push(e.data.delta);
      }
      assert.deepEqual(got, expectedCut(MIXED, i), `cut at ${i}`);
      assertSame(got.join(''), MIXED, `cut at ${i} joined`);
    }
  });

  test('cuts interleaved across many message_ids of one event name are joined per message_id', T, async (t) => {
    const s = scope(t);
    const ev = 'agui:text_message_content';
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const base = uniq('inter');
    const ids = [...Array(MIXED.length + 1).keys()];
    // all first halves, then all second halves
    for (const i of ids) pub.send({ type: 'event', event: ev, data: { message_id: `${base}-${i}`, delta: MIXED.slice(0, i) } });
    for (const i of ids) pub.send({ type: 'event', event: ev, data: { message_id: `${base}-${i}`, delta: MIXED.slice(i) } });
    const got = new Map(ids.map((i) => [`${base}-${i}`, []]));
    for (let n = 0; n < ids.length * 2; n++) {
      const e = await sub.next((x) => isEvent(x, ev), 3000);
      got.get(e.data.message_id).push(e.data.delta);
    }
    for (const i of ids) assert.deepEqual(got.get(`${base}-${i}`), expectedCut(MIXED, i), `cut at ${i}`);
  });

  test('a valid message cut into WebSocket fragments at every byte is accepted and delivered exactly', T, async (t) => {
    const s = scope(t);
    const ev = uniq('enc.frag.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const bytes = utf8(JSON.stringify({ type: 'event', event: ev, data: { text: MIXED } }));
    const start = bytes.indexOf(utf8('"text"'));
    const positions = [];
    for (let k = start; k < bytes.length; k++) positions.push(k);
    for (const k of positions) {
      pub.ws.send(bytes.subarray(0, k), { binary: false, fin: false });
      pub.ws.send(bytes.subarray(k), { binary: false, fin: true });
    }
    for (const k of positions) {
      const e = await sub.next((x) => isEvent(x, ev), 3000, `event cut at byte ${k}`);
      assertSame(e.data.text, MIXED, `fragmented at byte ${k}`);
    }
    assert.equal(pub.isOpen(), true);
  });

  test('every invalid UTF-8 sequence closes its connection with 1007 while other sessions are untouched', T, async (t) => {
    const s = scope(t);
    const ev = uniq('enc.obs.');
    const m = uniq('enc.obs.m');
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    be.serve(m, (p) => p);
    const obs = await s.client(avd, { subscribe: [ev, `${ev}bad`] });
    const pub = await s.client(avd);
    // a call that stays pending across all the bad connections
    const pendingM = uniq('enc.pending');
    await be.callOk('avd.register', { methods: [pendingM] });
    const pending = obs.startCall(pendingM, {}, { timeout_ms: 0 }, 20000);
    const fwd = await be.next((x) => isCall(x, pendingM), 2000);
    let seq = 0;
    const variants = [];
    for (const b of INVALID) {
      variants.push({ what: `${b.name} (${b.hex}) in one frame`, frames: [Buffer.concat([utf8(`{"type":"event","event":"${ev}bad","data":{"s":"<`), b.bytes, utf8('>"}}')])] });
      if (b.bytes.length > 1) {
        // the sequence split across two fragments of one message
        const h = Math.ceil(b.bytes.length / 2);
        variants.push({
          what: `${b.name} (${b.hex}) split across fragments`,
          frames: [Buffer.concat([utf8(`{"type":"event","event":"${ev}bad","data":{"s":"<`), b.bytes.subarray(0, h)]),
            Buffer.concat([b.bytes.subarray(h), utf8('>"}}')])],
        });
      }
      variants.push({ what: `${b.name} (${b.hex}) in a hello`, hello: true, frames: [Buffer.concat([utf8('{"type":"hello","schema_version":1,"name":"<'), b.bytes, utf8('>"}')])] });
    }
    for (const v of variants) {
      const bad = await s.client(avd, v.hello ? { hello: false } : {});
      pub.send({ type: 'event', event: ev, data: { seq: seq++ } });
      for (let k = 0; k < v.frames.length; k++) {
        // avd may fail the connection on the first fragment already; bytes
        // sent after that could reset the TCP connection before its close
        // frame is read, so the next fragment goes only while still open.
        if (k > 0) {
          await bad.waitClose(60).catch(() => {});
          if (bad.closed || !bad.isOpen()) break;
        }
        bad.ws.send(v.frames[k], { binary: false, fin: k === v.frames.length - 1 });
      }
      const cl = await bad.waitClose(3000);
      assert.equal(cl.code, 1007, `${v.what}: close code ${cl.code} ${JSON.stringify(cl.reason)}`);
      pub.send({ type: 'event', event: ev, data: { seq: seq++ } });
      const r = await obs.call(m, { after: v.what }, {}, 3000);
      assert.deepEqual(r.result, { after: v.what }, `${v.what}: another session's call`);
    }
    for (let k = 0; k < seq; k++) {
      const e = await obs.next((x) => isEvent(x, ev), 3000, `event ${k}`);
      assert.equal(e.data.seq, k, 'events of another publisher arrive complete and in order');
    }
    await obs.expectNone((x) => isEvent(x, `${ev}bad`), 100, 'a message with invalid UTF-8 was delivered');
    be.send({ type: 'chunk', id: fwd.id, data: { delta: 'still here 😀' } });
    be.send({ id: fwd.id, ok: true, result: 'done' });
    const res = await pending.response;
    assert.equal(res.result, 'done', 'a call pending across the bad connections completes');
    assertSame((await obs.next((x) => x.type === 'chunk' && x.id === pending.id, 2000)).data.delta, 'still here 😀', 'its chunk');
    const stats = await obs.callOk('avd.stats');
    assert.equal(stats.sessions, 3, 'only the bad sessions went away');
  });
});

describe('encoding corpus through supervised backends (stdio)', () => {
  let avd;
  const py = pythonBackend('encpy', 'py_stream_backend.py');
  const raw = pythonBackend('encraw', 'raw_stdout_backend.py');
  before(async () => {
    avd = await startAvd([...py.args, ...raw.args, '--heartbeat-interval-ms', '60000',
      '--heartbeat-timeout-ms', '120000'], py.env);
    await Promise.all([waitBackendReady(avd, 'encpy'), waitBackendReady(avd, 'encraw')]);
  });
  after(async () => { if (avd) await avd.stop(); });

  test('every valid string round-trips exactly through a client-python backend', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const results = await Promise.all(VALID.map((v) => fe.callOk('py.echo', { value: { name: v.name, text: v.text } })));
    VALID.forEach((v, i) => {
      assert.equal(results[i].name, v.name);
      assertSame(results[i].text, v.text, `${v.name} through client-python`);
    });
  });

  test('every cut of the mixed string streamed by client-python as two deltas is rebuilt exactly', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    // min = max = i units: the first piece is MIXED[0:i], the second the rest
    const ids = [];
    for (let i = 1; i < MIXED.length; i++) {
      ids.push(i);
      fe.send({ id: `pycut-${i}`, method: 'py.stream_deltas', params: { text: MIXED, seed: 1, min_units: i, max_units: i } });
    }
    for (const i of ids) {
      const res = await fe.next((x) => isResponse(x) && x.id === `pycut-${i}`, 5000);
      assert.equal(res.ok, true, JSON.stringify(res));
      const deltas = fe.drain((x) => x.type === 'chunk' && x.id === `pycut-${i}`).map((c) => c.data.delta);
      assertSame(deltas.join(''), MIXED, `cut every ${i} units, joined`);
      for (const d of deltas) assert.ok(d.isWellFormed(), `cut every ${i} units: only whole characters`);
      assert.equal(deltas.length, res.result.deltas, 'one chunk per delta sent');
    }
  });

  test('invalid UTF-8 on stdout becomes U+FFFD, is reported as backend_error stdout (not fatal), and the backend carries on', T, async (t) => {
    const s = scope(t);
    const ev = uniq('enc.raw.');
    const fe = await s.client(avd, { subscribe: [ev] });
    const t0 = Date.now();
    let sent = 0;
    for (const b of INVALID) {
      const res = await fe.call('raw.emit', { name: b.name, hex: b.hex, event: ev }, {}, 3000);
      sent += 2; // the event line and the response line
      assert.equal(res.ok, true, `${b.name}: ${JSON.stringify(res)}`);
      assert.equal(res.result.name, b.name);
      const text = res.result.s;
      assert.match(text, /^<\uFFFD+>$/, `${b.name} (${b.hex}) in a result: ${JSON.stringify(text)}`);
      assert.ok(text.length - 2 <= b.bytes.length, `${b.name}: at most one U+FFFD per byte`);
      const e = await fe.next((x) => isEvent(x, ev) && x.data.name === b.name, 3000, `event for ${b.name}`);
      assert.equal(e.data.s, text, `${b.name}: the event carries the same repair`);
    }
    // valid bytes on the same stdout still pass unchanged
    const ok = await fe.callOk('raw.emit', { name: 'valid', hex: utf8('你好😀e\u0301').toString('hex') });
    assertSame(ok.s, '<你好😀e\u0301>', 'valid UTF-8 from the raw backend');
    // reports: source stdout, not fatal, at most one a second, counts adding up
    const reports = [];
    let counted = 0;
    while (counted < sent) {
      const r = await fe.next((x) => isEvent(x, 'backend_error') && x.data.source === 'stdout', 4000,
        `backend_error reports counting ${sent} lines (so far ${counted})`);
      reports.push({ at: Date.now(), data: r.data });
      counted += r.data.count;
    }
    assert.equal(counted, sent, 'the counts add up to the lines repaired');
    for (const r of reports) {
      assert.equal(r.data.backend, 'encraw');
      assert.equal(r.data.fatal, false);
      assert.equal(r.data.schema_version, 1);
      assert.equal(typeof r.data.message, 'string');
      assert.equal(typeof r.data.session, 'string');
    }
    for (let k = 1; k < reports.length; k++) {
      assert.ok(reports[k].at - reports[k - 1].at >= 800, `reports ${reports[k].at - reports[k - 1].at} ms apart`);
    }
    assert.ok(reports.length <= 1 + Math.ceil((Date.now() - t0) / 1000), `${reports.length} reports`);
    await fe.expectNone((x) => isEvent(x, 'backend_error') && x.data.fatal === true, 100, 'a fatal backend_error');
    // still the same process, still answering
    const again = await fe.callOk('raw.emit', { name: 'again', hex: '41' });
    assert.equal(again.s, '<A>');
  });
});

describe('noncharacters U+FDD0..U+FDEF next to split surrogate pairs', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  // avd marks held halves with noncharacters internally; text that holds
  // noncharacters of its own must still have its split pairs joined and its
  // noncharacters kept.
  const TEXT = '\ufdd0' + MIXED + '\ufde0\ufdef😀\ufdd1';
  // JSON text of msg with every noncharacter written raw, or as \uXXXX
  const encode = (msg, escaped) => {
    const json = JSON.stringify(msg);
    return escaped ? json.replace(/[\ufdd0-\ufdef]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`) : json;
  };

  test('every cut of a text holding noncharacters is rebuilt exactly, as chunk deltas and as event deltas', T, async (t) => {
    const s = scope(t);
    const m = uniq('enc.nc');
    const ev = 'agui:text_message_content';
    const be = await s.client(avd, { role: 'backend' });
    await be.callOk('avd.register', { methods: [m] });
    const fe = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const base = uniq('nc');
    const cases = [];
    for (const escaped of [false, true]) {
      for (let i = 0; i <= TEXT.length; i++) cases.push({ i, escaped, key: `${base}-${escaped ? 'e' : 'r'}-${i}` });
    }
    for (const c of cases) {
      fe.send({ id: c.key, method: m, params: c });
      const mid = { message_id: c.key };
      pub.sendRaw(encode({ type: 'event', event: ev, data: { ...mid, delta: TEXT.slice(0, c.i) } }, c.escaped));
      pub.sendRaw(encode({ type: 'event', event: ev, data: { ...mid, delta: TEXT.slice(c.i) } }, c.escaped));
    }
    for (let n = 0; n < cases.length; n++) {
      const fwd = await be.next((x) => isCall(x, m), 3000);
      const { i, escaped } = fwd.params;
      be.sendRaw(encode({ type: 'chunk', id: fwd.id, data: { delta: TEXT.slice(0, i) } }, escaped));
      be.sendRaw(encode({ type: 'chunk', id: fwd.id, data: { delta: TEXT.slice(i) } }, escaped));
      be.send({ id: fwd.id, ok: true, result: i });
    }
    const events = new Map(cases.map((c) => [c.key, []]));
    for (let n = 0; n < cases.length * 2; n++) {
      const e = await fe.next((x) => isEvent(x, ev), 3000);
      events.get(e.data.message_id).push(e.data.delta);
    }
    for (const c of cases) {
      const res = await fe.next((x) => isResponse(x) && x.id === c.key, 3000);
      assert.equal(res.result, c.i);
      const chunks = fe.drain((x) => x.type === 'chunk' && x.id === c.key).map((x) => x.data.delta);
      const what = `cut at ${c.i}${c.escaped ? ' (noncharacters escaped)' : ''}`;
      assert.deepEqual(chunks, expectedCut(TEXT, c.i), `chunks, ${what}`);
      assert.deepEqual(events.get(c.key), expectedCut(TEXT, c.i), `events, ${what}`);
    }
  });
});

test('invalid UTF-8 followed at once by more bytes still closes with 1007, never a bare reset', async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const WebSocket = require('ws');
  const codes = {};
  for (let i = 0; i < 30; i++) {
    const code = await new Promise((resolve) => {
      const ws = new WebSocket(`${avd.wsUrl}?token=${avd.token}`);
      ws.on('open', () => {
        ws.send(JSON.stringify({ type: 'hello', schema_version: 1 }));
        ws.send(Buffer.from('{"s":"\xE0\x80', 'latin1'), { binary: false, fin: false });
        ws.send(Buffer.from('\xAF"}', 'latin1'), { binary: false, fin: true });
        ws.send(JSON.stringify({ id: 1, method: 'avd.stats' }));
      });
      ws.on('close', (c) => resolve(c));
      ws.on('error', () => {});
    });
    codes[code] = (codes[code] || 0) + 1;
  }
  assert.deepEqual(codes, { 1007: 30 });
});
