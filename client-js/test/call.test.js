import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, sleep, promiseState, until } from './fake-avd.js';
import {
  AvdError,
  TimeoutError,
  CancelledError,
  BackendUnavailableError,
  MethodNotFound,
  AvdStream,
} from '../avd.js';

test('call sends {id, method, params, timeout_ms} and resolves with the result', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'api.echo') c.reply(msg.id, { echoed: msg.params });
  };
  assert.deepEqual(await client.call('api.echo', { text: '你好' }), { echoed: { text: '你好' } });
  const sent = await conn.waitForCall('api.echo');
  assert.match(sent.id, /^av_call_\d+$/);
  assert.deepEqual(sent.params, { text: '你好' });
  assert.equal(sent.timeout_ms, 30000);
  assert.equal(sent.type, undefined);
});

test('params may be omitted; result absent means null; responses without ok are accepted', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'a.none') c.send({ id: msg.id, ok: true });
    if (msg.method === 'a.legacy') c.send({ id: msg.id, result: 7 });
    if (msg.method === 'a.legacyerr') c.send({ id: msg.id, error: { code: 'X_CODE', name: 'XError', message: 'x' } });
  };
  assert.equal(await client.call('a.none'), null);
  assert.equal('params' in (await conn.waitForCall('a.none')), false);
  assert.equal(await client.call('a.legacy', null), 7);
  await assert.rejects(client.call('a.legacyerr'), (e) => e instanceof AvdError && e.code === 'X_CODE' && e.name === 'XError');
});

test('api proxy: client.api.echo(x) calls api.echo with params x', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => c.reply(msg.id, [msg.method, msg.params]);
  assert.deepEqual(await client.api.echo({ v: 1 }), ['api.echo', { v: 1 }]);
  assert.deepEqual(await client.api.add([1, 2], { timeout: 50 }), ['api.add', [1, 2]]);
  assert.equal((await conn.waitForCall('api.add')).timeout_ms, 50);
  assert.equal(client.api.then, undefined, 'the proxy is not thenable');
  assert.deepEqual(await client.namespace('tool').run(3), ['tool.run', 3]);
});

test('error responses become the matching Error classes', async (t) => {
  const { client, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'no.such') c.fail(msg.id, 'METHOD_NOT_FOUND', 'MethodNotFound', 'no such method', { method: 'no.such' });
    if (msg.method === 'api.bad') c.fail(msg.id, 'BACKEND_ERROR', 'ValueError', 'bad input', { field: 'x' });
  };
  await assert.rejects(client.call('no.such'), (e) => {
    assert.ok(e instanceof MethodNotFound);
    assert.equal(e.code, 'METHOD_NOT_FOUND');
    assert.deepEqual(e.data, { method: 'no.such' });
    return true;
  });
  await assert.rejects(client.call('api.bad'), (e) => {
    assert.ok(e instanceof AvdError);
    assert.equal(e.name, 'ValueError');
    assert.equal(e.code, 'BACKEND_ERROR');
    return true;
  });
});

test('avd\'s TIMEOUT is what the caller sees (client timer waits timeout + 1000 ms)', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method === 'api.slow') {
      setTimeout(
        () => c.fail(msg.id, 'TIMEOUT', 'TimeoutError', 'api.slow timed out in avd', { method: 'api.slow', timeout_ms: msg.timeout_ms, fromAvd: true }),
        msg.timeout_ms + 500
      );
    }
  };
  const t0 = Date.now();
  await assert.rejects(client.call('api.slow', null, { timeout: 50 }), (e) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.message, 'api.slow timed out in avd');
    assert.deepEqual(e.data, { method: 'api.slow', timeout_ms: 50, fromAvd: true });
    return true;
  });
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 540, 'elapsed ' + elapsed);
  assert.equal((await conn.waitForCall('api.slow')).timeout_ms, 50);
  assert.equal(conn.sentOf((m) => m.type === 'cancel').length, 0, 'no cancel sent: avd settled it');
});

