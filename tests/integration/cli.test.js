'use strict';
// Command line and config file behaviour.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const {
  Client, runAvd, scope, isCall, assertErrorResponse, uniq,
} = require('./lib/harness');

const T = { timeout: 15000 };
const TOKEN = '0123456789abcdef0123456789abcdef';

function tmpFile(t, name, content) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-test-cli-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

// exit 2, exactly one line on stderr matching re, no listening line
function assertUsageError(r, re, what) {
  assert.equal(r.timedOut, false, `${what}: avd kept running instead of exiting (stdout ${JSON.stringify(r.stdout)})`);
  assert.equal(r.code, 2, `${what}: exit code (stderr ${JSON.stringify(r.stderr)})`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0], re, `${what}: the message names the problem`);
  assert.equal(/listening/.test(r.stdout), false, `${what}: nothing listening`);
}

test('an unknown flag exits 2 with a one-line message naming it', T, async () => {
  const r = await runAvd(['--port', '0', '--token', TOKEN, '--bogus-flag']);
  assertUsageError(r, /--bogus-flag/, 'unknown flag');
});

test('--port abc exits 2 with a one-line message', T, async () => {
  const r = await runAvd(['--port', 'abc', '--token', TOKEN]);
  assertUsageError(r, /port|abc/i, '--port abc');
});

test('out-of-range and negative numbers are refused with exit 2', T, async () => {
  for (const args of [['--port', '70000'], ['--port', '-1'], ['--call-timeout-ms', '-5'],
    ['--max-message-bytes', 'lots'], ['--heartbeat-interval-ms', '12x']]) {
    const r = await runAvd([...(args[0] === '--port' ? [] : ['--port', '0']), '--token', TOKEN, ...args]);
    assertUsageError(r, new RegExp(args[0].replace(/^--/, '').split('-')[0], 'i'), args.join(' '));
  }
});

test('a --token-file that does not exist exits 2', T, async () => {
  const missing = `/nonexistent/avd-test-token-${process.pid}`;
  const r = await runAvd(['--port', '0', '--token-file', missing]);
  assertUsageError(r, /token/i, 'missing --token-file');
});

test('a flag missing its value exits 2', T, async () => {
  const r = await runAvd(['--token', TOKEN, '--port']);
  assertUsageError(r, /port/i, '--port without a value');
});

test('an unknown --log-level exits 2', T, async () => {
  const r = await runAvd(['--port', '0', '--token', TOKEN, '--log-level', 'chatty']);
  assertUsageError(r, /log|chatty/i, '--log-level chatty');
});

test('a busy port exits 2 with a one-line message', T, async (t) => {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => srv.close(resolve)));
  const port = srv.address().port;
  const r = await runAvd(['--port', String(port), '--token', TOKEN]);
  assertUsageError(r, new RegExp(`${port}|in use|bind`, 'i'), 'busy port');
});

test('an unknown config key exits 2 with a one-line message naming it', T, async (t) => {
  const cfg = tmpFile(t, 'avd.json', JSON.stringify({ call_timeout_ms: 1000, bogus_key: 1 }));
  const r = await runAvd(['--port', '0', '--token', TOKEN, '--config', cfg]);
  assertUsageError(r, /bogus_key/, 'unknown config key');
});

test('a config file that is not JSON, or a bad value in it, exits 2', T, async (t) => {
  const notJson = tmpFile(t, 'bad.json', '{ call_timeout_ms: ');
  assertUsageError(await runAvd(['--port', '0', '--token', TOKEN, '--config', notJson]), /./, 'config not JSON');
  const badValue = tmpFile(t, 'badval.json', JSON.stringify({ call_timeout_ms: 'soon' }));
  assertUsageError(await runAvd(['--port', '0', '--token', TOKEN, '--config', badValue]), /call_timeout_ms/, 'config bad value');
  const missing = path.join(os.tmpdir(), `avd-test-no-such-config-${process.pid}.json`);
  assertUsageError(await runAvd(['--port', '0', '--token', TOKEN, '--config', missing]), /no-such-config|No such file/i, 'missing config');
});

