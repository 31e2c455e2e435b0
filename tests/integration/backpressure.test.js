'use strict';
// Issue #5, PROTOCOL.md section 8: outbound lanes and slow consumers, as
// users see them.
//
// - a result queued in avd behind 10 000 undelivered events to the same
//   reader is written before them (client-js reader, wire order tapped);
// - one frozen subscriber among five fast ones, while a publisher sends
//   20 000 events of 1 KB: the fast ones get every event in order and are
//   not slowed, the frozen one gets avd:dropped once it resumes (events
//   only are never a reason to close it), and avd's resident memory stays
//   bounded by the queue limit.

const { test } = require('node:test');
const fs = require('node:fs');
const assert = require('node:assert/strict');
const {
  scope, isEvent, sleep, uniq, withTimeout,
} = require('./lib/harness');
const { connectClientJs, rssKb, sampleRss } = require('./lib/streaming-helpers');

const T = { timeout: 60000 };

function report(what, figures) {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 10) / 10 : v}`);
  // eslint-disable-next-line no-console
  console.log(`# ${what}: ${parts.join(' ')}`);
}

// True when the process runs with AddressSanitizer.
function isSanitized(pid) {
  try {
    return /libasan|libclang_rt\.asan/.test(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
  } catch (_) {
    return false;
  }
}

async function queueBytes(c, session) {
  const { sessions } = await c.callOk('avd.sessions', null, {}, 10000);
  const me = sessions.find((x) => x.session === session);
  assert.ok(me, `session ${session} listed`);
  return me.queue_bytes;
}

test('a result queued behind 10 000 undelivered events to the same reader is written first', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--max-queue-bytes', String(64 << 20),
    '--heartbeat-interval-ms', '60000', '--heartbeat-timeout-ms', '120000']);
  const ev = uniq('backlog.');
  const m = uniq('backlog.m');
  const be = await s.client(avd, { role: 'backend' });
  await be.callOk('avd.register', { methods: [m] });
  be.serve(m, (p) => ({ answer: p.q }));
  const slim = (x) => (x.type === 'event' ? { type: 'event', event: x.event, seq: x.data && x.data.seq } : x);
  const { client: reader, tap } = await connectClientJs(avd, { slim });
  t.after(() => withTimeout(reader.close(), 3000, 'reader close').catch(() => {}));
  let handled = 0;
  const dropped = [];
  reader.on(ev, () => { handled++; });
  reader.on('avd:dropped', (d) => dropped.push(d));
  await withTimeout(reader.sync(), 3000, 'subscription');
  const pub = await s.client(avd);
  const pad = 'b'.repeat(1000);
  tap.sockets[0]._socket.pause();

  // Phase 1: fill the kernel's socket buffers until avd itself holds bytes.
  let seq = 0;
  let held = 0;
  for (let round = 0; round < 400 && held < 256 * 1024; round++) {
    for (let i = 0; i < 100; i++) pub.send({ type: 'event', event: ev, data: { seq: seq++, pad } });
    held = await queueBytes(pub, reader.session);
  }
  assert.ok(held >= 256 * 1024, `avd holds ${held} bytes for the paused reader`);
  const phase1 = seq;
  // Phase 2: 10 000 more events, all of them queued in avd.
  const N = 10000;
  for (let i = 0; i < N; i++) pub.send({ type: 'event', event: ev, data: { seq: seq++, pad } });
  const queued = await queueBytes(pub, reader.session);
  assert.ok(queued >= held + N * 1000, `avd holds ${queued} bytes after 10 000 more events`);

  // The reader calls; the answer is queued behind the backlog.
  let handledAtResult = -1;
  const result = reader.call(m, { q: 42 }, { timeout: 20000 }).then((r) => { handledAtResult = handled; return r; });
  await be.next(() => false, 200).catch(() => {}); // let the call reach the backend and its answer reach avd
  const tResume = performance.now();
  tap.sockets[0]._socket.resume();
  assert.deepEqual(await withTimeout(result, 10000, 'the call\'s result'), { answer: 42 });
  const tResult = performance.now();
  const deadline = Date.now() + 20000;
  while (handled < seq && Date.now() < deadline) await sleep(20);
  const tAll = performance.now();
  assert.equal(handled, seq, 'every event was delivered in the end');
  assert.deepEqual(dropped, [], 'nothing dropped under a 64 MiB queue limit');

  // Wire order: the response, then (at most a frame already being written
  // aside) every event of phase 2.
  const frames = tap.frames.map((f) => f.msg);
  const respIdx = frames.findIndex((x) => x.type === undefined && x.ok === true && x.result && x.result.answer === 42);
  assert.ok(respIdx >= 0, 'the response is on the wire');
  const evFrames = frames.filter((x) => x.type === 'event' && x.event === ev);
  assert.deepEqual(evFrames.map((x) => x.seq), [...Array(seq).keys()], 'events in order, none lost');
  const eventsBefore = frames.slice(0, respIdx).filter((x) => x.type === 'event' && x.event === ev).length;
  const eventsAfter = seq - eventsBefore;
  report('result before backlog', {
    kernel_buffered_events: phase1, queued_events: N, avd_queue_bytes: queued,
    events_before_result: eventsBefore, events_after_result: eventsAfter,
    handled_when_result_seen: handledAtResult, resume_to_result_ms: tResult - tResume, resume_to_all_ms: tAll - tResume,
  });
  assert.ok(eventsAfter >= N - 1, `${eventsAfter} of the ${N} queued events came after the result`);
  // what the user's code sees: the result before (nearly) all of the backlog
  assert.ok(handledAtResult >= 0 && handledAtResult <= phase1 + 200,
    `the result resolved after ${handledAtResult} event handlers ran (${phase1} were in the kernel already)`);
});

