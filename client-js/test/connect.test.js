import test from 'node:test';
import assert from 'node:assert/strict';
import { FakeAvd, setup, sleep, promiseState } from './fake-avd.js';
import { connect, AvdClient, resolveEndpoint, Unauthorized, UnsupportedSchema, BackendUnavailableError, TimeoutError, SUBPROTOCOL } from '../avd.js';

test('hello carries schema_version 1, role, name, token, subscribe; subprotocol avd.v1 offered', async (t) => {
  const { client, conn } = await setup(t, { client: { role: 'backend', name: 'worker', subscribe: ['progress', 'agui:*'] } });
  assert.deepEqual(conn.hello, {
    type: 'hello',
    schema_version: 1,
    role: 'backend',
    name: 'worker',
    token: 'tok',
    subscribe: ['progress', 'agui:*'],
  });
  assert.equal(SUBPROTOCOL, 'avd.v1');
  assert.equal(conn.req.headers['sec-websocket-protocol'], 'avd.v1');
  assert.equal(conn.protocol, 'avd.v1');
  assert.equal(conn.req.url, '/ws');
  assert.equal(client.session, 's1');
  assert.equal(client.server, 'avd/fake');
  assert.equal(client.heartbeatIntervalMs, 2000);
  assert.equal(client.isReady(), true);
  assert.equal(client.state, 'open');
  assert.deepEqual(client.subscriptions().sort(), ['agui:*', 'progress']);
});

test('role defaults to frontend; no token and no name when none known', async (t) => {
  const fake = await FakeAvd.start();
  t.after(() => fake.close());
  const saved = process.env.AVD_TOKEN;
  delete process.env.AVD_TOKEN;
  const client = await connect(fake.url);
  if (saved !== undefined) process.env.AVD_TOKEN = saved;
  t.after(() => client.close());
  const conn = await fake.connection(0);
  assert.deepEqual(conn.hello, { type: 'hello', schema_version: 1, role: 'frontend' });
});

test('connect() resolves only after welcome', async (t) => {
  let conn0;
  const fake = await FakeAvd.start({ onHello: (conn) => (conn0 = conn) });
  t.after(() => fake.close());
  const p = connect(fake.url, { token: 'x' });
  await fake.helloed(0);
  await sleep(30);
  assert.equal(await promiseState(p), 'pending');
  conn0.welcome({ session: 's42' });
  const client = await p;
  t.after(() => client.close());
  assert.equal(client.session, 's42');
  assert.ok(client instanceof AvdClient);
});

test('connect() rejects with Unauthorized on UNAUTHORIZED and does not retry', async (t) => {
  const fake = await FakeAvd.start({
    onHello: (conn) => {
      conn.send({ type: 'error', error: { code: 'UNAUTHORIZED', name: 'Unauthorized', message: 'bad token' } });
      conn.ws.close(1008, 'unauthorized');
    },
  });
  t.after(() => fake.close());
  await assert.rejects(connect(fake.url, { token: 'wrong', reconnect: { minMs: 5, maxMs: 10 } }), (e) => {
    assert.ok(e instanceof Unauthorized);
    assert.equal(e.code, 'UNAUTHORIZED');
    assert.equal(e.message, 'bad token');
    return true;
  });
  await sleep(60);
  assert.equal(fake.conns.length, 1);
});

test('connect() rejects with UnsupportedSchema when avd says so', async (t) => {
  const fake = await FakeAvd.start({
    onHello: (conn) => {
      conn.send({ type: 'error', error: { code: 'UNSUPPORTED_SCHEMA', name: 'UnsupportedSchema', message: 'schema 1 only' } });
      conn.ws.close(1002);
    },
  });
  t.after(() => fake.close());
  await assert.rejects(connect(fake.url), UnsupportedSchema);
});

test('connect() rejects with BackendUnavailableError when nothing listens', async (t) => {
  const fake = await FakeAvd.start();
  const url = fake.url;
  await fake.close();
  await assert.rejects(connect(url, { token: 't' }), (e) => {
    assert.ok(e instanceof BackendUnavailableError);
    assert.equal(e.code, 'BACKEND_UNAVAILABLE');
    return true;
  });
});

test('connect() rejects with TimeoutError when no welcome comes', async (t) => {
  const fake = await FakeAvd.start({ onHello: () => {} });
  t.after(() => fake.close());
  const t0 = Date.now();
  await assert.rejects(connect(fake.url, { helloTimeoutMs: 80 }), TimeoutError);
  assert.ok(Date.now() - t0 >= 75);
});

test('new AvdClient keeps trying until avd is there; calls made meanwhile wait', async (t) => {
  const probe = await FakeAvd.start();
  const port = probe.port;
  await probe.close();
  const client = new AvdClient('ws://127.0.0.1:' + port + '/ws', { reconnect: { minMs: 20, maxMs: 40 }, onError: () => {} });
  const ready = client.ready;
  const pending = client.call('api.echo', { a: 1 }, { timeout: 5000 });
  await sleep(100);
  assert.equal(client.isReady(), false);
  assert.equal(await promiseState(pending), 'pending');
  const fake = await FakeAvd.start({ wsOptions: { port } });
  t.after(async () => {
    await client.close();
    await fake.close();
  });
  fake.onMessage = (conn, msg) => {
    if (msg.method === 'api.echo') conn.reply(msg.id, msg.params);
  };
  assert.equal(await ready, client);
  assert.deepEqual(await pending, { a: 1 });
  const conn = await fake.connection(0);
  const sent = await conn.waitForCall('api.echo');
  // The time spent waiting for the connection counts against the timeout.
  assert.ok(sent.timeout_ms <= 5000 - 90 && sent.timeout_ms > 3000, 'timeout_ms=' + sent.timeout_ms);
});