test('--version prints the version that welcome.server carries and exits 0', T, async (t) => {
  const r = await runAvd(['--version']);
  assert.equal(r.code, 0, `stderr ${r.stderr}`);
  const m = /(\d+\.\d+\.\d+)/.exec(r.stdout);
  assert.ok(m, `--version output ${JSON.stringify(r.stdout)} has a version`);
  assert.match(r.stdout, /avd/);
  const s = scope(t);
  const avd = await s.avd();
  const c = await s.client(avd);
  assert.equal(c.welcome.server, `avd/${m[1]}`);
});

test('--help lists the flags and exits 0', T, async () => {
  const r = await runAvd(['--help']);
  assert.equal(r.code, 0, `stderr ${r.stderr}`);
  for (const flag of ['--port', '--token', '--no-auth', '--allow-origin', '--config', '--call-timeout-ms',
    '--max-message-bytes', '--version']) {
    assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
  }
});

test('config file values appear in welcome.config', T, async (t) => {
  const s = scope(t);
  const cfg = tmpFile(t, 'avd.json', JSON.stringify({
    call_timeout_ms: 4321,
    heartbeat_interval_ms: 1111,
    heartbeat_timeout_ms: 7777,
    max_message_bytes: 123456,
    allow_origin: ['http://cfg.test:1234'],
  }));
  const avd = await s.avd(['--config', cfg]);
  const c = await s.client(avd);
  assert.equal(c.welcome.heartbeat_interval_ms, 1111);
  assert.equal(c.welcome.config.callTimeoutMs, 4321);
  assert.equal(c.welcome.config.heartbeatTimeoutMs, 7777);
  assert.equal(c.welcome.config.maxMessageBytes, 123456);
  const o = await s.client(avd, { origin: 'http://cfg.test:1234' });
  assert.equal(o.welcome.type, 'welcome', 'allow_origin from the config file is accepted');
});

test('the port and token can come from the config file', T, async (t) => {
  const s = scope(t);
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  const cfg = tmpFile(t, 'avd.json', JSON.stringify({ port, token: TOKEN }));
  const avd = await s.avd(['--config', cfg], {}, { token: false, port: false });
  assert.equal(avd.port, port);
  assert.equal(avd.token, TOKEN);
  const c = await s.client(avd);
  assert.equal(c.welcome.type, 'welcome');
});

test('SIGTERM with a call pending: the caller gets EVENT_LOOP_CLOSED and avd exits 0', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd();
  const m = uniq('shut.m');
  const be = await s.client(avd, { role: 'backend' });
  await be.callOk('avd.register', { methods: [m] });
  const fe = await s.client(avd);
  const { response } = fe.startCall(m, {}, { timeout_ms: 0 });
  await be.next((x) => isCall(x, m), 2000);
  avd.proc.kill('SIGTERM');
  const res = await response;
  assertErrorResponse(res, 'EVENT_LOOP_CLOSED');
  const exit = await Promise.race([avd.exited, new Promise((r) => setTimeout(() => r(null), 3000))]);
  assert.ok(exit, 'avd exited within 3 s of SIGTERM');
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)} stderr ${avd.stderr().slice(-500)}`);
  assert.equal(await Client.upgradeStatus(avd).catch((e) => e.code), 'ECONNREFUSED');
});

test('--listen with a non-loopback address needs --allow-remote (exit 2 otherwise)', T, async () => {
  const r = await runAvd(['--port', '0', '--token', TOKEN, '--listen', '0.0.0.0']);
  assertUsageError(r, /0\.0\.0\.0|allow-remote|loopback/i, '--listen 0.0.0.0');
});

test('--listen 127.0.0.1 is accepted', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--listen', '127.0.0.1']);
  const c = await s.client(avd);
  assert.equal(c.welcome.type, 'welcome');
});
