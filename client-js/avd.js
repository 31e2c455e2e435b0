// avd.js: JavaScript client for avd, the WebSocket event/RPC hub (wire schema_version 1).
//
// ES module for browsers and Node >= 20. avd.global.js, the classic-script
// build that defines window.avd and window.auroraview, is generated from this
// file by tools/build-global.mjs: edit this file, then run `npm run build`.
//
// Rules for this file (the generator relies on them): no static `import`, no
// `import.meta`, and exactly one `export { ... };` statement, at the end.

const VERSION = '0.1.0';
const SCHEMA_VERSION = 1;
const SUBPROTOCOL = 'avd.v1';
const SYSTEM_EVENTS = ['backend_ready', 'backend_health', 'backend_error'];
const DEFAULT_CONFIG = Object.freeze({ callTimeoutMs: 30000, backendFailFast: true, heartbeatTimeoutMs: 0 });
const DEFAULT_RECONNECT = Object.freeze({ minMs: 1000, maxMs: 5000 });
const DEFAULT_TIMEOUT_GRACE_MS = 1000;
const DEFAULT_HELLO_TIMEOUT_MS = 10000;
const EVENT_NAME_RE = /^[A-Za-z0-9_.:/-]{1,255}$/;
const EVENT_PATTERN_RE = /^[A-Za-z0-9_.:/-]{0,254}\*$/;
const WS_OPEN = 1;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** Base class of every error this client produces or receives from avd. */
class AvdError extends Error {
  constructor(message, options = {}) {
    super(message == null ? 'avd error' : String(message));
    this.name = options.name || 'AvdError';
    this.code = options.code || 'BACKEND_ERROR';
    this.data = options.data;
    if (options.cause !== undefined) this.cause = options.cause;
  }

  /** The protocol's error object: {code, name, message, data}. */
  toJSON() {
    return { code: this.code, name: this.name, message: this.message, data: this.data === undefined ? null : this.data };
  }
}

function makeErrorClass(name, code) {
  // A computed key gives the class its name (shown in stack traces).
  const cls = {
    [name]: class extends AvdError {
      constructor(message, options = {}) {
        super(message == null ? name : message, { ...options, code, name });
      }
    },
  }[name];
  cls.code = code;
  return cls;
}

const ParseError = makeErrorClass('ParseError', 'PARSE_ERROR');
const InvalidRequest = makeErrorClass('InvalidRequest', 'INVALID_REQUEST');
const UnsupportedSchema = makeErrorClass('UnsupportedSchema', 'UNSUPPORTED_SCHEMA');
const Unauthorized = makeErrorClass('Unauthorized', 'UNAUTHORIZED');
const EncodingError = makeErrorClass('EncodingError', 'ENCODING');
const PayloadTooLarge = makeErrorClass('PayloadTooLarge', 'PAYLOAD_TOO_LARGE');
const MethodNotFound = makeErrorClass('MethodNotFound', 'METHOD_NOT_FOUND');
const AlreadyRegistered = makeErrorClass('AlreadyRegistered', 'ALREADY_REGISTERED');
const BackendUnavailableError = makeErrorClass('BackendUnavailableError', 'BACKEND_UNAVAILABLE');
const TimeoutError = makeErrorClass('TimeoutError', 'TIMEOUT');
const CancelledError = makeErrorClass('CancelledError', 'CANCELLED');
const QueueFull = makeErrorClass('QueueFull', 'QUEUE_FULL');
const EventLoopClosed = makeErrorClass('EventLoopClosed', 'EVENT_LOOP_CLOSED');
const ScriptExecutionError = makeErrorClass('ScriptExecutionError', 'SCRIPT_EXECUTION');
const WindowOperationError = makeErrorClass('WindowOperationError', 'WINDOW_OPERATION');
const InternalError = makeErrorClass('InternalError', 'INTERNAL');

/** Error class for each protocol code (section 9). BACKEND_ERROR and unknown codes map to AvdError. */
const ERRORS = Object.freeze({
  PARSE_ERROR: ParseError,
  INVALID_REQUEST: InvalidRequest,
  UNSUPPORTED_SCHEMA: UnsupportedSchema,
  UNAUTHORIZED: Unauthorized,
  ENCODING: EncodingError,
  PAYLOAD_TOO_LARGE: PayloadTooLarge,
  METHOD_NOT_FOUND: MethodNotFound,
  ALREADY_REGISTERED: AlreadyRegistered,
  BACKEND_UNAVAILABLE: BackendUnavailableError,
  TIMEOUT: TimeoutError,
  CANCELLED: CancelledError,
  QUEUE_FULL: QueueFull,
  EVENT_LOOP_CLOSED: EventLoopClosed,
  SCRIPT_EXECUTION: ScriptExecutionError,
  WINDOW_OPERATION: WindowOperationError,
  INTERNAL: InternalError,
});

/** Turns a wire error object ({code, name, message, data}) into an Error of the matching class. */
function errorFromWire(err) {
  if (err instanceof AvdError) return err;
  if (err == null || typeof err !== 'object') {
    return new AvdError(err == null ? 'unknown error' : String(err), { code: 'BACKEND_ERROR', name: 'AvdError' });
  }
  const code = err.code == null || err.code === '' ? 'BACKEND_ERROR' : String(err.code);
  const message = err.message != null ? String(err.message) : code;
  const cls = ERRORS[code];
  if (cls) return new cls(message, { data: err.data });
  // BACKEND_ERROR or a backend's own code: keep the backend's name.
  return new AvdError(message, { code, name: typeof err.name === 'string' && err.name ? err.name : 'AvdError', data: err.data });
}

