import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, sleep, until, promiseState } from './fake-avd.js';
import { BackendUnavailableError } from '../avd.js';

const ready = (conn, session, backend, handlers) =>
  conn.event('backend_ready', { schema_version: 1, backend, session, handlers }, session);
const health = (conn, session, backend, status) =>
  conn.event('backend_health', { schema_version: 1, backend, session, status, ts: Date.now() }, session);
const failure = (conn, session, backend, fatal, extra = {}) =>
  conn.event('backend_error', { schema_version: 1, backend, session, message: 'process exited', source: 'crash', fatal, exit_code: 3, ...extra }, session);
const callsTo = (conn, method) => conn.sentOf((m) => m.method === method && m.type === undefined);

test('backend_ready is tracked per backend with its handlers', async (t) => {
  const { client, conn } = await setup(t);
  ready(conn, 's2', 'py', ['api.echo', 'api.add']);
  ready(conn, 's5', 'node', ['tool.run']);
  await until(() => client.backends().length === 2);
  const [py, node] = client.backends();
  assert.equal(py.session, 's2');
  assert.equal(py.name, 'py');
  assert.equal(py.status, 'ready');
  assert.deepEqual(py.handlers, ['api.echo', 'api.add']);
  assert.equal(node.name, 'node');
  assert.equal(client.backendFor('api.add').session, 's2');
  assert.equal(client.backendFor('tool.run').name, 'node');
  assert.equal(client.backendFor('nobody.has'), null);
});

test('fail-fast: calls to an unhealthy backend reject at once; alive again lets them through', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'api.echo' || msg.method === 'tool.run') c.reply(msg.id, msg.params);
  };
  ready(conn, 's2', 'py', ['api.echo']);
  ready(conn, 's5', 'node', ['tool.run']);
  health(conn, 's2', 'py', 'unhealthy');
  await until(() => client.backends().find((b) => b.session === 's2' && b.status === 'unhealthy'));
  const t0 = Date.now();
  await assert.rejects(client.call('api.echo', 1), (e) => {
    assert.ok(e instanceof BackendUnavailableError);
    assert.equal(e.code, 'BACKEND_UNAVAILABLE');
    assert.deepEqual(e.data, { method: 'api.echo', backend: 'py', session: 's2' });
    return true;
  });
  assert.ok(Date.now() - t0 < 50);
  assert.equal(callsTo(conn, 'api.echo').length, 0, 'nothing sent to avd');
  assert.equal(await client.call('tool.run', 2), 2, 'other backends are not affected');
  health(conn, 's2', 'py', 'alive');
  await until(() => client.backendFor('api.echo').status === 'alive');
  assert.equal(await client.call('api.echo', 3), 3);
});

test('fail-fast off: calls go to avd even when the backend is unhealthy', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'api.echo') c.fail(msg.id, 'BACKEND_UNAVAILABLE', 'BackendUnavailableError', 'from avd');
  };
  client.setConfig({ backendFailFast: false });
  ready(conn, 's2', 'py', ['api.echo']);
  health(conn, 's2', 'py', 'unhealthy');
  await until(() => client.backendFor('api.echo')?.status === 'unhealthy');
  await assert.rejects(client.call('api.echo'), (e) => e.message === 'from avd');
  assert.equal(callsTo(conn, 'api.echo').length, 1);
});