test('a call queued before the first connection times out locally', async (t) => {
  const probe = await FakeAvd.start();
  const url = probe.url;
  await probe.close();
  const client = new AvdClient(url, { reconnect: { minMs: 1000, maxMs: 1000 }, onError: () => {} });
  t.after(() => client.close());
  const t0 = Date.now();
  await assert.rejects(client.call('api.echo', 1, { timeout: 60 }), (e) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.data.method, 'api.echo');
    return true;
  });
  assert.ok(Date.now() - t0 >= 55);
});

test('resolveEndpoint: page location gives ws://host/ws and ?token', () => {
  const win = { location: { protocol: 'http:', host: '127.0.0.1:8123', href: 'http://127.0.0.1:8123/app/index.html?token=abc&x=1', search: '?token=abc&x=1' } };
  assert.deepEqual(resolveEndpoint(undefined, {}, win), { url: 'ws://127.0.0.1:8123/ws', token: 'abc' });
  const https = { location: { protocol: 'https:', host: 'h:9', href: 'https://h:9/', search: '' } };
  assert.deepEqual(resolveEndpoint(undefined, { token: 'T' }, https), { url: 'wss://h:9/ws', token: 'T' });
  // relative URL against the page
  assert.equal(resolveEndpoint('/other/ws', {}, win).url, 'ws://127.0.0.1:8123/other/ws');
  // http(s) URLs become ws(s)
  assert.equal(resolveEndpoint('http://127.0.0.1:1/ws', {}, {}).url, 'ws://127.0.0.1:1/ws');
});

test('resolveEndpoint: __AVD__ before __AURORAVIEW_CONFIG__ before location; explicit wins', () => {
  const loc = { protocol: 'http:', host: '127.0.0.1:1', href: 'http://127.0.0.1:1/?token=loc', search: '?token=loc' };
  const win = {
    location: loc,
    __AVD__: { url: 'ws://127.0.0.1:2/ws', token: 'avd' },
    __AURORAVIEW_CONFIG__: { url: 'ws://127.0.0.1:3/ws', token: 'av' },
  };
  assert.deepEqual(resolveEndpoint(undefined, {}, win), { url: 'ws://127.0.0.1:2/ws', token: 'avd' });
  assert.deepEqual(resolveEndpoint(undefined, {}, { location: loc, __AURORAVIEW_CONFIG__: win.__AURORAVIEW_CONFIG__ }), {
    url: 'ws://127.0.0.1:3/ws',
    token: 'av',
  });
  assert.deepEqual(resolveEndpoint('ws://127.0.0.1:4/ws', { token: 'mine' }, win), { url: 'ws://127.0.0.1:4/ws', token: 'mine' });
  // a token in the URL itself
  assert.deepEqual(resolveEndpoint('ws://127.0.0.1:5/ws?token=inurl', {}, {}), { url: 'ws://127.0.0.1:5/ws?token=inurl', token: 'inurl' });
});

test('resolveEndpoint: AVD_URL and AVD_TOKEN from the environment; error without any URL', () => {
  const saved = { u: process.env.AVD_URL, t: process.env.AVD_TOKEN };
  try {
    process.env.AVD_URL = 'ws://127.0.0.1:7/ws';
    process.env.AVD_TOKEN = 'envtok';
    assert.deepEqual(resolveEndpoint(undefined, {}, undefined), { url: 'ws://127.0.0.1:7/ws', token: 'envtok' });
    delete process.env.AVD_URL;
    assert.throws(() => resolveEndpoint(undefined, {}, undefined), TypeError);
    assert.throws(() => resolveEndpoint('ftp://x/', {}, undefined), TypeError);
  } finally {
    if (saved.u === undefined) delete process.env.AVD_URL;
    else process.env.AVD_URL = saved.u;
    if (saved.t === undefined) delete process.env.AVD_TOKEN;
    else process.env.AVD_TOKEN = saved.t;
  }
});

test('setConfig defaults; welcome.config applies unless set by the client', async (t) => {
  const fresh = new AvdClient('ws://127.0.0.1:1/ws', { autoConnect: false });
  assert.deepEqual(fresh.getConfig(), { callTimeoutMs: 30000, backendFailFast: true, heartbeatTimeoutMs: 0 });
  assert.throws(() => fresh.setConfig({ callTimeoutMs: -1 }), TypeError);
  assert.throws(() => fresh.setConfig({ backendFailFast: 'yes' }), TypeError);
  await fresh.close();

  const fake = await FakeAvd.start({
    onHello: (conn) => conn.welcome({ config: { callTimeoutMs: 12345, backendFailFast: false, heartbeatTimeoutMs: 6000 } }),
  });
  t.after(() => fake.close());
  const a = await connect(fake.url);
  t.after(() => a.close());
  // heartbeatTimeoutMs stays the client's own: avd already watches backends
  assert.deepEqual(a.getConfig(), { callTimeoutMs: 12345, backendFailFast: false, heartbeatTimeoutMs: 0 });
  const b = await connect(fake.url, { config: { callTimeoutMs: 777 } });
  t.after(() => b.close());
  assert.deepEqual(b.getConfig(), { callTimeoutMs: 777, backendFailFast: false, heartbeatTimeoutMs: 0 });
  const conn = await fake.connection(1);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'x.y') c.reply(msg.id, msg.timeout_ms);
  };
  assert.equal(await b.call('x.y'), 777);
  assert.equal((await conn.waitForCall('x.y')).timeout_ms, 777);
  assert.equal(await a.call('x.y'), 12345);
});
