'use strict';
// The console (ui/) in headless Chromium, against a real avd serving it.
// Each test asserts what a person looking at the page would see.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { isCall, sleep } = require('../integration/lib/harness.js');
const {
  CLIENT_DIR,
  UI_DIR,
  artifactsDir,
  avdServing,
  browserScope,
  useBrowser,
  newPage,
  pageUrl,
  stdioBackendScript,
  tmpDir,
  waitText,
} = require('./lib.js');

const browser = useBrowser();

// Opens the console and waits until it shows "connected".
async function openConsole(t, avd, opts = {}) {
  const page = await newPage(browser(), t, opts);
  await page.goto(pageUrl(avd, '/') + (opts.query || ''));
  await page.waitForSelector('#conn[data-state="open"]');
  return page;
}

function noPageErrors(page) {
  assert.deepEqual(page.errors.map(String), [], 'no uncaught errors in the page');
}

async function backendClient(s, avd, name, methods, handlers = {}) {
  const be = await s.client(avd, { role: 'backend', name });
  for (const [m, fn] of Object.entries(handlers)) be.serve(m, fn);
  if (methods.length) await be.callOk('avd.register', { methods });
  return be;
}

test('the console connects with the token from its URL and lists a Node backend and its methods', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, null, [], { ui: UI_DIR });
  const be = await backendClient(s, avd, 'node-tools', ['tools.echo', 'tools.sum'], { 'tools.echo': (p) => p });
  // polling slowed to a minute: what follows comes from avd's session events
  const page = await openConsole(t, avd, { query: '&refresh=60000' });

  assert.equal(await page.textContent('#conn-text'), 'connected');
  assert.match(await page.textContent('#server'), /^avd\/\d+\.\d+/, 'header shows the avd version');
  const self = await page.textContent('#self');
  assert.match(self, /^s\d+$/, 'header shows the console session');

  // the backend: sessions table, health panel, methods table with its owner
  const row = `#sessions tr[data-session="${be.session}"]`;
  await waitText(page, row, 'node-tools');
  assert.match(await page.textContent(row), /backend/);
  assert.match(await page.textContent(`${row} td:nth-child(4)`), /^(ready|alive)$/, 'backend health shown');
  await waitText(page, `#backends li[data-session="${be.session}"]`, 'node-tools');
  for (const m of ['tools.echo', 'tools.sum']) {
    const text = await waitText(page, `#methods tr[data-method="${m}"]`, 'node-tools');
    assert.ok(text.includes(be.session), `${m} shows its owner session`);
  }
  // the console itself, marked as such
  const own = await page.textContent(`#sessions tr[data-session="${self}"]`);
  assert.match(own, /console/);
  assert.match(own, /this console/);
  assert.match(own, /frontend/);

  // live: a backend that joins later appears without a reload, and goes when it leaves
  const late = await backendClient(s, avd, 'late-worker', ['worker.run']);
  await waitText(page, `#sessions tr[data-session="${late.session}"]`, 'late-worker');
  await waitText(page, '#methods tr[data-method="worker.run"]', 'late-worker');
  await late.close();
  await page.waitForSelector(`#sessions tr[data-session="${late.session}"]`, { state: 'detached' });
  await page.waitForSelector('#methods tr[data-method="worker.run"]', { state: 'detached' });
  assert.equal(await page.textContent('#stat-backends'), '1', 'header counts one backend again');
  noPageErrors(page);
});

