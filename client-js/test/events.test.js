import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, sleep, until } from './fake-avd.js';
import { matchEvent } from '../avd.js';

const subs = (conn) => conn.sentOf((m) => m.method === 'avd.subscribe').map((m) => m.params.events);
const unsubs = (conn) => conn.sentOf((m) => m.method === 'avd.unsubscribe').map((m) => m.params.events);

test('matchEvent: exact names, prefix*, *', () => {
  assert.equal(matchEvent('progress', 'progress'), true);
  assert.equal(matchEvent('progress', 'progress2'), false);
  assert.equal(matchEvent('agui:*', 'agui:text_message_content'), true);
  assert.equal(matchEvent('agui:*', 'agui:'), true);
  assert.equal(matchEvent('agui:*', 'agu'), false);
  assert.equal(matchEvent('*', 'anything'), true);
  assert.equal(matchEvent('a*b', 'a*b'), true);
  assert.equal(matchEvent('a*b', 'axxb'), false);
});

test('handlers drive avd.subscribe / avd.unsubscribe, coalesced per turn', async (t) => {
  const { client, conn } = await setup(t);
  const h1 = () => {};
  const off1 = client.on('progress', h1);
  client.on('agui:*', () => {});
  const offSecond = client.on('progress', () => {});
  await client.sync();
  assert.deepEqual(subs(conn), [['progress', 'agui:*']]);
  offSecond();
  await client.sync();
  assert.deepEqual(unsubs(conn), [], 'still one handler on progress');
  off1();
  await client.sync();
  assert.deepEqual(unsubs(conn), [['progress']]);
  assert.deepEqual(client.subscriptions(), ['agui:*']);
  // off then on again within one turn: nothing sent
  const before = conn.messages.length;
  client.off('agui:*');
  client.on('agui:*', () => {});
  await client.sync();
  await sleep(10);
  assert.equal(conn.messages.length, before);
});

test('system events need no subscription and reach handlers', async (t) => {
  const { client, conn } = await setup(t);
  const seen = [];
  client.on('backend_ready', (d, meta) => seen.push([meta.event, d.backend]));
  client.on('backend_health', (d) => seen.push(['health', d.status]));
  client.on('backend_error', (d) => seen.push(['error', d.message]));
  await client.sync();
  assert.deepEqual(subs(conn), []);
  conn.event('backend_ready', { schema_version: 1, backend: 'py', session: 's2', handlers: ['api.echo'] }, 's2');
  conn.event('backend_health', { schema_version: 1, backend: 'py', session: 's2', status: 'alive', ts: 1 }, 's2');
  conn.event('backend_error', { schema_version: 1, backend: 'py', session: 's2', message: 'oops', source: 'stdout', fatal: false }, 's2');
  await until(() => seen.length === 3);
  assert.deepEqual(seen, [
    ['backend_ready', 'py'],
    ['health', 'alive'],
    ['error', 'oops'],
  ]);
});

test('dispatch: pattern matching, (data, {event, from}), detail alias, absent data', async (t) => {
  const { client, conn } = await setup(t);
  const log = [];
  client.on('progress', (d, m) => log.push(['exact', d, m]));
  client.on('agui:*', (d, m) => log.push(['prefix', d, m]));
  client.on('*', (d, m) => log.push(['all', m.event]));
  conn.event('progress', { pct: 40 }, 's7');
  conn.send({ type: 'event', event: 'agui:text', detail: { delta: 'hi' }, from: 's8' });
  conn.send({ type: 'event', event: 'other' });
  await until(() => log.length === 5);
  assert.deepEqual(log, [
    ['exact', { pct: 40 }, { event: 'progress', from: 's7' }],
    ['all', 'progress'],
    ['prefix', { delta: 'hi' }, { event: 'agui:text', from: 's8' }],
    ['all', 'agui:text'],
    ['all', 'other'],
  ]);
});

test('once: runs one time; once() without handler gives a promise', async (t) => {
  const { client, conn } = await setup(t);
  let n = 0;
  client.once('tick', () => n++);
  const next = client.once('tock');
  conn.event('tick', 1);
  conn.event('tick', 2);
  conn.event('tock', { v: 9 });
  assert.deepEqual(await next, { v: 9 });
  await sleep(20);
  assert.equal(n, 1);
  await client.sync();
  assert.deepEqual(unsubs(conn).flat().sort(), ['tick', 'tock']);
});

test('off(event, handler) removes that handler only; off(event) removes all of the event', async (t) => {
  const { client } = await setup(t);
  const log = [];
  const a = () => log.push('a');
  const b = () => log.push('b');
  client.on('e', a);
  client.on('e', b);
  client.on('f', a);
  client.off('e', a);
  client.trigger('e');
  client.trigger('f');
  assert.deepEqual(log, ['b', 'a']);
  client.off('e');
  client.trigger('e');
  assert.deepEqual(log, ['b', 'a']);
});

