'use strict';
// client-js (client-js/avd.js) in Node against the real avd: calls, streams,
// cancel, events, offered methods, fail-fast on an unhealthy backend, and
// reconnecting after avd restarts on the same port.
//
// client-js is an ES module, loaded with import(). Under Node 20 it loads
// the `ws` package itself, from client-js/node_modules (run-node-tests.sh
// installs it there when missing). Where that directory cannot exist (the
// read-only tree of `make distcheck`) the tests hand it the `ws` of tests/
// through the client's WebSocket option instead.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { REPO, isCall, scope, sleep, startAvd, withTimeout } = require('./lib/harness.js');

const CLIENT_JS = path.join(REPO, 'client-js', 'avd.js');

// Whether avd.js can import('ws') on its own (ESM resolution ignores NODE_PATH).
function clientHasWs() {
  if (typeof globalThis.WebSocket === 'function') return true;
  for (let dir = path.dirname(CLIENT_JS); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'node_modules', 'ws', 'package.json'))) return true;
    if (path.dirname(dir) === dir) return false;
  }
}
const OWN_WS = clientHasWs();
const WS_OPTION = OWN_WS ? {} : { WebSocket: require('ws') };

let modPromise;
function avdjs() {
  modPromise = modPromise || import('../../client-js/avd.js');
  return modPromise;
}

// A test's avd and client-js clients; clients close before avd stops.
async function setup(t, args = []) {
  const s = scope(t);
  const avd = await s.avd(args);
  const clients = [];
  const env = {
    s,
    avd,
    async client(opts = {}) {
      const { connect } = await avdjs();
      const c = await withTimeout(
        connect(avd.wsUrl, { token: avd.token, reconnect: false, ...WS_OPTION, ...opts }),
        5000,
        'client-js connect'
      );
      clients.push(c);
      return c;
    },
    track(c) {
      clients.push(c);
      return c;
    },
  };
  t.after(() => Promise.all(clients.map((c) => withTimeout(c.close(), 2000, 'client close').catch(() => {}))));
  return env;
}

// Waits until fn() is truthy (polling), at most ms.
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

