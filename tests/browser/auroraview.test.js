'use strict';
// AuroraView front-end code, unchanged, on avd: a page that loads
// /avd.global.js as a classic script and uses only window.auroraview.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { isCall } = require('../integration/lib/harness.js');
const { avdServing, browserScope, useBrowser, newPage, pageUrl, waitText } = require('./lib.js');

const browser = useBrowser();

// What an AuroraView app page does at load: listen for auroraviewready,
// subscribe with auroraview.on, bind api.* names, then call when ready.
const APP_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gallery</title><link rel="icon" href="data:,"></head>
<body>
<p id="ready">starting</p>
<p id="echo"></p>
<ol id="progress"></ol>
<script src="/avd.global.js"></script>
<script>
  window.results = { readyEvents: [], progress: [], progressMeta: [] };
  window.addEventListener('auroraviewready', function (e) {
    results.readyEvents.push(e.detail);
    document.getElementById('ready').textContent = 'ready ' + e.detail.session;
  });
  auroraview.on('progress', function (detail, meta) {
    results.progress.push(detail);
    results.progressMeta.push(meta);
    var li = document.createElement('li');
    li.textContent = detail.pct + '%';
    document.getElementById('progress').appendChild(li);
  });
  auroraview._registerApiMethods('api', ['echo']);
  results.boundBeforeReady = auroraview.isMethodBound('api.echo');
  results.readyBeforeConnect = auroraview.isReady();
  auroraview.whenReady().then(function (av) {
    results.whenReadyGaveBridge = av === window.auroraview;
    return auroraview.api.echo({ text: '你好' });
  }).then(function (r) {
    document.getElementById('echo').textContent = r.text;
  }, function (e) {
    document.getElementById('echo').textContent = 'error ' + e.name;
  });
