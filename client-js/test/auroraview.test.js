// window.auroraview compatibility, exercised through the generated classic
// script avd.global.js loaded into a simulated page (globalThis.window is an
// EventTarget with a location), as a browser would load it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { WebSocket } from 'ws';
import { FakeAvd, until, sleep } from './fake-avd.js';
import * as avdModule from '../avd.js';

const GLOBAL_SRC = readFileSync(new URL('../avd.global.js', import.meta.url), 'utf8');

/** Runs fn with console.error captured; returns the captured first arguments. */
async function capturingConsoleError(fn) {
  const saved = console.error;
  const lines = [];
  console.error = (...args) => lines.push(String(args[0]));
  try {
    await fn();
  } finally {
    console.error = saved;
  }
  return lines;
}

function makeWindow(port, extra = {}) {
  const win = new EventTarget();
  const href = 'http://127.0.0.1:' + port + '/app/index.html?token=pagetok';
  Object.assign(win, {
    location: { protocol: 'http:', host: '127.0.0.1:' + port, href, search: '?token=pagetok' },
    WebSocket,
    CustomEvent,
    Event,
    ...extra,
  });
  return win;
}

/** Loads avd.global.js into a fresh simulated page served by a fake avd. */
async function page(t, { config, avdCfg, server = {}, before } = {}) {
  const fake = await FakeAvd.start(server);
  const extra = {};
  if (config) extra.__AURORAVIEW_CONFIG__ = config;
  if (avdCfg) extra.__AVD__ = avdCfg;
  const win = makeWindow(fake.port, extra);
  const readyEvents = [];
  win.addEventListener('auroraviewready', (ev) => readyEvents.push(ev));
  if (before) before(win);
  globalThis.window = win;
  vm.runInThisContext(GLOBAL_SRC, { filename: 'avd.global.js' });
  t.after(async () => {
    if (win.auroraview && win.auroraview.client) await win.auroraview.client.close();
    delete globalThis.window;
    await fake.close();
  });
  return { fake, win, av: win.auroraview, readyEvents };
}

test('the classic script defines window.avd and window.auroraview and connects from location', async (t) => {
  const { fake, win, av, readyEvents } = await page(t);
  assert.deepEqual(Object.keys(win.avd).sort(), Object.keys(avdModule).sort());
  assert.equal(typeof av.call, 'function');
  assert.equal(av.isReady(), false);
  const conn = await fake.helloed(0);
  assert.equal(conn.req.url, '/ws');
  assert.equal(conn.hello.token, 'pagetok');
  assert.equal(conn.hello.role, 'frontend');
  assert.equal(conn.hello.name, 'auroraview');
  assert.equal(await av.whenReady(), av);
  assert.equal(av.isReady(), true);
  await until(() => readyEvents.length === 1);
  assert.equal(readyEvents[0].type, 'auroraviewready');
  assert.equal(readyEvents[0].detail.session, 's1');
  assert.equal(av._ready, true);
});

test('__AURORAVIEW_CONFIG__ is read at load: url, token and settings', async (t) => {
  const fake2 = await FakeAvd.start();
  t.after(() => fake2.close());
  const { fake, av } = await page(t, {
    config: { url: fake2.url, token: 'cfgtok', callTimeoutMs: 4321, backendFailFast: false, heartbeatTimeoutMs: 900 },
  });
  const conn = await fake2.helloed(0);
  assert.equal(conn.hello.token, 'cfgtok');
  assert.equal(fake.conns.length, 0);
  await av.whenReady();
  assert.deepEqual(av.getConfig(), { callTimeoutMs: 4321, backendFailFast: false, heartbeatTimeoutMs: 900 });
  fake2.onMessage = (c, msg) => c.reply(msg.id, msg.timeout_ms);
  assert.equal(await av.call('api.t'), 4321);
  assert.equal(await av.call('api.t', null, { timeout: 250 }), 250);
  av.setConfig({ callTimeoutMs: 99 });
  assert.equal(await av.call('api.t'), 99);
});

test('bad __AURORAVIEW_CONFIG__ values are ignored (logged), the bridge still installs', async (t) => {
  let ctx;
  const logged = await capturingConsoleError(async () => {
    ctx = await page(t, { config: { callTimeoutMs: 'soon', backendFailFast: 1, heartbeatTimeoutMs: 250 } });
  });
  assert.deepEqual(logged, [
    '[avd] ignoring __AURORAVIEW_CONFIG__.callTimeoutMs (not a number >= 0)',
    '[avd] ignoring __AURORAVIEW_CONFIG__.backendFailFast (not a boolean)',
  ]);
  await ctx.av.whenReady();
  assert.deepEqual(ctx.av.getConfig(), { callTimeoutMs: 30000, backendFailFast: true, heartbeatTimeoutMs: 250 });
});