test('the client\'s own timer fires after timeout + grace when avd stays silent, and sends a cancel', async (t) => {
  const { client, conn } = await setup(t, { client: { timeoutGraceMs: 100 } });
  const t0 = Date.now();
  await assert.rejects(client.call('api.silent', null, { timeout: 60 }), (e) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.code, 'TIMEOUT');
    assert.equal(e.name, 'TimeoutError');
    assert.deepEqual(e.data, { method: 'api.silent', timeout_ms: 60 });
    return true;
  });
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 155, 'elapsed ' + elapsed);
  const sent = await conn.waitForCall('api.silent');
  const cancel = await conn.waitFor((m) => m.type === 'cancel');
  assert.deepEqual(cancel, { type: 'cancel', id: sent.id });
  // a late answer is ignored
  conn.reply(sent.id, 'late');
  await sleep(20);
});

test('timeout 0 means no timeout on either side', async (t) => {
  const { client, conn } = await setup(t, { client: { timeoutGraceMs: 0 } });
  const p = client.call('api.forever', null, { timeout: 0 });
  const sent = await conn.waitForCall('api.forever');
  assert.equal(sent.timeout_ms, 0);
  await sleep(60);
  assert.equal(await promiseState(p), 'pending');
  conn.reply(sent.id, 'done');
  assert.equal(await p, 'done');
});

test('each chunk re-arms the client timer; onChunk sees every chunk in order', async (t) => {
  const { client, fake } = await setup(t, { client: { timeoutGraceMs: 40 } });
  fake.onMessage = async (c, msg) => {
    if (msg.method !== 'api.progress') return;
    for (let i = 1; i <= 4; i++) {
      await sleep(60);
      c.send({ type: 'chunk', id: msg.id, data: { pct: i * 25 } });
    }
    await sleep(60);
    c.reply(msg.id, 'finished');
  };
  const chunks = [];
  const result = await client.call('api.progress', null, { timeout: 50, onChunk: (d) => chunks.push(d.pct) });
  assert.equal(result, 'finished');
  assert.deepEqual(chunks, [25, 50, 75, 100]);
});

test('AbortSignal: sends cancel and rejects with CancelledError at once', async (t) => {
  const { client, conn } = await setup(t);
  const ac = new AbortController();
  const p = client.call('api.long', { n: 1 }, { signal: ac.signal });
  const sent = await conn.waitForCall('api.long');
  ac.abort();
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof CancelledError);
    assert.equal(e.code, 'CANCELLED');
    assert.equal(e.data.method, 'api.long');
    return true;
  });
  const cancel = await conn.waitFor((m) => m.type === 'cancel');
  assert.deepEqual(cancel, { type: 'cancel', id: sent.id });
  conn.fail(sent.id, 'CANCELLED', 'CancelledError', 'cancelled'); // avd's answer comes later and is dropped
  await sleep(20);
});

test('an already aborted signal rejects without sending anything', async (t) => {
  const { client, conn } = await setup(t);
  const before = conn.messages.length;
  await assert.rejects(client.call('api.x', null, { signal: AbortSignal.abort() }), CancelledError);
  await sleep(20);
  assert.equal(conn.messages.filter((m) => m.method === 'api.x').length, 0);
  assert.ok(conn.messages.length >= before);
});

test('pending calls reject with BACKEND_UNAVAILABLE when the connection drops; new calls too until reconnected', async (t) => {
  const { client, conn } = await setup(t, { client: { reconnect: { minMs: 300, maxMs: 300 } } });
  const p = client.call('api.wait');
  await conn.waitForCall('api.wait');
  conn.kill();
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof BackendUnavailableError);
    assert.equal(e.code, 'BACKEND_UNAVAILABLE');
    return true;
  });
  assert.equal(client.isReady(), false);
  const t0 = Date.now();
  await assert.rejects(client.call('api.now'), BackendUnavailableError);
  assert.ok(Date.now() - t0 < 50, 'rejected at once');
});

