'use strict';
// PROTOCOL.md section 10: security defaults.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  Client, startAvd, scope, httpGet, rawHttp,
} = require('./lib/harness');

const T = { timeout: 15000 };

function listeners(file, port) {
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch (_) { return []; }
  const out = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [addr, portHex] = f[1].split(':');
    if (parseInt(portHex, 16) === port && f[3] === '0A') out.push(addr);
  }
  return out;
}

describe('origin checks', () => {
  let avd;
  before(async () => {
    avd = await startAvd(['--allow-origin', 'http://app.test:8080', '--allow-origin', 'http://second.test']);
  });
  after(async () => { if (avd) await avd.stop(); });

  test('an upgrade with a foreign Origin gets HTTP 403', T, async () => {
    assert.equal(await Client.upgradeStatus(avd, { origin: 'http://evil.example' }), 403);
  });

  test('look-alike origins get HTTP 403', T, async () => {
    const p = avd.port;
    for (const origin of [
      `https://127.0.0.1:${p}`,
      `http://127.0.0.1:${p}0`,
      `http://127.0.0.1:${p}.evil.example`,
      'http://127.0.0.1:1',
      'http://127.0.0.1',
      'null',
      'http://app.test:8081',
      'http://app.test:8080.evil.example',
    ]) {
      assert.equal(await Client.upgradeStatus(avd, { origin }), 403, `origin ${origin}`);
    }
  });

  test('the default origins http://127.0.0.1:PORT and http://localhost:PORT are accepted', T, async (t) => {
    const s = scope(t);
    for (const origin of [`http://127.0.0.1:${avd.port}`, `http://localhost:${avd.port}`]) {
      const c = await s.client(avd, { origin });
      assert.equal(c.welcome.type, 'welcome', `origin ${origin}`);
    }
  });

  test('every --allow-origin value is accepted', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd, { origin: 'http://app.test:8080' });
    assert.equal(c.welcome.type, 'welcome');
    assert.equal(typeof (await c.callOk('avd.stats')).sessions, 'number');
    const c2 = await s.client(avd, { origin: 'http://second.test' });
    assert.equal(c2.welcome.type, 'welcome');
  });

  test('no Origin (a non-browser client) is accepted, token still required', T, async (t) => {
    const s = scope(t);
    const c = await s.client(avd);
    assert.equal(c.welcome.type, 'welcome');
    assert.equal(await Client.upgradeStatus(avd, { urlToken: 'f'.repeat(32) }), 401);
  });
});

describe('listening socket and token', () => {
  let avd;
  before(async () => { avd = await startAvd([]); });
  after(async () => { if (avd) await avd.stop(); });

  test('the listening socket is bound to 127.0.0.1 only', T, async () => {
    const v4 = listeners('/proc/net/tcp', avd.port);
    const v6 = listeners('/proc/net/tcp6', avd.port);
    assert.ok(v4.length + v6.length > 0, `no listening socket found for port ${avd.port}`);
    assert.deepEqual(v4, ['0100007F'], 'IPv4 listeners');
    assert.deepEqual(v6, [], 'IPv6 listeners (none by default)');
  });

  test('the token file holds the token, mode 0600, in a directory of mode 0700', T, async () => {
    const dir = path.join(avd.runtimeDir, 'avd');
    const file = path.join(dir, 'token');
    const st = fs.statSync(file);
    assert.equal((st.mode & 0o777).toString(8), '600');
    assert.equal((fs.statSync(dir).mode & 0o777).toString(8), '700');
    assert.equal(fs.readFileSync(file, 'utf8').trim(), avd.token);
  });

  test('/healthz needs no token and tells status and counts only, no names', T, async (t) => {
    const s = scope(t);
    await s.client(avd, { role: 'backend', name: 'secret-backend-name' });
    const fe = await s.client(avd, { name: 'secret-frontend-name' });
    const res = await httpGet(avd, '/healthz');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /json/);
    const body = JSON.parse(res.body);
    assert.equal(body.status, 'ok');
    assert.equal(body.sessions, 2);
    assert.equal(body.backends, 1);
    for (const [k, v] of Object.entries(body)) {
      if (k !== 'status') assert.equal(typeof v, 'number', `/healthz field ${k} is a count, not ${JSON.stringify(v)}`);
    }
    assert.equal(res.body.includes('secret'), false);
    assert.equal(res.body.includes(fe.session), false);
    assert.equal(res.body.includes(avd.token), false);
  });

  test('an unknown HTTP path gets 404 and no token leaks', T, async () => {
    const res = await httpGet(avd, '/nope');
    assert.equal(res.status, 404);
    assert.equal(res.body.includes(avd.token), false);
  });
});

