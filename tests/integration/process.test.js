'use strict';
// Backends as real processes: what a user sees when one is killed.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { scope, uniq, isResponse, assertErrorResponse } = require('./lib/harness');

function spawnBackend(avd, methods) {
  const child = spawn(process.execPath,
    [path.join(__dirname, 'fixtures', 'node-backend.js'), avd.wsUrl, avd.token, ...methods],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env } });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('backend process did not register')), 5000);
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`backend exited ${code}`)); });
  });
  return { child, ready };
}

test('SIGKILL of a backend process mid-call fails the caller within 100 ms', async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const echo = uniq('api.echo');
  const { child, ready } = spawnBackend(avd, ['api.hang', echo]);
  t.after(() => { try { child.kill('SIGKILL'); } catch (_) { /* gone */ } });
  await ready;
  const fe = await s.client(avd);
  // The backend really works before it dies.
  const ok = await fe.call(echo, { x: 1 });
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.result, { x: 1 });

  const pending = fe.call('api.hang', {}, { timeout_ms: 0 }, 5000);
  await fe.expectNone(isResponse, 100, 'api.hang must still be pending');
  const killedAt = process.hrtime.bigint();
  child.kill('SIGKILL');
  const res = await pending;
  const ms = Number(process.hrtime.bigint() - killedAt) / 1e6;
  assertErrorResponse(res, 'BACKEND_UNAVAILABLE');
  assert.equal(res.error.data.method, 'api.hang');
  assert.equal(res.error.data.backend, 'node-child');
  assert.ok(ms < 100, `caller learned of the dead backend after ${ms.toFixed(1)} ms`);

  // The method is gone with its owner: the next call fails at once.
  const after = await fe.call(echo, {});
  assertErrorResponse(after, 'METHOD_NOT_FOUND');
});