test('the call form shows results, structured errors, calls in flight and cancels', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, null, [], { ui: UI_DIR });
  let calls = 0;
  // tools.hang is left unanswered by hand (no handler), to watch its cancel
  const be = await backendClient(s, avd, 'node-tools', ['tools.echo', 'tools.fail', 'tools.slow', 'tools.hang'], {
    'tools.echo': (p) => {
      calls++;
      return { echoed: p };
    },
    'tools.fail': () => {
      const e = new Error('disk full');
      e.code = 'E_DISK_FULL';
      throw e;
    },
    'tools.slow': () => new Promise(() => {}),
  });
  const page = await openConsole(t, avd);
  await waitText(page, '#methods tr[data-method="tools.echo"]', 'tools.echo');

  // success
  await page.fill('#call-method', 'tools.echo');
  await page.fill('#call-params', '{"text":"你好","n":3}');
  await page.click('#call-submit');
  await page.waitForSelector('#call-result[data-state="ok"]');
  const ok = await page.textContent('#call-result');
  assert.match(ok, /"echoed"/);
  assert.match(ok, /"text": "你好"/, 'the result is shown as pretty JSON');
  assert.equal(calls, 1);

  // no such method: avd's METHOD_NOT_FOUND with its name and message
  await page.fill('#call-method', 'nobody.home');
  await page.click('#call-submit');
  await page.waitForSelector('#call-result[data-state="error"]');
  assert.equal(await page.textContent('#call-result .code'), 'METHOD_NOT_FOUND');
  assert.equal(await page.textContent('#call-result .ename'), 'MethodNotFound');
  assert.match(await page.textContent('#call-result .emsg'), /\S/, 'a message is shown');
  assert.match(await page.textContent('#call-result pre'), /"method": "nobody.home"/, 'error data shown');
  assert.equal(await page.$eval('#call-result', (n) => getComputedStyle(n).borderLeftColor), 'rgb(198, 47, 47)', 'errors are red');

  // the backend's own error code passes through
  await page.fill('#call-method', 'tools.fail');
  await page.fill('#call-params', '{}');
  await page.click('#call-submit');
  await waitText(page, '#call-result[data-state="error"] .code', /^E_DISK_FULL$/);
  assert.match(await page.textContent('#call-result .emsg'), /disk full/);

  // avd's timeout, with the timeout field
  await page.fill('#call-method', 'tools.slow');
  await page.fill('#call-timeout', '250');
  await page.click('#call-submit');
  await waitText(page, '#call-result[data-state="error"] .code', /^TIMEOUT$/);
  assert.equal(await page.textContent('#call-result .ename'), 'TimeoutError');
  assert.match(await page.textContent('#call-result pre'), /"timeout_ms": 250/);

  // invalid JSON never reaches the backend
  await page.fill('#call-method', 'tools.echo');
  await page.fill('#call-timeout', '');
  await page.fill('#call-params', '{"text":');
  await page.click('#call-submit');
  await waitText(page, '#call-result[data-state="error"] .emsg', /not valid JSON/);
  assert.equal(calls, 1, 'no call was made');

  // a pending call shows in "Calls in flight"; Cancel reaches the backend
  const forwarded = be.next((m) => isCall(m, 'tools.hang'), 5000, 'tools.hang forwarded');
  await page.fill('#call-method', 'tools.hang');
  await page.fill('#call-params', '{}');
  await page.click('#call-submit');
  await page.waitForSelector('#call-result[data-state="pending"]');
  const fwd = await forwarded;
  await waitText(page, '#calls tr', /tools\.hang.*console.*node-tools/s);
  assert.equal(await page.isEnabled('#call-cancel'), true);
  const cancelled = be.next((m) => m.type === 'cancel' && m.id === fwd.id, 5000, 'cancel of tools.hang');
  await page.click('#call-cancel');
  const c = await cancelled;
  assert.equal(c.id, fwd.id);
  assert.equal(c.reason, 'cancelled');
  await waitText(page, '#call-result[data-state="error"] .code', /^CANCELLED$/);
  await page.waitForSelector('#calls tbody tr', { state: 'detached' });
  noPageErrors(page);
});

