'use strict';
// Issue #5, PROTOCOL.md sections 3 and 7: streams from a real client-python
// backend supervised by avd (stdio), received by the real client-js.
//
// - a long CJK + emoji text cut at random UTF-16 positions (surrogate pairs
//   split) and sent as > 1000 deltas/s, as chunks and as AG-UI events, is
//   rebuilt exactly by the receiver;
// - an AbortSignal reaches the Python generator at once (its finally block
//   runs), and no chunk comes after the cancellation;
// - a caller that goes away mid-stream makes avd cancel with caller_gone,
//   which closes the generator;
// - five concurrent streams of 2000 chunks keep their order and complete
//   before their results while another client floods events.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startAvd, scope, sleep, uniq, withTimeout } = require('./lib/harness');
const {
  connectClientJs, pythonBackend, waitBackendReady, cjkEmojiText,
} = require('./lib/streaming-helpers');

const T = { timeout: 40000 };
const BACKEND = 'pystream';
const TEXT_BYTES = 200 * 1024;
const MIN_RATE = 1000; // deltas per second at the receiver

// Long texts reach the backend as a file: the call stays small.
function textFile(t, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-test-text-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'text.txt');
  fs.writeFileSync(file, text, 'utf8');
  return file;
}

function sha256(s) { return crypto.createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex'); }

function report(what, figures) {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 10) / 10 : v}`);
  // eslint-disable-next-line no-console
  console.log(`# ${what}: ${parts.join(' ')}`);
}

