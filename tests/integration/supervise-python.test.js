'use strict';
// The real Python client (client-python) against a real avd: spawned by avd
// over stdio, and connected by itself over WebSocket. Then 10000 calls in
// 10 s through a supervised Python backend.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const {
  startAvd, Client, isEvent, isResponse, assertErrorResponse, sleep, uniq,
} = require('./lib/harness');
const {
  FIXTURES, PY, percentile, pyCmd, readyOf, stderrOf, waitFor, within,
} = require('./lib/supervise');

const T = { timeout: 20000 };

// Environment for a child that must choose the WebSocket transport by itself.
function wsEnv(extra) {
  const env = { ...process.env, ...extra };
  delete env.AURORAVIEW_PACKED;
  delete env.AVD_BACKEND_NAME;
  return env;
}

for (const transport of ['stdio', 'ws']) {
  describe(`the Python client over ${transport}`, () => {
    const ns = `py${transport}`;
    const name = `pyclient-${ns}`;
    let avd;
    let fe;
    let child;
    let ready;
    let childStderr = '';
    before(async () => {
      if (transport === 'stdio') {
        avd = await startAvd(['--backend', `${name}=FIXTURE_NS=${ns} ${pyCmd('pyclient_backend.py')}`]);
      } else {
        avd = await startAvd([]);
        child = spawn(PY, [path.join(FIXTURES, 'pyclient_backend.py')], {
          env: wsEnv({ AVD_URL: avd.wsUrl, AVD_TOKEN: avd.token, FIXTURE_NS: ns }),
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (d) => { childStderr += d; });
      }
      fe = await Client.connect(avd, { subscribe: [`${ns}:*`, 'backend:stderr'] });
      ready = await fe.next(readyOf(name), 8000);
    });
    after(async () => {
      if (fe) await fe.close();
      if (child && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await within(gone, 3000);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      if (avd) await avd.stop();
    });

    test('it announces its methods: backend_ready, and avd.sessions shows the transport', T, async () => {
      assert.deepEqual([...ready.data.handlers].sort(),
        ['add', 'ask_frontend', 'count', 'echo', 'slow', 'ticker'].map((m) => `${ns}.${m}`));
      const me = (await fe.callOk('avd.sessions')).sessions.find((x) => x.session === ready.data.session);
      assert.equal(me.transport, transport);
      assert.equal(me.role, 'backend');
    });

    test('method calls: positional and keyword params, CJK and emoji intact', T, async () => {
      assert.equal(await fe.callOk(`${ns}.add`, [2, 40]), 42);
      assert.equal(await fe.callOk(`${ns}.add`, { a: 'ab', b: 'cd' }), 'abcd');
      const kw = { text: '你好 😀', n: [1, 2, { deep: null }] };
      assert.deepEqual(await fe.callOk(`${ns}.echo`, kw), kw);
    });

    test('a generator streams its chunks in order, then its return value', T, async () => {
      const id = fe.newId();
      const chunks = [];
      fe.hooks.push((m) => {
        if (m.type === 'chunk' && m.id === id) { chunks.push(m.data); return true; }
        return false;
      });
      const res = await fe.call(`${ns}.count`, { n: 25 }, { id });
      assert.equal(res.ok, true, JSON.stringify(res));
      assert.deepEqual(res.result, { total: 25 });
      assert.deepEqual(chunks, Array.from({ length: 25 }, (_, i) => ({ i })));
    });

    test('cancel closes the generator: its finally block runs (event and stderr line)', T, async () => {
      const { id, response } = fe.startCall(`${ns}.ticker`, null, { timeout_ms: 0 }, 5000);
      const ticks = [];
      for (let i = 0; i < 3; i++) {
        ticks.push((await fe.next((m) => m.type === 'chunk' && m.id === id, 2000)).data.tick);
      }
      assert.deepEqual(ticks, [0, 1, 2]);
      fe.send({ type: 'cancel', id });
      assertErrorResponse(await response, 'CANCELLED');
      const closed = await fe.next((m) => isEvent(m, `${ns}:gen_closed`), 2000);
      assert.equal(closed.from, ready.data.session);
      assert.ok(closed.data.ticks >= 3, `closed after ${closed.data.ticks} ticks`);
      const line = `${ns}.ticker generator closed after ${closed.data.ticks} ticks`;
      if (transport === 'stdio') {
        const m = await fe.next(stderrOf(name, (l) => l.includes('generator closed')), 2000);
        assert.equal(m.data.line, line);
      } else {
        assert.ok(await waitFor(() => childStderr.includes(line), 2000), `stderr: ${childStderr}`);
      }
      // No chunk after the cancel.
      await fe.expectNone((m) => m.type === 'chunk' && m.id === id, 200, 'a chunk after cancel');
    });

    test('events both ways: a frontend\'s event reaches its handler, which publishes one back', T, async () => {
      fe.send({ type: 'event', event: `${ns}:ping`, data: { n: 7, text: '事件 ✓' } });
      const pong = await fe.next((m) => isEvent(m, `${ns}:pong`), 3000);
      assert.deepEqual(pong.data, { got: { n: 7, text: '事件 ✓' }, from: fe.session });
      assert.equal(pong.from, ready.data.session);
    });

    test('backend.call_sync into a method a Node frontend registered', T, async () => {
      const method = uniq('ui.measure');
      await fe.callOk('avd.register', { methods: [method] });
      fe.serve(method, (p, m) => ({ width: p.w * 2, caller: m.caller }));
      const out = await fe.callOk(`${ns}.ask_frontend`, { method, params: { w: 21 } });
      assert.deepEqual(out, { width: 42, caller: ready.data.session });
      await fe.callOk('avd.unregister', { methods: [method] });
      const res = await fe.call(`${ns}.ask_frontend`, { method, params: {} });
      assert.equal(res.ok, false);
      assert.equal(res.error.code, 'METHOD_NOT_FOUND', JSON.stringify(res.error));
    });

    if (transport === 'ws') {
      test('SIGTERM ends it normally; avd fails calls pending on it at once', T, async () => {
        const { response } = fe.startCall(`${ns}.slow`, { seconds: 5 }, {}, 5000);
        await sleep(200);
        const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
        child.kill('SIGTERM');
        assertErrorResponse(await response, 'BACKEND_UNAVAILABLE');
        const how = await within(exited, 4000);
        assert.deepEqual(how, { code: 0, signal: null }, `stderr: ${childStderr}`);
      });
    }
  });
}

// ---- load ---------------------------------------------------------------------------

test('1000 calls/s for 10 s through a supervised Python backend: all 10000 answered, right results', { timeout: 60000 }, async (t) => {
  const avd = await startAvd(['--backend', `load=FIXTURE_NS=load ${pyCmd('pyclient_backend.py')}`]);
  let fe;
  try {
    fe = await Client.connect(avd);
    await fe.next(readyOf('load'), 8000);
    // Warm up the worker threads.
    assert.equal(await fe.callOk('load.add', [1, 1]), 2);

    const sentAt = new Map();
    const latencies = [];
    let okCount = 0;
    const wrong = [];
    let allDone;
    const done = new Promise((r) => { allDone = r; });
    fe.hooks.unshift((m) => {
      if (!isResponse(m) || !sentAt.has(m.id)) return false;
      const { at, want } = sentAt.get(m.id);
      sentAt.delete(m.id);
      latencies.push(Number(process.hrtime.bigint() - at) / 1e6);
      if (m.ok === true && m.result === want) okCount++;
      else if (wrong.length < 5) wrong.push(m);
      if (latencies.length === 10000) allDone();
      return true;
    });
    const t0 = Date.now();
    let n = 0;
    for (let tick = 0; tick < 1000; tick++) {
      const due = t0 + tick * 10;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      for (let k = 0; k < 10; k++, n++) {
        const id = `L${n}`;
        sentAt.set(id, { at: process.hrtime.bigint(), want: n * 3 + 1 });
        fe.send({ id, method: 'load.add', params: [n, 2 * n + 1] });
      }
    }
    const sendMs = Date.now() - t0;
    await within(done, 15000);
    const totalMs = Date.now() - t0;
    latencies.sort((a, b) => a - b);
    t.diagnostic(`sent 10000 calls in ${sendMs} ms; answered ${latencies.length} (ok ${okCount}) ` +
      `by ${totalMs} ms; latency p50 ${percentile(latencies, 50).toFixed(2)} ms, ` +
      `p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${latencies[latencies.length - 1].toFixed(2)} ms`);
    assert.deepEqual(wrong, [], 'wrong or failed answers');
    assert.equal(latencies.length, 10000, `${10000 - latencies.length} calls never answered`);
    assert.equal(okCount, 10000);
    assert.ok(sendMs < 12000, `pacing fell behind: ${sendMs} ms to send`);
  } finally {
    if (fe) await fe.close();
    await avd.stop();
  }
});
