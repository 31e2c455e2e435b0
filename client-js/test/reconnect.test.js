import test from 'node:test';
import assert from 'node:assert/strict';
import { FakeAvd, setup, sleep, until } from './fake-avd.js';
import { AvdClient, backoffDelay, parseMethodsResult } from '../avd.js';

test('backoffDelay: 1 s doubling to 5 s, +/-25% jitter, never above max', () => {
  assert.equal(backoffDelay(1, 1000, 5000, 0), 750);
  assert.equal(backoffDelay(1, 1000, 5000, 0.5), 1000);
  assert.equal(backoffDelay(1, 1000, 5000, 0.999999), 1250);
  assert.equal(backoffDelay(2, 1000, 5000, 0.5), 2000);
  assert.equal(backoffDelay(3, 1000, 5000, 0.5), 4000);
  assert.equal(backoffDelay(4, 1000, 5000, 0.5), 5000);
  assert.equal(backoffDelay(50, 1000, 5000, 0), 3750);
  assert.equal(backoffDelay(50, 1000, 5000, 0.999), 5000);
});

test('after a drop the client reconnects, re-subscribes in hello and re-registers', async (t) => {
  const { client, conn, fake } = await setup(t, { client: { subscribe: ['pinned'] } });
  const states = [];
  client.onStatus((s) => states.push(s));
  client.on('progress', () => {});
  client.on('agui:*', () => {});
  client.on('backend_ready', () => {});
  await client.register({ 'api.echo': (p) => p });
  await client.sync();

  conn.kill();
  await until(() => !client.isReady());
  // handlers change while disconnected: the next hello has the new set
  client.off('progress');
  client.on('late', () => {});
  const again = await fake.helloed(1);
  assert.deepEqual(again.hello.subscribe.sort(), ['agui:*', 'late', 'pinned']);
  assert.equal(again.hello.token, 'tok');
  await client.whenReady();
  assert.equal(client.session, 's2');
  assert.deepEqual((await again.waitForCall('avd.register')).params, { methods: ['api.echo'] });
  assert.deepEqual(states, ['disconnected', 'connecting', 'open']);
  // the re-registered method works on the new connection
  again.send({ id: 'r1', method: 'api.echo', params: 'back' });
  assert.deepEqual(await again.waitFor((m) => m.id === 'r1' && 'ok' in m), { id: 'r1', ok: true, result: 'back' });
  await client.sync();
  assert.equal(again.sentOf((m) => m.method === 'avd.subscribe').length, 0, 'hello already subscribed everything');
});

test('reconnects repeatedly with the configured backoff and keeps going', async (t) => {
  const { client, fake } = await setup(t, { client: { reconnect: { minMs: 10, maxMs: 30 } } });
  for (let i = 1; i <= 3; i++) {
    fake.conns[i - 1].kill();
    const c = await fake.helloed(i, 1000);
    assert.ok(c);
    await client.whenReady();
  }
  assert.equal(fake.conns.length, 4);
});

test('close() stops reconnecting', async (t) => {
  const fake = await FakeAvd.start();
  t.after(() => fake.close());
  const { connect } = await import('../avd.js');
  const client = await connect(fake.url, { reconnect: { minMs: 10, maxMs: 10 } });
  const conn = await fake.connection(0);
  await client.close();
  assert.equal(client.state, 'closed');
  conn.kill();
  await sleep(80);
  assert.equal(fake.conns.length, 1);
  assert.equal(client.isReady(), false);
});

test('re-registration retries while avd still holds the old session\'s names', async (t) => {
  const { client, conn, fake } = await setup(t, { client: { reconnect: { minMs: 20, maxMs: 20 } } });
  await client.register('api.mine', () => 'ok');
  fake.taken.add('api.mine'); // avd has not noticed yet that our old session is gone
  conn.kill();
  const again = await fake.helloed(1);
  await again.waitForCall('avd.register');
  await sleep(30);
  fake.taken.delete('api.mine');
  await until(() => again.sentOf((m) => m.method === 'avd.register').length >= 2, 1000);
  again.send({ id: 'r2', method: 'api.mine' });
  assert.deepEqual(await again.waitFor((m) => m.id === 'r2' && 'ok' in m), { id: 'r2', ok: true, result: 'ok' });
});

test('a backend that announced ready announces again after reconnecting', async (t) => {
  const { client, conn, fake } = await setup(t, { client: { role: 'backend', name: 'node-be' } });
  await client.register({ 'api.x': () => 1 });
  client.announceReady();
  await conn.waitFor((m) => m.type === 'ready');
  conn.kill();
  const again = await fake.helloed(1);
  assert.equal(again.hello.name, 'node-be');
  assert.deepEqual(await again.waitFor((m) => m.type === 'ready'), { type: 'ready', handlers: ['api.x'] });
});

test('register() while disconnected completes on the next connection', async (t) => {
  const { client, conn, fake } = await setup(t, { client: { reconnect: { minMs: 60, maxMs: 60 } } });
  conn.kill();
  await until(() => !client.isReady());
  const done = client.register('api.later', () => 'later');
  const again = await fake.helloed(1);
  const unregister = await done;
  assert.equal(typeof unregister, 'function');
  assert.deepEqual((await again.waitForCall('avd.register')).params, { methods: ['api.later'] });
});

test('backend state is rebuilt from what avd sends after welcome', async (t) => {
  const { client, conn, fake } = await setup(t);
  conn.event('backend_health', { backend: 'py', session: 's2', status: 'unhealthy' }, 's2');
  await until(() => client.backends().length === 1);
  conn.kill();
  const again = await fake.helloed(1);
  await client.whenReady();
  assert.deepEqual(client.backends(), []);
  again.event('backend_ready', { backend: 'py', session: 's7', handlers: ['api.echo'] }, 's7');
  await until(() => client.backends().length === 1);
  assert.equal(client.backendFor('api.echo').session, 's7');
});

test('AvdClient: ready resolves on first welcome; whenReady waits for the next one', async (t) => {
  const fake = await FakeAvd.start();
  const client = new AvdClient(fake.url, { reconnect: { minMs: 20, maxMs: 20 } });
  t.after(async () => {
    await client.close();
    await fake.close();
  });
  assert.equal(client.isReady(), false);
  assert.equal(await client.ready, client);
  assert.equal(await client.whenReady(), client);
  fake.conns[0].kill();
  await until(() => !client.isReady());
  const w = client.whenReady();
  assert.equal(await w, client);
  assert.equal(client.session, 's2');
});

test('parseMethodsResult accepts lists and maps', () => {
  assert.deepEqual(parseMethodsResult({ methods: ['a.b'] }), [{ method: 'a.b', session: null, backend: null }]);
  assert.deepEqual(parseMethodsResult({ methods: [{ method: 'a.b', owner: 's1', owner_name: 'py' }] }), [
    { method: 'a.b', session: 's1', backend: 'py', role: undefined },
  ]);
  assert.deepEqual(parseMethodsResult({ 'a.b': 's1', 'c.d': { session: 's2', backend: 'x', role: 'backend' } }), [
    { method: 'a.b', session: 's1', backend: null },
    { method: 'c.d', session: 's2', backend: 'x', role: 'backend' },
  ]);
  assert.deepEqual(parseMethodsResult(null), []);
});