</script>
</body>
</html>
`;

// Runs an auroraview call in the page and returns its outcome as plain data.
function settle(page, fnSource, arg) {
  return page.evaluate(
    async ([src, a]) => {
      try {
        // eslint-disable-next-line no-new-func
        const value = await new Function('a', `return (${src})(a);`)(a);
        return { ok: true, value };
      } catch (e) {
        return { ok: false, name: e && e.name, code: e && e.code, message: e && e.message, data: e && e.data, isError: e instanceof Error };
      }
    },
    [fnSource, arg]
  );
}

test('an AuroraView page calls a backend method and receives its events through window.auroraview', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, { 'app.html': APP_PAGE });
  const be = await s.client(avd, { role: 'backend', name: 'py-app' });
  be.serve('api.echo', (p) => p);
  be.serve('api.render', async (p, msg) => {
    for (let pct = 0; pct <= 100; pct += 25) be.send({ type: 'event', event: 'progress', data: { pct, job: p.job } });
    return { frames: 5, caller: msg.caller };
  });
  be.serve('api.slow', () => new Promise(() => {}));
  await be.callOk('avd.register', { methods: ['api.echo', 'api.render', 'api.slow'] });
  const watcher = await s.client(avd, { name: 'node-watcher', subscribe: ['ui:*'] });

  const page = await newPage(browser(), t);
  await page.goto(pageUrl(avd, '/app.html'));

  // auroraviewready, whenReady(), and the api.echo bound before the connection
  const ready = await waitText(page, '#ready', /^ready s\d+$/);
  await waitText(page, '#echo', /^你好$/);
  const r = await page.evaluate(() => window.results);
  assert.equal(r.readyEvents.length, 1, 'auroraviewready fired once');
  assert.equal(ready, `ready ${r.readyEvents[0].session}`);
  assert.match(r.readyEvents[0].server, /^avd\//);
  assert.equal(r.boundBeforeReady, true);
  assert.equal(r.readyBeforeConnect, false);
  assert.equal(r.whenReadyGaveBridge, true);
  assert.equal(await page.evaluate(() => auroraview.isReady()), true);

  // avd sees the page as a frontend session
  const sessions = (await watcher.callOk('avd.sessions')).sessions;
  const pageSession = sessions.find((x) => x.session === r.readyEvents[0].session);
  assert.ok(pageSession, 'the page has a session in avd');
  assert.equal(pageSession.role, 'frontend');

  // auroraview.call; the backend's events reach auroraview.on handlers with the detail
  const call = await settle(page, '() => auroraview.call("api.render", { job: "shot_010" })');
  assert.deepEqual(call, { ok: true, value: { frames: 5, caller: r.readyEvents[0].session } });
  await waitText(page, '#progress li:nth-child(5)', /^100%$/);
  const progress = await page.evaluate(() => window.results);
  assert.deepEqual(progress.progress.map((d) => d.pct), [0, 25, 50, 75, 100], 'events in order');
  assert.equal(progress.progress[0].job, 'shot_010');
  assert.deepEqual(progress.progressMeta[0], { event: 'progress', from: be.session });

  // api.render was bound from backend_ready, without _registerApiMethods
  assert.equal(await page.evaluate(() => typeof auroraview.api.render), 'function');
  assert.ok((await page.evaluate(() => auroraview.getBoundMethods())).includes('api.render'));

  // send_event reaches a Node subscriber, detail as data
  await page.evaluate(() => auroraview.send_event('ui:opened', { page: 'gallery' }));
  const ev = await watcher.next((m) => m.type === 'event' && m.event === 'ui:opened', 3000, 'ui:opened');
  assert.deepEqual(ev.data, { page: 'gallery' });
  assert.equal(ev.from, r.readyEvents[0].session);

  // rejections carry AuroraView's names and codes
  const timeout = await settle(page, '() => auroraview.call("api.slow", {}, { timeout: 300 })');
  assert.equal(timeout.ok, false);
  assert.equal(timeout.isError, true);
  assert.equal(timeout.name, 'TimeoutError');
  assert.equal(timeout.code, 'TIMEOUT');
  assert.deepEqual(timeout.data, { method: 'api.slow', timeout_ms: 300 });

  const missing = await settle(page, '() => auroraview.call("api.nothing_here")');
  assert.equal(missing.name, 'MethodNotFound');
  assert.equal(missing.code, 'METHOD_NOT_FOUND');

  // a backend that goes away mid-call: BackendUnavailableError at once
  const vanishing = await s.client(avd, { role: 'backend', name: 'py-vanish' });
  await vanishing.callOk('avd.register', { methods: ['vanish.run'] });
  const started = Date.now();
  const pending = settle(page, '() => auroraview.call("vanish.run", {}, { timeout: 20000 })');
  await vanishing.next((m) => isCall(m, 'vanish.run'), 3000, 'vanish.run forwarded');
  vanishing.terminate();
  const gone = await pending;
  assert.equal(gone.name, 'BackendUnavailableError');
  assert.equal(gone.code, 'BACKEND_UNAVAILABLE');
  assert.ok(Date.now() - started < 5000, 'failed fast, not by timeout');
  // ... and later calls to it fail at once as well
  const later = await settle(page, '() => auroraview.call("vanish.run", {})');
  assert.ok(['BackendUnavailableError', 'MethodNotFound'].includes(later.name), `got ${later.name}`);

  assert.deepEqual(page.errors.map(String), []);
});

test('an AuroraView bridge stub\'s queued calls are replayed and __AURORAVIEW_CONFIG__ applies', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const stubPage = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>
<p id="out">waiting</p>
<script>
  // What an AuroraView page may hold before the real bridge loads.
  window.__AURORAVIEW_CONFIG__ = { callTimeoutMs: 400 };
  window.auroraview = { _pendingCalls: [] };
  window.auroraview._pendingCalls.push({ method: 'api.echo', params: { n: 7 },
    resolve: function (r) { document.getElementById('out').textContent = 'replayed ' + r.n; },
    reject: function (e) { document.getElementById('out').textContent = 'failed ' + e.name; } });
</script>
<script src="/avd.global.js"></script>
</body></html>`;
  const avd = await avdServing(s, { 'stub.html': stubPage });
  const be = await s.client(avd, { role: 'backend', name: 'py-app' });
  be.serve('api.echo', (p) => p);
  be.serve('api.slow', () => new Promise(() => {}));
  await be.callOk('avd.register', { methods: ['api.echo', 'api.slow'] });
  const page = await newPage(browser(), t);
  await page.goto(pageUrl(avd, '/stub.html'));
  await waitText(page, '#out', /^replayed 7$/);
  assert.equal(await page.evaluate(() => auroraview.getConfig().callTimeoutMs), 400);
  // the configured call timeout is the one avd enforces
  const r = await settle(page, '() => auroraview.call("api.slow", {})');
  assert.equal(r.name, 'TimeoutError');
  assert.equal(r.data.timeout_ms, 400);
  assert.deepEqual(page.errors.map(String), []);
});
