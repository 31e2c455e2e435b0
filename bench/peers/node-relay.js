'use strict';
// A minimal Node relay doing avd's routing, for the side-by-side benchmark.
//
//   node bench/peers/node-relay.js PORT TOKEN
//
// Speaks the subset of avd's protocol the load generator uses: hello/welcome
// (token in the URL), avd.register, avd.subscribe, calls forwarded to the
// method's owner under an id of the relay's own (with caller and timeout_ms
// added, a timeout armed per call) and answers mapped back, events published
// to exact-name subscribers with "from" added.  One JSON.parse per inbound
// message, one JSON.stringify per outbound message (once per event, not per
// subscriber), as avd does.  Listens on 127.0.0.1 only.

const path = require('path');

function loadWs() {
  const here = __dirname;
  const places = [
    path.join(here, '..', 'node_modules'),
    path.join(here, '..', '..', 'tests', 'node_modules'),
    ...(process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean),
  ];
  for (const p of places) {
    try {
      return require(require.resolve('ws', { paths: [p] }));
    } catch (e) { /* try the next place */ }
  }
  return require('ws');
}

const { WebSocketServer } = loadWs();
const port = Number(process.argv[2] || 0);
const token = process.argv[3] || '';
const CALL_TIMEOUT_MS = 30000;

let nextSession = 1;
let nextCall = 1;
const owners = new Map(); // method -> session
const calls = new Map(); // relay id -> {caller, id, callee, timer}
const subscribers = new Map(); // event name -> Set of sessions

function send(s, obj) {
  s.ws.send(JSON.stringify(obj));
}

function subscribe(s, names) {
  for (const n of names) {
    if (typeof n !== 'string') continue;
    let set = subscribers.get(n);
    if (!set) subscribers.set(n, (set = new Set()));
    set.add(s);
    s.subs.add(n);
  }
}

function builtin(s, m) {
  const p = m.params || {};
  if (m.method === 'avd.register') {
    const methods = Array.isArray(p.methods) ? p.methods : [];
    for (const name of methods) {
      const o = owners.get(name);
      if (o && o !== s) {
        send(s, { id: m.id, ok: false, error: { code: 'ALREADY_REGISTERED', message: name } });
        return;
      }
    }
    for (const name of methods) { owners.set(name, s); s.methods.add(name); }
    send(s, { id: m.id, ok: true, result: { methods } });
  } else if (m.method === 'avd.subscribe') {
    subscribe(s, Array.isArray(p.events) ? p.events : []);
    send(s, { id: m.id, ok: true, result: { events: [...s.subs] } });
  } else {
    send(s, { id: m.id, ok: false, error: { code: 'METHOD_NOT_FOUND', message: m.method } });
  }
}

function onCall(s, m) {
  if (m.method.startsWith('avd.')) return builtin(s, m);
  const callee = owners.get(m.method);
  if (!callee) {
    send(s, { id: m.id, ok: false, error: { code: 'METHOD_NOT_FOUND', message: m.method } });
    return;
  }
  const rid = 'c' + nextCall++;
  const timeout = m.timeout_ms === undefined ? CALL_TIMEOUT_MS : m.timeout_ms;
  const call = { caller: s, id: m.id, callee, timer: null };
  if (timeout > 0) {
    call.timer = setTimeout(() => {
      calls.delete(rid);
      send(s, { id: m.id, ok: false, error: { code: 'TIMEOUT', message: 'timeout' } });
      send(callee, { type: 'cancel', id: rid, reason: 'timeout' });
    }, timeout);
  }
  calls.set(rid, call);
  send(callee, {
    id: rid, method: m.method, params: m.params === undefined ? null : m.params,
    caller: s.id, timeout_ms: timeout,
  });
}

function onResponse(s, m) {
  const call = calls.get(m.id);
  if (!call || call.callee !== s) return;
  calls.delete(m.id);
  if (call.timer) clearTimeout(call.timer);
  if ('error' in m && m.ok !== true) send(call.caller, { id: call.id, ok: false, error: m.error });
  else send(call.caller, { id: call.id, ok: true, result: m.result });
}

function onEvent(s, m) {
  const set = subscribers.get(m.event);
  if (!set) return;
  const data = m.data !== undefined ? m.data : m.detail !== undefined ? m.detail : {};
  const out = JSON.stringify({ type: 'event', event: m.event, data, from: s.id });
  for (const sub of set) if (sub !== s) sub.ws.send(out);
}

function leave(s) {
  for (const n of s.subs) subscribers.get(n)?.delete(s);
  for (const name of s.methods) if (owners.get(name) === s) owners.delete(name);
  for (const [rid, c] of calls) {
    if (c.callee === s || c.caller === s) {
      if (c.timer) clearTimeout(c.timer);
      calls.delete(rid);
      if (c.callee === s)
        send(c.caller, { id: c.id, ok: false, error: { code: 'BACKEND_UNAVAILABLE', message: 'gone' } });
    }
  }
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/ws', maxPayload: 1 << 20 });

wss.on('connection', (ws, req) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (token && url.searchParams.get('token') !== token) { ws.close(1008, 'unauthorized'); return; }
  const s = { id: null, ws, subs: new Set(), methods: new Set() };
  ws.on('message', (raw, isBinary) => {
    let m;
    try {
      m = JSON.parse(raw.toString());
    } catch (e) {
      send(s, { type: 'error', error: { code: 'PARSE_ERROR', message: 'not JSON' } });
      return;
    }
    if (s.id === null) {
      if (!m || m.type !== 'hello') { ws.close(1008, 'hello first'); return; }
      s.id = 's' + nextSession++;
      send(s, { type: 'welcome', schema_version: 1, session: s.id, server: 'node-relay' });
      if (Array.isArray(m.subscribe)) subscribe(s, m.subscribe);
      return;
    }
    if (typeof m.method === 'string' && 'id' in m) onCall(s, m);
    else if ('id' in m && ('result' in m || 'error' in m)) onResponse(s, m);
    else if (m.type === 'event' && typeof m.event === 'string') onEvent(s, m);
  });
  ws.on('close', () => leave(s));
  ws.on('error', () => {});
});

wss.on('listening', () => {
  console.log(`relay listening on http://127.0.0.1:${wss.address().port}/?token=${token}`);
});
