import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, sleep, until } from './fake-avd.js';
import { AlreadyRegistered, CancelledError } from '../avd.js';

let nextId = 100;
const incoming = (conn, method, params, extra = {}) => {
  const id = 'c' + nextId++;
  conn.send({ id, method, params, caller: 's3', timeout_ms: 5000, ...extra });
  return id;
};
const answerTo = (conn, id) => conn.waitFor((m) => m.id === id && ('ok' in m));

test('register() sends avd.register and answers calls with the handler\'s result', async (t) => {
  const { client, conn } = await setup(t, { client: { role: 'backend' } });
  let seenCtx;
  await client.register('api.echo', (params, ctx) => {
    seenCtx = ctx;
    return { echoed: params };
  });
  assert.deepEqual((await conn.waitForCall('avd.register')).params, { methods: ['api.echo'] });
  assert.deepEqual(client.registeredMethods(), ['api.echo']);
  const id = incoming(conn, 'api.echo', { text: 'hi' });
  assert.deepEqual(await answerTo(conn, id), { id, ok: true, result: { echoed: { text: 'hi' } } });
  assert.equal(seenCtx.id, id);
  assert.equal(seenCtx.method, 'api.echo');
  assert.equal(seenCtx.caller, 's3');
  assert.equal(seenCtx.timeoutMs, 5000);
  assert.equal(seenCtx.signal.aborted, false);
  assert.equal(seenCtx.client, client);
});

test('async handlers; undefined result becomes null; absent params become null', async (t) => {
  const { client, conn } = await setup(t);
  let got = 'unset';
  await client.register({
    'api.later': async (p) => {
      await sleep(20);
      return p * 2;
    },
    'api.nothing': (p) => {
      got = p;
    },
  });
  assert.deepEqual((await conn.waitForCall('avd.register')).params, { methods: ['api.later', 'api.nothing'] });
  const a = incoming(conn, 'api.later', 21);
  const b = 'c' + nextId++;
  conn.send({ id: b, method: 'api.nothing' });
  assert.deepEqual(await answerTo(conn, a), { id: a, ok: true, result: 42 });
  assert.deepEqual(await answerTo(conn, b), { id: b, ok: true, result: null });
  assert.equal(got, null);
});

test('a throwing handler answers with a structured error', async (t) => {
  const { client, conn } = await setup(t);
  await client.register({
    'api.plain': () => {
      throw new TypeError('wrong type');
    },
    'api.coded': async () => {
      const e = new Error('no file');
      e.name = 'FileNotFoundError';
      e.code = 'FILE_NOT_FOUND';
      e.data = { path: '/tmp/x' };
      throw e;
    },
    'api.string': () => {
      throw 'bare string';
    },
  });
  const a = incoming(conn, 'api.plain');
  const b = incoming(conn, 'api.coded');
  const c = incoming(conn, 'api.string');
  assert.deepEqual(await answerTo(conn, a), { id: a, ok: false, error: { code: 'BACKEND_ERROR', name: 'TypeError', message: 'wrong type', data: null } });
  assert.deepEqual(await answerTo(conn, b), {
    id: b,
    ok: false,
    error: { code: 'FILE_NOT_FOUND', name: 'FileNotFoundError', message: 'no file', data: { path: '/tmp/x' } },
  });
  assert.deepEqual(await answerTo(conn, c), { id: c, ok: false, error: { code: 'BACKEND_ERROR', name: 'Error', message: 'bare string', data: null } });
});

test('an async iterable result streams chunks in order, then the final result', async (t) => {
  const { client, conn } = await setup(t);
  await client.register('api.count', async function* (p) {
    for (let i = 0; i < p.n; i++) {
      if (i % 2) await sleep(2);
      yield { i };
    }
    return { total: p.n };
  });
  const id = incoming(conn, 'api.count', { n: 5 });
  const final = await answerTo(conn, id);
  const mine = conn.messages.filter((m) => m.id === id);
  assert.deepEqual(mine, [
    { type: 'chunk', id, data: { i: 0 } },
    { type: 'chunk', id, data: { i: 1 } },
    { type: 'chunk', id, data: { i: 2 } },
    { type: 'chunk', id, data: { i: 3 } },
    { type: 'chunk', id, data: { i: 4 } },
    final,
  ]);
  assert.deepEqual(final, { id, ok: true, result: { total: 5 } });
});

test('ctx.chunk() sends progress from a plain async handler; an error mid-stream ends with an error', async (t) => {
  const { client, conn } = await setup(t);
  await client.register({
    'api.manual': async (p, ctx) => {
      ctx.chunk('one');
      ctx.chunk();
      return 'end';
    },
    'api.breaks': async function* () {
      yield 1;
      throw new RangeError('too far');
    },
  });
  const a = incoming(conn, 'api.manual');
  await answerTo(conn, a);
  assert.deepEqual(
    conn.messages.filter((m) => m.id === a),
    [
      { type: 'chunk', id: a, data: 'one' },
      { type: 'chunk', id: a, data: null },
      { id: a, ok: true, result: 'end' },
    ]
  );
  const b = incoming(conn, 'api.breaks');
  await answerTo(conn, b);
  assert.deepEqual(
    conn.messages.filter((m) => m.id === b),
    [
      { type: 'chunk', id: b, data: 1 },
      { id: b, ok: false, error: { code: 'BACKEND_ERROR', name: 'RangeError', message: 'too far', data: null } },
    ]
  );
});