test('re-entrancy: removal during dispatch skips, additions wait for the next event', async (t) => {
  const { client, conn } = await setup(t);
  const log = [];
  let offB;
  const c = () => log.push('c');
  client.on('x', () => {
    log.push('a');
    offB(); // removed before its turn: skipped
    client.on('x', c); // added during dispatch: not called for this event
  });
  offB = client.on('x', () => log.push('b'));
  client.on('x', () => log.push('d'));
  conn.event('x', 1);
  await until(() => log.length >= 2);
  await sleep(10);
  assert.deepEqual(log, ['a', 'd']);
  log.length = 0;
  conn.event('x', 2);
  await until(() => log.length >= 3);
  await sleep(10);
  // a runs again (adds c a second time, not called now), d, and the first c
  assert.deepEqual(log, ['a', 'd', 'c']);
});

test('re-entrancy: a handler removing itself and re-adding itself is called once per event', async (t) => {
  const { client } = await setup(t);
  let calls = 0;
  const h = () => {
    calls++;
    client.off('y', h);
    client.on('y', h);
  };
  client.on('y', h);
  client.trigger('y');
  assert.equal(calls, 1);
  client.trigger('y');
  assert.equal(calls, 2);
});

test('re-entrancy: nested trigger of the same event from a once handler does not call it twice', async (t) => {
  const { client } = await setup(t);
  const log = [];
  client.once('z', (d) => {
    log.push('once:' + d);
    client.trigger('z', 'inner');
  });
  client.on('z', (d) => log.push('on:' + d));
  client.trigger('z', 'outer');
  assert.deepEqual(log, ['once:outer', 'on:inner', 'on:outer']);
});

test('re-entrancy: handlers may emit, call and subscribe during dispatch; a throwing handler does not stop others', async (t) => {
  const errors = [];
  const { client, conn, fake } = await setup(t, { client: { onError: (e) => errors.push(e.message) } });
  fake.onMessage = (c, msg) => {
    if (msg.method === 'api.inner') c.reply(msg.id, 'inner-result');
  };
  const results = [];
  client.on('go', async (d) => {
    client.emit('went', { from: d });
    client.on('later', () => {});
    results.push(await client.call('api.inner', d));
  });
  client.on('go', () => {
    throw new Error('handler failed');
  });
  client.on('go', () => results.push('third'));
  client.on('go', async () => {
    throw new Error('async handler failed');
  });
  conn.event('go', 5);
  await until(() => results.length === 2);
  assert.deepEqual(results, ['third', 'inner-result']);
  assert.deepEqual(await conn.waitFor((m) => m.type === 'event'), { type: 'event', event: 'went', data: { from: 5 } });
  await client.sync();
  assert.ok(subs(conn).flat().includes('later'));
  await until(() => errors.length === 2);
  assert.deepEqual(errors.sort(), ['async handler failed', 'handler failed']);
});

test('emit: shape with to / echo; default data {}; bad names throw', async (t) => {
  const { client, conn } = await setup(t);
  assert.equal(client.emit('progress', { pct: 1 }), true);
  assert.equal(client.emit('ping'), true);
  assert.equal(client.emit('direct', 1, { to: 's4' }), true);
  assert.equal(client.emit('multi', 2, { to: ['s4', 's5'], echo: true }), true);
  await until(() => conn.sentOf((m) => m.type === 'event').length === 4);
  assert.deepEqual(conn.sentOf((m) => m.type === 'event'), [
    { type: 'event', event: 'progress', data: { pct: 1 } },
    { type: 'event', event: 'ping', data: {} },
    { type: 'event', event: 'direct', data: 1, to: ['s4'] },
    { type: 'event', event: 'multi', data: 2, to: ['s4', 's5'], echo: true },
  ]);
  assert.throws(() => client.emit('has space'), TypeError);
  assert.throws(() => client.emit(''), TypeError);
  assert.throws(() => client.emit('x'.repeat(256)), TypeError);
});

test('emit while disconnected returns false; trigger dispatches locally only', async (t) => {
  const { client, conn } = await setup(t, { client: { reconnect: { minMs: 500, maxMs: 500 } } });
  const got = [];
  client.on('local:thing', (d, m) => got.push([d, m]));
  client.trigger('local:thing', { a: 1 });
  assert.deepEqual(got, [[{ a: 1 }, { event: 'local:thing', from: null }]]);
  await sleep(10);
  assert.equal(conn.sentOf((m) => m.type === 'event').length, 0);
  conn.kill();
  await until(() => !client.isReady());
  assert.equal(client.emit('progress', 1), false);
});

test('invalid patterns stay local (no subscription)', async (t) => {
  const { client, conn } = await setup(t);
  client.on('has space', () => {});
  client.on('a*b', () => {});
  await client.sync();
  assert.deepEqual(subs(conn), []);
});