test('events from a Node client appear in the log; the filter narrows it; the emit form publishes', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, null, [], { ui: UI_DIR });
  const page = await openConsole(t, avd);
  const pub = await s.client(avd, { name: 'node-ui', subscribe: ['ui:*'] });

  pub.send({ type: 'event', event: 'progress', data: { pct: 40, file: 'a.exr' } });
  pub.send({ type: 'event', event: 'scene:changed', data: { scene: 'forest' } });
  const prog = `#log tr[data-event="progress"]`;
  const text = await waitText(page, prog, '"pct":40');
  assert.match(text, new RegExp(`node-ui \\(${pub.session}\\)`), 'the sender is named');
  await waitText(page, '#log tr[data-event="scene:changed"]', 'forest');
  await waitText(page, '#log tr[data-event="avd:session_joined"]', 'node-ui');

  // filter by data text
  await page.fill('#log-filter', 'FOREST');
  await page.waitForSelector(`${prog}`, { state: 'hidden' });
  assert.equal(await page.isVisible('#log tr[data-event="scene:changed"]'), true);
  assert.match(await page.textContent('#log-count'), /^1 \/ \d+$/);
  // events arriving while filtered obey the filter
  pub.send({ type: 'event', event: 'progress', data: { pct: 41 } });
  pub.send({ type: 'event', event: 'forest:grown', data: {} });
  await page.waitForSelector('#log tr[data-event="forest:grown"]', { state: 'visible' });
  assert.equal(await page.locator(`${prog}:visible`).count(), 0, 'progress rows stay hidden');
  // filter by event name, then clear it
  await page.fill('#log-filter', 'progress');
  await page.waitForSelector('#log tr[data-event="scene:changed"]', { state: 'hidden' });
  assert.equal(await page.locator(`${prog}:visible`).count(), 2);
  await page.fill('#log-filter', '');
  await page.waitForSelector('#log tr[data-event="scene:changed"]', { state: 'visible' });

  // clicking a row shows its data in full
  await page.click(`${prog} >> nth=0`);
  await waitText(page, '#log tr.detail pre', /"file": "a\.exr"/);

  // the emit form: a Node subscriber receives it, the console logs its own event
  await page.fill('#emit-event', 'ui:clicked');
  await page.fill('#emit-data', '{"button":"ok"}');
  await page.click('#emit-submit');
  const got = await pub.next((m) => m.type === 'event' && m.event === 'ui:clicked', 3000, 'ui:clicked at the Node client');
  assert.deepEqual(got.data, { button: 'ok' });
  assert.equal(got.from, await page.textContent('#self'));
  await waitText(page, '#log tr[data-event="ui:clicked"]', /console/);
  await page.waitForSelector('#emit-result[data-state="ok"]');
  // a name avd would refuse is refused in the form
  await page.fill('#emit-event', 'bad name');
  await page.click('#emit-submit');
  await waitText(page, '#emit-result[data-state="error"] .code', /^INVALID_REQUEST$/);

  // the log keeps the newest 1000 rows
  for (let i = 0; i < 1100; i++) pub.send({ type: 'event', event: 'bulk', data: { i } });
  await waitText(page, '#log tr[data-event="bulk"]:last-child', '{"i":1099}', 10000);
  assert.equal(await page.locator('#log tbody tr:not(.detail)').count(), 1000);
  assert.equal(await page.textContent('#log-count'), '1000');
  noPageErrors(page);
});

test('backend errors and health: a backend that leaves, one that falls silent', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, null, ['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '500'], { ui: UI_DIR });
  const page = await openConsole(t, avd);

  // a WebSocket backend that leaves: backend_error source ipc
  const be = await backendClient(s, avd, 'node-leaver', ['leaver.run']);
  await waitText(page, `#sessions tr[data-session="${be.session}"]`, 'node-leaver');
  await be.close();
  const ipc = await waitText(page, '#errors li[data-source="ipc"]', 'node-leaver');
  assert.match(ipc, /fatal/);
  await page.waitForSelector(`#sessions tr[data-session="${be.session}"]`, { state: 'detached' });
  await waitText(page, '#log tr[data-event="backend_error"]', '"source":"ipc"');

  // a silent backend: unhealthy (heartbeat), then alive again
  const mute = await s.client(avd, { role: 'backend', name: 'node-mute', autoPong: false });
  await mute.callOk('avd.register', { methods: ['mute.run'] });
  await waitText(page, '#errors li[data-source="heartbeat"]', /node-mute[\s\S]*non-fatal/);
  await waitText(page, `#sessions tr[data-session="${mute.session}"] td:nth-child(4)`, /^unhealthy$/);
  await waitText(page, `#backends li[data-session="${mute.session}"]`, 'unhealthy');
  mute.enableAutoPong();
  await mute.callOk('avd.stats');
  await waitText(page, `#sessions tr[data-session="${mute.session}"] td:nth-child(4)`, /^(alive|ready)$/);
  await waitText(page, `#backends li[data-session="${mute.session}"]`, /alive|ready/);
  noPageErrors(page);
});

test('a supervised backend: its stderr lines, then its crash with exit code and stderr tail', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const script = stdioBackendScript(tmpDir(s), { handlers: ['noisy.work', 'noisy.crash'] });
  const avd = await avdServing(s, null, ['--backend', `noisy=${process.execPath} ${script}`], { ui: UI_DIR });
  const page = await openConsole(t, avd);
  await waitText(page, '#sessions tr[data-role="backend"]', 'noisy');
  // its methods once its `ready` line is in
  await waitText(page, '#methods tr[data-method="noisy.work"]', 'noisy');
  const fe = await s.client(avd, { name: 'node-ui' });

  // stderr lines, as the backend writes them
  await fe.callOk('noisy.work', { x: 1 });
  await waitText(page, '#stderr li[data-backend="noisy"]', 'handling noisy.work');

  // the crash: backend_error source crash, exit code, stderr tail
  fe.startCall('noisy.crash', { line: 'fatal: out of cheese', code: 3 });
  await waitText(page, '#stderr li[data-backend="noisy"]', 'fatal: out of cheese');
  const crash = await waitText(page, '#errors li[data-source="crash"]', /noisy[\s\S]*exit code 3/);
  assert.match(crash, /fatal/);
  await page.click('#errors li[data-source="crash"] summary');
  await waitText(page, '#errors li[data-source="crash"] pre.tail', 'fatal: out of cheese');
  // errors are red
  const color = await page.$eval('#errors li[data-source="crash"] .error-msg', (n) => getComputedStyle(n).color);
  assert.equal(color, 'rgb(198, 47, 47)');
  // ... and the event log has them too
  await waitText(page, '#log tr[data-event="backend_error"]', '"source":"crash"');
  await waitText(page, '#log tr[data-event="backend:stderr"]', 'out of cheese');
  noPageErrors(page);
});