test('an incoming cancel aborts ctx.signal and stops iterating; no answer is sent', async (t) => {
  const { client, conn } = await setup(t);
  let reason = null;
  let finallyRan = false;
  let produced = 0;
  await client.register({
    'api.ticker': async function* (p, ctx) {
      ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason));
      try {
        for (;;) {
          produced++;
          yield produced;
          await sleep(5);
        }
      } finally {
        finallyRan = true;
      }
    },
    'api.waiter': (p, ctx) =>
      new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => resolve('too late'));
      }),
  });
  const id = incoming(conn, 'api.ticker');
  await until(() => conn.messages.filter((m) => m.id === id).length >= 3);
  conn.send({ type: 'cancel', id, reason: 'cancelled' });
  await until(() => finallyRan);
  const count = conn.messages.filter((m) => m.id === id).length;
  await sleep(40);
  assert.equal(conn.messages.filter((m) => m.id === id).length, count, 'no chunk after the cancel');
  assert.equal(conn.messages.filter((m) => m.id === id && 'ok' in m).length, 0, 'no answer');
  assert.ok(reason instanceof CancelledError);
  assert.equal(reason.reason, 'cancelled');

  const w = incoming(conn, 'api.waiter');
  await sleep(10);
  conn.send({ type: 'cancel', id: w, reason: 'timeout' });
  await sleep(30);
  assert.equal(conn.messages.filter((m) => m.id === w).length, 0);
});

test('__ping__ is answered with pong; unknown methods with METHOD_NOT_FOUND', async (t) => {
  const { conn } = await setup(t);
  conn.send({ id: '__av_ping_7', method: '__ping__', params: { schema_version: 1, ts: 1 } });
  const pong = await answerTo(conn, '__av_ping_7');
  assert.equal(pong.ok, true);
  assert.equal(pong.result.status, 'pong');
  assert.equal(pong.result.schema_version, 1);
  assert.equal(typeof pong.result.ts, 'number');
  const id = incoming(conn, 'api.unknown');
  const ans = await answerTo(conn, id);
  assert.equal(ans.ok, false);
  assert.equal(ans.error.code, 'METHOD_NOT_FOUND');
  assert.equal(ans.error.name, 'MethodNotFound');
});

test('ALREADY_REGISTERED rejects register() and leaves the method unoffered', async (t) => {
  const { client, conn } = await setup(t, { server: { taken: ['api.taken'] } });
  await assert.rejects(client.register({ 'api.free': () => 1, 'api.taken': () => 2 }), (e) => {
    assert.ok(e instanceof AlreadyRegistered);
    assert.equal(e.code, 'ALREADY_REGISTERED');
    assert.equal(e.data.method, 'api.taken');
    assert.equal(e.data.owner, 's99');
    return true;
  });
  assert.deepEqual(client.registeredMethods(), []);
  const id = incoming(conn, 'api.free');
  assert.equal((await answerTo(conn, id)).error.code, 'METHOD_NOT_FOUND');
});

test('the unregister function and unregister() send avd.unregister', async (t) => {
  const { client, conn } = await setup(t);
  const unregister = await client.register('api.a', () => 1);
  await client.register('api.b', () => 2);
  await unregister();
  assert.deepEqual((await conn.waitForCall('avd.unregister')).params, { methods: ['api.a'] });
  await client.unregister('api.b');
  assert.deepEqual(
    conn.sentOf((m) => m.method === 'avd.unregister').map((m) => m.params.methods),
    [['api.a'], ['api.b']]
  );
  assert.deepEqual(client.registeredMethods(), []);
  await assert.rejects(client.register('x', 'not a function'), TypeError);
});

test('announceReady() sends {"type":"ready","handlers":[...]}', async (t) => {
  const { client, conn } = await setup(t, { client: { role: 'backend' } });
  await client.register({ 'api.one': () => 1, 'api.two': () => 2 });
  client.announceReady();
  assert.deepEqual(await conn.waitFor((m) => m.type === 'ready'), { type: 'ready', handlers: ['api.one', 'api.two'] });
});

test('calls are symmetric: a handler may call back into avd while serving', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'window.main.eval_js') c.reply(msg.id, 'evaluated:' + msg.params);
  };
  await client.register('api.outer', async (p, ctx) => 'outer(' + (await ctx.client.call('window.main.eval_js', p)) + ')');
  const id = incoming(conn, 'api.outer', '1+1');
  assert.deepEqual(await answerTo(conn, id), { id, ok: true, result: 'outer(evaluated:1+1)' });
});