/** Turns anything thrown by a method handler into the wire error object. */
function errorToWire(e) {
  if (e != null && typeof e === 'object') {
    const code = e.code == null || e.code === '' ? 'BACKEND_ERROR' : String(e.code);
    const name = typeof e.name === 'string' && e.name ? e.name : 'Error';
    const message = e.message != null ? String(e.message) : String(e);
    return { code, name, message, data: e.data === undefined ? null : e.data };
  }
  return { code: 'BACKEND_ERROR', name: 'Error', message: String(e), data: null };
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function getWindow() {
  const w = globalThis.window;
  return w != null && typeof w === 'object' ? w : undefined;
}

function hasOwn(obj, key) {
  return obj != null && Object.prototype.hasOwnProperty.call(obj, key);
}

function isObject(v) {
  return v != null && typeof v === 'object' && !Array.isArray(v);
}

function isAsyncIterable(v) {
  return v != null && (typeof v === 'object' || typeof v === 'function') && typeof v[Symbol.asyncIterator] === 'function';
}

function isNonNegativeNumber(v) {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function reportError(prefix, e) {
  if (typeof console !== 'undefined' && console.error) console.error('[avd] ' + prefix, e);
}

/** True when `pattern` (exact name, `prefix*` or `*`) matches the event name. */
function matchEvent(pattern, name) {
  if (pattern === name || pattern === '*') return true;
  const n = pattern.length;
  return n > 0 && pattern.charCodeAt(n - 1) === 42 /* '*' */ && name.startsWith(pattern.slice(0, n - 1));
}

function isValidEventName(name) {
  return typeof name === 'string' && EVENT_NAME_RE.test(name);
}

function isSubscribablePattern(p) {
  return typeof p === 'string' && (EVENT_NAME_RE.test(p) || EVENT_PATTERN_RE.test(p));
}

/**
 * Works out the WebSocket URL and token. Order: explicit argument/option,
 * window.__AVD__, window.__AURORAVIEW_CONFIG__, the page's location
 * (ws(s)://host/ws and ?token=), then AVD_URL / AVD_TOKEN in the environment.
 */
function resolveEndpoint(url, options = {}, win = getWindow()) {
  const avdCfg = (win && isObject(win.__AVD__) && win.__AVD__) || {};
  const avCfg = (win && isObject(win.__AURORAVIEW_CONFIG__) && win.__AURORAVIEW_CONFIG__) || {};
  const env = (globalThis.process && globalThis.process.env) || {};
  const loc = win && win.location;
  const pageUrl = loc && /^https?:$/.test(loc.protocol) ? String(loc.href || loc.protocol + '//' + loc.host + '/') : null;

  let u = url != null && url !== '' ? String(url) : avdCfg.url || avCfg.url || null;
  if (!u && pageUrl) u = (loc.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + loc.host + '/ws';
  if (!u && env.AVD_URL) u = env.AVD_URL;
  if (!u) {
    throw new TypeError('avd: no URL given, and none found in window.__AVD__, window.__AURORAVIEW_CONFIG__, location or AVD_URL');
  }
  let parsed;
  try {
    parsed = pageUrl ? new URL(u, pageUrl) : new URL(u);
  } catch (e) {
    throw new TypeError('avd: invalid URL ' + JSON.stringify(u));
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new TypeError('avd: URL must be ws:, wss:, http: or https:, got ' + JSON.stringify(u));
  }

  let token = options.token != null ? options.token : avdCfg.token != null ? avdCfg.token : avCfg.token;
  if (token == null) token = parsed.searchParams.get('token');
  if (token == null && loc && loc.search) {
    try {
      token = new URLSearchParams(loc.search).get('token');
    } catch (e) {
      token = null;
    }
  }
  if (token == null && env.AVD_TOKEN) token = env.AVD_TOKEN;
  return { url: parsed.href, token: token == null || token === '' ? undefined : String(token) };
}

async function loadWebSocket(options, win) {
  if (typeof options.WebSocket === 'function') return options.WebSocket;
  if (win && typeof win.WebSocket === 'function') return win.WebSocket;
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  // Node without a global WebSocket (Node 20): the `ws` package. The
  // specifier sits in a variable so that bundlers leave it alone.
  const specifier = 'ws';
  const mod = await import(specifier);
  return mod.WebSocket || (mod.default && (mod.default.WebSocket || mod.default));
}

function toText(data) {
  if (typeof data === 'string') return data;
  if (data == null) return null;
  if (typeof data.toString === 'function' && typeof data.byteLength === 'number' && !(data instanceof ArrayBuffer)) {
    return typeof TextDecoder !== 'undefined' ? new TextDecoder().decode(data) : String(data);
  }
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(new Uint8Array(data));
  return null;
}

/**
 * Reconnect delay before attempt `attempt` (1, 2, ...): minMs doubling up to
 * maxMs, with +/-25% jitter (`rand` in [0, 1)), never above maxMs.
 */
function backoffDelay(attempt, minMs, maxMs, rand) {
  const base = Math.min(maxMs, minMs * Math.pow(2, Math.max(0, attempt - 1)));
  return Math.max(0, Math.min(maxMs, Math.round(base * (0.75 + 0.5 * rand))));
}

/** Reads the result of avd.methods in any of the shapes a daemon may use. */
function parseMethodsResult(res) {
  const list = isObject(res) && hasOwn(res, 'methods') ? res.methods : res;
  const out = [];
  const pick = (method, v) => {
    if (typeof method !== 'string' || !method) return;
    if (typeof v === 'string') out.push({ method, session: v, backend: null });
    else if (isObject(v)) {
      const session = v.session != null ? v.session : v.owner != null ? v.owner : null;
      const backend = v.backend != null ? v.backend : v.owner_name != null ? v.owner_name : null;
      out.push({ method, session, backend, role: v.role });
    } else out.push({ method, session: null, backend: null });
  };
  if (Array.isArray(list)) {
    for (const item of list) {
      if (typeof item === 'string') pick(item, null);
      else if (isObject(item)) pick(item.method != null ? item.method : item.name, item);
    }
  } else if (isObject(list)) {
    for (const key of Object.keys(list)) pick(key, list[key]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Stream: async iterator over the chunks of one call
// ---------------------------------------------------------------------------

/**
 * Returned by client.stream(). Iterate it (for await) to get each chunk's
 * `data` in order; the final result is `stream.result` (a Promise), and also
 * the `value` of the iterator's last `{done: true}` step. Breaking out of the
 * loop cancels the call. When the call fails, the iterator throws after the
 * chunks that came before the failure.
 */
class AvdStream {
  constructor(client, method, params, options = {}) {
    this.method = method;
    this._queue = [];
    this._waiter = null;
    this._finished = false;
    this._failure = null;
    this._failureThrown = false;
    this._value = undefined;
    this._controller = new AbortController();
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) this._controller.abort(outer.reason);
      else outer.addEventListener('abort', () => this._controller.abort(outer.reason), { once: true });
    }
    const userOnChunk = options.onChunk;
    this.result = client.call(method, params, {
      ...options,
      signal: this._controller.signal,
      onChunk: (data) => {
        if (typeof userOnChunk === 'function') userOnChunk(data);
        this._push(data);
      },
    });
    this.result.then(
      (value) => {
        this._finished = true;
        this._value = value;
        this._wake();
      },
      (err) => {
        this._finished = true;
        this._failure = err;
        this._wake();
      }
    );
  }

  _push(data) {
    if (this._waiter) {
      const w = this._waiter;
      this._waiter = null;
      w.resolve({ value: data, done: false });
    } else {
      this._queue.push(data);
    }
  }

  _wake() {
    if (!this._waiter) return;
    const w = this._waiter;
    this._waiter = null;
    this.next().then(w.resolve, w.reject);
  }

  next() {
    if (this._queue.length > 0) return Promise.resolve({ value: this._queue.shift(), done: false });
    if (this._finished) {
      if (this._failure && !this._failureThrown) {
        this._failureThrown = true;
        return Promise.reject(this._failure);
      }
      return Promise.resolve({ value: this._failure ? undefined : this._value, done: true });
    }
    return new Promise((resolve, reject) => {
      this._waiter = { resolve, reject };
    });
  }

  return(value) {
    if (!this._finished) this._controller.abort(new CancelledError('stream closed by consumer'));
    this._queue.length = 0;
    this._failureThrown = true;
    return Promise.resolve({ value, done: true });
  }

  /** Cancels the call (sends a cancel to avd; `result` rejects with CancelledError). */
  cancel(reason) {
    if (!this._finished) this._controller.abort(reason);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/**
 * A connection to avd. `new AvdClient(url?, options?)` starts connecting at
 * once and keeps trying until close(); `client.ready` resolves on the first
 * welcome. `connect()` is the promise-returning shorthand that gives up if the
 * first attempt fails.
 */
class AvdClient {
  constructor(url, options) {
    if (options === undefined && isObject(url) && !(url instanceof URL)) {
      options = url;
      url = undefined;
    }
    options = options || {};
    this._opts = options;
    this._win = options.window !== undefined ? options.window : getWindow();
    const ep = resolveEndpoint(url, options, this._win);
    /** The WebSocket URL in use. */
    this.url = ep.url;
    this._token = ep.token;
    this.role = options.role || 'frontend';
    this.name = options.name;
    this._protocols = options.protocols !== undefined ? options.protocols : [SUBPROTOCOL];
    /** Session id given by avd in the last welcome (null until then). */
    this.session = null;
    this.server = null;
    this.serverConfig = null;
    this.heartbeatIntervalMs = null;

    this._config = { ...DEFAULT_CONFIG };
    this._explicitConfig = new Set();
    if (options.config) this.setConfig(options.config);

    this._reconnect = options.reconnect === false ? null : { ...DEFAULT_RECONNECT, ...(isObject(options.reconnect) ? options.reconnect : {}) };
    this._timeoutGraceMs = isNonNegativeNumber(options.timeoutGraceMs) ? options.timeoutGraceMs : DEFAULT_TIMEOUT_GRACE_MS;
    this._helloTimeoutMs = isNonNegativeNumber(options.helloTimeoutMs) ? options.helloTimeoutMs : DEFAULT_HELLO_TIMEOUT_MS;
    this._onErrorOpt = typeof options.onError === 'function' ? options.onError : null;

    // events
    this._handlers = []; // copy-on-write list of {pattern, fn, once, removed}
    this._pinned = new Set((options.subscribe || []).filter(isSubscribablePattern));
    this._subscribed = new Set(); // what avd has (as far as we know)
    this._subSyncQueued = false;
    this._subOps = new Set();

    // calls
    this._nextId = 1;
    this._pending = new Map(); // id -> pending call (sent)
    this._queuedCalls = []; // made before the first welcome
    this._queuedSends = []; // events emitted before the first welcome

    // methods offered by this client
    this._methods = new Map(); // name -> handler
    this._confirmed = new Set(); // names avd accepted at least once
    this._regWaiters = []; // register() calls waiting for a connection
    this._announced = false;
    this._incoming = new Map(); // id -> running handler state

    // backends
    this._backends = new Map(); // session -> info
    this._methodOwner = new Map(); // method -> session
    this._systemHooks = new Set();

    // connection
    this._ws = null;
    this._state = 'idle'; // idle | connecting | open | disconnected | closed
    this._everConnected = false;
    this._closed = false;
    this._attempt = 0;
    this._attemptError = null;
    this._reconnectTimer = null;
    this._helloTimer = null;
    this._readyWaiters = [];
    this._statusListeners = new Set();
    this._firstAttempt = null;

    /** `client.api.foo(params, opts)` calls `api.foo`. */
    this.api = this.namespace('api');

    /** Resolves with the client on the first welcome; rejects if closed before. */
    this.ready = new Promise((resolve, reject) => {
      this._firstReady = { resolve, reject };
    });
    this.ready.catch(() => {});

    if (options.autoConnect !== false) this._open();
  }

  // ----- configuration -----

  /** Changes callTimeoutMs, backendFailFast and/or heartbeatTimeoutMs. Returns the config in force. */
  setConfig(partial) {
    if (!isObject(partial)) return this.getConfig();
    if (partial.callTimeoutMs !== undefined) {
      if (!isNonNegativeNumber(partial.callTimeoutMs)) throw new TypeError('callTimeoutMs must be a number >= 0');
      this._config.callTimeoutMs = partial.callTimeoutMs;
      this._explicitConfig.add('callTimeoutMs');
    }
    if (partial.backendFailFast !== undefined) {
      if (typeof partial.backendFailFast !== 'boolean') throw new TypeError('backendFailFast must be a boolean');
      this._config.backendFailFast = partial.backendFailFast;
      this._explicitConfig.add('backendFailFast');
    }
    if (partial.heartbeatTimeoutMs !== undefined) {
      if (!isNonNegativeNumber(partial.heartbeatTimeoutMs)) throw new TypeError('heartbeatTimeoutMs must be a number >= 0');
      this._config.heartbeatTimeoutMs = partial.heartbeatTimeoutMs;
      this._explicitConfig.add('heartbeatTimeoutMs');
      if (partial.heartbeatTimeoutMs === 0) for (const b of this._backends.values()) this._clearWatch(b);
    }
    return this.getConfig();
  }

  getConfig() {
    return { ...this._config };
  }

  // ----- connection state -----

  /** True while connected (welcome received, socket open). */
  isReady() {
    return this._state === 'open';
  }

  /** Resolves with the client as soon as it is connected (at once if it is). */
  whenReady() {
    if (this._state === 'open') return Promise.resolve(this);
    if (this._closed) return Promise.reject(new BackendUnavailableError('avd client is closed'));
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  /** Connection state: 'idle' | 'connecting' | 'open' | 'disconnected' | 'closed'. */
  get state() {
    return this._state;
  }

  /** Calls fn(state) on every state change; returns an unsubscribe function. */
  onStatus(fn) {
    if (typeof fn !== 'function') throw new TypeError('onStatus needs a function');
    this._statusListeners.add(fn);
    return () => this._statusListeners.delete(fn);
  }

  _setState(state) {
    if (this._state === state) return;
    this._state = state;
    for (const fn of [...this._statusListeners]) {
      try {
        fn(state);
      } catch (e) {
        this._report('status listener failed', e);
      }
    }
  }

  _report(what, e) {
    if (this._onErrorOpt) {
      try {
        this._onErrorOpt(e, what);
        return;
      } catch (e2) {
        /* fall through */
      }
    }
    reportError(what, e);
  }

  _open() {
    this._openAsync().catch((e) => this._report('connecting failed', e));
  }

  async _openAsync() {
    if (this._closed) return;
    this._setState('connecting');
    this._attemptError = null;
    let WS;
    try {
      WS = await loadWebSocket(this._opts, this._win);
      if (typeof WS !== 'function') throw new Error('no WebSocket implementation found');
    } catch (e) {
      this._attemptError = new BackendUnavailableError('cannot load a WebSocket implementation: ' + (e && e.message), { cause: e });
      this._onSocketClosed(null, { code: 1006, reason: '' });
      return;
    }
    if (this._closed) return;
    let ws;
    try {
      ws = this._protocols && this._protocols.length ? new WS(this.url, this._protocols) : new WS(this.url);
    } catch (e) {
      this._attemptError = new BackendUnavailableError('cannot connect to ' + this.url + ': ' + (e && e.message), { cause: e });
      this._onSocketClosed(null, { code: 1006, reason: '' });
      return;
    }
    this._ws = ws;
    if (this._helloTimeoutMs > 0) {
      this._helloTimer = setTimeout(() => {
        this._helloTimer = null;
        if (this._ws !== ws || this._state === 'open') return;
        this._attemptError = new TimeoutError('no welcome from avd within ' + this._helloTimeoutMs + ' ms');
        try {
          ws.close();
        } catch (e) {
          /* ignore */
        }
      }, this._helloTimeoutMs);
    }
    ws.onopen = () => {
      if (this._ws !== ws) return;
      const hello = { type: 'hello', schema_version: SCHEMA_VERSION, role: this.role };
      if (this.name != null) hello.name = this.name;
      if (this._token != null) hello.token = this._token;
      const subs = this._wantedSubscriptions();
      if (subs.size > 0) hello.subscribe = [...subs];
      this._helloSubs = subs;
      this._sendOn(ws, hello);
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      this._onRaw(ev.data);
    };
    ws.onerror = (ev) => {
      if (this._ws !== ws || this._state === 'open' || this._attemptError) return;
      const msg = (ev && (ev.message || (ev.error && ev.error.message))) || 'connection failed';
      this._attemptError = /\b401\b/.test(msg)
        ? new Unauthorized('avd refused the token (HTTP 401)')
        : new BackendUnavailableError('cannot connect to ' + this.url + ': ' + msg);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._onSocketClosed(ws, ev || {});
    };
  }

  _onSocketClosed(ws, ev) {
    if (this._helloTimer) {
      clearTimeout(this._helloTimer);
      this._helloTimer = null;
    }
    const wasOpen = this._state === 'open';
    this._ws = null;
    const code = ev && ev.code;
    const reason = (ev && ev.reason) || '';
    const lost = new BackendUnavailableError(
      wasOpen ? 'connection to avd lost' + (code ? ' (close code ' + code + (reason ? ', ' + reason : '') + ')' : '') : 'not connected to avd',
      { data: { code: code == null ? null : code, reason } }
    );
    for (const p of [...this._pending.values()]) this._settle(p, false, lost);
    this._abortIncoming('disconnected');
    for (const b of this._backends.values()) this._clearWatch(b);

    if (this._closed) {
      this._setState('closed');
      return;
    }
    this._setState('disconnected');
    if (this._firstAttempt && !wasOpen) {
      const first = this._firstAttempt;
      this._firstAttempt = null;
      const err = this._attemptError || new BackendUnavailableError('cannot connect to ' + this.url + (code ? ' (close code ' + code + ')' : ''));
      this.close();
      first.reject(err);
      return;
    }
    // Report the first failure of a streak only, not every retry.
    if (!wasOpen && this._attempt === 0) this._report('connection attempt failed', this._attemptError || lost);
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (this._closed || !this._reconnect || this._reconnectTimer) return;
    const { minMs, maxMs } = this._reconnect;
    this._attempt += 1;
    const delay = backoffDelay(this._attempt, minMs, maxMs, Math.random());
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._open();
    }, delay);
  }

  /**
   * Closes the connection for good: no more reconnects; pending and queued
   * calls reject with BackendUnavailableError. Resolves once the socket closed.
   */
  close(code = 1000, reason = '') {
    const ws = this._ws;
    if (!this._closed) {
      this._closed = true;
      if (this._reconnectTimer) clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      if (this._helloTimer) clearTimeout(this._helloTimer);
      this._helloTimer = null;
      const err = new BackendUnavailableError('avd client is closed');
      for (const p of [...this._pending.values(), ...this._queuedCalls]) this._settle(p, false, err);
      this._queuedCalls = [];
      this._queuedSends = [];
      this._abortIncoming('client closed');
      for (const b of this._backends.values()) this._clearWatch(b);
      for (const w of this._regWaiters) w.reject(err);
      this._regWaiters = [];
      for (const w of this._readyWaiters) w.reject(err);
      this._readyWaiters = [];
      this._firstReady.reject(err);
      if (this._firstAttempt) {
        const first = this._firstAttempt;
        this._firstAttempt = null;
        first.reject(err);
      }
    }
    if (!ws) {
      this._setState('closed');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        if (this._ws === ws) this._ws = null;
        this._setState('closed');
        resolve();
      };
      if (ws.readyState === 3 /* CLOSED */) return done();
      const prev = ws.onclose;
      ws.onclose = (ev) => {
        if (typeof prev === 'function') {
          try {
            prev(ev);
          } catch (e) {
            /* ignore */
          }
        }
        done();
      };
      try {
        ws.close(code, reason);
      } catch (e) {
        done();
      }
    });
  }

  // ----- incoming messages -----

  _onRaw(raw) {
    const text = toText(raw);
    if (text == null) return;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      this._report('avd sent invalid JSON', e);
      return;
    }
    try {
      this._onMessage(msg);
    } catch (e) {
      this._report('failed to handle a message from avd', e);
    }
  }

  _onMessage(msg) {
    if (!isObject(msg)) return;
    const type = msg.type;
    if (type === 'welcome') return this._onWelcome(msg);
    if (type === 'event') return this._onEvent(msg);
    if (type === 'chunk') return this._onChunk(msg);
    if (type === 'cancel') return this._onCancel(msg);
    if (type === 'error' && !hasOwn(msg, 'ok')) return this._onTypedError(msg);
    if (hasOwn(msg, 'method') && hasOwn(msg, 'id') && (type === undefined || type === 'call')) return this._onCall(msg);
    if (hasOwn(msg, 'id') && (hasOwn(msg, 'ok') || hasOwn(msg, 'result') || hasOwn(msg, 'error'))) return this._onResponse(msg);
  }

  _onWelcome(msg) {
    if (this._state === 'open') return;
    if (this._helloTimer) {
      clearTimeout(this._helloTimer);
      this._helloTimer = null;
    }
    this.session = msg.session != null ? msg.session : null;
    this.server = msg.server != null ? msg.server : null;
    this.heartbeatIntervalMs = msg.heartbeat_interval_ms != null ? msg.heartbeat_interval_ms : null;
    this.serverConfig = isObject(msg.config) ? { ...msg.config } : {};
    // Settings in force in avd apply unless this client set its own.
    const sc = this.serverConfig;
    if (!this._explicitConfig.has('callTimeoutMs') && isNonNegativeNumber(sc.callTimeoutMs)) this._config.callTimeoutMs = sc.callTimeoutMs;
    if (!this._explicitConfig.has('backendFailFast') && typeof sc.backendFailFast === 'boolean') this._config.backendFailFast = sc.backendFailFast;

    this._attempt = 0;
    this._attemptError = null;
    this._subscribed = new Set(this._helloSubs || []);
    this._helloSubs = null;
    for (const b of this._backends.values()) this._clearWatch(b);
    this._backends.clear(); // avd re-sends the present state right after welcome
    this._methodOwner.clear();
    this._everConnected = true;
    this._setState('open');

    this._syncRegistrations();
    this._scheduleSubSync(); // handlers may have changed while hello was in flight

    const calls = this._queuedCalls;
    this._queuedCalls = [];
    for (const p of calls) if (!p.done) this._sendCall(p);
    const sends = this._queuedSends;
    this._queuedSends = [];
    for (const m of sends) this._send(m);

    if (this._opts.fetchMethods !== false) this.methods().catch(() => {});

    if (this._firstAttempt) {
      const first = this._firstAttempt;
      this._firstAttempt = null;
      first.resolve(this);
    }
    this._firstReady.resolve(this);
    const waiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const w of waiters) w.resolve(this);
  }

  _onTypedError(msg) {
    const err = errorFromWire(isObject(msg.error) ? msg.error : msg);
    if (msg.id != null && this._pending.has(msg.id)) {
      this._settle(this._pending.get(msg.id), false, err);
      return;
    }
    if (this._state !== 'open') {
      this._attemptError = err; // e.g. UNAUTHORIZED, UNSUPPORTED_SCHEMA before the close
      return;
    }
    this._report('avd reported an error', err);
  }

  _onResponse(msg) {
    const p = this._pending.get(msg.id);
    if (!p) return; // late answer (timed out or cancelled here)
    const ok = msg.ok === true || (msg.ok === undefined && !hasOwn(msg, 'error'));
    if (ok) this._settle(p, true, msg.result === undefined ? null : msg.result);
    else this._settle(p, false, errorFromWire(msg.error));
  }

  _onChunk(msg) {
    const p = this._pending.get(msg.id);
    if (!p) return;
    this._armTimer(p); // each chunk re-arms the timeout, as in avd
    if (typeof p.onChunk === 'function') {
      try {
        p.onChunk(msg.data);
      } catch (e) {
        this._report('onChunk handler failed', e);
      }
    }
  }

  // ----- events -----

  /**
   * Adds an event handler. `pattern` is an event name, a prefix ending in `*`
   * (`agui:*`) or `*`. The handler gets (data, {event, from}). Returns a
   * function that removes this handler. avd subscriptions follow the handlers.
   */
  on(pattern, handler) {
    return this._addHandler(pattern, handler, false);
  }

  /** Like on(), but the handler runs at most once. Without a handler, returns a Promise of the next data. */
  once(pattern, handler) {
    if (handler === undefined) {
      return new Promise((resolve) => {
        this._addHandler(pattern, (data) => resolve(data), true);
      });
    }
    return this._addHandler(pattern, handler, true);
  }

  /** Removes the handler (every registration of it) for `pattern`, or all handlers of `pattern`. */
  off(pattern, handler) {
    let changed = false;
    for (const entry of this._handlers) {
      if (entry.pattern === pattern && (handler === undefined || handler === null || entry.fn === handler)) {
        entry.removed = true;
        changed = true;
      }
    }
    if (changed) {
      this._handlers = this._handlers.filter((e) => !e.removed);
      this._scheduleSubSync();
    }
  }

  _addHandler(pattern, fn, once) {
    if (typeof pattern !== 'string' || pattern === '') throw new TypeError('event name must be a non-empty string');
    if (typeof fn !== 'function') throw new TypeError('event handler must be a function');
    const entry = { pattern, fn, once, removed: false };
    this._handlers = [...this._handlers, entry];
    this._scheduleSubSync();
    return () => this._removeEntry(entry);
  }

  _removeEntry(entry) {
    if (entry.removed) return;
    entry.removed = true;
    this._handlers = this._handlers.filter((e) => e !== entry);
    this._scheduleSubSync();
  }

  /** Runs the local handlers of an event without sending anything to avd. */
  trigger(event, data) {
    this._dispatch(String(event), data, null);
  }

  _dispatch(event, data, from) {
    // The list is copy-on-write: handlers added during this dispatch are not
    // called for this event; handlers removed during it are skipped.
    const snapshot = this._handlers;
    for (const entry of snapshot) {
      if (entry.removed || !matchEvent(entry.pattern, event)) continue;
      if (entry.once) this._removeEntry(entry);
      try {
        const r = entry.fn(data, { event, from });
        if (r != null && typeof r.then === 'function') r.then(undefined, (e) => this._report('event handler for ' + event + ' failed', e));
      } catch (e) {
        this._report('event handler for ' + event + ' failed', e);
      }
    }
  }

  _onEvent(msg) {
    const event = msg.event;
    if (typeof event !== 'string') return;
    const data = hasOwn(msg, 'data') ? msg.data : hasOwn(msg, 'detail') ? msg.detail : {};
    if (SYSTEM_EVENTS.includes(event)) this._onSystemEvent(event, data);
    this._dispatch(event, data, msg.from == null ? null : msg.from);
  }

  /**
   * Publishes an event. Options: `to` (session id or list: only those
   * sessions), `echo` (deliver to this client too if subscribed). Returns
   * true when sent (or queued before the first connection), false when not
   * connected.
   */
  emit(event, data, options = {}) {
    if (!isValidEventName(event)) throw new TypeError('invalid event name ' + JSON.stringify(event) + ' (1-255 of A-Z a-z 0-9 _ . : / -)');
    const msg = { type: 'event', event, data: data === undefined ? {} : data };
    if (options.to != null) msg.to = Array.isArray(options.to) ? [...options.to] : [options.to];
    if (options.echo) msg.echo = true;
    if (this._state === 'open') return this._send(msg);
    if (!this._everConnected && !this._closed) {
      this._queuedSends.push(msg);
      return true;
    }
    return false;
  }

  _wantedSubscriptions() {
    const wanted = new Set(this._pinned);
    for (const e of this._handlers) {
      if (!e.removed && !SYSTEM_EVENTS.includes(e.pattern) && isSubscribablePattern(e.pattern)) wanted.add(e.pattern);
    }
    return wanted;
  }

  _scheduleSubSync() {
    if (this._subSyncQueued) return;
    this._subSyncQueued = true;
    queueMicrotask(() => {
      this._subSyncQueued = false;
      this._syncSubscriptions();
    });
  }

  _syncSubscriptions() {
    if (this._state !== 'open') return; // the next hello carries the whole set
    const wanted = this._wantedSubscriptions();
    const add = [...wanted].filter((p) => !this._subscribed.has(p));
    const remove = [...this._subscribed].filter((p) => !wanted.has(p));
    if (remove.length) {
      for (const p of remove) this._subscribed.delete(p);
      this._trackSubOp(this.call('avd.unsubscribe', { events: remove }), 'avd.unsubscribe failed', null);
    }
    if (add.length) {
      for (const p of add) this._subscribed.add(p);
      this._trackSubOp(this.call('avd.subscribe', { events: add }), 'avd.subscribe failed', () => {
        for (const p of add) this._subscribed.delete(p);
      });
    }
  }

  _trackSubOp(promise, what, onFail) {
    const op = promise.then(
      () => {},
      (e) => {
        if (onFail) onFail();
        if (!(e instanceof BackendUnavailableError)) this._report(what, e);
      }
    );
    this._subOps.add(op);
    op.then(() => this._subOps.delete(op));
  }

  /** Resolves once avd acknowledged every subscribe/unsubscribe that handler changes caused so far. */
  async sync() {
    await Promise.resolve();
    if (this._subSyncQueued) {
      this._subSyncQueued = false;
      this._syncSubscriptions();
    }
    await Promise.all([...this._subOps]);
  }

  /** Event patterns avd has been asked to deliver to this client. */
  subscriptions() {
    return [...this._subscribed];
  }

  // ----- calls -----

  /**
   * Calls a method. Options: `timeout` (ms; default callTimeoutMs; 0 = none;
   * sent as timeout_ms, and this client's own timer waits timeout + grace),
   * `signal` (AbortSignal: sends a cancel and rejects with CancelledError),
   * `onChunk(data)` (progressive results).
   */
  call(method, params, options = {}) {
    return new Promise((resolve, reject) => this._startCall(method, params, options || {}, resolve, reject));
  }

  /** Calls a method and iterates its chunks; see AvdStream. */
  stream(method, params, options = {}) {
    return new AvdStream(this, method, params, options || {});
  }

  /** A proxy whose properties call `<ns>.<property>`: namespace('api').echo(x) calls api.echo. */
  namespace(ns) {
    const client = this;
    return new Proxy(Object.create(null), {
      get(target, prop) {
        if (typeof prop !== 'string' || prop === 'then') return undefined;
        return (params, options) => client.call(ns + '.' + prop, params, options);
      },
    });
  }

  _startCall(method, params, options, resolve, reject) {
    if (typeof method !== 'string' || method === '') {
      reject(new TypeError('method must be a non-empty string'));
      return;
    }
    const timeoutMs = options.timeout == null ? this._config.callTimeoutMs : options.timeout;
    if (!isNonNegativeNumber(timeoutMs)) {
      reject(new TypeError('timeout must be a number >= 0'));
      return;
    }
    const signal = options.signal;
    if (signal && signal.aborted) {
      reject(new CancelledError('call ' + method + ' cancelled', { data: { method } }));
      return;
    }
    const p = {
      id: null,
      method,
      params,
      timeoutMs,
      sentTimeoutMs: 0,
      onChunk: options.onChunk,
      signal,
      onAbort: null,
      resolve,
      reject,
      timer: null,
      sent: false,
      queued: false,
      done: false,
      session: null,
      createdAt: Date.now(),
    };
    if (signal) {
      p.onAbort = () => this._abortCall(p);
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    if (this._state === 'open') {
      this._sendCall(p);
    } else if (!this._everConnected && !this._closed) {
      // Before the first welcome calls wait for the connection (bounded by their timeout).
      this._queuedCalls.push(p);
      p.queued = true;
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this._settle(
            p,
            false,
            new TimeoutError('call ' + method + ' timed out after ' + timeoutMs + ' ms waiting for the connection to avd', {
              data: { method, timeout_ms: timeoutMs },
            })
          );
        }, timeoutMs);
      }
    } else {
      this._settle(p, false, new BackendUnavailableError(this._closed ? 'avd client is closed' : 'not connected to avd', { data: { method } }));
    }
  }

  _sendCall(p) {
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    const owner = this._methodOwner.get(p.method);
    const backend = owner != null ? this._backends.get(owner) : undefined;
    if (backend && backend.status === 'unhealthy' && this._config.backendFailFast) {
      this._settle(
        p,
        false,
        new BackendUnavailableError('backend ' + (backend.name || backend.session) + ' is unavailable (' + (backend.reason || 'unhealthy') + ')', {
          data: { method: p.method, backend: backend.name, session: backend.session },
        })
      );
      return;
    }
    let timeoutMs = p.timeoutMs;
    // A call that waited for the connection sends what is left of its timeout.
    if (timeoutMs > 0 && p.queued) timeoutMs = Math.max(1, timeoutMs - (Date.now() - p.createdAt));
    p.sentTimeoutMs = timeoutMs;
    p.session = owner != null ? owner : null;
    p.id = 'av_call_' + this._nextId++;
    const msg = { id: p.id, method: p.method };
    if (p.params !== undefined) msg.params = p.params;
    msg.timeout_ms = timeoutMs;
    let text;
    try {
      text = JSON.stringify(msg);
    } catch (e) {
      this._settle(p, false, new TypeError('params of ' + p.method + ' cannot be sent as JSON: ' + e.message));
      return;
    }
    this._pending.set(p.id, p);
    if (!this._sendText(this._ws, text)) {
      this._settle(p, false, new BackendUnavailableError('not connected to avd', { data: { method: p.method } }));
      return;
    }
    p.sent = true;
    this._armTimer(p);
  }

  _armTimer(p) {
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    if (!p.sent || p.sentTimeoutMs <= 0) return;
    // avd's timer fires at timeout_ms; this one only after a grace period, so
    // that avd's TIMEOUT is the error users see.
    p.timer = setTimeout(() => {
      if (p.done) return;
      if (this._state === 'open') this._send({ type: 'cancel', id: p.id });
      this._settle(
        p,
        false,
        new TimeoutError('call ' + p.method + ' timed out after ' + p.sentTimeoutMs + ' ms (no answer from avd)', {
          data: { method: p.method, timeout_ms: p.sentTimeoutMs },
        })
      );
    }, p.sentTimeoutMs + this._timeoutGraceMs);
  }

  _abortCall(p) {
    if (p.done) return;
    if (p.sent && this._state === 'open') this._send({ type: 'cancel', id: p.id });
    const reason = p.signal && p.signal.reason;
    this._settle(
      p,
      false,
      new CancelledError('call ' + p.method + ' cancelled', {
        data: { method: p.method, reason: reason == null ? null : reason instanceof Error ? reason.message : String(reason) },
      })
    );
  }

  _settle(p, ok, value) {
    if (p.done) return;
    p.done = true;
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    if (p.id != null && this._pending.get(p.id) === p) this._pending.delete(p.id);
    if (!p.sent) {
      const i = this._queuedCalls.indexOf(p);
      if (i >= 0) this._queuedCalls.splice(i, 1);
    }
    if (ok) p.resolve(value);
    else p.reject(value);
  }

  _send(msg) {
    let text;
    try {
      text = JSON.stringify(msg);
    } catch (e) {
      throw new TypeError('message cannot be sent as JSON: ' + e.message);
    }
    return this._sendText(this._ws, text);
  }

  _sendOn(ws, msg) {
    return this._sendText(ws, JSON.stringify(msg));
  }

  _sendText(ws, text) {
    if (!ws || ws.readyState !== WS_OPEN) return false;
    try {
      ws.send(text);
      return true;
    } catch (e) {
      this._report('send failed', e);
      return false;
    }
  }

  // ----- offering methods -----

  /**
   * Offers methods through avd.register: register(name, handler) or
   * register({name: handler, ...}) (all-or-nothing). Handlers get
   * (params, ctx) with ctx = {id, method, caller, timeoutMs, signal, chunk(data), client}
   * and may return a value, a Promise, or an async iterable (each item is sent
   * as a chunk; the iterator's return value is the result). Resolves, once avd
   * accepted them, with a function that unregisters them.
   */
  register(method, handler) {
    let entries;
    if (typeof method === 'string') {
      entries = [[method, handler]];
    } else if (isObject(method)) {
      entries = Object.keys(method).map((k) => [k, method[k]]);
    } else {
      return Promise.reject(new TypeError('register(name, handler) or register({name: handler})'));
    }
    for (const [name, fn] of entries) {
      if (typeof name !== 'string' || name === '') return Promise.reject(new TypeError('method name must be a non-empty string'));
      if (typeof fn !== 'function') return Promise.reject(new TypeError('handler of ' + name + ' must be a function'));
    }
    if (this._closed) return Promise.reject(new BackendUnavailableError('avd client is closed'));
    const names = entries.map((e) => e[0]);
    const fresh = names.filter((n) => !this._methods.has(n));
    for (const [name, fn] of entries) this._methods.set(name, fn);
    const unregister = () => this.unregister(names);
    const forget = () => {
      for (const n of fresh) this._methods.delete(n);
    };
    if (this._state !== 'open') {
      return new Promise((resolve, reject) => {
        this._regWaiters.push({ names, resolve: () => resolve(unregister), reject: (e) => (forget(), reject(e)) });
      });
    }
    if (fresh.length === 0) return Promise.resolve(unregister);
    return this.call('avd.register', { methods: fresh }).then(
      () => {
        for (const n of fresh) this._confirmed.add(n);
        if (this._announced) this._sendReady();
        return unregister;
      },
      (e) => {
        forget();
        throw e;
      }
    );
  }

  /** Withdraws methods (avd.unregister). */
  async unregister(names) {
    const list = (Array.isArray(names) ? names : [names]).filter((n) => this._methods.has(n));
    if (list.length === 0) return;
    for (const n of list) {
      this._methods.delete(n);
      this._confirmed.delete(n);
    }
    if (this._state === 'open') await this.call('avd.unregister', { methods: list });
  }

  /** Names of the methods this client offers. */
  registeredMethods() {
    return [...this._methods.keys()];
  }

  /**
   * AuroraView style: sends {"type":"ready","handlers":[...]} with every
   * registered method, which registers them and makes avd announce
   * backend_ready to frontends. Repeated after each reconnect.
   */
  announceReady() {
    this._announced = true;
    if (this._state === 'open') this._sendReady();
  }

  _sendReady() {
    this._send({ type: 'ready', handlers: [...this._methods.keys()] });
  }

  _syncRegistrations() {
    const waiters = this._regWaiters;
    this._regWaiters = [];
    const confirmed = [...this._confirmed].filter((n) => this._methods.has(n));
    if (confirmed.length) this._reregister(confirmed, 0);
    for (const w of waiters) {
      const names = w.names.filter((n) => !this._confirmed.has(n) && this._methods.has(n));
      if (names.length === 0) {
        w.resolve();
        continue;
      }
      this.call('avd.register', { methods: names }).then(
        () => {
          for (const n of names) this._confirmed.add(n);
          if (this._announced) this._sendReady();
          w.resolve();
        },
        (e) => w.reject(e)
      );
    }
    if (this._announced && this._methods.size) this._sendReady();
  }

  _reregister(names, tries) {
    const ws = this._ws;
    this.call('avd.register', { methods: names }).then(
      () => {},
      (e) => {
        // avd may not have noticed yet that our previous session is gone.
        if (e instanceof AlreadyRegistered && tries < 5 && !this._closed) {
          setTimeout(() => {
            if (this._ws === ws && this._state === 'open') this._reregister(names.filter((n) => this._methods.has(n)), tries + 1);
          }, this._reconnect ? this._reconnect.minMs : 1000);
        } else if (!(e instanceof BackendUnavailableError)) {
          this._report('re-registering ' + names.join(', ') + ' failed', e);
        }
      }
    );
  }

  _onCall(msg) {
    const id = msg.id;
    const method = msg.method;
    const ws = this._ws;
    if (method === '__ping__') {
      this._sendOn(ws, { id, ok: true, result: { status: 'pong', schema_version: SCHEMA_VERSION, ts: Date.now() } });
      return;
    }
    const fn = this._methods.get(method);
    if (!fn) {
      this._sendOn(ws, {
        id,
        ok: false,
        error: { code: 'METHOD_NOT_FOUND', name: 'MethodNotFound', message: 'no handler for ' + method, data: { method } },
      });
      return;
    }
    const controller = new AbortController();
    const state = { controller, iterator: null, done: false };
    this._incoming.set(id, state);
    const ctx = {
      id,
      method,
      caller: msg.caller == null ? null : msg.caller,
      timeoutMs: msg.timeout_ms == null ? null : msg.timeout_ms,
      signal: controller.signal,
      client: this,
      chunk: (data) => {
        if (state.done || controller.signal.aborted) return false;
        return this._sendOn(ws, { type: 'chunk', id, data: data === undefined ? null : data });
      },
    };
    const respond = (body) => {
      if (controller.signal.aborted) return; // cancelled: avd has answered the caller already
      let text;
      try {
        text = JSON.stringify({ id, ...body });
      } catch (e) {
        text = JSON.stringify({
          id,
          ok: false,
          error: { code: 'BACKEND_ERROR', name: 'TypeError', message: 'result of ' + method + ' cannot be sent as JSON: ' + e.message, data: null },
        });
      }
      this._sendText(ws, text);
    };
    (async () => {
      try {
        let result = await fn(msg.params === undefined ? null : msg.params, ctx);
        if (isAsyncIterable(result)) {
          const it = result[Symbol.asyncIterator]();
          state.iterator = it;
          for (;;) {
            const step = await it.next();
            if (controller.signal.aborted) return;
            if (step.done) {
              result = step.value;
              break;
            }
            ctx.chunk(step.value);
          }
        }
        respond({ ok: true, result: result === undefined ? null : result });
      } catch (e) {
        respond({ ok: false, error: errorToWire(e) });
      } finally {
        state.done = true;
        if (this._incoming.get(id) === state) this._incoming.delete(id);
      }
    })();
  }

  _onCancel(msg) {
    const state = this._incoming.get(msg.id);
    if (!state) return;
    this._incoming.delete(msg.id);
    const reason = msg.reason || 'cancelled';
    this._stopIncoming(state, reason);
  }

  _stopIncoming(state, reason) {
    if (!state.controller.signal.aborted) {
      const err = reason === 'timeout' ? new TimeoutError('call timed out in avd') : new CancelledError('call cancelled: ' + reason);
      err.reason = reason;
      state.controller.abort(err);
    }
    if (state.iterator && typeof state.iterator.return === 'function') {
      try {
        const r = state.iterator.return();
        if (r && typeof r.then === 'function') r.then(undefined, () => {});
      } catch (e) {
        /* ignore */
      }
    }
  }

  _abortIncoming(reason) {
    const all = [...this._incoming.values()];
    this._incoming.clear();
    for (const s of all) this._stopIncoming(s, reason);
  }

  // ----- backends and health -----

  _onSystemEvent(event, data) {
    if (!isObject(data) || data.session == null) return;
    const session = data.session;
    let b = this._backends.get(session);
    if (!b) {
      b = { session, name: data.backend != null ? data.backend : null, status: 'unknown', handlers: [], lastSignal: 0, reason: null, lastError: null, timer: null, watching: false };
      this._backends.set(session, b);
    }
    if (data.backend != null) b.name = data.backend;
    if (event === 'backend_ready') {
      b.status = 'ready';
      b.reason = null;
      b.handlers = Array.isArray(data.handlers) ? data.handlers.filter((h) => typeof h === 'string') : [];
      for (const h of b.handlers) this._methodOwner.set(h, session);
      this._healthSignal(b);
    } else if (event === 'backend_health') {
      if (data.status === 'unhealthy') {
        b.status = 'unhealthy';
        b.reason = 'unhealthy';
        this._clearWatch(b);
      } else {
        b.status = typeof data.status === 'string' ? data.status : 'alive';
        b.reason = null;
        b.watching = true; // silence is judged only after a first health signal
        this._healthSignal(b);
      }
    } else if (event === 'backend_error') {
      b.lastError = { ...data };
      if (data.fatal) {
        b.status = 'unhealthy';
        b.reason = data.message ? String(data.message) : 'fatal error';
        this._clearWatch(b);
        const err = new BackendUnavailableError('backend ' + (b.name || session) + ' failed: ' + b.reason, {
          data: { backend: b.name, session, source: data.source == null ? null : data.source },
        });
        for (const p of [...this._pending.values()]) if (p.session === session) this._settle(p, false, err);
      }
    }
    for (const hook of [...this._systemHooks]) {
      try {
        hook(event, data, b);
      } catch (e) {
        this._report('backend hook failed', e);
      }
    }
  }

  _healthSignal(b) {
    b.lastSignal = Date.now();
    this._clearWatch(b);
    const ms = this._config.heartbeatTimeoutMs;
    if (!b.watching || !(ms > 0)) return;
    b.timer = setTimeout(() => {
      b.timer = null;
      if (b.status === 'unhealthy') return;
      b.status = 'unhealthy';
      b.reason = 'no health signal for ' + ms + ' ms';
    }, ms);
    if (b.timer && typeof b.timer.unref === 'function') b.timer.unref();
  }

  _clearWatch(b) {
    if (b.timer) clearTimeout(b.timer);
    b.timer = null;
  }

  /** What this client knows of each backend: [{session, name, status, handlers, lastSignal, reason, lastError}]. */
  backends() {
    return [...this._backends.values()].map((b) => ({
      session: b.session,
      name: b.name,
      status: b.status,
      handlers: [...b.handlers],
      lastSignal: b.lastSignal,
      reason: b.reason,
      lastError: b.lastError,
    }));
  }

  /** The backend known to offer `method`, or null. */
  backendFor(method) {
    const owner = this._methodOwner.get(method);
    if (owner == null) return null;
    const known = this.backends().find((x) => x.session === owner);
    return known || { session: owner, name: null, status: 'unknown', handlers: [method], lastSignal: 0, reason: null, lastError: null };
  }

  /** Asks avd which methods exist (avd.methods) and learns their owners. Resolves with [{method, session, backend}]. */
  async methods() {
    const res = await this.call('avd.methods', null);
    const list = parseMethodsResult(res);
    for (const m of list) if (m.session != null && !this._methodOwner.has(m.method)) this._methodOwner.set(m.method, m.session);
    return list;
  }
}

