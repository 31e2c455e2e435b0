// console.js: avd's console, the page avd serves at "/".
//
// A plain ES module (no build step) on top of the JavaScript client that avd
// serves as /avd.js. It connects as a frontend named "console" (URL and token
// from the page's own address), subscribes to every event, and shows live:
// sessions, methods, calls in flight, backend health and errors, backends'
// stderr and an event log; two forms call a method and emit an event.

const LOG_CAP = 1000; // rows kept in the event log
const STDERR_CAP = 500; // stderr lines kept
const ERRORS_CAP = 100; // backend errors kept
// avd.sessions / avd.methods / avd.stats are polled this often (ms); the
// page's ?refresh=MS changes it (at least 500). Session events refresh at once.
const REFRESH_MS = (() => {
  const v = Number(new URLSearchParams(location.search).get('refresh'));
  return Number.isFinite(v) && v >= 500 ? v : 2000;
})();
const EVENT_NAME_RE = /^[A-Za-z0-9_.:/-]{1,255}$/;
const SYSTEM_EVENTS = new Set(['backend_ready', 'backend_health', 'backend_error']);
const REFRESH_ON = new Set(['avd:session_joined', 'avd:session_left', 'backend_ready', 'backend_error', 'backend_health']);

const $ = (id) => document.getElementById(id);

const state = {
  client: null,
  sessions: [],
  methods: [],
  stats: null,
  names: new Map(), // session id -> name (kept after the session left, for the log)
  health: new Map(), // backend session id -> {status, ts} from backend_health / backend_ready
  callSeen: new Map(), // "caller/id" -> first time the console saw the call
  refreshing: false,
  refreshAgain: false,
  refreshTimer: null,
  sessionsAt: 0,
  logQueue: [],
  logFlushQueued: false,
  logRows: 0, // rows in the log table (not counting opened details)
  paused: false,
  filter: '',
  callAbort: null,
};

// ---------------------------------------------------------------------------
// Small DOM helpers
// ---------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'title') node.title = v;
      else if (k.startsWith('data-')) node.setAttribute(k, v);
      else node[k] = v;
    }
  }
  for (const c of children) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function setText(id, text) {
  const node = $(id);
  if (node && node.textContent !== String(text)) node.textContent = String(text);
}

function two(n) {
  return String(n).padStart(2, '0');
}

