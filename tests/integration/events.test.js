'use strict';
// PROTOCOL.md section 4: events.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startAvd, scope, isEvent, isTypedError, assertError, uniq,
} = require('./lib/harness');

const T = { timeout: 15000 };

function names(msgs) { return msgs.map((m) => m.event); }

describe('events', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  test('exact subscription: delivered with data and from, other names not delivered', T, async (t) => {
    const s = scope(t);
    const ev = uniq('progress.');
    const other = uniq('other.');
    const sub = await s.client(avd);
    assert.deepEqual(await sub.callOk('avd.subscribe', { events: [ev] }), { events: [ev] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: other, data: { no: true } });
    pub.send({ type: 'event', event: ev, data: { pct: 40 } });
    const got = await sub.next((m) => isEvent(m), 2000);
    assert.deepEqual(got, { type: 'event', event: ev, data: { pct: 40 }, from: pub.session });
    assert.deepEqual(names(sub.drain((m) => isEvent(m))), [], 'nothing else delivered');
  });

  test('prefix subscription agui:* matches names starting with agui: only', T, async (t) => {
    const s = scope(t);
    const sub = await s.client(avd);
    await sub.callOk('avd.subscribe', { events: ['agui:*'] });
    const pub = await s.client(avd);
    for (const e of ['aguix', 'other:agui:x', 'agui:text_message_content', 'agui:a/b-c.d', 'AGUI:upper', 'agui:end']) {
      pub.send({ type: 'event', event: e, data: {} });
    }
    await sub.next((m) => isEvent(m, 'agui:end'), 2000);
    const got = names(sub.drain((m) => isEvent(m)));
    assert.deepEqual(got, ['agui:text_message_content', 'agui:a/b-c.d']);
  });

  test('* subscription receives every published event', T, async (t) => {
    const s = scope(t);
    const sub = await s.client(avd);
    await sub.callOk('avd.subscribe', { events: ['*'] });
    const pub = await s.client(avd);
    const evs = [uniq('x.'), uniq('y:'), uniq('z/'), uniq('end-')];
    for (const e of evs) pub.send({ type: 'event', event: e, data: { e } });
    await sub.next((m) => isEvent(m, evs[3]), 2000);
    const got = sub.drain((m) => isEvent(m) && evs.includes(m.event));
    assert.deepEqual(names(got), evs.slice(0, 3));
  });

  test('an event matching several patterns of one session is delivered once', T, async (t) => {
    const s = scope(t);
    const ev = 'dup.one';
    const sub = await s.client(avd);
    await sub.callOk('avd.subscribe', { events: [ev, 'dup.*', '*', 'dup.one'] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: ev, data: { n: 1 } });
    pub.send({ type: 'event', event: 'dup.end', data: {} });
    await sub.next((m) => isEvent(m, 'dup.end'), 2000);
    const got = sub.drain((m) => isEvent(m, ev));
    assert.equal(got.length, 1, `delivered ${got.length} times`);
  });

  test('the publisher is excluded unless echo:true', T, async (t) => {
    const s = scope(t);
    const ev = uniq('echo.');
    const pub = await s.client(avd, { subscribe: [ev] });
    const other = await s.client(avd, { subscribe: [ev] });
    pub.send({ type: 'event', event: ev, data: { n: 1 } });
    await other.next((m) => isEvent(m, ev) && m.data.n === 1, 2000);
    await pub.expectNone((m) => isEvent(m, ev), 250, 'publisher got its own event without echo');
    pub.send({ type: 'event', event: ev, data: { n: 2 }, echo: true });
    const mine = await pub.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(mine.data, { n: 2 });
    assert.equal(mine.from, pub.session);
    const theirs = await other.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(theirs.data, { n: 2 });
  });

  test('echo:true does not deliver to an unsubscribed publisher', T, async (t) => {
    const s = scope(t);
    const ev = uniq('echo2.');
    const pub = await s.client(avd);
    const other = await s.client(avd, { subscribe: [ev] });
    pub.send({ type: 'event', event: ev, data: {}, echo: true });
    await other.next((m) => isEvent(m, ev), 2000);
    await pub.expectNone((m) => isEvent(m, ev), 250, 'unsubscribed publisher got its echo');
  });

  test('to:[...] sends to the listed sessions only, subscribed or not', T, async (t) => {
    const s = scope(t);
    const ev = uniq('direct.');
    const end = uniq('end.');
    const target = await s.client(avd); // subscribed to nothing
    const target2 = await s.client(avd, { subscribe: [ev] });
    const bystander = await s.client(avd, { subscribe: ['*'] });
    const bystander2 = await s.client(avd, { subscribe: [ev, end] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: ev, data: { secret: 1 }, to: [target.session, target2.session] });
    pub.send({ type: 'event', event: end, data: {} });
    const got = await target.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(got.data, { secret: 1 });
    assert.equal(got.from, pub.session);
    const got2 = await target2.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(got2.data, { secret: 1 });
    for (const b of [bystander, bystander2]) {
      await b.next((m) => isEvent(m, end), 2000);
      assert.deepEqual(names(b.drain((m) => isEvent(m, ev))), [], 'a session not in to got the event');
    }
    await target2.expectNone((m) => isEvent(m, ev), 100, 'target delivered twice');
  });

  test('detail is accepted as an alias of data and delivered as data', T, async (t) => {
    const s = scope(t);
    const ev = uniq('detail.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: ev, detail: { via: 'detail' } });
    const got = await sub.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(got.data, { via: 'detail' });
    assert.equal('detail' in got, false, 'delivered event has no detail field');
  });

  test('absent data is delivered as {}', T, async (t) => {
    const s = scope(t);
    const ev = uniq('nodata.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: ev });
    const got = await sub.next((m) => isEvent(m, ev), 2000);
    assert.deepEqual(got.data, {});
  });

  test('non-object data (array, string, number) passes through unchanged', T, async (t) => {
    const s = scope(t);
    const ev = uniq('kinds.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const values = [[1, 'two', { three: 3 }], 'text', 0, 3.5, true];
    for (const v of values) pub.send({ type: 'event', event: ev, data: v });
    const got = [];
    for (let i = 0; i < values.length; i++) got.push((await sub.next((m) => isEvent(m, ev), 2000)).data);
    assert.deepEqual(got, values);
  });

  test('invalid event names get INVALID_REQUEST and are not delivered', T, async (t) => {
    const s = scope(t);
    const sub = await s.client(avd, { subscribe: ['*'] });
    const pub = await s.client(avd);
    const bad = ['has space', '', 'x'.repeat(256), 'bang!', 'caf\u00e9', 'tab\tname', 'a*b'];
    for (const e of bad) {
      pub.send({ type: 'event', event: e, data: {} });
      const err = await pub.next((m) => m.type === 'error', 2000, `error for event name ${JSON.stringify(e)}`);
      assertError(err.error, 'INVALID_REQUEST', `event name ${JSON.stringify(e.slice(0, 20))}`);
    }
    pub.send({ type: 'event', event: 'names.end', data: {} });
    await sub.next((m) => isEvent(m, 'names.end'), 2000);
    assert.deepEqual(names(sub.drain((m) => isEvent(m) && bad.includes(m.event))), []);
    // and the publisher is still served
    assert.equal(typeof (await pub.callOk('avd.stats')).sessions, 'number');
  });

  test('event without an event name, or with a non-string name, gets INVALID_REQUEST', T, async (t) => {
    const s = scope(t);
    const pub = await s.client(avd);
    for (const msg of [{ type: 'event', data: {} }, { type: 'event', event: 42 }, { type: 'event', event: null }]) {
      pub.send(msg);
      const err = await pub.next((m) => m.type === 'error', 2000, `error for ${JSON.stringify(msg)}`);
      assertError(err.error, 'INVALID_REQUEST', JSON.stringify(msg));
    }
  });

  test('event names of 255 bytes and with every allowed character are accepted', T, async (t) => {
    const s = scope(t);
    const sub = await s.client(avd, { subscribe: ['*'] });
    const pub = await s.client(avd);
    const long = 'L'.repeat(255);
    const chars = 'Az09_.:/-';
    pub.send({ type: 'event', event: long, data: { n: 1 } });
    pub.send({ type: 'event', event: chars, data: { n: 2 } });
    assert.deepEqual((await sub.next((m) => isEvent(m, long), 2000)).data, { n: 1 });
    assert.deepEqual((await sub.next((m) => isEvent(m, chars), 2000)).data, { n: 2 });
    await pub.expectNone((m) => isTypedError(m), 100, 'valid names were refused');
  });

  test('1000 events from one publisher arrive in order', T, async (t) => {
    const s = scope(t);
    const ev = uniq('order.');
    const sub = await s.client(avd, { subscribe: [ev] });
    const sub2 = await s.client(avd, { subscribe: ['*'] });
    const pub = await s.client(avd);
    for (let i = 0; i < 1000; i++) pub.send({ type: 'event', event: ev, data: { seq: i } });
    for (const c of [sub, sub2]) {
      await c.next((m) => isEvent(m, ev) && m.data.seq === 999, 10000, 'the 1000th event');
    }
    const got1 = sub.drain((m) => isEvent(m, ev)).map((m) => m.data.seq);
    const got2 = sub2.drain((m) => isEvent(m, ev)).map((m) => m.data.seq);
    const expected = [...Array(999).keys()];
    assert.deepEqual(got1, expected, 'subscriber 1 got 0..998 in order before 999');
    assert.deepEqual(got2, expected, 'subscriber 2 got 0..998 in order before 999');
  });

  test('frontends receive backend_ready without subscribing; unsubscribed backends do not', T, async (t) => {
    const s = scope(t);
    const fe = await s.client(avd);
    const otherBe = await s.client(avd, { role: 'backend' });
    const name = uniq('sysbe');
    const be = await s.client(avd, { role: 'backend', name });
    const h = uniq('sys.m');
    be.send({ type: 'ready', handlers: [h] });
    const ev = await fe.next((m) => isEvent(m, 'backend_ready') && m.data.session === be.session, 2000);
    assert.equal(ev.data.backend, name);
    assert.equal(ev.data.schema_version, 1);
    await otherBe.expectNone((m) => isEvent(m, 'backend_ready'), 250, 'an unsubscribed backend got backend_ready');
  });

  test('avd:session_joined and avd:session_left go to subscribers only', T, async (t) => {
    const s = scope(t);
    const watcher = await s.client(avd);
    await watcher.callOk('avd.subscribe', { events: ['avd:session_joined', 'avd:session_left'] });
    const bystander = await s.client(avd);
    const name = uniq('joiner');
    const joiner = await s.client(avd, { role: 'backend', name });
    const j = await watcher.next((m) => isEvent(m, 'avd:session_joined') && m.data.session === joiner.session, 2000);
    assert.deepEqual(j.data, { session: joiner.session, role: 'backend', name, schema_version: 1 });
    await joiner.close(2000);
    const l = await watcher.next((m) => isEvent(m, 'avd:session_left') && m.data.session === joiner.session, 2000);
    assert.deepEqual(l.data, { session: joiner.session, role: 'backend', name, schema_version: 1 });
    await bystander.expectNone((m) => isEvent(m) && m.event.startsWith('avd:session_'), 200,
      'an unsubscribed session got a session event');
  });

  test('subscribe via hello subscribe', T, async (t) => {
    const s = scope(t);
    const ev = uniq('hs.');
    const sub = await s.client(avd, { subscribe: [ev, 'hsp:*'] });
    const listed = (await sub.callOk('avd.sessions')).sessions.find((x) => x.session === sub.session);
    assert.deepEqual([...listed.subscriptions].sort(), [ev, 'hsp:*'].sort());
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: ev, data: { a: 1 } });
    pub.send({ type: 'event', event: 'hsp:x', data: { b: 2 } });
    assert.deepEqual((await sub.next((m) => isEvent(m, ev), 2000)).data, { a: 1 });
    assert.deepEqual((await sub.next((m) => isEvent(m, 'hsp:x'), 2000)).data, { b: 2 });
  });

  test('avd.subscribe and avd.unsubscribe return the subscriptions now; unsubscribed events stop', T, async (t) => {
    const s = scope(t);
    const a = uniq('sa.');
    const b = uniq('sb.');
    const sub = await s.client(avd);
    assert.deepEqual(await sub.callOk('avd.subscribe', { events: [a] }), { events: [a] });
    const r = await sub.callOk('avd.subscribe', { events: [b] });
    assert.deepEqual([...r.events].sort(), [a, b].sort());
    const u = await sub.callOk('avd.unsubscribe', { events: [a] });
    assert.deepEqual(u, { events: [b] });
    const pub = await s.client(avd);
    pub.send({ type: 'event', event: a, data: {} });
    pub.send({ type: 'event', event: b, data: {} });
    await sub.next((m) => isEvent(m, b), 2000);
    assert.deepEqual(names(sub.drain((m) => isEvent(m, a))), [], 'event after unsubscribe delivered');
  });

  test('avd.subscribe with a bad params shape gets INVALID_REQUEST', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    for (const params of [{ events: 'x' }, { events: [1] }, 'x', null]) {
      const res = await c.call('avd.subscribe', params);
      assert.equal(res.ok, false, `avd.subscribe ${JSON.stringify(params)} should fail: ${JSON.stringify(res)}`);
      assertError(res.error, 'INVALID_REQUEST', `avd.subscribe ${JSON.stringify(params)}`);
    }
  });

  test('events_published and events_delivered are counted', T, async (t) => {
    const s = scope(t);
    const ev = uniq('cnt.');
    const sub1 = await s.client(avd, { subscribe: [ev] });
    const sub2 = await s.client(avd, { subscribe: [ev] });
    const pub = await s.client(avd);
    const before = await pub.callOk('avd.stats');
    for (let i = 0; i < 3; i++) pub.send({ type: 'event', event: ev, data: { i } });
    for (const c of [sub1, sub2]) await c.next((m) => isEvent(m, ev) && m.data.i === 2, 2000);
    const after = await pub.callOk('avd.stats');
    assert.equal(after.events_published - before.events_published, 3);
    assert.equal(after.events_delivered - before.events_delivered, 6);
  });
});