async function rejection(promise) {
  try {
    const v = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(v)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
}

test('connect() with the module\'s own ws (client-js/node_modules)', { skip: !OWN_WS && 'client-js/node_modules/ws is missing' }, async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const { connect } = await avdjs();
  const c = await withTimeout(connect(avd.wsUrl, { token: avd.token, reconnect: false }), 5000, 'connect');
  t.after(() => c.close());
  assert.equal(c.state, 'open');
  assert.match(c.session, /^s\d+$/);
  assert.match(c.server, /^avd\//);
  assert.equal(c.serverConfig.callTimeoutMs, 30000);
});

test('connect() fails at once, with the protocol error, on a wrong token or no avd', async (t) => {
  const { connect, Unauthorized, BackendUnavailableError } = await avdjs();
  const env = await setup(t);
  const bad = await rejection(connect(env.avd.wsUrl, { token: 'f'.repeat(32), reconnect: false, ...WS_OPTION }));
  assert.ok(bad instanceof Unauthorized, `got ${bad.name}: ${bad.message}`);
  const hello = await rejection(connect(env.avd.wsUrl, { token: undefined, reconnect: false, ...WS_OPTION }));
  assert.equal(hello.code, 'UNAUTHORIZED');
  // nothing listening
  const port = env.avd.port;
  await env.s.cleanup();
  const none = await rejection(connect(`ws://127.0.0.1:${port}/ws`, { token: 'x', reconnect: false, ...WS_OPTION }));
  assert.ok(none instanceof BackendUnavailableError, `got ${none.name}`);
});

test('calls: results, avd\'s errors as classes, timeouts, a callee that leaves, namespaces', async (t) => {
  const { MethodNotFound, TimeoutError, AvdError, BackendUnavailableError } = await avdjs();
  const env = await setup(t);
  const be = await env.client({ role: 'backend', name: 'node-be' });
  await be.register({
    'api.echo': (p) => p,
    'api.add': ([a, b]) => a + b,
    'api.later': async (p) => {
      await sleep(30);
      return { later: p.v };
    },
    'api.never': () => new Promise(() => {}),
    'api.nothing': () => undefined,
  });
  const fe = await env.client({ name: 'node-fe' });

  assert.deepEqual(await fe.call('api.echo', { text: '你好', n: [1, 2] }), { text: '你好', n: [1, 2] });
  assert.equal(await fe.call('api.add', [2, 3]), 5);
  assert.deepEqual(await fe.api.later({ v: 9 }), { later: 9 });
  assert.equal(await fe.namespace('api').add([10, 5]), 15);
  assert.equal(await fe.call('api.nothing'), null);

  const missing = await rejection(fe.call('api.missing', {}));
  assert.ok(missing instanceof MethodNotFound);
  assert.ok(missing instanceof AvdError);
  assert.equal(missing.code, 'METHOD_NOT_FOUND');
  assert.equal(missing.data.method, 'api.missing');

  const started = Date.now();
  const slow = await rejection(fe.call('api.never', {}, { timeout: 200 }));
  assert.ok(slow instanceof TimeoutError);
  assert.deepEqual(slow.data, { method: 'api.never', timeout_ms: 200 }, 'the TimeoutError is avd\'s, with its data');
  assert.ok(Date.now() - started < 1000, 'within the call timeout plus a little, not the grace');

  // a backend that leaves: its pending calls fail at once, with avd's reason
  const leaver = await env.client({ role: 'backend', name: 'leaver' });
  await leaver.register('leave.wait', () => new Promise(() => {}));
  const p = rejection(fe.call('leave.wait', {}, { timeout: 10000 }));
  await until(async () => (await fe.call('avd.sessions')).sessions.some((x) => x.session === leaver.session && x.pending_in > 0), 3000, 'leave.wait forwarded');
  const t1 = Date.now();
  await leaver.close();
  const gone = await p;
  assert.ok(gone instanceof BackendUnavailableError, `got ${gone.name}`);
  assert.ok(Date.now() - t1 < 1000, 'at once');

  // the daemon's own methods through the client
  const methods = await fe.methods();
  assert.ok(methods.some((m) => m.method === 'api.echo' && m.session === be.session && m.backend === 'node-be'));
  assert.equal(fe.backendFor('api.echo').session, be.session);
});

test('handlers: values, promises, throwing with and without a code, async iterables', async (t) => {
  const { AvdError, AlreadyRegistered, MethodNotFound } = await avdjs();
  const env = await setup(t);
  const be = await env.client({ role: 'backend', name: 'node-be' });
  let finallyRan = 0;
  const unregister = await be.register({
    'math.div': ({ a, b }) => {
      if (b === 0) {
        const e = new RangeError('division by zero');
        e.code = 'E_DIV_ZERO';
        e.data = { a };
        throw e;
      }
      return a / b;
    },
    'math.boom': async () => {
      throw new Error('boom');
    },
    'gen.count': async function* ({ n }, ctx) {
      try {
        for (let i = 0; i < n && !ctx.signal.aborted; i++) yield { i, caller: ctx.caller };
        return { total: n };
      } finally {
        finallyRan++;
      }
    },
  });
  assert.deepEqual(be.registeredMethods().sort(), ['gen.count', 'math.boom', 'math.div']);
  const fe = await env.client({ name: 'node-fe' });

  assert.equal(await fe.call('math.div', { a: 6, b: 3 }), 2);
  const div = await rejection(fe.call('math.div', { a: 1, b: 0 }));
  assert.ok(div instanceof AvdError);
  assert.equal(div.code, 'E_DIV_ZERO');
  assert.equal(div.name, 'RangeError');
  assert.equal(div.message, 'division by zero');
  assert.deepEqual(div.data, { a: 1 });
  const boom = await rejection(fe.call('math.boom'));
  assert.equal(boom.code, 'BACKEND_ERROR');
  assert.equal(boom.name, 'Error');
  assert.equal(boom.message, 'boom');

  // an async iterable: each item a chunk, its return value the result
  const st = fe.stream('gen.count', { n: 50 });
  const seen = [];
  for await (const c of st) seen.push(c);
  assert.deepEqual(seen.map((c) => c.i), Array.from({ length: 50 }, (_, i) => i));
  assert.equal(seen[0].caller, fe.session, 'ctx.caller is the caller\'s session');
  assert.deepEqual(await st.result, { total: 50 });
  assert.equal(finallyRan, 1);

  // another session cannot take the names
  const other = await env.client({ role: 'backend', name: 'other' });
  const taken = await rejection(other.register('math.div', () => 0));
  assert.ok(taken instanceof AlreadyRegistered);
  assert.equal(taken.data.owner, be.session);

  // unregister: the methods are gone from avd
  await unregister();
  assert.ok((await rejection(fe.call('math.div', { a: 1, b: 1 }))) instanceof MethodNotFound);
});

test('cancel: AbortSignal, stream break and avd\'s timeout reach a client-js handler', async (t) => {
  const { CancelledError, TimeoutError } = await avdjs();
  const env = await setup(t);
  const be = await env.client({ role: 'backend', name: 'node-be' });
  const aborts = [];
  let iterStopped = 0;
  await be.register({
    'job.wait': (p, ctx) =>
      new Promise((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborts.push({ id: p.id, reason: ctx.signal.reason && ctx.signal.reason.reason, name: ctx.signal.reason && ctx.signal.reason.name });
          reject(ctx.signal.reason);
        });
      }),
    'job.ticks': async function* (p, ctx) {
      try {
        for (let i = 0; ; i++) {
          yield { i };
          await sleep(10);
          if (ctx.signal.aborted) return null;
        }
      } finally {
        iterStopped++;
      }
    },
  });
  const fe = await env.client({ name: 'node-fe' });

  const ac = new AbortController();
  const p = rejection(fe.call('job.wait', { id: 'a' }, { signal: ac.signal, timeout: 0 }));
  await until(async () => (await fe.call('avd.sessions')).sessions.some((x) => x.session === be.session && x.pending_in > 0), 3000, 'call reached the backend');
  ac.abort();
  const err = await p;
  assert.ok(err instanceof CancelledError);
  await until(() => aborts.length === 1, 3000, 'handler saw the cancel');
  assert.deepEqual(aborts[0], { id: 'a', reason: 'cancelled', name: 'CancelledError' });

  // a signal already aborted: nothing is sent
  const pre = new AbortController();
  pre.abort();
  assert.ok((await rejection(fe.call('job.wait', { id: 'pre' }, { signal: pre.signal }))) instanceof CancelledError);

  // avd's timeout: the handler is told "timeout"
  const slow = await rejection(fe.call('job.wait', { id: 'b' }, { timeout: 150 }));
  assert.ok(slow instanceof TimeoutError);
  await until(() => aborts.length === 2, 3000, 'handler saw the timeout');
  assert.deepEqual(aborts[1], { id: 'b', reason: 'timeout', name: 'TimeoutError' });
  assert.equal(aborts.filter((a) => a.id === 'pre').length, 0);

  // leaving a for-await early: the generator is stopped
  const st = fe.stream('job.ticks', {});
  const got = [];
  for await (const c of st) {
    got.push(c.i);
    if (got.length === 5) break;
  }
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  assert.ok((await rejection(st.result)) instanceof CancelledError);
  await until(() => iterStopped === 1, 3000, 'generator stopped');

  // the caller leaving: the handler is told "caller_gone"
  const fe2 = await env.client({ name: 'node-fe2' });
  fe2.call('job.wait', { id: 'c' }, { timeout: 0 }).catch(() => {});
  await until(async () => (await fe.call('avd.sessions')).sessions.some((x) => x.session === be.session && x.pending_in > 0), 3000, 'call c reached the backend');
  await fe2.close();
  await until(() => aborts.length === 3, 3000, 'handler saw caller_gone');
  assert.deepEqual(aborts[2], { id: 'c', reason: 'caller_gone', name: 'CancelledError' });
});