test('close() rejects pending calls, and later calls', async (t) => {
  const { client, conn } = await setup(t);
  const p = client.call('api.wait');
  await conn.waitForCall('api.wait');
  const rejected = assert.rejects(p, BackendUnavailableError);
  await client.close();
  await rejected;
  await assert.rejects(client.call('api.after'), BackendUnavailableError);
  assert.equal(client.state, 'closed');
  await assert.rejects(client.whenReady(), BackendUnavailableError);
});

test('stream(): yields chunk data in order, result via stream.result and the final step', async (t) => {
  const { client, fake } = await setup(t);
  fake.onMessage = async (c, msg) => {
    if (msg.method !== 'api.count') return;
    for (let i = 0; i < 5; i++) c.send({ type: 'chunk', id: msg.id, data: i });
    await sleep(10);
    c.send({ type: 'chunk', id: msg.id, data: 5 });
    c.reply(msg.id, { total: 6 });
  };
  const s = client.stream('api.count', { to: 6 });
  assert.ok(s instanceof AvdStream);
  const got = [];
  for await (const d of s) got.push(d);
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(await s.result, { total: 6 });

  const s2 = client.stream('api.count');
  const steps = [];
  for (;;) {
    const step = await s2.next();
    steps.push(step);
    if (step.done) break;
  }
  assert.equal(steps.length, 7);
  assert.deepEqual(steps[6], { value: { total: 6 }, done: true });
});

test('stream(): chunks before a failure are delivered, then the error is thrown', async (t) => {
  const { client, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method !== 'api.fail') return;
    c.send({ type: 'chunk', id: msg.id, data: 'a' });
    c.send({ type: 'chunk', id: msg.id, data: 'b' });
    c.fail(msg.id, 'BACKEND_ERROR', 'RuntimeError', 'broke');
  };
  const s = client.stream('api.fail');
  const got = [];
  await assert.rejects(
    (async () => {
      for await (const d of s) got.push(d);
    })(),
    (e) => e.name === 'RuntimeError' && e.message === 'broke'
  );
  assert.deepEqual(got, ['a', 'b']);
  await assert.rejects(s.result, (e) => e.name === 'RuntimeError');
});

test('stream(): breaking out of the loop cancels the call', async (t) => {
  const { client, conn, fake } = await setup(t);
  fake.onMessage = (c, msg) => {
    if (msg.method !== 'api.endless') return;
    let i = 0;
    const timer = setInterval(() => c.send({ type: 'chunk', id: msg.id, data: i++ }), 5);
    c.ws.once('close', () => clearInterval(timer));
    c.fake._stop = () => clearInterval(timer);
  };
  const s = client.stream('api.endless');
  const got = [];
  for await (const d of s) {
    got.push(d);
    if (got.length === 3) break;
  }
  fake._stop();
  assert.deepEqual(got, [0, 1, 2]);
  const sent = await conn.waitForCall('api.endless');
  assert.deepEqual(await conn.waitFor((m) => m.type === 'cancel'), { type: 'cancel', id: sent.id });
  await assert.rejects(s.result, CancelledError);
});

test('stream(): AbortSignal and cancel() reject result with CancelledError', async (t) => {
  const { client, conn } = await setup(t);
  const ac = new AbortController();
  const s = client.stream('api.a', null, { signal: ac.signal });
  await conn.waitForCall('api.a');
  ac.abort();
  await assert.rejects(s.next(), CancelledError);
  await assert.rejects(s.result, CancelledError);
  const s2 = client.stream('api.b');
  await conn.waitForCall('api.b');
  s2.cancel();
  await assert.rejects(s2.result, CancelledError);
  await until(() => conn.sentOf((m) => m.type === 'cancel').length === 2);
});

test('calls with bad arguments reject with TypeError', async (t) => {
  const { client } = await setup(t);
  await assert.rejects(client.call(''), TypeError);
  await assert.rejects(client.call('a.b', null, { timeout: -5 }), TypeError);
  const circular = {};
  circular.self = circular;
  await assert.rejects(client.call('a.b', circular), TypeError);
});
