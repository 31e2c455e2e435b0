// A scripted stand-in for avd, for unit tests: a `ws` WebSocketServer on
// 127.0.0.1 (port 0) that speaks the wire protocol as far as each test needs.
//
// By default it answers hello with welcome and answers the daemon methods
// avd.subscribe / avd.unsubscribe / avd.register / avd.unregister /
// avd.methods. Everything else a client sends is recorded (conn.messages) and
// handed to `fake.onMessage(conn, msg)` when set; tests reply with conn.send().

import { WebSocketServer } from 'ws';

export class FakeConn {
  constructor(fake, ws, req, index) {
    this.fake = fake;
    this.ws = ws;
    this.req = req;
    this.index = index;
    this.session = 's' + (index + 1);
    this.messages = [];
    this.hello = null;
    this.protocol = ws.protocol;
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
    this._waiters = [];
    ws.on('message', (data, isBinary) => this._onMessage(isBinary ? data : data.toString()));
  }

  _onMessage(text) {
    const msg = JSON.parse(text);
    this.messages.push(msg);
    if (!this.hello && msg.type === 'hello') {
      this.hello = msg;
      const hook = this.fake.onHello;
      if (hook) hook(this, msg);
      else this.welcome();
    } else {
      const reply = this.fake.autoReply && this._autoReply(msg);
      if (!reply && this.fake.onMessage) this.fake.onMessage(this, msg);
    }
    for (const w of [...this._waiters]) {
      if (w.pred(msg)) {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(msg);
      }
    }
  }

  _autoReply(msg) {
    if (msg.type !== undefined || typeof msg.method !== 'string') return false;
    const p = msg.params || {};
    switch (msg.method) {
      case 'avd.subscribe':
      case 'avd.unsubscribe':
        this.reply(msg.id, { events: p.events });
        return true;
      case 'avd.register': {
        const taken = (p.methods || []).find((m) => this.fake.taken.has(m));
        if (taken) {
          this.send({
            id: msg.id,
            ok: false,
            error: { code: 'ALREADY_REGISTERED', name: 'AlreadyRegistered', message: taken + ' is taken', data: { method: taken, owner: 's99', owner_name: 'other' } },
          });
        } else {
          this.reply(msg.id, { methods: p.methods });
        }
        return true;
      }
      case 'avd.unregister':
        this.reply(msg.id, { methods: p.methods });
        return true;
      case 'avd.methods':
        this.reply(msg.id, { methods: this.fake.methodsList });
        return true;
      default:
        return false;
    }
  }

  welcome(extra = {}) {
    this.send({
      type: 'welcome',
      schema_version: 1,
      session: this.session,
      server: 'avd/fake',
      heartbeat_interval_ms: 2000,
      config: { callTimeoutMs: 30000, backendFailFast: true, heartbeatTimeoutMs: 6000, maxMessageBytes: 1048576 },
      ...extra,
    });
  }

  send(msg) {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  reply(id, result) {
    this.send({ id, ok: true, result });
  }

  fail(id, code, name, message, data) {
    this.send({ id, ok: false, error: { code, name, message, data } });
  }

  event(event, data, from = 's0') {
    this.send({ type: 'event', event, data, from });
  }

  /** Resolves with the first recorded or future message matching pred. */
  waitFor(pred, timeoutMs = 2000) {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, timer: null };
      w.timer = setTimeout(() => {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        reject(new Error('timed out waiting for a message; got ' + JSON.stringify(this.messages)));
      }, timeoutMs);
      this._waiters.push(w);
    });
  }

  /** Waits for the next message matching pred that was not recorded yet. */
  waitForNext(pred, timeoutMs = 2000) {
    const seen = this.messages.length;
    return this.waitFor((m) => this.messages.indexOf(m) >= seen && pred(m), timeoutMs);
  }

  waitForCall(method, timeoutMs) {
    return this.waitFor((m) => m.method === method && m.type === undefined, timeoutMs);
  }

  sentOf(pred) {
    return this.messages.filter(pred);
  }

  /** Drops the TCP connection without a close handshake. */
  kill() {
    this.ws.terminate();
  }
}

export class FakeAvd {
  static async start(options = {}) {
    const fake = new FakeAvd(options);
    await new Promise((resolve) => fake.wss.once('listening', resolve));
    fake.port = fake.wss.address().port;
    fake.url = 'ws://127.0.0.1:' + fake.port + '/ws';
    return fake;
  }

  constructor(options) {
    this.conns = [];
    this.autoReply = options.autoReply !== false;
    this.onHello = options.onHello || null;
    this.onMessage = options.onMessage || null;
    this.methodsList = options.methodsList || [];
    this.taken = new Set(options.taken || []);
    this._connWaiters = [];
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...(options.wsOptions || {}) });
    this.wss.on('connection', (ws, req) => {
      const conn = new FakeConn(this, ws, req, this.conns.length);
      this.conns.push(conn);
      const waiters = this._connWaiters;
      this._connWaiters = [];
      for (const w of waiters) w(conn);
    });
  }

  /** Resolves with connection number `index` (0-based) once it exists. */
  connection(index = 0, timeoutMs = 2000) {
    if (this.conns[index]) return Promise.resolve(this.conns[index]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no connection #' + index)), timeoutMs);
      const check = (conn) => {
        if (this.conns[index]) {
          clearTimeout(timer);
          resolve(this.conns[index]);
        } else this._connWaiters.push(check);
      };
      this._connWaiters.push(check);
    });
  }

  /** Resolves with connection `index` once its hello arrived. */
  async helloed(index = 0, timeoutMs = 2000) {
    const conn = await this.connection(index, timeoutMs);
    await conn.waitFor((m) => m.type === 'hello', timeoutMs);
    return conn;
  }

  async close() {
    for (const c of this.conns) c.ws.terminate();
    await new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a FakeAvd and connects a client to it; both are closed when the test
 * ends. Returns {fake, client, conn} (conn: the first connection, welcomed).
 */
export async function setup(t, { server = {}, client = {}, connectFn } = {}) {
  const { connect } = await import('../avd.js');
  const fake = await FakeAvd.start(server);
  const c = await (connectFn || connect)(fake.url, { token: 'tok', reconnect: { minMs: 20, maxMs: 40 }, ...client });
  t.after(async () => {
    await c.close();
    await fake.close();
  });
  const conn = await fake.connection(0);
  return { fake, client: c, conn };
}

/** Resolves when cond() is true, polling every few ms; rejects after timeoutMs. */
export async function until(cond, timeoutMs = 2000, what = 'condition') {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(5);
  }
}

/** Settles state of a promise without waiting: 'pending' | 'fulfilled' | 'rejected'. */
export async function promiseState(p) {
  const marker = {};
  try {
    const v = await Promise.race([p, Promise.resolve(marker)]);
    return v === marker ? 'pending' : 'fulfilled';
  } catch (e) {
    return 'rejected';
  }
}