test('events: on, once, off, prefix patterns, emit options', async (t) => {
  const env = await setup(t);
  const a = await env.client({ name: 'node-a' });
  const b = await env.client({ name: 'node-b' });
  const got = [];
  const h = (data, meta) => got.push({ data, meta });
  a.on('progress', h);
  const prefixed = [];
  a.on('agui:*', (data, meta) => prefixed.push(meta.event));
  await a.sync();
  const subs = (await b.call('avd.sessions')).sessions.find((x) => x.session === a.session).subscriptions;
  assert.deepEqual([...subs].sort(), ['agui:*', 'progress'], 'handlers became avd subscriptions');

  const once = a.once('progress');
  assert.equal(b.emit('progress', { pct: 1 }), true);
  assert.deepEqual(await withTimeout(once, 3000, 'once'), { pct: 1 });
  b.emit('progress', { pct: 2 });
  b.emit('agui:text_message_content', { delta: 'hi', message_id: 'm1' });
  b.emit('agui:run_finished', {});
  b.emit('other', {});
  await until(() => got.length === 2 && prefixed.length === 2, 3000, 'events delivered');
  assert.deepEqual(got, [
    { data: { pct: 1 }, meta: { event: 'progress', from: b.session } },
    { data: { pct: 2 }, meta: { event: 'progress', from: b.session } },
  ]);
  assert.deepEqual(prefixed, ['agui:text_message_content', 'agui:run_finished']);

  // off: the handler stops and avd stops sending
  a.off('progress', h);
  await a.sync();
  const subs2 = (await b.call('avd.sessions')).sessions.find((x) => x.session === a.session).subscriptions;
  assert.deepEqual(subs2, ['agui:*']);
  b.emit('progress', { pct: 3 });
  b.emit('agui:marker', {}); // same publisher, so it comes after progress if that came at all
  await until(() => prefixed.length === 3, 3000, 'marker');
  assert.equal(got.length, 2, 'no progress after off');

  // echo and to
  const mine = [];
  b.on('self:*', (d) => mine.push(d));
  await b.sync();
  b.emit('self:test', { n: 1 });
  b.emit('self:test', { n: 2 }, { echo: true });
  await until(() => mine.length === 1, 3000, 'echoed event');
  assert.deepEqual(mine, [{ n: 2 }]);
  const direct = [];
  a.on('direct', (d) => direct.push(d));
  await a.sync();
  const c = await env.client({ name: 'node-c' });
  const cDirect = [];
  c.on('direct', (d) => cDirect.push(d));
  await c.sync();
  b.emit('direct', { to: 'a' }, { to: a.session });
  await until(() => direct.length === 1, 3000, 'direct event');
  await sleep(100);
  assert.deepEqual(cDirect, [], 'to: only the named session');
  // names avd would refuse never leave the client
  assert.throws(() => b.emit('bad name', {}), TypeError);
});