test('a token made by avd is 128 random bits in hex and written to the token file', T, async (t) => {
  const s = scope(t);
  const a = await s.avd([], {}, { token: false });
  const b = await s.avd([], {}, { token: false });
  assert.match(a.token, /^[0-9a-f]{32}$/);
  assert.notEqual(a.token, b.token);
  assert.equal(fs.readFileSync(path.join(a.runtimeDir, 'avd', 'token'), 'utf8').trim(), a.token);
  const c = await s.client(a);
  assert.equal(c.welcome.type, 'welcome');
});

test('--token-file supplies the token', T, async (t) => {
  const s = scope(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-test-tok-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'tok');
  const token = 'abcdef0123456789abcdef0123456789';
  fs.writeFileSync(file, token + '\n', { mode: 0o600 });
  const avd = await s.avd(['--token-file', file]);
  assert.equal(avd.token, token);
  const c = await s.client(avd);
  assert.equal(c.welcome.type, 'welcome');
  assert.equal(await Client.upgradeStatus(avd, { urlToken: 'abcdef0123456789abcdef012345678a' }), 401);
});

test('--no-auth accepts clients without a token and prints no token', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--no-auth']);
  assert.equal(avd.token, null);
  assert.match(avd.line, /^avd listening on http:\/\/127\.0\.0\.1:\d+\/\s*$/);
  const c = await s.client(avd, { urlToken: false });
  assert.equal(c.welcome.type, 'welcome');
});

describe('static files from --ui', () => {
  let avd;
  let root;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-test-ui-'));
    fs.mkdirSync(path.join(root, 'ui', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(root, 'ui', 'index.html'), '<!doctype html><title>avd ui</title>INDEX-PAGE\n');
    fs.writeFileSync(path.join(root, 'ui', 'hello.txt'), 'hello from ui\n');
    fs.writeFileSync(path.join(root, 'ui', 'sub', 'inner.txt'), 'inner file\n');
    fs.writeFileSync(path.join(root, 'secret.txt'), 'TOPSECRET\n');
    avd = await startAvd(['--ui', path.join(root, 'ui')]);
  });
  after(async () => {
    if (avd) await avd.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test('a file under --ui is served', T, async () => {
    const res = await httpGet(avd, `/hello.txt?token=${avd.token}`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello from ui\n');
    const inner = await httpGet(avd, `/sub/inner.txt?token=${avd.token}`);
    assert.equal(inner.status, 200);
    assert.equal(inner.body, 'inner file\n');
  });

  test('the URL avd prints serves index.html', T, async () => {
    const res = await httpGet(avd, `/?token=${avd.token}`);
    assert.equal(res.status, 200);
    assert.match(res.body, /INDEX-PAGE/);
    assert.match(String(res.headers['content-type']), /text\/html/);
  });

  test('path traversal with /../ and %2e%2e is refused', T, async () => {
    for (const p of ['/../secret.txt', '/sub/../../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E/secret.txt',
      '/sub/%2e%2e/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '/.%2e/secret.txt']) {
      const res = await rawHttp(avd, `GET ${p}?token=${avd.token} HTTP/1.1\r\nHost: 127.0.0.1:${avd.port}\r\nConnection: close\r\n\r\n`);
      assert.ok([400, 403, 404].includes(res.status), `${p}: status ${res.status}`);
      assert.equal(res.body.includes('TOPSECRET'), false, `${p} leaked the file outside --ui`);
    }
  });

  test('a directory gets no listing', T, async () => {
    for (const p of ['/sub/', '/sub']) {
      const res = await httpGet(avd, `${p}?token=${avd.token}`);
      assert.equal(res.body.includes('inner.txt'), false, `${p} lists the directory: ${res.body.slice(0, 200)}`);
      assert.ok([301, 302, 403, 404].includes(res.status), `${p}: status ${res.status}`);
    }
  });

  test('a missing file gets 404', T, async () => {
    const res = await httpGet(avd, `/missing.txt?token=${avd.token}`);
    assert.equal(res.status, 404);
  });
});