describe('streams from a supervised client-python backend', () => {
  let avd;
  const py = pythonBackend(BACKEND, 'py_stream_backend.py');
  const clients = [];
  async function js(opts) {
    const c = await connectClientJs(avd, opts);
    clients.push(c.client);
    return c;
  }

  before(async () => {
    avd = await startAvd([...py.args, '--heartbeat-interval-ms', '60000', '--heartbeat-timeout-ms', '120000'], py.env);
    await waitBackendReady(avd, BACKEND);
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => withTimeout(c.close(), 2000, 'client close').catch(() => {})));
    if (avd) await avd.stop();
  });

  test('a 200 KB CJK+emoji text cut at random UTF-16 positions streams as chunk deltas and is rebuilt exactly', T, async (t) => {
    const { client } = await js();
    const text = cjkEmojiText(TEXT_BYTES, 7);
    const text_file = textFile(t, text);
    const parts = [];
    let first = 0;
    let last = 0;
    const t0 = performance.now();
    const stream = client.stream('py.stream_deltas', { text_file, seed: 7, min_units: 1, max_units: 24 }, { timeout: 30000 });
    for await (const chunk of stream) {
      last = performance.now();
      if (!first) first = last;
      parts.push(chunk.delta);
    }
    const result = await stream.result;
    const t1 = performance.now();
    const rebuilt = parts.join('');
    assert.equal(rebuilt.length, text.length, 'same length in UTF-16 units');
    assert.ok(rebuilt === text, 'rebuilt text equals the original');
    assert.equal(sha256(rebuilt), result.sha256, 'byte for byte (SHA-256 of the UTF-8)');
    assert.equal(sha256(text), result.sha256);
    assert.equal(parts.length, result.deltas, 'one chunk per delta sent');
    assert.ok(result.split_pairs > 100, `${result.split_pairs} deltas ended inside a surrogate pair`);
    const broken = parts.filter((p) => !p.isWellFormed()).length;
    assert.equal(broken, 0, 'every delta holds whole characters only');
    const rate = parts.length / Math.max(0.001, (last - first) / 1000);
    const overall = parts.length / ((t1 - t0) / 1000);
    report('chunk deltas', {
      bytes: Buffer.byteLength(text), deltas: parts.length, split_pairs: result.split_pairs,
      rate_per_s: rate, overall_per_s: overall, python_send_s: result.send_seconds, total_ms: t1 - t0,
    });
    assert.ok(rate > MIN_RATE, `receiver rate ${Math.round(rate)} deltas/s`);
  });

  test('the same text as agui:text_message_content events (AG-UI helpers) is rebuilt exactly by an on() subscriber', T, async (t) => {
    const { client } = await js();
    const text = cjkEmojiText(TEXT_BYTES, 11);
    const text_file = textFile(t, text);
    const messageId = uniq('msg');
    const parts = [];
    let first = 0;
    let last = 0;
    let ended;
    const endSeen = new Promise((resolve) => { ended = resolve; });
    const started = [];
    client.on('agui:text_message_start', (d) => { if (d.message_id === messageId) started.push(d); });
    client.on('agui:text_message_content', (d, meta) => {
      if (d.message_id !== messageId) return;
      last = performance.now();
      if (!first) first = last;
      assert.equal(meta.event, 'agui:text_message_content');
      parts.push(d.delta);
    });
    client.on('agui:text_message_end', (d) => { if (d.message_id === messageId) ended(performance.now()); });
    const dropped = [];
    client.on('avd:dropped', (d) => dropped.push(d));
    await withTimeout(client.sync(), 3000, 'subscriptions acknowledged');
    const t0 = performance.now();
    const result = await client.call('py.agui_deltas', { text_file, seed: 11, message_id: messageId, min_units: 1, max_units: 24 }, { timeout: 30000 });
    const tEnd = await withTimeout(endSeen, 15000, 'agui:text_message_end');
    assert.deepEqual(dropped, [], 'no events dropped');
    assert.equal(started.length, 1, 'one text_message_start');
    const rebuilt = parts.join('');
    assert.equal(parts.length, result.deltas, 'one event per delta sent, none lost');
    assert.equal(rebuilt.length, text.length);
    assert.ok(rebuilt === text, 'rebuilt text equals the original');
    assert.equal(sha256(rebuilt), result.sha256, 'byte for byte (SHA-256 of the UTF-8)');
    assert.ok(result.split_pairs > 100, `${result.split_pairs} deltas ended inside a surrogate pair`);
    assert.equal(parts.filter((p) => !p.isWellFormed()).length, 0, 'every delta holds whole characters only');
    const rate = parts.length / Math.max(0.001, (last - first) / 1000);
    report('event deltas', {
      bytes: Buffer.byteLength(text), deltas: parts.length, split_pairs: result.split_pairs,
      rate_per_s: rate, overall_per_s: parts.length / ((tEnd - t0) / 1000), python_send_s: result.send_seconds,
    });
    assert.ok(rate > MIN_RATE, `receiver rate ${Math.round(rate)} deltas/s`);
  });

  test('an AbortSignal on stream() reaches the Python generator at once, and no chunk comes after the cancellation', T, async () => {
    const { client, tap, avdjs } = await js();
    const tag = uniq('abort');
    let closed;
    const closedSeen = new Promise((resolve) => { closed = resolve; });
    client.on('py.gen_closed', (d) => { if (d.tag === tag) closed({ data: d, at: performance.now() }); });
    await withTimeout(client.sync(), 3000, 'subscription');
    const ac = new AbortController();
    const stream = client.stream('py.ticker', { tag, interval_ms: 5 }, { signal: ac.signal, timeout: 0 });
    stream.result.catch(() => {});
    const it = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) {
      const step = await withTimeout(it.next(), 3000, `chunk ${i}`);
      assert.equal(step.done, false);
      assert.equal(step.value.n, i, 'chunks in order');
    }
    const tAbort = performance.now();
    ac.abort();
    await assert.rejects(stream.result, (e) => e instanceof avdjs.CancelledError && e.code === 'CANCELLED');
    const tReject = performance.now();
    const { data, at } = await withTimeout(closedSeen, 3000, 'py.gen_closed from the generator\'s finally');
    assert.equal(data.cancelled, true, 'the generator was closed by a cancel');
    assert.equal(data.reason, 'cancelled');
    const latency = at - tAbort;
    await sleep(300);
    const mine = tap.frames.filter((f) => f.msg.type === 'chunk' && f.msg.data && f.msg.data.tag === tag);
    assert.ok(mine.length >= 10);
    const wireId = mine[0].msg.id;
    const answerIdx = tap.frames.findIndex((f) => f.msg.id === wireId && f.msg.type === undefined && 'ok' in f.msg);
    assert.ok(answerIdx >= 0, 'avd answered the cancelled call');
    assert.equal(tap.frames[answerIdx].msg.error.code, 'CANCELLED');
    const chunkIdx = tap.frames.map((f, k) => (f.msg.type === 'chunk' && f.msg.id === wireId ? k : -1)).filter((k) => k >= 0);
    assert.ok(chunkIdx.every((k) => k < answerIdx), 'no chunk after avd\'s CANCELLED answer');
    const GRACE = 100;
    const late = mine.filter((f) => f.t > tReject + GRACE);
    assert.deepEqual(late.map((f) => f.msg.data.n), [], `no chunk later than ${GRACE} ms after the rejection`);
    report('abort', {
      abort_to_generator_closed_ms: latency, abort_to_reject_ms: tReject - tAbort,
      chunks: mine.length, generator_n: data.n, chunks_after_reject: mine.filter((f) => f.t > tReject).length,
    });
    assert.ok(latency < 1000, `the generator closed ${Math.round(latency)} ms after abort()`);
  });

  test('a caller leaving mid-stream (clean close, then dropped TCP) gets the Python generator closed with caller_gone', T, async () => {
    const { client: observer } = await js();
    const seen = new Map();
    const waiters = new Map();
    observer.on('py.gen_closed', (d) => {
      seen.set(d.tag, { data: d, at: performance.now() });
      if (waiters.has(d.tag)) waiters.get(d.tag)();
    });
    await withTimeout(observer.sync(), 3000, 'subscription');
    const closedFor = (tag) => (seen.has(tag) ? Promise.resolve() : new Promise((r) => waiters.set(tag, r)));
    for (const how of ['close', 'terminate']) {
      const tag = uniq(`gone-${how}`);
      const { client: caller, tap } = await connectClientJs(avd);
      const stream = caller.stream('py.ticker', { tag, interval_ms: 5 }, { timeout: 0 });
      stream.result.catch(() => {});
      const it = stream[Symbol.asyncIterator]();
      for (let i = 0; i < 5; i++) await withTimeout(it.next(), 3000, `chunk ${i}`);
      const t0 = performance.now();
      if (how === 'close') await withTimeout(caller.close(), 3000, 'caller close');
      else { tap.sockets[0].terminate(); caller.close().catch(() => {}); }
      await withTimeout(closedFor(tag), 5000, `py.gen_closed for the ${how}d caller`);
      const { data, at } = seen.get(tag);
      assert.equal(data.cancelled, true);
      assert.equal(data.reason, 'caller_gone', `${how}: cancel reason`);
      report(`caller ${how}`, { leave_to_generator_closed_ms: at - t0, generator_n: data.n });
      assert.ok(at - t0 < 2000, `${how}: generator closed ${Math.round(at - t0)} ms after the caller left`);
    }
    // the backend keeps serving
    const { client } = await js();
    assert.deepEqual(await client.call('py.echo', { value: { still: 'here 😀' } }, { timeout: 5000 }), { still: 'here 😀' });
  });

  test('5 concurrent streams of 2000 numbered chunks arrive complete, in order and before their results while another client floods events', T, async (t) => {
    const s = scope(t);
    const STREAMS = 5;
    const N = 2000;
    const flood = uniq('flood.');
    const slim = (m) => (m.type === 'event' ? { type: 'event', event: m.event } : m);
    const { client, tap } = await js({ slim });
    let floodSeen = 0;
    client.on(flood, () => { floodSeen++; });
    await withTimeout(client.sync(), 3000, 'subscription');
    const flooder = await s.client(avd);
    let stop = false;
    let floodSent = 0;
    const pad = 'f'.repeat(500);
    const flooding = (async () => {
      while (!stop) {
        for (let i = 0; i < 100; i++) flooder.send({ type: 'event', event: flood, data: { i: floodSent++, pad } });
        await new Promise((r) => setImmediate(r));
      }
    })();
    // the flood is running before the streams start
    const deadline = Date.now() + 5000;
    while (floodSeen < 2000 && Date.now() < deadline) await sleep(10);
    const floodBefore = floodSeen;
    const t0 = performance.now();
    const streams = [...Array(STREAMS).keys()].map((k) => client.stream('py.count', { stream: k, n: N }, { timeout: 30000 }));
    const got = await Promise.all(streams.map(async (st, k) => {
      const ns = [];
      for await (const chunk of st) {
        assert.equal(chunk.stream, k);
        ns.push(chunk.n);
      }
      return { ns, result: await st.result };
    }));
    const t1 = performance.now();
    const floodDuring = floodSeen - floodBefore;
    stop = true;
    await flooding;
    got.forEach(({ ns, result }, k) => {
      assert.equal(ns.length, N, `stream ${k} complete`);
      assert.ok(ns.every((n, i) => n === i), `stream ${k} in order`);
      assert.deepEqual(result, { stream: k, total: N });
    });
    // on the wire: every chunk of a call before its response
    const byId = new Map();
    tap.frames.forEach((f, idx) => {
      const m = f.msg;
      if (typeof m.id !== 'string' || !m.id.startsWith('av_call_')) return;
      if (m.type === 'chunk' && m.data && typeof m.data.stream === 'number') {
        const e = byId.get(m.id) || { chunks: 0, lastChunk: -1, response: -1 };
        e.chunks++; e.lastChunk = idx; byId.set(m.id, e);
      } else if (m.type === undefined && 'ok' in m && byId.has(m.id)) {
        byId.get(m.id).response = idx;
      }
    });
    assert.equal(byId.size, STREAMS);
    for (const [id, e] of byId) {
      assert.equal(e.chunks, N, `${id}: chunks on the wire`);
      assert.ok(e.response > e.lastChunk, `${id}: the response came after its last chunk`);
    }
    report('5 streams under an event flood', {
      chunks: STREAMS * N, ms: t1 - t0, chunks_per_s: (STREAMS * N) / ((t1 - t0) / 1000),
      flood_sent: floodSent, flood_received_by_caller: floodSeen, flood_received_while_streaming: floodDuring,
    });
    assert.ok(floodDuring > 0, 'the caller received flood events while streaming');
  });
});

describe('large messages to a supervised backend (stdin pipe)', () => {
  let avd;
  const py = pythonBackend('pybig', 'py_stream_backend.py');
  before(async () => {
    avd = await startAvd([...py.args, '--heartbeat-interval-ms', '60000', '--heartbeat-timeout-ms', '120000'], py.env);
    await waitBackendReady(avd, 'pybig');
  });
  after(async () => { if (avd) await avd.stop(); });

  // A message larger than the pipe's 64 KiB needs several write()s.  In
  // libwebsockets 4.1 a raw file's POLLOUT is cleared after the writeable
  // callback returns, so avd must re-arm it after the callback, not inside.
  test('calls of 200-900 KB reach a client-python backend and are answered', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    for (const kb of [200, 400, 900]) {
      const value = cjkEmojiText(kb * 1000, kb);
      const t0 = performance.now();
      const res = await fe.call('py.echo', { value }, { timeout_ms: 10000 }, 3000);
      assert.equal(res.ok, true, `${kb} KB: ${JSON.stringify(res).slice(0, 200)}`);
      assert.ok(res.result === value, `${kb} KB echoed exactly`);
      report('large call', { kb, ms: performance.now() - t0 });
    }
  });
});