test('without a token the console says how to get in', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const avd = await avdServing(s, null, [], { ui: UI_DIR });
  const page = await newPage(browser(), t);
  await page.goto(pageUrl(avd, '/', null));
  await page.waitForSelector('#conn[data-state="down"]');
  const text = await page.textContent('#banner');
  assert.match(text, /\?token=/);
  assert.equal(await page.isVisible('#banner'), true);
  assert.equal(await page.textContent('#self'), '—');
});

test('the console shows a lost connection and comes back when avd restarts', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const first = await avdServing(s, null, [], { ui: UI_DIR });
  const page = await openConsole(t, first);
  await first.stop();
  await page.waitForSelector('#conn[data-state="down"]');
  await waitText(page, '#banner', /Not connected to avd/);
  assert.equal(await page.isVisible('#banner'), true);

  // same port and token, as after a service restart
  const second = await s.avd(['--ui', UI_DIR, '--client-dir', CLIENT_DIR, '--port', String(first.port), '--token', first.token]);
  const be = await backendClient(s, second, 'node-again', ['again.run']);
  await page.waitForSelector('#conn[data-state="open"]', { timeout: 10000 });
  assert.equal(await page.isVisible('#banner'), false);
  await waitText(page, `#sessions tr[data-session="${be.session}"]`, 'node-again');
  await waitText(page, '#methods tr[data-method="again.run"]', 'node-again');
  // still subscribed to everything
  be.send({ type: 'event', event: 'after:restart', data: { ok: true } });
  await waitText(page, '#log tr[data-event="after:restart"]', '"ok":true');
  noPageErrors(page);
});

test('screenshot: the console with backends, calls, events and errors', { timeout: 30000 }, async (t) => {
  const s = browserScope(t);
  const script = stdioBackendScript(tmpDir(s), { handlers: ['render.frame', 'render.crash'] });
  const avd = await avdServing(s, null, ['--backend', `renderer=${process.execPath} ${script}`], { ui: UI_DIR });
  const be = await backendClient(s, avd, 'node-tools', ['api.echo', 'api.add', 'scene.load', 'scene.save'], {
    'api.echo': (p) => p,
    'scene.load': () => new Promise(() => {}),
  });
  const page = await openConsole(t, avd, { viewport: { width: 1440, height: 1000 } });
  await waitText(page, '#methods tr[data-method="render.frame"]', 'renderer');
  await waitText(page, '#methods tr[data-method="scene.load"]', 'node-tools');

  const ui = await s.client(avd, { name: 'web-ui' });
  ui.startCall('scene.load', { scene: 'forest' }, { timeout_ms: 0 });
  for (let i = 1; i <= 3; i++) await ui.callOk('render.frame', { frame: i });
  for (let i = 0; i <= 4; i++) be.send({ type: 'event', event: 'progress', data: { pct: i * 25, stage: 'render', file: `shot_${i}.exr` } });
  be.send({ type: 'event', event: 'scene:changed', data: { scene: 'forest', objects: 1243 } });
  const gone = await backendClient(s, avd, 'py-worker', ['worker.run']);
  await gone.close();

  await page.fill('#call-method', 'api.echo');
  await page.fill('#call-params', '{"text":"你好","n":3}');
  await page.click('#call-submit');
  await page.waitForSelector('#call-result[data-state="ok"]');
  await page.fill('#emit-event', 'ui:theme');
  await page.fill('#emit-data', '{"dark":false}');
  await page.click('#emit-submit');
  await waitText(page, '#errors li[data-source="ipc"]', 'py-worker');
  await waitText(page, '#calls tr', 'scene.load');
  await waitText(page, '#stderr li', 'handling render.frame');
  await sleep(300); // let the log's last frame paint

  // nothing sticks out sideways at a common laptop width
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the window`);

  const file = path.join(artifactsDir(), 'console.png');
  await page.screenshot({ path: file, fullPage: true });
  const png = fs.readFileSync(file);
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
  assert.ok(png.length > 20000, 'screenshot has content');
  noPageErrors(page);
});