test('one frozen subscriber among five fast ones: the fast get all 20 000 events in order, the frozen one gets avd:dropped, memory stays bounded', T, async (t) => {
  const s = scope(t);
  const LIMIT = 1 << 20;
  // Under AddressSanitizer freed memory sits in a quarantine (256 MB by
  // default); keep it small so VmRSS follows what avd really holds.
  const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1'].filter(Boolean).join(':');
  const avd = await s.avd(['--max-queue-bytes', String(LIMIT),
    '--heartbeat-interval-ms', '60000', '--heartbeat-timeout-ms', '120000'], { ASAN_OPTIONS: asan });
  const N = 20000;
  const FAST = 5;
  const WINDOW = 256; // events in flight ahead of the slowest fast subscriber (~256 KB)
  const pad = 'e'.repeat(1000);

  // Wakes the publisher whenever a fast subscriber makes progress.
  let wake = null;
  const progress = (ms) => new Promise((r) => {
    const timer = setTimeout(r, ms);
    wake = () => { clearTimeout(timer); wake = null; r(); };
  });

  // Publish N events to `fast` (and whoever else is subscribed), never more
  // than WINDOW ahead of the slowest fast subscriber.  Returns the time taken.
  async function publish(pub, ev, fast) {
    const t0 = performance.now();
    let sent = 0;
    const deadline = Date.now() + 30000;
    while (fast.some((f) => f.seqs.length < N) && Date.now() < deadline) {
      const slowest = Math.min(...fast.map((f) => f.seqs.length));
      const upto = Math.min(N, slowest + WINDOW);
      while (sent < upto) pub.send({ type: 'event', event: ev, data: { seq: sent++, pad } });
      await progress(200);
    }
    return performance.now() - t0;
  }

  async function fastSubscriber(ev) {
    const c = await s.client(avd, { subscribe: [ev] });
    const f = { c, seqs: [] };
    c.hooks.unshift((m) => {
      if (!isEvent(m, ev)) return false;
      f.seqs.push(m.data.seq);
      if (wake) wake();
      return true;
    });
    return f;
  }

  await sleep(100);
  const baselineKb = rssKb(avd.proc.pid);
  assert.ok(baselineKb > 0, 'VmRSS readable');
  const rss = sampleRss(avd.proc.pid, 20);

  // Reference run: the same traffic with no frozen subscriber.
  const evRef = uniq('iso.ref.');
  const ref = await Promise.all([...Array(FAST).keys()].map(() => fastSubscriber(evRef)));
  const pubRef = await s.client(avd);
  const refMs = await publish(pubRef, evRef, ref);
  for (const f of ref) assert.equal(f.seqs.length, N, 'reference run complete');
  await Promise.all([...ref.map((f) => f.c.close()), pubRef.close()]);

  const ev = uniq('iso.');
  const fast = await Promise.all([...Array(FAST).keys()].map(() => fastSubscriber(ev)));
  const frozen = await s.client(avd, { subscribe: [ev] });
  const pub = await s.client(avd);
  const before = await pub.callOk('avd.stats');
  frozen.pause();
  let ms;
  let mem;
  try {
    ms = await publish(pub, ev, fast);
  } finally {
    mem = rss.stop();
  }
  for (const [k, f] of fast.entries()) {
    assert.equal(f.seqs.length, N, `fast subscriber ${k} got every event`);
    assert.ok(f.seqs.every((x, i) => x === i), `fast subscriber ${k}: in order`);
    assert.deepEqual(f.c.drain((m) => isEvent(m, 'avd:dropped')), [], `fast subscriber ${k}: nothing dropped`);
  }
  const mid = await pub.callOk('avd.stats');
  const droppedByAvd = mid.events_dropped - before.events_dropped;
  assert.ok(droppedByAvd > 0, 'avd counted dropped events');
  assert.equal(frozen.closed, null, 'events alone never make avd close a slow subscriber');

  // The bound: the idle baseline + 3 x max_queue_bytes + 16 MB.  An
  // AddressSanitizer build (CI runs one) pays shadow memory and redzones on
  // every allocation: twice the allowance there.
  const sanitized = isSanitized(avd.proc.pid);
  const boundKb = baselineKb + ((3 * LIMIT) / 1024 + 16 * 1024) * (sanitized ? 2 : 1);
  report('slow-consumer isolation', {
    events: N, fast: FAST, ms_with_frozen: ms, ms_reference: refMs,
    events_per_s_per_fast_sub: N / (ms / 1000), rss_baseline_kb: baselineKb, rss_max_kb: mem.maxKb,
    rss_bound_kb: boundKb, asan: sanitized, rss_samples: mem.samples, dropped_by_avd: droppedByAvd,
  });
  assert.ok(mem.maxKb <= boundKb, `avd VmRSS peaked at ${mem.maxKb} KiB, bound ${boundKb} KiB`);
  assert.ok(ms < Math.max(3 * refMs, refMs + 3000),
    `fast subscribers took ${Math.round(ms)} ms with a frozen one, ${Math.round(refMs)} ms without`);

  // The frozen subscriber wakes up: what was queued, then avd:dropped.
  const seqs = [];
  frozen.hooks.unshift((m) => { if (isEvent(m, ev)) { seqs.push(m.data.seq); return true; } return false; });
  frozen.resume();
  const d = await frozen.next((m) => isEvent(m, 'avd:dropped'), 10000, 'avd:dropped');
  assert.equal(d.data.reason, 'queue_full');
  assert.ok(d.data.count > 0, `avd:dropped count ${d.data.count}`);
  await sleep(200);
  const more = frozen.drain((m) => isEvent(m, 'avd:dropped'));
  const droppedTotal = d.data.count + more.reduce((a, x) => a + x.data.count, 0);
  assert.equal(droppedTotal, droppedByAvd, 'avd:dropped counts what avd dropped');
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], 'the frozen subscriber\'s events stay in order');
  assert.equal(seqs.length + droppedTotal, N, `received ${seqs.length} + dropped ${droppedTotal} = ${N}`);
  assert.ok(seqs.length * 1000 <= 3 * LIMIT + 8 * (1 << 20), `${seqs.length} events were held for the frozen subscriber`);
  report('frozen subscriber', { received: seqs.length, dropped: droppedTotal });
  assert.equal(typeof (await frozen.callOk('avd.stats')).sessions, 'number', 'the frozen subscriber is still served');
});