/**
 * Connects to avd. Resolves with the client once avd's welcome arrived;
 * rejects (and gives up) when that first attempt fails. After that the client
 * reconnects on its own. `url` defaults from the page (see resolveEndpoint).
 */
function connect(url, options) {
  if (options === undefined && isObject(url) && !(url instanceof URL)) {
    options = url;
    url = undefined;
  }
  let client;
  try {
    client = new AvdClient(url, { ...(options || {}), autoConnect: false });
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise((resolve, reject) => {
    client._firstAttempt = { resolve, reject };
    client._open();
  });
}

// ---------------------------------------------------------------------------
// window.auroraview compatibility
// ---------------------------------------------------------------------------

/**
 * Installs `win.auroraview`, an AuroraView-compatible bridge over an
 * AvdClient (created from win.__AURORAVIEW_CONFIG__ / __AVD__ / location unless
 * `options.client` is given). Returns the bridge object.
 */
function installAuroraView(win, options = {}) {
  win = win || getWindow();
  if (!win) throw new TypeError('installAuroraView needs a window object');
  const cfg = isObject(win.__AURORAVIEW_CONFIG__) ? win.__AURORAVIEW_CONFIG__ : {};
  const config = {};
  for (const k of ['callTimeoutMs', 'heartbeatTimeoutMs']) {
    if (isNonNegativeNumber(cfg[k])) config[k] = cfg[k];
    else if (cfg[k] !== undefined) reportError('ignoring __AURORAVIEW_CONFIG__.' + k + ' (not a number >= 0)', cfg[k]);
  }
  if (typeof cfg.backendFailFast === 'boolean') config.backendFailFast = cfg.backendFailFast;
  else if (cfg.backendFailFast !== undefined) reportError('ignoring __AURORAVIEW_CONFIG__.backendFailFast (not a boolean)', cfg.backendFailFast);
  let client = options.client;
  if (!client) {
    const { client: _ignored, url, ...rest } = options;
    client = new AvdClient(url, { name: 'auroraview', ...rest, window: win, config: { ...config, ...(rest.config || {}) } });
  } else if (Object.keys(config).length) {
    client.setConfig(config);
  }
  const prev = win.auroraview;

  const av = {
    /** The underlying AvdClient. */
    client,
    _isAvd: true,
    _ready: false,
    _boundMethods: {},
    api: {},

    call(method, params, opts) {
      const o = {};
      if (opts && opts.timeout != null) o.timeout = opts.timeout;
      if (opts && opts.signal) o.signal = opts.signal;
      if (opts && typeof opts.onChunk === 'function') o.onChunk = opts.onChunk;
      return client.call(method, params, o);
    },

    send_event(event, detail) {
      try {
        client.emit(event, detail === undefined ? {} : detail);
      } catch (e) {
        reportError('send_event failed', e);
      }
    },

    on(event, handler) {
      if (typeof handler !== 'function') {
        reportError('handler must be a function', new TypeError(String(event)));
        return () => {};
      }
      return client.on(event, handler);
    },

    once(event, handler) {
      return client.once(event, handler);
    },

    off(event, handler) {
      client.off(event, handler);
    },

    trigger(event, detail) {
      client.trigger(event, detail);
    },

    setConfig(partial) {
      return client.setConfig(partial);
    },

    getConfig() {
      return client.getConfig();
    },

    whenReady() {
      return client.whenReady().then(() => av);
    },

    isReady() {
      return client.isReady();
    },

    isMethodBound(name) {
      return av._boundMethods[name] === true;
    },

    getBoundMethods() {
      return Object.keys(av._boundMethods);
    },

    _registerApiMethods(namespace, methods, opts) {
      if (!namespace || typeof namespace !== 'string' || !Array.isArray(methods)) {
        reportError('invalid arguments for _registerApiMethods', new TypeError(String(namespace)));
        return;
      }
      let target = av[namespace];
      if (target === undefined && namespace[0] !== '_') target = av[namespace] = {};
      else if (namespace[0] === '_' || typeof target !== 'object' || target === null || target === client) {
        reportError('cannot use ' + namespace + ' as an API namespace', new TypeError(namespace));
        return;
      }
      const allowRebind = !opts || opts.allowRebind !== false;
      for (const m of methods) {
        if (typeof m !== 'string' || m === '') continue;
        const full = namespace + '.' + m;
        if (av._boundMethods[full] && !allowRebind) continue;
        target[m] = (params, callOpts) => av.call(full, params, callOpts);
        av._boundMethods[full] = true;
      }
    },
  };

  // backend_ready handlers such as "api.echo" fill auroraview.api.echo.
  client._systemHooks.add((event, data) => {
    if (event !== 'backend_ready' || !Array.isArray(data.handlers)) return;
    const byNs = new Map();
    for (const h of data.handlers) {
      if (typeof h !== 'string') continue;
      const dot = h.indexOf('.');
      if (dot <= 0 || dot === h.length - 1) continue;
      const ns = h.slice(0, dot);
      if (!byNs.has(ns)) byNs.set(ns, []);
      byNs.get(ns).push(h.slice(dot + 1));
    }
    for (const [ns, names] of byNs) av._registerApiMethods(ns, names);
  });

  client.ready.then(
    () => {
      av._ready = true;
      if (typeof win.dispatchEvent === 'function') {
        const CE = win.CustomEvent || globalThis.CustomEvent;
        const EV = win.Event || globalThis.Event;
        const detail = { session: client.session, server: client.server };
        try {
          win.dispatchEvent(CE ? new CE('auroraviewready', { detail }) : new EV('auroraviewready'));
        } catch (e) {
          reportError('dispatching auroraviewready failed', e);
        }
      }
    },
    () => {}
  );

  win.auroraview = av;

  // Calls queued by an AuroraView bridge stub that ran before us.
  if (prev && Array.isArray(prev._pendingCalls)) {
    for (const item of prev._pendingCalls) {
      if (!item) continue;
      if (item.type === 'register') av._registerApiMethods(item.namespace, item.methods);
      else if (typeof item.method === 'string') {
        const pr = av.call(item.method, item.params);
        if (typeof item.resolve === 'function') pr.then(item.resolve, item.reject || (() => {}));
        else pr.catch(() => {});
      }
    }
  }
  return av;
}

export {
  VERSION,
  SCHEMA_VERSION,
  SUBPROTOCOL,
  SYSTEM_EVENTS,
  DEFAULT_CONFIG,
  AvdClient,
  AvdStream,
  connect,
  installAuroraView,
  resolveEndpoint,
  backoffDelay,
  matchEvent,
  parseMethodsResult,
  errorFromWire,
  errorToWire,
  ERRORS,
  AvdError,
  ParseError,
  InvalidRequest,
  UnsupportedSchema,
  Unauthorized,
  EncodingError,
  PayloadTooLarge,
  MethodNotFound,
  AlreadyRegistered,
  BackendUnavailableError,
  TimeoutError,
  CancelledError,
  QueueFull,
  EventLoopClosed,
  ScriptExecutionError,
  WindowOperationError,
  InternalError,
};
