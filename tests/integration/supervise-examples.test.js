'use strict';
// examples/python-backend and examples/node-backend, run the two ways their
// READMEs show: supervised by avd (stdio), and on their own over WebSocket.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { REPO, startAvd, Client, isEvent } = require('./lib/harness');
const { PY, makeTmpDir, readyOf, removeDir, within, writeConfig } = require('./lib/supervise');

const T = { timeout: 15000 };
const EXAMPLES = [
  { lang: 'python', ns: 'py', script: 'examples/python-backend/app.py', own: 'python-example' },
  { lang: 'node', ns: 'node', script: 'examples/node-backend/app.mjs', own: 'node-example' },
];

// Where this test process found `ws`, so a Node child finds it too.
const WS_DIR = path.dirname(path.dirname(require.resolve('ws/package.json')));

function commonTests(getFe, ex, nameOf) {
  test(`${ex.lang}: backend_ready lists echo, add and count`, T, async () => {
    const r = await getFe().next(readyOf(nameOf(ex)), 8000);
    assert.deepEqual(r.data.handlers, ['echo', 'add', 'count'].map((m) => `${ex.ns}.${m}`));
  });

  test(`${ex.lang}: echo and add answer`, T, async () => {
    const fe = getFe();
    assert.deepEqual(await fe.callOk(`${ex.ns}.echo`, { text: '你好 😀' }), { text: '你好 😀', by: ex.lang });
    assert.equal(await fe.callOk(`${ex.ns}.add`, [2, 40]), 42);
    assert.equal(await fe.callOk(`${ex.ns}.add`, { a: 1.5, b: 2 }), 3.5);
  });

  test(`${ex.lang}: count streams its chunks in order, then the total`, T, async () => {
    const fe = getFe();
    const id = fe.newId();
    const params = ex.lang === 'python' ? { n: 4, delay: 0.01 } : { n: 4, delay_ms: 10 };
    const res = await fe.call(`${ex.ns}.count`, params, { id });
    assert.deepEqual(res.result, { total: 4 });
    const chunks = fe.drain((m) => m.type === 'chunk' && m.id === id).map((m) => m.data);
    assert.deepEqual(chunks, [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
  });

  test(`${ex.lang}: answers example:ping with example:pong`, T, async () => {
    const fe = getFe();
    const n = `${ex.lang} ${Date.now()}`;
    fe.send({ type: 'event', event: 'example:ping', data: { n } });
    const pong = await fe.next((m) => isEvent(m, 'example:pong') && m.data.by === ex.lang &&
      m.data.got && m.data.got.n === n, 3000);
    assert.deepEqual(pong.data, { by: ex.lang, got: { n }, to: fe.session });
  });
}

describe('the examples supervised by avd, with the commands of their READMEs', () => {
  let avd;
  let fe;
  let dir;
  before(async () => {
    dir = makeTmpDir('avd-ex-');
    const conf = writeConfig(null, {
      backends: [
        { name: 'pyapp', command: 'python3 examples/python-backend/app.py', cwd: REPO },
        { name: 'nodeapp', command: 'node examples/node-backend/app.mjs', cwd: REPO },
      ],
    }, dir);
    // The same PATH as this test process: python3 and node as a user has them.
    avd = await startAvd(['--config', conf]);
    fe = await Client.connect(avd, { subscribe: ['example:pong'] });
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd) {
      const t0 = Date.now();
      await avd.stop();
      // Both end on stdin's close; no SIGTERM needed.
      assert.ok(Date.now() - t0 < 1900, `stopping took ${Date.now() - t0} ms`);
    }
    removeDir(dir);
  });
  const names = { python: 'pyapp', node: 'nodeapp' };
  for (const ex of EXAMPLES) commonTests(() => fe, ex, (e) => names[e.lang]);
});

describe('the examples on their own, over WebSocket', () => {
  let avd;
  let fe;
  const children = {};
  const stderr = { python: '', node: '' };
  before(async () => {
    avd = await startAvd([]);
    fe = await Client.connect(avd, { subscribe: ['example:pong'] });
    const env = { ...process.env };
    delete env.AURORAVIEW_PACKED;
    delete env.AVD_BACKEND_NAME;
    delete env.AVD_URL;
    delete env.AVD_TOKEN;
    // Python finds avd through its runtime files; Node through AVD_URL/AVD_TOKEN.
    children.python = spawn(PY, [path.join(REPO, EXAMPLES[0].script)], {
      env: { ...env, XDG_RUNTIME_DIR: avd.runtimeDir }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.node = spawn(process.execPath, [path.join(REPO, EXAMPLES[1].script)], {
      env: {
        ...env, AVD_URL: avd.wsUrl, AVD_TOKEN: avd.token,
        NODE_PATH: [WS_DIR, env.NODE_PATH].filter(Boolean).join(path.delimiter),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    for (const lang of ['python', 'node']) {
      children[lang].stderr.setEncoding('utf8');
      children[lang].stderr.on('data', (d) => { stderr[lang] += d; });
    }
  });
  after(async () => {
    if (fe) await fe.close();
    for (const c of Object.values(children)) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    if (avd) await avd.stop();
  });
  for (const ex of EXAMPLES) commonTests(() => fe, ex, (e) => e.own);

  test('SIGTERM ends both normally (exit code 0)', T, async () => {
    for (const lang of ['python', 'node']) {
      const c = children[lang];
      const exited = new Promise((r) => c.once('exit', (code, signal) => r({ code, signal })));
      c.kill('SIGTERM');
      const how = await within(exited, 5000);
      assert.deepEqual(how, { code: 0, signal: null }, `${lang}: stderr ${stderr[lang]}`);
    }
  });
});