test('fail fast: calls to an unhealthy backend reject with BackendUnavailableError at once', async (t) => {
  const { BackendUnavailableError } = await avdjs();
  const env = await setup(t, ['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '400']);
  // a raw backend that does not answer pings
  const mute = await env.s.client(env.avd, { role: 'backend', name: 'mute', autoPong: false });
  await mute.callOk('avd.register', { methods: ['mute.work'] });
  const fe = await env.client({ name: 'node-fe' });
  assert.equal(fe.getConfig().backendFailFast, true, 'taken from welcome.config');

  // a call pending when the backend falls silent fails as soon as avd notices
  const started = Date.now();
  const pending = rejection(fe.call('mute.work', {}, { timeout: 10000 }));
  await mute.next((m) => isCall(m, 'mute.work'), 2000, 'mute.work forwarded');
  const err = await pending;
  assert.ok(err instanceof BackendUnavailableError, `got ${err.name}: ${err.message}`);
  assert.ok(Date.now() - started < 2500, `failed after ${Date.now() - started} ms, not the 10 s timeout`);
  await until(() => fe.backends().some((b) => b.session === mute.session && b.status === 'unhealthy'), 2000, 'client marks it unhealthy');

  // new calls fail at once, without waiting for anything
  const t0 = Date.now();
  const again = await rejection(fe.call('mute.work', {}, { timeout: 10000 }));
  assert.ok(again instanceof BackendUnavailableError);
  assert.ok(Date.now() - t0 < 200, 'at once');
  assert.equal(again.data.backend, 'mute');

  // the backend speaks again: alive, and calls go through
  mute.enableAutoPong();
  mute.serve('mute.work', () => 'done');
  mute.send({ type: 'event', event: 'backend_health', data: { status: 'alive', ts: Date.now(), schema_version: 1 } });
  await until(() => fe.backends().some((b) => b.session === mute.session && b.status !== 'unhealthy'), 3000, 'healthy again');
  assert.equal(await fe.call('mute.work', {}, { timeout: 3000 }), 'done');

});

test('reconnects after avd restarts on the same port: subscriptions, methods and ready come back', { timeout: 30000 }, async (t) => {
  const { AvdClient, BackendUnavailableError, EventLoopClosed } = await avdjs();
  const token = crypto.randomBytes(16).toString('hex');
  const daemons = [];
  const clients = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => withTimeout(c.close(), 2000, 'close').catch(() => {})));
    for (const d of daemons) await d.stop().catch(() => {});
  });
  const first = await startAvd(['--token', token]);
  daemons.push(first);
  const port = first.port;
  const opts = { token, reconnect: { minMs: 100, maxMs: 300 }, onError: () => {}, ...WS_OPTION };

  const be = new AvdClient(first.wsUrl, { ...opts, role: 'backend', name: 'svc' });
  clients.push(be);
  await withTimeout(be.ready, 5000, 'backend ready');
  await be.register('svc.ping', (p) => ({ pong: p, session: be.session }));
  await be.register('svc.never', () => new Promise(() => {}));
  be.announceReady();

  const fe = new AvdClient(first.wsUrl, { ...opts, name: 'node-fe' });
  clients.push(fe);
  await withTimeout(fe.ready, 5000, 'frontend ready');
  const news = [];
  fe.on('news', (d) => news.push(d));
  await fe.sync();
  const states = [];
  fe.onStatus((st) => states.push(st));
  assert.deepEqual((await fe.call('svc.ping', 1)).pong, 1);

  // avd goes away with a call pending
  const pending = rejection(fe.call('svc.never', {}, { timeout: 0 }));
  await until(async () => (await fe.call('avd.stats')).pending_calls > 0, 3000, 'svc.never pending');
  await first.stop();
  const lost = await pending;
  assert.ok(lost instanceof EventLoopClosed, `pending calls get EVENT_LOOP_CLOSED at shutdown, got ${lost.name}`);
  await until(() => fe.state !== 'open' && be.state !== 'open', 3000, 'clients notice');
  const down = await rejection(fe.call('svc.ping', 2));
  assert.ok(down instanceof BackendUnavailableError, 'calls while disconnected fail at once');
  assert.equal(fe.emit('news', {}), false, 'emit says it did not send');

  // same port, same token
  const second = await startAvd(['--token', token, '--port', String(port)]);
  daemons.push(second);
  await until(() => fe.state === 'open' && be.state === 'open', 8000, 'both reconnected');
  assert.ok(states.includes('disconnected') && states.at(-1) === 'open');
  const fresh = (await fe.call('avd.sessions')).sessions;
  assert.ok(fresh.some((x) => x.session === fe.session && x.name === 'node-fe'), 'a session in the new avd');

  // methods re-registered (the backend may still be re-registering)
  const res = await until(async () => {
    try {
      return await fe.call('svc.ping', 3);
    } catch (e) {
      if (e.code === 'METHOD_NOT_FOUND') return null;
      throw e;
    }
  }, 5000, 'svc.ping after the restart');
  assert.equal(res.pong, 3);
  assert.equal(res.session, be.session);
  // ready announced again: the frontend knows the backend from backend_ready
  await until(() => fe.backends().some((b) => b.name === 'svc' && b.status === 'ready' && b.handlers.includes('svc.ping')), 3000, 'backend_ready again');
  // subscriptions restored
  const subs = (await fe.call('avd.sessions')).sessions.find((x) => x.session === fe.session).subscriptions;
  assert.ok(subs.includes('news'), `subscriptions after restart: ${JSON.stringify(subs)}`);
  const s = scope(t);
  const pub = await s.client(second, { name: 'pub' });
  pub.send({ type: 'event', event: 'news', data: { n: 1 } });
  await until(() => news.length === 1, 3000, 'event after the restart');
  assert.deepEqual(news, [{ n: 1 }]);
  await pub.close();
});
