'use strict';
// End-to-end tests of avd-shell: a real avd, a real avd-shell on an Xvfb
// display of its own, and a test backend that drives the window through avd.
//
// If Xvfb cannot start, every test that needs a display is reported as
// skipped, with the reason, never as passed.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const http = require('node:http');
const L = require('./lib');

const FIXTURES = path.join(__dirname, 'fixtures');
const T = { timeout: 40000 };
const BUSY = (ms, value) => `(function () { var t = Date.now(); while (Date.now() - t < ${ms}) {} return ${JSON.stringify(value)}; })()`;

function requireBuilt() {
  assert.ok(fs.existsSync(L.SHELL_BIN), `avd-shell is not built: ${L.SHELL_BIN} (run make in webview-shell/)`);
  assert.ok(L.WebSocket, 'the ws package cannot be loaded (npm ci in tests/, or set NODE_PATH)');
}

function httpGet(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', () => resolve(0));
    req.setTimeout(3000, () => { req.destroy(); resolve(0); });
  });
}

// Child processes of pid whose command name starts with prefix.
function childrenNamed(pid, prefix) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = stat.match(/^\d+ \((.*)\) \S (\d+)/);
      if (m && Number(m[2]) === pid && m[1].startsWith(prefix)) out.push(Number(d));
    } catch (_) { /* gone */ }
  }
  return out;
}

// The names of the X toplevel windows (xwininfo), or null without it.
function xWindowNames(display) {
  if (!L.which('xwininfo')) return null;
  const r = spawnSync('xwininfo', ['-root', '-tree', '-display', display], { encoding: 'utf8', timeout: 10000 });
  return r.status === 0 ? r.stdout : null;
}

