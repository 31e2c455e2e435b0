// The part of client-js's AvdClient a backend uses (register, on, emit,
// announceReady), over stdin/stdout: what avd speaks with the backends it
// starts itself (--backend NAME=COMMAND, AuroraView's "packed mode").
//
// One JSON object per line. The first line we write is
// {"type":"ready","handlers":[...]}: it registers the methods. Then:
//   avd -> us   calls {"id","method","params","caller","timeout_ms"}, including
//               avd's __ping__; cancels {"type":"cancel","id","reason"};
//               events we subscribed to; answers to our own calls
//   us -> avd   answers {"id","ok":true,"result"} / {"id","ok":false,"error"},
//               chunks {"type":"chunk","id","data"} before the answer, events,
//               our own calls (here only avd.subscribe)
// stdout belongs to the protocol, so console.log is sent to stderr; avd turns
// stderr lines into backend:stderr events.

import { createInterface } from 'node:readline';

function matches(pattern, event) {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return event.startsWith(pattern.slice(0, -1));
  return pattern === event;
}

function isAsyncIterable(x) {
  return x != null && typeof x[Symbol.asyncIterator] === 'function';
}

function errorToWire(e) {
  const err = { name: (e && e.name) || 'Error', message: (e && e.message) || String(e), data: (e && e.data) || {} };
  if (e && e.code) err.code = e.code; // avd adds BACKEND_ERROR otherwise
  return err;
}

export function connectStdio({ input = process.stdin, output = process.stdout } = {}) {
  const methods = new Map();
  const handlers = [];
  const running = new Map(); // call id -> {controller, iterator}
  let ready = false;
  let seq = 0;
  const closeWaiters = [];
  let closed = false;

  console.log = console.info = console.debug = console.error;

  function send(msg) {
    if (!closed) output.write(JSON.stringify(msg) + '\n');
  }

  function subscribe(patterns) {
    send({ id: `node-${++seq}`, method: 'avd.subscribe', params: { events: patterns } });
  }

  async function serve(msg) {
    const { id, method } = msg;
    if (method === '__ping__') {
      send({ id, ok: true, result: { status: 'pong', ts: Date.now() } });
      return;
    }
    const fn = methods.get(method);
    if (!fn) {
      send({ id, ok: false, error: { code: 'METHOD_NOT_FOUND', name: 'MethodNotFound', message: `no method ${method}`, data: { method } } });
      return;
    }
    const controller = new AbortController();
    const state = { controller, iterator: null };
    running.set(id, state);
    const ctx = {
      id, method, caller: msg.caller ?? null, timeoutMs: msg.timeout_ms ?? null, signal: controller.signal,
      chunk: (data) => !controller.signal.aborted && (send({ type: 'chunk', id, data: data ?? null }), true),
    };
    try {
      let result = await fn(msg.params ?? null, ctx);
      if (isAsyncIterable(result)) {
        state.iterator = result[Symbol.asyncIterator]();
        for (;;) {
          const step = await state.iterator.next();
          if (controller.signal.aborted) return;
          if (step.done) { result = step.value; break; }
          ctx.chunk(step.value);
        }
      }
      if (!controller.signal.aborted) send({ id, ok: true, result: result ?? null });
    } catch (e) {
      if (!controller.signal.aborted) send({ id, ok: false, error: errorToWire(e) });
    } finally {
      running.delete(id);
    }
  }

  function cancel(msg) {
    const state = running.get(msg.id);
    if (!state) return;
    running.delete(msg.id);
    state.controller.abort(new Error(`cancelled: ${msg.reason || 'cancelled'}`));
    if (state.iterator && state.iterator.return) state.iterator.return().catch(() => {});
  }

  function dispatchEvent(msg) {
    const data = msg.data ?? msg.detail ?? {};
    for (const { pattern, fn } of [...handlers]) {
      if (!matches(pattern, msg.event)) continue;
      try {
        Promise.resolve(fn(data, { event: msg.event, from: msg.from ?? null })).catch((e) => console.error(e));
      } catch (e) {
        console.error(e);
      }
    }
  }

  const lines = createInterface({ input, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      console.error('ignoring a line that is not JSON:', line.slice(0, 200));
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (typeof msg.method === 'string' && 'id' in msg) serve(msg);
    else if (msg.type === 'cancel') cancel(msg);
    else if (msg.type === 'event' && typeof msg.event === 'string') dispatchEvent(msg);
    else if (msg.type === 'error') console.error('avd reported an error:', JSON.stringify(msg.error));
    else if ('id' in msg && msg.ok === false) console.error('a call of ours failed:', JSON.stringify(msg.error));
  });
  // avd closes our stdin when it stops us (or itself): that is the end.
  lines.on('close', () => {
    closed = true;
    for (const state of running.values()) state.controller.abort(new Error('avd closed stdin'));
    for (const w of closeWaiters.splice(0)) w();
  });

  return {
    role: 'backend',
    async register(name, fn) {
      const entries = typeof name === 'string' ? [[name, fn]] : Object.entries(name);
      for (const [n, f] of entries) methods.set(n, f);
      // Before the ready line, the ready line registers them; after it, avd.register does.
      if (ready) send({ id: `node-${++seq}`, method: 'avd.register', params: { methods: entries.map((e) => e[0]) } });
      return () => {};
    },
    on(pattern, fn) {
      const fresh = !handlers.some((h) => h.pattern === pattern);
      handlers.push({ pattern, fn });
      if (ready && fresh) subscribe([pattern]);
      return () => {
        const i = handlers.findIndex((h) => h.pattern === pattern && h.fn === fn);
        if (i >= 0) handlers.splice(i, 1);
      };
    },
    emit(event, data = {}, { to, echo } = {}) {
      const msg = { type: 'event', event, data };
      if (to) msg.to = Array.isArray(to) ? to : [to];
      if (echo) msg.echo = true;
      send(msg);
      return !closed;
    },
    announceReady() {
      if (ready) return;
      ready = true;
      send({ type: 'ready', handlers: [...methods.keys()] });
      const patterns = [...new Set(handlers.map((h) => h.pattern))];
      if (patterns.length) subscribe(patterns);
    },
    // Resolves when avd closes our stdin.
    closed() {
      return closed ? Promise.resolve() : new Promise((r) => closeWaiters.push(r));
    },
    close() {
      lines.close();
      return Promise.resolve();
    },
  };
}