test('a fatal backend_error rejects the pending calls to that backend only', async (t) => {
  const { client, conn } = await setup(t);
  ready(conn, 's2', 'py', ['api.slow']);
  ready(conn, 's5', 'node', ['tool.slow']);
  await until(() => client.backends().length === 2);
  const toPy = client.call('api.slow');
  const toPy2 = client.call('api.slow');
  const toNode = client.call('tool.slow');
  await until(() => callsTo(conn, 'api.slow').length === 2 && callsTo(conn, 'tool.slow').length === 1);
  failure(conn, 's2', 'py', false, { source: 'stdout', message: 'bad line' });
  await sleep(20);
  assert.equal(await promiseState(toPy), 'pending', 'non-fatal errors change nothing');
  failure(conn, 's2', 'py', true);
  for (const p of [toPy, toPy2]) {
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof BackendUnavailableError);
      assert.match(e.message, /py.*process exited/);
      assert.deepEqual(e.data, { backend: 'py', session: 's2', source: 'crash' });
      return true;
    });
  }
  assert.equal(await promiseState(toNode), 'pending');
  assert.equal(client.backendFor('api.slow').status, 'unhealthy');
  assert.equal(client.backendFor('api.slow').lastError.exit_code, 3);
  await assert.rejects(client.call('api.slow'), BackendUnavailableError);
  // restarted: ready again
  ready(conn, 's2', 'py', ['api.slow']);
  await until(() => client.backendFor('api.slow').status === 'ready');
  const again = client.call('api.slow');
  await until(() => callsTo(conn, 'api.slow').length === 3);
  assert.equal(await promiseState(again), 'pending');
});

test('heartbeatTimeoutMs: silence after a health signal marks the backend unhealthy', async (t) => {
  const { client, conn } = await setup(t);
  client.setConfig({ heartbeatTimeoutMs: 80 });
  ready(conn, 's2', 'py', ['api.echo']);
  ready(conn, 's3', 'quiet', ['quiet.x']);
  await until(() => client.backends().length === 2);
  health(conn, 's2', 'py', 'alive');
  await until(() => client.backendFor('api.echo').status === 'alive');
  await sleep(140);
  assert.equal(client.backendFor('api.echo').status, 'unhealthy');
  assert.match(client.backendFor('api.echo').reason, /no health signal for 80 ms/);
  await assert.rejects(client.call('api.echo'), BackendUnavailableError);
  // a backend that never sent a health signal is not judged by silence
  assert.equal(client.backendFor('quiet.x').status, 'ready');
  health(conn, 's2', 'py', 'alive');
  await until(() => client.backendFor('api.echo').status === 'alive');
  const p = client.call('api.echo');
  await until(() => callsTo(conn, 'api.echo').length === 1);
  assert.equal(await promiseState(p), 'pending');
});

test('heartbeatTimeoutMs 0 (default): silence never marks a backend unhealthy', async (t) => {
  const { client, conn } = await setup(t);
  assert.equal(client.getConfig().heartbeatTimeoutMs, 0);
  ready(conn, 's2', 'py', ['api.echo']);
  health(conn, 's2', 'py', 'alive');
  await until(() => client.backendFor('api.echo')?.status === 'alive');
  await sleep(100);
  assert.equal(client.backendFor('api.echo').status, 'alive');
});

test('avd.methods teaches method owners, so fail-fast covers backends that registered by call', async (t) => {
  const { client, conn } = await setup(t, {
    server: { methodsList: [{ method: 'svc.run', session: 's9', backend: 'svc' }, 'bare.name'] },
  });
  await conn.waitForCall('avd.methods');
  await until(() => client.backendFor('svc.run') !== null);
  assert.equal(client.backendFor('svc.run').session, 's9');
  const listed = await client.methods();
  assert.deepEqual(listed.map((m) => [m.method, m.session]), [
    ['svc.run', 's9'],
    ['bare.name', null],
  ]);
  health(conn, 's9', 'svc', 'unhealthy');
  await until(() => client.backendFor('svc.run').status === 'unhealthy');
  await assert.rejects(client.call('svc.run'), BackendUnavailableError);
});

test('avd.* daemon methods never fail fast', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'avd.stats') c.reply(msg.id, { late_answers: 0 });
  };
  health(conn, 's2', 'x', 'unhealthy');
  await until(() => client.backends().length === 1);
  assert.deepEqual(await client.call('avd.stats'), { late_answers: 0 });
});