test('__AVD__ {url, token} injected by the desktop shell wins over location', async (t) => {
  const other = await FakeAvd.start();
  t.after(() => other.close());
  const { fake, av } = await page(t, { avdCfg: { url: other.url, token: 'shelltok' } });
  const conn = await other.helloed(0);
  assert.equal(conn.hello.token, 'shelltok');
  await av.whenReady();
  assert.equal(fake.conns.length, 0);
});

test('call / api namespace via _registerApiMethods / isMethodBound / getBoundMethods', async (t) => {
  const { fake, av } = await page(t);
  fake.onMessage = (c, msg) => c.reply(msg.id, { method: msg.method, params: msg.params === undefined ? 'absent' : msg.params });
  await av.whenReady();
  assert.deepEqual(await av.call('api.echo', { a: 1 }), { method: 'api.echo', params: { a: 1 } });
  assert.equal(av.isMethodBound('api.echo'), false);
  av._registerApiMethods('api', ['echo', 'add']);
  assert.equal(av.isMethodBound('api.echo'), true);
  assert.deepEqual(av.getBoundMethods(), ['api.echo', 'api.add']);
  assert.deepEqual(await av.api.echo({ text: 'x' }), { method: 'api.echo', params: { text: 'x' } });
  assert.deepEqual(await av.api.add(), { method: 'api.add', params: 'absent' });
  av._registerApiMethods('tools', ['run']);
  assert.deepEqual(await av.tools.run(5), { method: 'tools.run', params: 5 });
  // reserved names are not clobbered
  const call = av.call;
  const logged = await capturingConsoleError(() => {
    av._registerApiMethods('call', ['x']);
    av._registerApiMethods('_boundMethods', ['x']);
  });
  assert.deepEqual(logged, ['[avd] cannot use call as an API namespace', '[avd] cannot use _boundMethods as an API namespace']);
  assert.equal(av.call, call);
  assert.equal(av.isMethodBound('_boundMethods.x'), false);
});

test('backend_ready handlers fill auroraview.<namespace>.<method>', async (t) => {
  const { fake, av } = await page(t);
  fake.onMessage = (c, msg) => c.reply(msg.id, msg.method);
  await av.whenReady();
  const conn = fake.conns[0];
  conn.event('backend_ready', { schema_version: 1, backend: 'py', session: 's2', handlers: ['api.get_samples', 'scene.export_fbx', 'nodot'] }, 's2');
  await until(() => typeof av.api.get_samples === 'function');
  assert.equal(typeof av.scene.export_fbx, 'function');
  assert.equal(av.nodot, undefined);
  assert.equal(av.isMethodBound('scene.export_fbx'), true);
  assert.equal(await av.api.get_samples(), 'api.get_samples');
});

test('on / off / trigger / send_event behave like AuroraView', async (t) => {
  const { fake, av } = await page(t);
  await av.whenReady();
  const conn = fake.conns[0];
  const got = [];
  const h = (detail) => got.push(['h', detail]);
  const unsub = av.on('scene:changed', h);
  assert.equal(typeof unsub, 'function');
  av.on('scene:changed', (detail) => got.push(['h2', detail]));
  await conn.waitFor((m) => m.method === 'avd.subscribe');
  conn.event('scene:changed', { nodes: 3 }, 's2');
  await until(() => got.length === 2);
  assert.deepEqual(got, [
    ['h', { nodes: 3 }],
    ['h2', { nodes: 3 }],
  ]);
  unsub();
  av.trigger('scene:changed', { local: true });
  assert.deepEqual(got[2], ['h2', { local: true }]);
  av.off('scene:changed');
  av.trigger('scene:changed', 1);
  assert.equal(got.length, 3);
  await until(() => conn.sentOf((m) => m.method === 'avd.unsubscribe').length === 1);

  av.send_event('ui:clicked', { button: 'ok' });
  av.send_event('ui:empty');
  const logged = await capturingConsoleError(() => av.send_event('bad name')); // logged, not thrown
  assert.deepEqual(logged, ['[avd] send_event failed']);
  await until(() => conn.sentOf((m) => m.type === 'event').length === 2);
  assert.deepEqual(conn.sentOf((m) => m.type === 'event'), [
    { type: 'event', event: 'ui:clicked', data: { button: 'ok' } },
    { type: 'event', event: 'ui:empty', data: {} },
  ]);
  let off;
  assert.deepEqual(await capturingConsoleError(() => (off = av.on('x', 'not a function'))), ['[avd] handler must be a function']);
  assert.equal(typeof off, 'function');
});