test('without a display it exits with status 2 and one line', T, async () => {
  requireBuilt();
  const env = { ...process.env, DISPLAY: '', XDG_RUNTIME_DIR: L.tmpdir('avd-shell-nodisp-') };
  delete env.WAYLAND_DISPLAY;
  const shell = L.startShell([], env);
  const e = await shell.waitExit(10000);
  assert.ok(e, 'avd-shell did not exit without a display');
  assert.equal(e.code, 2, `exit status (stderr: ${shell.err})`);
  const lines = shell.err.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${shell.err}`);
  assert.match(lines[0], /^avd-shell: cannot open a display/);
});

test('a bad option exits with status 2 and one line', T, async () => {
  requireBuilt();
  for (const args of [['--label', 'a.b'], ['--width', '0'], ['--nope']]) {
    const shell = L.startShell(args, { ...process.env, DISPLAY: '' });
    const e = await shell.waitExit(10000);
    assert.equal(e && e.code, 2, `${args.join(' ')}: ${shell.err}`);
    assert.equal(shell.err.trim().split('\n').length, 1, `${args.join(' ')}: ${shell.err}`);
  }
});

describe('avd-shell under Xvfb', () => {
  let skip = null;
  let xvfb; let avd; let backend; let shell; let runtimeDir; let uiDir;
  const others = [];     // extra shells started by single tests
  const echoCalls = [];  // every test.echo call the backend received

  // Every test in this block: skipped with the reason when there is no display.
  let failed = false;
  const xtest = (name, fn) => test(name, T, async (t) => {
    if (skip) { t.skip(skip); return; }
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  });

  async function connectBackend() {
    backend = await L.Peer.connect(avd, { role: 'backend', name: 'shell-test-backend' });
    await backend.register({
      'test.echo': (params, msg) => { echoCalls.push({ params, caller: msg.caller }); return { echo: params.text, caller: msg.caller }; },
    });
    await backend.ok('avd.subscribe', { events: ['window.*', 'page.*'] });
  }

  async function waitRegistered(label, ms = 20000) {
    return L.waitFor(async () => (await L.shellMethods(backend, label)).length === 9, ms,
      `window.${label}.* to be registered`);
  }

  before(async () => {
    requireBuilt();
    try {
      xvfb = await L.startXvfb();
    } catch (e) {
      skip = `Xvfb cannot start: ${e.message}`;
      console.log(`# SKIP ${skip}`);
      return;
    }
    runtimeDir = L.tmpdir('avd-shell-run-');
    uiDir = L.tmpdir('avd-shell-ui-');
    for (const f of fs.readdirSync(FIXTURES)) fs.copyFileSync(path.join(FIXTURES, f), path.join(uiDir, f));
    fs.writeFileSync(path.join(uiDir, 'index.html'), '<!doctype html><title>avd test ui</title><h1>avd</h1>');
    avd = await L.startAvd({ runtimeDir, uiDir });
    await connectBackend();
    // No flags: the shell finds avd through the url and token files.
    shell = L.startShell([], L.shellEnv(xvfb.display, runtimeDir));
    await Promise.race([
      waitRegistered('main'),
      shell.exited.then((e) => { throw new Error(`avd-shell exited early ${JSON.stringify(e)}: ${shell.err}`); }),
    ]);
  });

  after(async () => {
    if (failed) {
      // What the processes said is the first thing one needs on a failure.
      for (const c of [shell, ...others, avd && avd.child]) {
        if (c && c.err) console.log(`# ${c.name} ${c.pid} stderr:\n${c.err.replace(/^/gm, '#   ')}`);
      }
    }
    if (backend) backend.close();
    for (const s of [...others, shell]) if (s) await s.stop();
    if (avd) await avd.child.stop();
    if (xvfb) await xvfb.child.stop();
    for (const d of [runtimeDir, uiDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  xtest('registers window.main.* as frontend window:main and opens avd\'s page', async () => {
    const methods = await L.shellMethods(backend, 'main');
    const names = methods.map((m) => m.method).sort();
    assert.deepEqual(names, ['close', 'eval_js', 'load_html', 'load_url', 'reload', 'resize',
      'set_title', 'set_visible', 'stop'].map((n) => `window.main.${n}`));
    assert.ok(methods.every((m) => m.owner_name === 'window:main'), JSON.stringify(methods));
    const ready = await backend.waitEvent('window.main.ready');
    assert.equal(ready.data.visible, true);
    assert.equal(ready.data.width, 1024);
    assert.equal(ready.data.height, 768);
    // The view starts on about:blank; wait for avd's page to be complete.
    await L.waitFor(async () => (await backend.ok('window.main.eval_js',
      { script: 'document.readyState === "complete" && location.href' })) === `${avd.httpUrl}/`,
    10000, 'avd\'s page to load');
    assert.equal(await backend.ok('window.main.eval_js', { script: 'document.title' }), 'avd test ui');
  });

  xtest('load_html answers, then load_started and load_finished arrive', async () => {
    const since = backend.mark();
    const r = await backend.ok('window.main.load_html', { html: '<title>loaded</title><p>hello</p>' });
    assert.equal(r.base_url, `${avd.httpUrl}/`);
    await backend.waitEvent('window.main.load_started', { since });
    const fin = await backend.waitEvent('window.main.load_finished', { since });
    assert.equal(fin.data.url, `${avd.httpUrl}/`);
    assert.equal(await backend.ok('window.main.eval_js', { script: 'document.title' }), 'loaded');
  });

  xtest('eval_js returns the script\'s value as JSON', async () => {
    const ev = (script) => backend.ok('window.main.eval_js', { script });
    assert.equal(await ev('6*7'), 42);
    assert.deepEqual(await ev('({a: [1, "x", null], b: {c: true}})'), { a: [1, 'x', null], b: { c: true } });
    assert.equal(await ev('"你好 😀"'), '你好 😀');
    assert.equal(await ev('undefined'), null);
    assert.equal(await ev('var x = 5; x + 1'), 6);
    // A lone surrogate is passed on as JSON.stringify wrote it; avd mends it.
    assert.equal(await ev('"a\\ud83db"'), 'a\ufffdb');
  });

  xtest('big messages: a 300 KB document loads, a result over avd\'s limit is refused', async () => {
    const big = `<title>big</title><pre>${'0123456789abcdef'.repeat(20000)}</pre>`;
    assert.equal(big.length > 300000, true);
    await backend.ok('window.main.load_html', { html: big });
    await L.waitFor(async () => (await backend.ok('window.main.eval_js', { script: 'document.title' })) === 'big', 10000, 'the big page');
    assert.equal(await backend.ok('window.main.eval_js', { script: 'document.body.textContent.length' }), 320000);
    const r = await backend.call('window.main.eval_js', { script: '"x".repeat(2 * 1024 * 1024)' });
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'PAYLOAD_TOO_LARGE', JSON.stringify(r.error).slice(0, 300));
    assert.equal(r.error.data.limit, 1048576);
  });

  xtest('a throwing script gives SCRIPT_EXECUTION with a preview of at most 100 characters', async () => {
    let r = await backend.call('window.main.eval_js', { script: 'throw new Error("boom")' });
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'SCRIPT_EXECUTION');
    assert.equal(r.error.name, 'ScriptExecutionError');
    assert.match(r.error.message, /boom/);
    assert.deepEqual(r.error.data, { script_preview: 'throw new Error("boom")' });

    const long = `throw new TypeError("long"); // ${'é'.repeat(200)}`;
    r = await backend.call('window.main.eval_js', { script: long });
    assert.equal(r.error.code, 'SCRIPT_EXECUTION');
    assert.equal(r.error.data.script_preview, [...long].slice(0, 100).join(''));

    r = await backend.call('window.main.eval_js', { script: 'this is not javascript(' });
    assert.equal(r.error.code, 'SCRIPT_EXECUTION');
    assert.match(r.error.message, /SyntaxError/);
  });

  xtest('bad params give WINDOW_OPERATION naming the operation', async () => {
    const cases = [
      ['eval_js', {}], ['eval_js', { script: 42 }], ['load_url', { url: 'not a url' }],
      ['load_url', {}], ['load_html', { html: 1 }], ['load_html', { html: '', base_url: 'x' }],
      ['set_visible', { visible: 'yes' }], ['set_title', {}], ['resize', { width: 'wide', height: 10 }],
      ['resize', { width: 0, height: 10 }], ['eval_js', [1, 2]],
    ];
    for (const [op, params] of cases) {
      const r = await backend.call(`window.main.${op}`, params);
      assert.equal(r.ok, false, `${op} ${JSON.stringify(params)} succeeded`);
      assert.equal(r.error.code, 'WINDOW_OPERATION', `${op} ${JSON.stringify(params)}: ${JSON.stringify(r.error)}`);
      assert.equal(r.error.name, 'WindowOperationError');
      assert.deepEqual(r.error.data, { operation: op });
    }
  });

  xtest('set_title retitles the window and document.title', async () => {
    const title = 'avd-shell test ✓ "quoted"';
    assert.deepEqual(await backend.ok('window.main.set_title', { title }), { title });
    assert.equal(await backend.ok('window.main.eval_js', { script: 'document.title' }), title);
    const tree = xWindowNames(xvfb.display);
    if (tree !== null) {
      // xwininfo prints non-ASCII names escaped; the ASCII part is enough.
      assert.ok(tree.includes('avd-shell test'), `X window names:\n${tree}`);
    }
  });

  xtest('resize emits resized with the new size', async () => {
    const since = backend.mark();
    assert.deepEqual(await backend.ok('window.main.resize', { width: 900, height: 600 }), { width: 900, height: 600 });
    await backend.waitEvent('window.main.resized', { since, match: (d) => d.width === 900 && d.height === 600 });
    await L.waitFor(async () => (await backend.ok('window.main.eval_js', { script: 'innerWidth' })) === 900,
      5000, 'the page to be 900 px wide');
  });

  xtest('set_visible false emits hidden, true emits shown', async () => {
    let since = backend.mark();
    assert.deepEqual(await backend.ok('window.main.set_visible', { visible: false }), { visible: false });
    await backend.waitEvent('window.main.hidden', { since });
    since = backend.mark();
    assert.deepEqual(await backend.ok('window.main.set_visible', { visible: true }), { visible: true });
    await backend.waitEvent('window.main.shown', { since });
  });

  xtest('avd\'s address and token reach pages of avd\'s origin only, merged into a page\'s own config', async () => {
    await backend.ok('window.main.load_html', {
      html: '<script>window.__AURORAVIEW_CONFIG__ = {callTimeoutMs: 5};</script><title>own config</title>',
    });
    await L.waitFor(async () => (await backend.ok('window.main.eval_js', { script: 'document.title' })) === 'own config', 5000, 'the page');
    assert.deepEqual(await backend.ok('window.main.eval_js', { script: 'window.__AURORAVIEW_CONFIG__' }),
      { callTimeoutMs: 5, url: avd.wsUrl, token: avd.token });
    assert.deepEqual(await backend.ok('window.main.eval_js', { script: 'window.__AVD__' }),
      { url: avd.wsUrl, token: avd.token });

    // Another origin: the token must not be there.
    await backend.ok('window.main.load_html', { html: '<title>foreign</title>', base_url: 'http://example.invalid/' });
    await L.waitFor(async () => (await backend.ok('window.main.eval_js', { script: 'document.title' })) === 'foreign', 5000, 'the foreign page');
    assert.equal(await backend.ok('window.main.eval_js',
      { script: 'typeof window.__AVD__ + "," + typeof window.__AURORAVIEW_CONFIG__' }), 'undefined,undefined');
  });

  xtest('a page served by avd calls a backend method and receives its events', async (t) => {
    echoCalls.length = 0;
    const since = backend.mark();
    await backend.ok('window.main.load_url', { url: `${avd.httpUrl}/page.html` });
    await L.waitFor(() => echoCalls.find((c) => c.params.text === 'hello from the page'), 10000, 'the page to call test.echo');
    backend.emit('test.tick', { n: 1, text: 'tick from the backend' });
    const got = await backend.waitEvent('page.got_tick', { since });
    assert.deepEqual(got.data, { n: 1, text: 'tick from the backend' });

    const res = await L.waitFor(async () => {
      const r = await backend.ok('window.main.eval_js', { script: 'window.__results' });
      return r && r.echo && r.ticks.length ? r : null;
    }, 5000, 'the page to record the answer');
    assert.equal(res.error, null);
    assert.equal(res.search, '', 'the page URL carries no token');
    assert.deepEqual(res.config, { url: avd.wsUrl, token: avd.token });
    assert.deepEqual(res.echo, { echo: 'hello from the page', caller: res.session });
    assert.deepEqual(res.ticks, [{ n: 1, text: 'tick from the backend' }]);

    // Let the page paint its log, then keep a picture of the window.
    await L.sleep(500);
    const file = path.join(L.ARTIFACTS, 'avd-shell-page.png');
    const shot = L.screenshot(xvfb.display, file);
    if (shot.error) {
      t.diagnostic(`no screenshot: ${shot.error}`);
    } else {
      t.diagnostic(`screenshot: ${shot.file}${shot.note ? ` (${shot.note})` : ''}`);
      assert.ok(fs.statSync(shot.file).size > 1000, 'screenshot is not empty');
      const colours = shot.file.endsWith('.png') ? L.colourCount(shot.file) : null;
      // A blank or black screen has one or two colours; text and a badge many more.
      if (colours !== null) assert.ok(colours > 20, `the screenshot shows ${colours} colours only`);
    }
  });

  xtest('window.auroraview from /avd.global.js works in the shell', async (t) => {
    const status = await httpGet(`${avd.httpUrl}/avd.global.js`);
    if (status !== 200) { t.skip(`avd does not serve /avd.global.js (HTTP ${status})`); return; }
    echoCalls.length = 0;
    const since = backend.mark();
    await backend.ok('window.main.load_url', { url: `${avd.httpUrl}/auroraview.html` });
    await L.waitFor(() => echoCalls.find((c) => c.params.text === 'via auroraview'), 10000, 'auroraview.call from the page');
    // The page subscribes through auroraview.on; keep ticking until it hears one.
    const got = await L.waitFor(async () => {
      backend.emit('test.tick', { n: 2 });
      return backend.events.slice(since).find((e) => e.event === 'page.av_tick');
    }, 10000, 'page.av_tick');
    assert.deepEqual(got.data, { n: 2 });
    const av = await backend.ok('window.main.eval_js', { script: 'window.__av' });
    assert.equal(av.error, null);
    assert.equal(av.ready, true);
    assert.equal(av.config.callTimeoutMs, 7000, 'the page\'s own config is kept');
    assert.equal(av.config.token, avd.token, 'the token is merged in');
    assert.deepEqual(av.echo.echo, 'via auroraview');
  });

  xtest('navigation overtakes queued scripts', async () => {
    await backend.ok('window.main.load_html', { html: '<title>before</title>' });
    const order = [];
    const evals = [];
    for (let i = 0; i < 6; i++) {
      evals.push(backend.call('window.main.eval_js', { script: BUSY(150, `e${i}`) }).then((r) => { order.push(`e${i}`); return r; }));
    }
    const nav = backend.call('window.main.load_html', { html: '<title>after</title>' }).then((r) => { order.push('nav'); return r; });
    const [navR, ...evalR] = await Promise.all([nav, ...evals]);
    assert.equal(navR.ok, true);
    assert.ok(order.indexOf('nav') <= 1, `load_html waited for the scripts: ${order.join(' ')}`);
    // The scripts still ran, in order among themselves.
    assert.deepEqual(order.filter((o) => o !== 'nav'), ['e0', 'e1', 'e2', 'e3', 'e4', 'e5']);
    for (const r of evalR) assert.equal(r.ok, true, JSON.stringify(r));
  });

  xtest('a script call that avd cancels is never answered late', async () => {
    const stats = async () => {
      const s = await backend.ok('avd.stats', {});
      return s.late_answers !== undefined ? s.late_answers : (s.calls || {}).late_answers;
    };
    const before0 = await stats();
    assert.equal(typeof before0, 'number', 'avd.stats has late_answers');
    // Queued behind a busy script, then timed out by avd: dropped from the queue.
    const a = backend.call('window.main.eval_js', { script: BUSY(700, 'A') }, { timeout_ms: 0 });
    const b = backend.call('window.main.eval_js', { script: '"B"' }, { timeout_ms: 150 });
    const c = backend.call('window.main.eval_js', { script: '"C"' });
    assert.equal((await b).error.code, 'TIMEOUT');
    assert.equal((await a).result, 'A');
    assert.equal((await c).result, 'C');
    // Running when avd gives up on it.
    const d = await backend.call('window.main.eval_js', { script: BUSY(600, 'D') }, { timeout_ms: 150 });
    assert.equal(d.error.code, 'TIMEOUT');
    assert.equal(await backend.ok('window.main.eval_js', { script: '1+1' }), 2);
    await L.sleep(800);
    assert.equal(await stats(), before0, 'the shell answered a cancelled call');
  });

  xtest('the web process dying emits web_process_crashed; reload recovers', async () => {
    const pids = childrenNamed(shell.pid, 'WebKitWebProces');
    assert.ok(pids.length >= 1, 'found the WebKitWebProcess of the shell');
    const since = backend.mark();
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const ev = await backend.waitEvent('window.main.web_process_crashed', { since });
    assert.equal(ev.data.reason, 'crashed');
    const since2 = backend.mark();
    await backend.ok('window.main.load_url', { url: `${avd.httpUrl}/` });
    await backend.waitEvent('window.main.load_finished', { since: since2 });
    assert.equal(await backend.ok('window.main.eval_js', { script: '1+1' }), 2);
  });

  xtest('a second window with the same label exits with status 1', async () => {
    const dup = L.startShell(['--hidden'], L.shellEnv(xvfb.display, runtimeDir));
    others.push(dup);
    const e = await dup.waitExit(15000);
    assert.ok(e, 'the duplicate did not exit');
    assert.equal(e.code, 1, dup.err);
    assert.match(dup.err, /window label "main" is taken/);
    assert.equal((await L.shellMethods(backend, 'main')).length, 9, 'the first window keeps its methods');
  });

  xtest('without an avd address it exits with status 2 and one line', async (t) => {
    // /tmp/avd-$UID/url, the fallback, may belong to a real avd started
    // without XDG_RUNTIME_DIR; the shell would rightly find that one.
    const fallback = `/tmp/avd-${process.getuid()}/url`;
    if (fs.existsSync(fallback)) { t.skip(`${fallback} exists`); return; }
    const empty = L.tmpdir('avd-shell-empty-');
    const s = L.startShell([], L.shellEnv(xvfb.display, empty));
    others.push(s);
    const e = await s.waitExit(10000);
    fs.rmSync(empty, { recursive: true, force: true });
    assert.ok(e, 'did not exit');
    assert.equal(e.code, 2, s.err);
    assert.equal(s.err.trim().split('\n').length, 1, s.err);
    assert.match(s.err, /no avd address/);
  });

  xtest('--keep-running: close hides the window, the program stays; SIGTERM ends it with 0', async () => {
    const kr = L.startShell(['--label', 'kr', '--keep-running', '--avd-url', avd.wsUrl, '--token', avd.token],
      L.shellEnv(xvfb.display, runtimeDir));
    others.push(kr);
    await waitRegistered('kr');
    let since = backend.mark();
    assert.deepEqual(await backend.ok('window.kr.close', {}), { closed: true, exiting: false });
    await backend.waitEvent('window.kr.closing', { since });
    await backend.waitEvent('window.kr.closed', { since });
    assert.equal(await kr.waitExit(1000), null, 'the program ended');
    since = backend.mark();
    await backend.ok('window.kr.set_visible', { visible: true });
    await backend.waitEvent('window.kr.shown', { since });
    assert.equal(await backend.ok('window.kr.eval_js', { script: '"still here"' }), 'still here');
    // The page may close its window too; with --keep-running that hides it.
    since = backend.mark();
    await backend.ok('window.kr.eval_js', { script: 'window.close(); 1' });
    await backend.waitEvent('window.kr.closing', { since });
    await backend.waitEvent('window.kr.hidden', { since });
    await backend.waitEvent('window.kr.closed', { since });

    since = backend.mark();
    kr.proc.kill('SIGTERM');
    const e = await kr.waitExit(10000);
    assert.deepEqual(e, { code: 0, signal: null }, kr.err);
    await backend.waitEvent('window.kr.closing', { since });
    await backend.waitEvent('window.kr.closed', { since });
    await L.waitFor(async () => (await L.shellMethods(backend, 'kr')).length === 0, 5000, 'window.kr.* to vanish');
  });

  xtest('started before avd, it keeps trying, then connects and loads avd\'s page', async () => {
    const port = await L.freePort();
    const token = 'feedc0de'.repeat(4);
    const dir = L.tmpdir('avd-shell-early-');
    const early = L.startShell(['--label', 'early', '--avd-url', `ws://127.0.0.1:${port}/ws`, '--token', token],
      L.shellEnv(xvfb.display, dir));
    others.push(early);
    await L.sleep(1200);
    assert.equal(early.exit, null, `the shell gave up: ${early.err}`);
    assert.match(early.err, /cannot reach avd/);
    const second = await L.startAvd({ runtimeDir: dir, uiDir, token, port });
    try {
      const peer = await L.Peer.connect(second);
      try {
        await L.waitFor(async () => (await L.shellMethods(peer, 'early')).length === 9, 15000, 'window.early.*');
        // The first load failed while avd was down; the shell tries again.
        await L.waitFor(async () => (await peer.ok('window.early.eval_js',
          { script: 'document.readyState === "complete" && location.href' })) === `${second.httpUrl}/`,
        10000, 'avd\'s page in the early window');
      } finally { peer.close(); }
      early.proc.kill('SIGTERM');
      assert.deepEqual(await early.waitExit(10000), { code: 0, signal: null }, early.err);
    } finally {
      await second.child.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  xtest('reconnects to a restarted avd (new port, new token) and re-injects the new address', async () => {
    backend.close();
    await avd.child.stop();
    avd = await L.startAvd({ runtimeDir, uiDir });
    await connectBackend();
    // Backoff tops out at 5 s.
    await waitRegistered('main', 15000);
    assert.equal(await backend.ok('window.main.eval_js', { script: '2+3' }), 5);
    const since = backend.mark();
    await backend.ok('window.main.load_url', { url: `${avd.httpUrl}/` });
    await backend.waitEvent('window.main.load_finished', { since });
    assert.deepEqual(await backend.ok('window.main.eval_js', { script: 'window.__AVD__' }),
      { url: avd.wsUrl, token: avd.token });
  });

  xtest('against a scripted avd: hello, register, __ping__, ids, and close overtaking a burst', async () => {
    const wss = new L.WebSocket.WebSocketServer({
      host: '127.0.0.1', port: 0,
      handleProtocols: (protocols) => (protocols.has('avd.v1') ? 'avd.v1' : false),
    });
    await new Promise((resolve) => wss.on('listening', resolve));
    const conn = new Promise((resolve) => wss.once('connection', (ws, req) => resolve({ ws, req })));
    const fake = L.startShell(['--label', 'fake', '--url', 'about:blank', '--hidden',
      '--avd-url', `ws://127.0.0.1:${wss.address().port}/ws`, '--token', 'tok'],
    L.shellEnv(xvfb.display, runtimeDir));
    others.push(fake);
    try {
      const { ws, req } = await Promise.race([conn, L.sleep(10000).then(() => { throw new Error('the shell did not connect'); })]);
      assert.equal(req.headers['sec-websocket-protocol'], 'avd.v1');
      const inbox = [];
      ws.on('message', (d) => inbox.push(JSON.parse(String(d))));
      const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
      const next = (pred, what) => L.waitFor(() => inbox.find(pred), 10000, what);
      const send = (m) => ws.send(JSON.stringify(m));

      const hello = await next((m) => m.type === 'hello', 'hello');
      assert.deepEqual(hello, { type: 'hello', schema_version: 1, role: 'frontend', name: 'window:fake', token: 'tok' });
      send({ type: 'welcome', schema_version: 1, session: 's7', server: 'fake', heartbeat_interval_ms: 2000,
        config: { maxMessageBytes: 4096 } });
      const reg = await next((m) => m.method === 'avd.register', 'avd.register');
      assert.deepEqual([...reg.params.methods].sort(), ['close', 'eval_js', 'load_html', 'load_url', 'reload',
        'resize', 'set_title', 'set_visible', 'stop'].map((n) => `window.fake.${n}`));
      send({ id: reg.id, ok: true, result: { methods: reg.params.methods } });
      const ready = await next((m) => m.event === 'window.fake.ready', 'ready');
      assert.equal(ready.data.visible, false);

      send({ id: '__av_ping_1', method: '__ping__', params: { schema_version: 1, ts: Date.now() } });
      const pong = await next((m) => m.id === '__av_ping_1', 'the pong');
      assert.equal(pong.ok, true);
      assert.equal(pong.result.status, 'pong');

      send({ id: 'c1', method: 'window.fake.nope', params: {}, caller: 's9', timeout_ms: 0 });
      assert.equal((await next((m) => m.id === 'c1', 'c1')).error.code, 'METHOD_NOT_FOUND');
      send({ id: 7, method: 'window.fake.eval_js', params: { script: '1+2' }, caller: 's9', timeout_ms: 0 });
      assert.deepEqual(await next((m) => m.id === 7, 'integer id'), { id: 7, ok: true, result: 3 });
      send({ type: 'cancel', id: 'never-sent', reason: 'timeout' });
      // The welcome said 4096 bytes at most.
      send({ id: 'c2', method: 'window.fake.eval_js', params: { script: '"y".repeat(5000)' }, caller: 's9', timeout_ms: 0 });
      const big = await next((m) => m.id === 'c2', 'c2');
      assert.equal(big.error.code, 'PAYLOAD_TOO_LARGE');
      assert.equal(big.error.data.limit, 4096);

      // One TCP write: the shell reads the whole burst before it runs any
      // of it, so the order of answers is the pipeline's, not arrival's.
      const burst = [
        ['c10', 'set_title', { title: 'x' }], ['c11', 'eval_js', { script: BUSY(300, 1) }],
        ['c12', 'eval_js', { script: '2' }], ['c13', 'resize', { width: 300, height: 200 }],
        ['c14', 'load_html', { html: '<p>late</p>' }], ['c15', 'close', {}],
      ];
      const mark = inbox.length;
      ws._socket.cork();
      for (const [id, op, params] of burst) send({ id, method: `window.fake.${op}`, params, caller: 's9', timeout_ms: 0 });
      ws._socket.uncork();
      await next((m) => m.id === 'c15', 'the close answer');
      await L.waitFor(() => burst.every(([id]) => inbox.some((m) => m.id === id)), 10000, 'every answer');
      const after = inbox.slice(mark);
      const order = after.map((m) => m.event || m.id);
      assert.deepEqual(order.slice(0, 3), ['window.fake.closing', 'window.fake.closed', 'c15'], order.join(' '));
      for (const [id, op] of burst.slice(0, 5)) {
        const r = after.find((m) => m.id === id);
        assert.equal(r.ok, false, `${id} ran after the close: ${JSON.stringify(r)}`);
        assert.deepEqual(r.error.data, { operation: op });
        assert.equal(r.error.code, 'WINDOW_OPERATION');
      }
      assert.equal(await Promise.race([closed, L.sleep(5000).then(() => 'no close')]), 1000);
      assert.deepEqual(await fake.waitExit(10000), { code: 0, signal: null }, fake.err);
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  xtest('close is answered ahead of queued scripts: closing, closed, exit 0', async () => {
    const since = backend.mark();
    const evals = [];
    for (let i = 0; i < 8; i++) evals.push(backend.call('window.main.eval_js', { script: BUSY(300, i) }));
    const t0 = Date.now();
    const close = await backend.call('window.main.close', {});
    const took = Date.now() - t0;
    assert.deepEqual(close, { id: close.id, ok: true, result: { closed: true, exiting: true } });
    assert.ok(took < 1500, `close took ${took} ms behind 8 x 300 ms of scripts`);
    await backend.waitEvent('window.main.closing', { since });
    await backend.waitEvent('window.main.closed', { since });
    for (const r of await Promise.all(evals)) {
      assert.ok(r.ok || r.error.code === 'WINDOW_OPERATION' || r.error.code === 'BACKEND_UNAVAILABLE',
        JSON.stringify(r));
    }
    const e = await shell.waitExit(10000);
    assert.deepEqual(e, { code: 0, signal: null }, shell.err);
    await L.waitFor(async () => (await L.shellMethods(backend, 'main')).length === 0, 5000, 'window.main.* to vanish');
  });
});
