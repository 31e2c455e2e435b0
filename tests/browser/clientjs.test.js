'use strict';
// client-js (the ES module /avd.js) in the browser, against a real avd:
// connect() defaults, streams, cancellation with an AbortSignal.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { isCall } = require('../integration/lib/harness.js');
const { avdServing, browserScope, useBrowser, newPage, pageUrl } = require('./lib.js');

const browser = useBrowser();

// connect() with no arguments at all: URL and token from the page's address.
const MODULE_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body>
<script type="module">
  import * as avd from '/avd.js';
  window.avd = avd;
  window.connected = avd.connect().then(
    (client) => {
      window.client = client;
      return { url: client.url, session: client.session, server: client.server, state: client.state, role: client.role };
    },
    (e) => ({ error: { name: e.name, code: e.code, message: e.message } })
  );
</script>
</body></html>
`;

async function openModulePage(t, avd, token = avd.token) {
  const page = await newPage(browser(), t);
  await page.goto(pageUrl(avd, '/mod.html', token));
  await page.waitForFunction(() => window.connected !== undefined);
  const info = await page.evaluate(() => window.connected);
  return { page, info };
}

// A raw backend (harness Client) that streams: gen.count sends params.n
// chunks then {total}; gen.endless sends a chunk every 20 ms until cancelled.
async function streamingBackend(t, s, avd) {
  const be = await s.client(avd, { role: 'backend', name: 'node-gen' });
  be.cancels = [];
  const running = new Map();
  be.hooks.push((m) => {
    if (isCall(m, 'gen.count')) {
      const n = m.params.n;
      let i = 0;
      // in small bursts, so that chunks and the page's reads interleave
      const step = () => {
        for (let k = 0; k < 7 && i < n; k++, i++) be.send({ type: 'chunk', id: m.id, data: { i, delta: `w${i} ` } });
        if (i < n) setTimeout(step, 2);
        else be.send({ id: m.id, ok: true, result: { total: n } });
      };
      step();
      return true;
    }
    if (isCall(m, 'gen.endless')) {
      let i = 0;
      const timer = setInterval(() => be.isOpen() && be.send({ type: 'chunk', id: m.id, data: { i: i++ } }), 20);
      timer.unref();
      running.set(m.id, timer);
      return false; // tests may wait for it too
    }
    if (m.type === 'cancel') {
      be.cancels.push(m);
      clearInterval(running.get(m.id));
      running.delete(m.id);
      return false; // tests may wait for it too
    }
    return false;
  });
  t.after(() => {
    for (const timer of running.values()) clearInterval(timer);
  });
  await be.callOk('avd.register', { methods: ['gen.count', 'gen.endless', 'gen.hang'] });
  return be;
}

test('connect() takes the URL and the token from the page address', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, { 'mod.html': MODULE_PAGE });
  const watcher = await s.client(avd, { name: 'node-watcher' });
  const { page, info } = await openModulePage(t, avd);
  assert.equal(info.error, undefined, `connect() failed: ${JSON.stringify(info.error)}`);
  assert.equal(info.url, `ws://127.0.0.1:${avd.port}/ws`);
  assert.equal(info.state, 'open');
  assert.equal(info.role, 'frontend');
  assert.match(info.server, /^avd\//);
  const sessions = (await watcher.callOk('avd.sessions')).sessions;
  assert.ok(sessions.some((x) => x.session === info.session && x.role === 'frontend'), 'avd knows the page session');

  // events both ways, handlers get (data, {event, from})
  await page.evaluate(() => {
    window.got = [];
    window.client.on('ping:*', (data, meta) => window.got.push({ data, meta }));
    return window.client.sync();
  });
  watcher.send({ type: 'event', event: 'ping:one', data: { n: 1 } });
  await page.waitForFunction(() => window.got.length === 1);
  assert.deepEqual(await page.evaluate(() => window.got[0]), { data: { n: 1 }, meta: { event: 'ping:one', from: watcher.session } });

  // the same page without ?token=: avd refuses, connect() rejects with Unauthorized
  const bare = await openModulePage(t, avd, null);
  assert.equal(bare.info.error && bare.info.error.name, 'Unauthorized', JSON.stringify(bare.info));
  assert.equal(bare.info.error.code, 'UNAUTHORIZED');
  assert.deepEqual(page.errors.map(String), []);
});