test('rejections carry AuroraView names and codes', async (t) => {
  const { fake, av, win } = await page(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'api.slow') c.fail(msg.id, 'TIMEOUT', 'TimeoutError', 'api.slow timed out', { method: 'api.slow', timeout_ms: msg.timeout_ms });
  };
  await av.whenReady();
  await assert.rejects(av.call('api.slow', null, { timeout: 10 }), (e) => {
    assert.ok(e instanceof Error);
    assert.ok(e instanceof win.avd.TimeoutError);
    assert.equal(e.name, 'TimeoutError');
    assert.equal(e.code, 'TIMEOUT');
    assert.equal(e.data.timeout_ms, 10);
    return true;
  });
  const conn = fake.conns[0];
  conn.event('backend_ready', { backend: 'py', session: 's2', handlers: ['api.down'] }, 's2');
  conn.event('backend_health', { backend: 'py', session: 's2', status: 'unhealthy' }, 's2');
  await until(() => av.client.backendFor('api.down')?.status === 'unhealthy');
  await assert.rejects(av.api.down(), (e) => e.name === 'BackendUnavailableError' && e.code === 'BACKEND_UNAVAILABLE');
  const ac = new AbortController();
  const p = av.call('api.never', null, { signal: ac.signal });
  ac.abort();
  await assert.rejects(p, (e) => e.name === 'CancelledError' && e.code === 'CANCELLED');
});

test('calls made before the connection is up wait for it (page scripts run before the socket opens)', async (t) => {
  let conn0;
  const { fake, av } = await page(t, { server: { onHello: (c) => (conn0 = c) } });
  fake.onMessage = (c, msg) => c.reply(msg.id, 'answered');
  av._registerApiMethods('api', ['echo']);
  const p = av.api.echo('early');
  av.send_event('early:event', { n: 1 });
  await until(() => conn0);
  await sleep(20);
  conn0.welcome();
  assert.equal(await p, 'answered');
  assert.deepEqual(await conn0.waitFor((m) => m.type === 'event'), { type: 'event', event: 'early:event', data: { n: 1 } });
});

test('pending calls queued by an AuroraView stub are replayed', async (t) => {
  const results = [];
  const { fake, av } = await page(t, {
    before: (win) => {
      win.auroraview = {
        _isStub: true,
        _pendingCalls: [
          { type: 'register', namespace: 'api', methods: ['queued'] },
          { type: 'call', method: 'api.queued', params: 7, resolve: (v) => results.push(v), reject: (e) => results.push(e) },
        ],
      };
    },
  });
  fake.onMessage = (c, msg) => c.reply(msg.id, msg.params * 6);
  assert.equal(av.isMethodBound('api.queued'), true);
  await until(() => results.length === 1);
  assert.deepEqual(results, [42]);
});

test('autoInstall:false leaves window.auroraview alone; installAuroraView() installs it explicitly', async (t) => {
  const fake = await FakeAvd.start();
  const win = makeWindow(fake.port, { __AVD__: { autoInstall: false } });
  globalThis.window = win;
  vm.runInThisContext(GLOBAL_SRC);
  assert.equal(typeof win.avd.connect, 'function');
  assert.equal(win.auroraview, undefined);
  delete globalThis.window;
  // the ES module's installAuroraView with an explicit window and client
  const client = await avdModule.connect(fake.url, { token: 'x' });
  const win2 = makeWindow(fake.port, { __AURORAVIEW_CONFIG__: { callTimeoutMs: 1111 } });
  const events = [];
  win2.addEventListener('auroraviewready', () => events.push('ready'));
  const av = avdModule.installAuroraView(win2, { client });
  t.after(async () => {
    await client.close();
    await fake.close();
  });
  assert.equal(win2.auroraview, av);
  assert.equal(av.client, client);
  assert.equal(client.getConfig().callTimeoutMs, 1111);
  await until(() => events.length === 1);
  assert.equal(av.isReady(), true);
});