function clock(ms = Date.now()) {
  const d = new Date(ms);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.floor((ms % 60000) / 1000)} s`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function compact(value) {
  let s;
  try {
    s = JSON.stringify(value);
  } catch (e) {
    s = String(value);
  }
  return s === undefined ? 'undefined' : s;
}

// Pretty JSON in a <pre>, coloured by token (all through textContent).
const JSON_TOKEN_RE = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

function jsonBlock(value, cls = 'json') {
  let text;
  try {
    text = JSON.stringify(value, null, 2);
  } catch (e) {
    text = String(value);
  }
  if (text === undefined) text = 'undefined';
  const pre = el('pre', { class: cls });
  if (text.length > 200000) {
    pre.textContent = text;
    return pre;
  }
  let last = 0;
  for (const m of text.matchAll(JSON_TOKEN_RE)) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    let kind;
    if (m[1] !== undefined) kind = m[2] !== undefined ? 'k' : 's';
    else if (m[3] !== undefined) kind = m[3] === 'null' ? 'z' : 'b';
    else kind = 'n';
    if (kind === 'k') {
      pre.append(el('span', { class: 'j-k', text: m[1] }), m[2]);
    } else {
      pre.append(el('span', { class: 'j-' + kind, text: m[0] }));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) pre.append(text.slice(last));
  return pre;
}

function badge(text, kind, title) {
  return el('span', { class: `badge ${kind || ''}`.trim(), text, title });
}

function healthKind(status) {
  switch (status) {
    case 'ready':
    case 'alive':
      return 'good';
    case 'unhealthy':
    case 'gone':
      return 'bad';
    case 'connected':
      return 'info';
    default:
      return 'warn';
  }
}

function sessionLabel(session) {
  if (session == null) return 'avd';
  const name = state.names.get(session);
  return name ? `${name} (${session})` : String(session);
}

function nameCell(session) {
  const name = state.names.get(session);
  return el(
    'span',
    { class: 'who' },
    name ? el('span', { class: 'who-name', text: name }) : null,
    el('span', { class: 'mono muted', text: session == null ? 'avd' : session })
  );
}

function banner(text, kind) {
  const b = $('banner');
  if (!text) {
    b.hidden = true;
    b.textContent = '';
    return;
  }
  b.hidden = false;
  b.dataset.kind = kind || 'warn';
  b.textContent = text;
}

function setConn(st, text) {
  const c = $('conn');
  c.dataset.state = st;
  setText('conn-text', text || st);
  document.title = st === 'open' ? 'avd console' : `avd console (${text || st})`;
  document.body.dataset.conn = st;
}

// ---------------------------------------------------------------------------
// Sessions, methods, calls, stats: polled and refreshed on session events
// ---------------------------------------------------------------------------

function scheduleRefresh(delay = 120) {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refresh();
  }, delay);
}

async function refresh() {
  const client = state.client;
  if (!client || !client.isReady()) return;
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  try {
    const [s, m, st] = await Promise.allSettled([
      client.call('avd.sessions', null, { timeout: 5000 }),
      client.call('avd.methods', null, { timeout: 5000 }),
      client.call('avd.stats', null, { timeout: 5000 }),
    ]);
    if (s.status === 'fulfilled' && s.value && Array.isArray(s.value.sessions)) {
      state.sessions = s.value.sessions;
      state.sessionsAt = Date.now();
      for (const x of state.sessions) if (x.name) state.names.set(x.session, x.name);
    }
    if (m.status === 'fulfilled' && m.value && Array.isArray(m.value.methods)) state.methods = m.value.methods;
    if (st.status === 'fulfilled' && st.value && typeof st.value === 'object') state.stats = st.value;
    renderAll();
  } finally {
    state.refreshing = false;
    if (state.refreshAgain) {
      state.refreshAgain = false;
      scheduleRefresh(0);
    }
  }
}

function renderAll() {
  renderSessions();
  renderMethods();
  renderCalls();
  renderBackends();
  renderStats();
}

function fillBody(table, rows, emptyId) {
  const tbody = $(table).tBodies[0];
  tbody.replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
  $(table).hidden = rows.length === 0;
}

function roleOrder(s) {
  return s.role === 'backend' ? 0 : 1;
}

function sessionNum(id) {
  const n = /(\d+)$/.exec(String(id));
  return n ? Number(n[1]) : 0;
}

function renderSessions() {
  const self = state.client && state.client.session;
  const list = [...state.sessions].sort((a, b) => roleOrder(a) - roleOrder(b) || sessionNum(a.session) - sessionNum(b.session));
  const rows = list.map((s) => {
    const health = s.role === 'backend' ? currentHealth(s) : s.health || 'connected';
    const tr = el(
      'tr',
      { 'data-session': s.session, 'data-role': s.role, class: s.session === self ? 'self' : null },
      el('td', null, el('span', { class: 'strong', text: s.name || '—' }), s.session === self ? badge('this console', 'ghost') : null),
      el('td', null, badge(s.role, s.role === 'backend' ? 'role-backend' : 'role-frontend'), s.transport && s.transport !== 'ws' ? el('span', { class: 'muted small', text: ' ' + s.transport }) : null),
      el('td', { class: 'mono muted', text: s.session }),
      el('td', null, badge(health, healthKind(health))),
      el('td', { class: 'num mono', text: bytes(s.queue_bytes), title: `high water ${bytes(s.queue_high_water)}` }),
      el('td', { class: 'num mono', text: s.pending_calls ?? 0, title: 'pending calls this session made' }),
      el('td', { class: 'num mono', text: s.pending_in ?? 0, title: 'pending calls this session is answering' }),
      el('td', { class: 'num mono', text: Array.isArray(s.methods) ? s.methods.length : 0, title: Array.isArray(s.methods) ? s.methods.join('\n') : '' })
    );
    return tr;
  });
  fillBody('sessions', rows, 'sessions-empty');
  setText('sessions-count', list.length);
}

function currentHealth(s) {
  const h = state.health.get(s.session);
  // avd's own view (avd.sessions) is fresher when it is newer than the last event.
  if (h && h.at > state.sessionsAt) return h.status;
  return s.health || (h && h.status) || 'unknown';
}

function renderMethods() {
  const list = [...state.methods].sort((a, b) => String(a.method).localeCompare(String(b.method)));
  const rows = list.map((m) =>
    el(
      'tr',
      { 'data-method': m.method },
      el('td', null, el('button', { type: 'button', class: 'method-link mono', text: m.method, title: 'Call ' + m.method, onclick: () => pickMethod(m.method) })),
      el('td', null, el('span', { class: 'who' }, el('span', { class: 'who-name', text: m.owner_name || '' }), el('span', { class: 'mono muted', text: m.owner || '' })))
    )
  );
  fillBody('methods', rows, 'methods-empty');
  setText('methods-count', list.length);
  const dl = $('method-list');
  dl.replaceChildren(...list.map((m) => el('option', { value: m.method })));
}

function renderCalls() {
  const now = Date.now();
  const live = new Set();
  const calls = [];
  for (const s of state.sessions) {
    if (!Array.isArray(s.calls)) continue;
    for (const c of s.calls) {
      const key = `${s.session}/${c.id}`;
      live.add(key);
      if (!state.callSeen.has(key)) state.callSeen.set(key, now);
      calls.push({ key, caller: s.session, id: c.id, method: c.method, callee: c.callee, since: state.callSeen.get(key) });
    }
  }
  for (const key of [...state.callSeen.keys()]) if (!live.has(key)) state.callSeen.delete(key);
  calls.sort((a, b) => a.since - b.since);
  const rows = calls.map((c) =>
    el(
      'tr',
      { 'data-call': c.key },
      el('td', { class: 'mono strong', text: c.method }),
      el('td', null, nameCell(c.caller)),
      el('td', null, nameCell(c.callee)),
      el('td', { class: 'num mono age', 'data-since': String(c.since), text: duration(now - c.since), title: 'since the console first saw it' })
    )
  );
  fillBody('calls', rows, 'calls-empty');
  setText('calls-count', calls.length);
}

function tickAges() {
  const now = Date.now();
  for (const td of document.querySelectorAll('#calls td.age')) {
    td.textContent = duration(now - Number(td.dataset.since));
  }
  for (const node of document.querySelectorAll('#backends .since')) {
    node.textContent = ago(now - Number(node.dataset.ts));
  }
}

function ago(ms) {
  return ms < 1500 ? 'just now' : `${duration(ms)} ago`;
}

function renderBackends() {
  const now = Date.now();
  const list = state.sessions.filter((s) => s.role === 'backend').sort((a, b) => sessionNum(a.session) - sessionNum(b.session));
  const items = list.map((s) => {
    const health = currentHealth(s);
    const h = state.health.get(s.session);
    return el(
      'li',
      { 'data-session': s.session, 'data-health': health, class: `backend ${healthKind(health)}` },
      el('div', { class: 'backend-head' }, el('span', { class: 'strong', text: s.name || s.session }), badge(health, healthKind(health))),
      el(
        'div',
        { class: 'backend-meta' },
        el('span', { class: 'mono muted', text: s.session }),
        el('span', { class: 'muted', text: s.transport || '' }),
        el('span', { class: 'muted', text: plural(Array.isArray(s.methods) ? s.methods.length : 0, 'method') }),
        h && h.ts ? el('span', { class: 'muted since', 'data-ts': String(h.ts), text: ago(now - h.ts), title: 'last health signal' }) : null
      )
    );
  });
  $('backends').replaceChildren(...items);
  $('backends-empty').hidden = items.length > 0;
  setText('backends-count', items.length);
}

function renderStats() {
  const st = state.stats || {};
  const backends = state.sessions.filter((s) => s.role === 'backend').length;
  setText('stat-sessions', st.sessions ?? state.sessions.length);
  setText('stat-backends', st.backends ?? backends);
  setText('stat-methods', st.methods ?? state.methods.length);
  setText('stat-inflight', st.pending_calls ?? 0);
  setText('stat-calls', st.calls_started ?? 0);
  setText('stat-failed', st.calls_failed ?? 0);
  setText('stat-events', st.events_published ?? 0);
  $('stat-failed').parentElement.classList.toggle('alert', (st.calls_failed ?? 0) > 0);
}

// ---------------------------------------------------------------------------
// Backend errors and stderr
// ---------------------------------------------------------------------------

function addError(data, at) {
  const d = data && typeof data === 'object' ? data : { message: String(data) };
  const extra = [];
  if (d.exit_code != null) extra.push(`exit code ${d.exit_code}`);
  if (d.signal != null) extra.push(`signal ${d.signal}`);
  if (d.count != null) extra.push(`${d.count}×`);
  const li = el(
    'li',
    { class: `error ${d.fatal ? 'fatal' : ''}`.trim(), 'data-backend': d.backend || '', 'data-source': d.source || '' },
    el(
      'div',
      { class: 'error-head' },
      el('span', { class: 'mono muted', text: clock(at) }),
      el('span', { class: 'strong', text: d.backend || d.session || 'backend' }),
      badge(d.source || 'error', 'src'),
      d.fatal ? badge('fatal', 'bad') : badge('non-fatal', 'warn')
    ),
    el('div', { class: 'error-msg', text: (d.message || 'backend error') + (extra.length ? ` (${extra.join(', ')})` : '') }),
    Array.isArray(d.stderr_tail) && d.stderr_tail.length
      ? el('details', null, el('summary', { text: `last ${d.stderr_tail.length} stderr lines` }), el('pre', { class: 'tail', text: d.stderr_tail.join('\n') }))
      : null
  );
  const list = $('errors');
  list.prepend(li);
  while (list.children.length > ERRORS_CAP) list.lastElementChild.remove();
  setText('errors-count', list.children.length);
  $('errors-empty').hidden = true;
}

function addStderr(data, at) {
  const d = data && typeof data === 'object' ? data : {};
  const box = $('stderr-scroll');
  const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
  const list = $('stderr');
  list.append(
    el(
      'li',
      { 'data-backend': d.backend || '' },
      el('span', { class: 'ts', text: clock(at) }),
      el('span', { class: 'src', text: d.backend || '?' }),
      el('span', { class: 'line', text: d.line == null ? '' : String(d.line) })
    )
  );
  while (list.children.length > STDERR_CAP) list.firstElementChild.remove();
  setText('stderr-count', list.children.length);
  $('stderr-empty').hidden = true;
  if (stick) box.scrollTop = box.scrollHeight;
}

// ---------------------------------------------------------------------------
// Event log
// ---------------------------------------------------------------------------

function eventKind(name) {
  if (name === 'backend_error') return 'ev-error';
  if (SYSTEM_EVENTS.has(name)) return 'ev-system';
  if (name.startsWith('avd:') || name === 'backend:stderr') return 'ev-avd';
  return 'ev-user';
}

function queueLog(event, data, from, at) {
  state.logQueue.push({ event, data, from, at });
  if (state.logQueue.length > LOG_CAP) state.logQueue.splice(0, state.logQueue.length - LOG_CAP);
  if (state.paused) {
    setText('log-pause', `Resume (${state.logQueue.length})`);
    return;
  }
  if (!state.logFlushQueued) {
    state.logFlushQueued = true;
    requestAnimationFrame(flushLog);
  }
}

// The one-line view of an event's data: avd's own events without their
// schema_version (the expanded row shows the data as sent).
function logView(event, data) {
  if (data && typeof data === 'object' && !Array.isArray(data) && data.schema_version === 1 &&
      (SYSTEM_EVENTS.has(event) || event.startsWith('avd:') || event === 'backend:stderr')) {
    const { schema_version: _omit, ...rest } = data;
    return rest;
  }
  return data;
}

function matches(row) {
  return state.filter === '' || row.dataset.search.includes(state.filter);
}

function flushLog() {
  state.logFlushQueued = false;
  if (state.paused || state.logQueue.length === 0) return;
  const items = state.logQueue;
  state.logQueue = [];
  const box = $('log-scroll');
  const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
  const tbody = $('log').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const it of items) {
    const text = compact(logView(it.event, it.data));
    const fromLabel = sessionLabel(it.from);
    const tr = el(
      'tr',
      { class: eventKind(it.event), 'data-event': it.event, 'data-from': it.from == null ? '' : it.from },
      el('td', { class: 't mono muted', text: clock(it.at) }),
      el('td', { class: 'ev mono', text: it.event }),
      el('td', { class: 'from', text: fromLabel }),
      el('td', { class: 'data mono', text: text.length > 400 ? text.slice(0, 400) + '…' : text })
    );
    tr.dataset.search = `${it.event}\n${fromLabel}\n${text}`.toLowerCase();
    tr._data = it.data;
    tr.hidden = !matches(tr);
    frag.append(tr);
  }
  tbody.append(frag);
  state.logRows += items.length;
  while (state.logRows > LOG_CAP && tbody.firstElementChild) {
    const first = tbody.firstElementChild;
    if (!first.classList.contains('detail')) state.logRows--;
    first.remove();
  }
  updateLogCount();
  $('log-empty').hidden = true;
  $('log').hidden = false;
  if (stick) box.scrollTop = box.scrollHeight;
}

function updateLogCount() {
  if (state.filter === '') {
    setText('log-count', state.logRows);
    return;
  }
  let shown = 0;
  for (const r of $('log').tBodies[0].rows) if (!r.hidden && !r.classList.contains('detail')) shown++;
  setText('log-count', `${shown} / ${state.logRows}`);
}

function applyFilter() {
  state.filter = $('log-filter').value.trim().toLowerCase();
  let hidden = false;
  for (const r of $('log').tBodies[0].rows) {
    if (r.classList.contains('detail')) r.hidden = hidden; // follows its event's row
    else r.hidden = hidden = !matches(r);
  }
  updateLogCount();
}

function toggleRow(tr) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains('detail')) {
    next.remove();
    tr.classList.remove('open');
    return;
  }
  const detail = el('tr', { class: 'detail' }, el('td', { colSpan: 4 }, jsonBlock(tr._data)));
  detail.hidden = tr.hidden;
  tr.after(detail);
  tr.classList.add('open');
}

// ---------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------

function pickMethod(name) {
  $('call-method').value = name;
  $('call-params').focus();
}

function errorView(err, ms) {
  const code = (err && err.code) || 'ERROR';
  const name = (err && err.name) || 'Error';
  const message = (err && err.message) || String(err);
  const data = err && err.data;
  return [
    el(
      'div',
      { class: 'result-head' },
      badge('error', 'bad'),
      el('span', { class: 'code mono', text: code }),
      el('span', { class: 'ename mono', text: name }),
      ms != null ? el('span', { class: 'muted', text: duration(ms) }) : null
    ),
    el('div', { class: 'emsg', text: message }),
    data !== undefined && data !== null ? jsonBlock(data) : null,
  ];
}

function showResult(id, st, nodes) {
  const box = $(id);
  box.dataset.state = st;
  box.replaceChildren(...nodes.filter(Boolean));
}

function parseJsonField(id, what) {
  const text = $(id).value.trim();
  if (text === '') return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: { code: 'INVALID_JSON', name: 'SyntaxError', message: `${what} is not valid JSON: ${e.message}` } };
  }
}

async function onCall(ev) {
  ev.preventDefault();
  const client = state.client;
  const method = $('call-method').value.trim();
  if (!method) return;
  const params = parseJsonField('call-params', 'params');
  if (!params.ok) {
    showResult('call-result', 'error', errorView(params.error));
    return;
  }
  const opts = {};
  const t = $('call-timeout').value.trim();
  if (t !== '') opts.timeout = Number(t);
  const ac = new AbortController();
  opts.signal = ac.signal;
  const chunks = [];
  const chunkList = el('ol', { class: 'chunks' });
  opts.onChunk = (data) => {
    chunks.push(data);
    chunkList.append(el('li', { class: 'mono', text: compact(data) }));
    setText('call-chunks', plural(chunks.length, 'chunk'));
  };
  state.callAbort = ac;
  $('call-submit').disabled = true;
  $('call-cancel').disabled = false;
  const t0 = performance.now();
  showResult('call-result', 'pending', [
    el('div', { class: 'result-head' }, badge('calling', 'info'), el('span', { class: 'mono strong', text: method }), el('span', { class: 'muted', id: 'call-chunks' })),
    chunkList,
  ]);
  try {
    const result = await client.call(method, params.value, opts);
    const ms = performance.now() - t0;
    showResult('call-result', 'ok', [
      el(
        'div',
        { class: 'result-head' },
        badge('ok', 'good'),
        el('span', { class: 'mono strong', text: method }),
        el('span', { class: 'muted', text: duration(ms) + (chunks.length ? ` · ${plural(chunks.length, 'chunk')}` : '') })
      ),
      chunks.length ? chunkList : null,
      jsonBlock(result),
    ]);
  } catch (err) {
    showResult('call-result', 'error', [...errorView(err, performance.now() - t0), chunks.length ? chunkList : null]);
  } finally {
    if (state.callAbort === ac) state.callAbort = null;
    $('call-submit').disabled = false;
    $('call-cancel').disabled = true;
    scheduleRefresh(0);
  }
}

function onEmit(ev) {
  ev.preventDefault();
  const event = $('emit-event').value.trim();
  if (!EVENT_NAME_RE.test(event)) {
    showResult('emit-result', 'error', errorView({ code: 'INVALID_REQUEST', name: 'InvalidRequest', message: 'event names are 1–255 letters, digits or _ . : / - (no spaces)' }));
    return;
  }
  const data = parseJsonField('emit-data', 'data');
  if (!data.ok) {
    showResult('emit-result', 'error', errorView(data.error));
    return;
  }
  let sent = false;
  try {
    // echo: the console is subscribed to everything, so it logs its own event too
    sent = state.client.emit(event, data.value === null ? {} : data.value, { echo: true });
  } catch (e) {
    showResult('emit-result', 'error', errorView(e));
    return;
  }
  if (sent) {
    showResult('emit-result', 'ok', [el('div', { class: 'result-head' }, badge('sent', 'good'), el('span', { class: 'mono strong', text: event }), el('span', { class: 'muted', text: clock() }))]);
  } else {
    showResult('emit-result', 'error', errorView({ code: 'BACKEND_UNAVAILABLE', name: 'BackendUnavailableError', message: 'not connected to avd' }));
  }
}

function ctrlEnter(formId) {
  $(formId).addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      $(formId).requestSubmit();
    }
  });
}

// ---------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------

function onAnyEvent(data, { event, from }) {
  const at = Date.now();
  queueLog(event, data, from, at);
  const d = data && typeof data === 'object' ? data : {};
  if (event === 'avd:session_joined' && d.session && d.name) state.names.set(d.session, d.name);
  if (event === 'backend_health' && d.session) {
    state.health.set(d.session, { status: d.status || 'alive', ts: at, at });
    renderSessions();
    renderBackends();
  } else if (event === 'backend_ready' && d.session) {
    state.health.set(d.session, { status: 'ready', ts: at, at });
    if (d.backend) state.names.set(d.session, d.backend);
  } else if (event === 'backend_error') {
    addError(d, at);
    if (d.session && d.fatal) state.health.set(d.session, { status: 'unhealthy', ts: (state.health.get(d.session) || {}).ts, at });
  }
  if (REFRESH_ON.has(event)) scheduleRefresh();
}

function wireUi() {
  $('call-form').addEventListener('submit', onCall);
  $('call-cancel').addEventListener('click', () => state.callAbort && state.callAbort.abort());
  $('emit-form').addEventListener('submit', onEmit);
  ctrlEnter('call-form');
  ctrlEnter('emit-form');
  $('log-filter').addEventListener('input', applyFilter);
  $('log-clear').addEventListener('click', () => {
    $('log').tBodies[0].replaceChildren();
    state.logQueue = [];
    state.logRows = 0;
    updateLogCount();
    $('log-empty').hidden = false;
    $('log').hidden = true;
  });
  $('log-pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('log-pause').setAttribute('aria-pressed', String(state.paused));
    setText('log-pause', state.paused ? 'Resume' : 'Pause');
    if (!state.paused) flushLog();
  });
  $('log').tBodies[0].addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (tr && !tr.classList.contains('detail') && !window.getSelection().toString()) toggleRow(tr);
  });
  $('stderr-clear').addEventListener('click', () => {
    $('stderr').replaceChildren();
    setText('stderr-count', 0);
    $('stderr-empty').hidden = false;
  });
  $('errors-clear').addEventListener('click', () => {
    $('errors').replaceChildren();
    setText('errors-count', 0);
    $('errors-empty').hidden = false;
  });
  $('log').hidden = true;
  setText('endpoint', location.host);
}

async function main() {
  wireUi();
  setConn('connecting', 'connecting…');
  let avd;
  try {
    avd = await import('/avd.js');
  } catch (e) {
    setConn('error', 'client missing');
    banner('Could not load /avd.js, the client library (is avd started with a --client-dir that holds it?).', 'bad');
    return;
  }
  const hasToken = new URLSearchParams(location.search).has('token') || (window.__AVD__ && window.__AVD__.token);
  let lastError = null;
  const client = new avd.AvdClient({
    role: 'frontend',
    name: 'console',
    subscribe: ['*'],
    reconnect: { minMs: 500, maxMs: 4000 },
    onError: (err, what) => {
      lastError = err;
      console.warn('[console]', what, err);
    },
  });
  state.client = client;
  // for a look from the browser's developer tools
  window.avdConsole = { client, state, refresh };

  client.on('*', onAnyEvent);
  client.on('backend:stderr', (data) => addStderr(data, Date.now()));

  client.onStatus((st) => {
    if (st === 'open') {
      setConn('open', 'connected');
      setText('server', client.server || '—');
      setText('self', client.session || '—');
      if (client.session) state.names.set(client.session, 'console');
      banner(null);
      state.health.clear();
      refresh();
    } else if (st === 'connecting') {
      setConn('connecting', 'connecting…');
    } else if (st === 'disconnected') {
      setConn('down', 'disconnected');
      const why = lastError && lastError.message ? ` (${lastError.message})` : '';
      banner(
        hasToken
          ? `Not connected to avd${why}. Retrying… If avd was restarted with a new token, open the address it printed.`
          : 'This page has no ?token= in its address: open the address avd printed at start (http://127.0.0.1:PORT/?token=…).',
        'bad'
      );
    } else if (st === 'closed') {
      setConn('down', 'closed');
    }
  });
  if (!hasToken) banner('This page has no ?token= in its address: open the address avd printed at start (http://127.0.0.1:PORT/?token=…).', 'warn');

  setInterval(() => {
    if (document.visibilityState !== 'hidden') refresh();
  }, REFRESH_MS);
  setInterval(tickAges, 1000);
}

main();