test('stream() yields every chunk in order, then the result', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, { 'mod.html': MODULE_PAGE });
  await streamingBackend(t, s, avd);
  const { page, info } = await openModulePage(t, avd);
  assert.equal(info.error, undefined);
  const out = await page.evaluate(async () => {
    const st = window.client.stream('gen.count', { n: 200 });
    const seen = [];
    let text = '';
    for await (const chunk of st) {
      seen.push(chunk.i);
      text += chunk.delta;
    }
    return { seen, text, result: await st.result };
  });
  assert.equal(out.seen.length, 200);
  assert.deepEqual(out.seen, Array.from({ length: 200 }, (_, i) => i));
  assert.ok(out.text.startsWith('w0 w1 w2 ') && out.text.endsWith('w199 '));
  assert.deepEqual(out.result, { total: 200 });

  // onChunk with call() sees the same chunks, before the call resolves
  const viaCall = await page.evaluate(async () => {
    const seen = [];
    const result = await window.client.call('gen.count', { n: 20 }, { onChunk: (d) => seen.push(d.i) });
    return { seen, result, countAtResolve: seen.length };
  });
  assert.deepEqual(viaCall.seen, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(viaCall.countAtResolve, 20);
  assert.deepEqual(page.errors.map(String), []);
});

test('an AbortSignal cancels the call at the backend; leaving a stream early cancels it too', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, { 'mod.html': MODULE_PAGE });
  const be = await streamingBackend(t, s, avd);
  const { page, info } = await openModulePage(t, avd);
  assert.equal(info.error, undefined);

  // call() with a signal: abort once the backend has it
  const forwarded = be.next((m) => isCall(m, 'gen.hang'), 3000, 'gen.hang forwarded');
  await page.evaluate(() => {
    window.ac = new AbortController();
    window.hung = window.client.call('gen.hang', { x: 1 }, { signal: window.ac.signal, timeout: 0 }).then(
      (v) => ({ ok: true, v }),
      (e) => ({ ok: false, name: e.name, code: e.code })
    );
  });
  const fwd = await forwarded;
  assert.equal(fwd.timeout_ms, 0);
  const cancel = be.next((m) => m.type === 'cancel' && m.id === fwd.id, 3000, 'cancel of gen.hang');
  await page.evaluate(() => window.ac.abort());
  const c = await cancel;
  assert.equal(c.reason, 'cancelled');
  assert.deepEqual(await page.evaluate(() => window.hung), { ok: false, name: 'CancelledError', code: 'CANCELLED' });

  // break out of a for-await over an endless stream: the backend gets a cancel and stops
  const fwd2 = be.next((m) => isCall(m, 'gen.endless'), 3000, 'gen.endless forwarded');
  const taken = page.evaluate(async () => {
    const st = window.client.stream('gen.endless', {});
    const seen = [];
    for await (const chunk of st) {
      seen.push(chunk.i);
      if (seen.length === 3) break;
    }
    const outcome = await st.result.then(() => 'resolved', (e) => e.name);
    return { seen, outcome };
  });
  const call2 = await fwd2;
  const cancel2 = await be.next((m) => m.type === 'cancel' && m.id === call2.id, 3000, 'cancel of gen.endless');
  assert.equal(cancel2.reason, 'cancelled');
  assert.deepEqual(await taken, { seen: [0, 1, 2], outcome: 'CancelledError' });

  // stream.cancel() with a signal-less stream works the same way
  const fwd3 = be.next((m) => isCall(m, 'gen.endless'), 3000, 'second gen.endless');
  await page.evaluate(() => {
    window.st3 = window.client.stream('gen.endless', {});
  });
  const call3 = await fwd3;
  const cancel3 = be.next((m) => m.type === 'cancel' && m.id === call3.id, 3000, 'cancel of the second gen.endless');
  await page.evaluate(() => window.st3.cancel());
  await cancel3;
  assert.equal(await page.evaluate(() => window.st3.result.then(() => 'resolved', (e) => e.code)), 'CANCELLED');
  assert.deepEqual(page.errors.map(String), []);
});
