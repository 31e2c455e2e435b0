'use strict';
// Supervised backends (PROTOCOL.md sections 5 and 6): real child processes,
// started by a real avd with --backend or a config file, watched from a
// frontend the way a page would see them.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  startAvd, scope, isEvent, isResponse, assertErrorResponse, sleep, Client,
} = require('./lib/harness');
const {
  alive, childrenOf, errorOf, fdCount, healthOf, makeTmpDir, procStat, procsInGroup, pyCmd, q,
  readyOf, removeDir, stderrOf, stdioCmd, tmpDir, waitFor, within, writeConfig,
} = require('./lib/supervise');

const T = { timeout: 20000 };
const FIXTURE_METHODS = ['echo', 'env', 'pid', 'fds', 'hang', 'exit', 'stderr', 'stdout',
  'bad_result', 'silence'];
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');

// ---- start ----------------------------------------------------------------

test('a --backend child sends ready: frontends get backend_ready with its handlers and can call them', T, async (t) => {
  const s = scope(t);
  // The ready line comes 700 ms late, so the frontend is there to see it announced.
  const avd = await s.avd(['--backend', `sup=${stdioCmd('--ready-delay', '700')}`]);
  const fe = await s.client(avd);
  assert.equal(fe.drain(readyOf('sup')).length, 0, 'backend_ready before the ready line');
  const ready = await fe.next(readyOf('sup'), 5000);
  assert.deepEqual([...ready.data.handlers].sort(), FIXTURE_METHODS.map((m) => `api.${m}`).sort());
  assert.equal(ready.data.schema_version, 1);
  assert.equal(typeof ready.data.session, 'string');

  const text = { text: '你好, supervised 😀' };
  assert.deepEqual(await fe.callOk('api.echo', text), text);
  const me = (await fe.callOk('avd.sessions')).sessions.find((x) => x.session === ready.data.session);
  assert.ok(me, 'the backend is listed by avd.sessions');
  assert.equal(me.role, 'backend');
  assert.equal(me.name, 'sup');
  assert.equal(me.transport, 'stdio');

  // A frontend joining later learns of it at once.
  const late = await s.client(avd);
  const again = await late.next(readyOf('sup'), 1000);
  assert.equal(again.data.session, ready.data.session);
});

test('the child gets AURORAVIEW_PACKED, AVD_BACKEND_NAME, AVD_URL, PYTHONUNBUFFERED, PYTHONIOENCODING', T, async (t) => {
  const s = scope(t);
  // Values inherited from avd's own environment are overridden.
  const avd = await s.avd(['--backend', `envy=${stdioCmd()}`],
    { AURORAVIEW_PACKED: '0', PYTHONIOENCODING: 'latin-1', AVD_TEST_INHERITED: 'from avd' });
  const fe = await s.client(avd);
  await fe.next(readyOf('envy'), 5000);
  const names = ['AURORAVIEW_PACKED', 'AVD_BACKEND_NAME', 'AVD_URL', 'PYTHONUNBUFFERED',
    'PYTHONIOENCODING', 'AVD_TEST_INHERITED'];
  const { env } = await fe.callOk('api.env', { names });
  assert.deepEqual(env, {
    AURORAVIEW_PACKED: '1',
    AVD_BACKEND_NAME: 'envy',
    AVD_URL: `ws://127.0.0.1:${avd.port}/ws`,
    PYTHONUNBUFFERED: '1',
    PYTHONIOENCODING: 'utf-8',
    AVD_TEST_INHERITED: 'from avd',
  });
});

test('a config file backend runs in its cwd with its env', T, async (t) => {
  const s = scope(t);
  const cwd = tmpDir(t, 'avd-cwd-');
  const conf = writeConfig(t, {
    backends: [{
      name: 'conf',
      command: stdioCmd(),
      cwd,
      env: { AVD_TEST_VALUE: '值 ✓', AVD_TEST_INHERITED: 'from the config' },
    }],
  });
  const avd = await s.avd(['--config', conf], { AVD_TEST_INHERITED: 'from avd' });
  const fe = await s.client(avd);
  await fe.next(readyOf('conf'), 5000);
  const got = await fe.callOk('api.env', { names: ['AVD_TEST_VALUE', 'AVD_TEST_INHERITED', 'AVD_BACKEND_NAME'] });
  assert.equal(fs.realpathSync(got.cwd), fs.realpathSync(cwd));
  assert.deepEqual(got.env, {
    AVD_TEST_VALUE: '值 ✓', AVD_TEST_INHERITED: 'from the config', AVD_BACKEND_NAME: 'conf',
  });
});

test('the child runs in a process group of its own and inherits no descriptor but 0, 1, 2', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--backend', `grp=${stdioCmd()}`]);
  const fe = await s.client(avd);
  // Some open connections avd could leak into the child.
  await s.client(avd);
  await s.client(avd);
  await fe.next(readyOf('grp'), 5000);
  const { pid, pgid } = await fe.callOk('api.pid');
  const leader = procStat(pgid);
  assert.ok(leader, `the group leader ${pgid} exists`);
  assert.equal(leader.ppid, avd.proc.pid, 'the group leader is avd\'s child');
  assert.notEqual(pgid, procStat(avd.proc.pid).pgrp, 'not in avd\'s process group');
  assert.equal(procStat(pid).pgrp, pgid);
  assert.deepEqual(await fe.callOk('api.fds'), [0, 1, 2]);
});

// ---- ready timeout ----------------------------------------------------------

describe('ready timeout (ready_timeout_ms 600)', () => {
  let avd;
  let fe;
  let t0;
  let dir;
  const pids = (name) => fs.readdirSync(path.join(dir, name)).map(Number);
  before(async () => {
    dir = makeTmpDir('avd-rt-');
    fs.mkdirSync(path.join(dir, 'mute'));
    fs.mkdirSync(path.join(dir, 'mute-no'));
    const conf = writeConfig(null, {
      backends: [
        { name: 'mute', command: stdioCmd('--no-ready', '--pid-dir', path.join(dir, 'mute')),
          ready_timeout_ms: 600, restart_backoff_ms: 100 },
        { name: 'mute-no', command: stdioCmd('--no-ready', '--pid-dir', path.join(dir, 'mute-no')),
          ready_timeout_ms: 600, restart: 'no' },
      ],
    }, dir);
    t0 = Date.now();
    avd = await startAvd(['--config', conf]);
    fe = await Client.connect(avd);
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd) await avd.stop();
    removeDir(dir);
  });

  let first;
  test('a backend silent past ready_timeout_ms gets backend_error startup "backend ready timeout", fatal', T, async () => {
    first = await fe.next(errorOf('mute', 'startup'), 3000);
    const ms = Date.now() - t0;
    assert.equal(first.data.message, 'backend ready timeout');
    assert.equal(first.data.fatal, true);
    assert.equal(first.data.schema_version, 1);
    assert.equal(typeof first.data.session, 'string');
    assert.ok(ms >= 550, `ready timeout reported after ${ms} ms, before 600 ms`);
    assert.ok(ms < 2000, `ready timeout reported after ${ms} ms`);
    assert.equal(fe.drain(readyOf('mute')).length, 0, 'no backend_ready for it');
  });

  test('the timed-out process is stopped and restarted by its policy (on-failure)', T, async () => {
    assert.ok(first, 'the first ready timeout was seen');
    // The restarted one times out too, reported under its new session.
    const second = await fe.next(errorOf('mute', 'startup'), 3000);
    assert.equal(second.data.message, 'backend ready timeout');
    assert.notEqual(second.data.session, first.data.session);
    const started = pids('mute');
    assert.ok(started.length >= 2, `started ${started.length} times`);
    const stopped = started.filter((pid) => !alive(pid));
    assert.ok(stopped.length >= 1, `no timed-out process was stopped (pids ${started})`);
  });

  test('with restart "no" a timed-out backend is not started again', T, async () => {
    const e = await fe.next(errorOf('mute-no', 'startup'), 3000);
    assert.equal(e.data.message, 'backend ready timeout');
    const [pid] = pids('mute-no');
    assert.equal(await waitFor(() => !alive(pid), 3000), true, `timed-out process ${pid} still runs`);
    await sleep(1000);
    assert.equal(pids('mute-no').length, 1, 'restarted despite restart "no"');
    await fe.expectNone(errorOf('mute-no'), 10, 'another backend_error');
  });
});

// ---- crashes ------------------------------------------------------------------

test('a ready line naming methods another session owns is a fatal startup error, not a bad line', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--backend', `first=${stdioCmd()}`,
    '--backend', `second=${stdioCmd('--ready-delay', '300')}`]);
  const fe = await s.client(avd);
  await fe.next(readyOf('first'), 5000);
  const e = await fe.next(errorOf('second'), 5000);
  assert.equal(e.data.source, 'startup');
  assert.equal(e.data.fatal, true);
  assert.equal(e.data.code, 'ALREADY_REGISTERED');
  assert.match(e.data.message, /^ready refused: .*already offered by first/);
  await sleep(300);
  assert.equal(fe.drain((m) => isEvent(m, 'backend_error') && m.data.source === 'stdout').length, 0,
    'no "unusable stdout line" report for it');
  assert.equal(fe.drain((m) => isEvent(m, 'backend_error') && /ready timeout/.test(m.data.message)).length, 0);
  // The first backend is untouched.
  assert.deepEqual(await fe.callOk('api.echo', [1]), [1]);
});

test('SIGKILL of the process group mid-call: BACKEND_UNAVAILABLE within 100 ms, then backend_error crash with signal SIGKILL, then a restart', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--backend', `victim=${stdioCmd()}`]);
  const fe = await s.client(avd);
  const ready = await fe.next(readyOf('victim'), 5000);
  const { pgid } = await fe.callOk('api.pid');
  const { response } = fe.startCall('api.hang', {}, { timeout_ms: 0 }, 5000);
  await fe.expectNone(isResponse, 150, 'api.hang answered');
  const t0 = process.hrtime.bigint();
  process.kill(-pgid, 'SIGKILL');
  const res = await response;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const err = assertErrorResponse(res, 'BACKEND_UNAVAILABLE');
  assert.ok(ms < 100, `the caller learned of the dead backend after ${ms.toFixed(1)} ms`);
  assert.equal(err.data.method, 'api.hang');
  assert.equal(err.data.backend, 'victim');

  const e = await fe.next(errorOf('victim', 'crash'), 2000);
  assert.equal(e.data.fatal, true);
  assert.equal(e.data.signal, 'SIGKILL');
  assert.equal('exit_code' in e.data, false, `no exit_code with a signal: ${JSON.stringify(e.data)}`);
  assert.equal(e.data.session, ready.data.session);
  assert.ok(Array.isArray(e.data.stderr_tail));
  assert.match(e.data.stderr_tail[0], /^stdio_backend start pid=\d+$/);
  assert.equal(typeof e.data.message, 'string');

  // on-failure (the default) starts it again, under a new session.
  const again = await fe.next(readyOf('victim', ready.data.session), 5000);
  assert.notEqual(again.data.session, ready.data.session);
  assert.deepEqual(await fe.callOk('api.echo', [1]), [1]);
});

test('exit with code 3 mid-call: BACKEND_UNAVAILABLE, backend_error crash exit_code 3 with the last 50 stderr lines; a partial last line is flushed', T, async (t) => {
  const s = scope(t);
  const avd = await s.avd(['--backend', `three=${stdioCmd()}`]);
  const fe = await s.client(avd, { subscribe: ['backend:stderr'] });
  await fe.next(readyOf('three'), 5000);
  const lines = [];
  for (let i = 1; i <= 60; i++) lines.push(`line ${i}: 第${i}行 😀`);
  const partial = 'no newline at the end: 最后 ✓';
  const res = await fe.call('api.exit', { code: 3, lines, partial }, { timeout_ms: 0 }, 5000);
  assertErrorResponse(res, 'BACKEND_UNAVAILABLE');
  const e = await fe.next(errorOf('three', 'crash'), 2000);
  assert.equal(e.data.fatal, true);
  assert.equal(e.data.exit_code, 3);
  assert.equal('signal' in e.data, false, `no signal with an exit code: ${JSON.stringify(e.data)}`);
  assert.deepEqual(e.data.stderr_tail, [...lines, partial].slice(-50));
  // Every line went out as an event as well, in order, the partial one last.
  const got = [];
  while (got.length < 61) {
    const m = await fe.next(stderrOf('three', (l) => !l.startsWith('stdio_backend')), 2000);
    got.push(m.data.line);
  }
  assert.deepEqual(got, [...lines, partial]);
});

// ---- restarts -------------------------------------------------------------------

// A backend command that waits until the file `go` exists (so the frontend is
// there before anything happens), then writes a line on stderr and exits.
function exitCmd(go, code) {
  return `while [ ! -e ${q(go)} ]; do sleep 0.02; done; echo "boot $$" >&2; exit ${code}`;
}

// Wait for n crash reports of backend `name`; returns their arrival times.
async function crashTimes(fe, name, n, ms) {
  const times = [];
  const end = Date.now() + ms;
  while (times.length < n) {
    const e = await fe.next(errorOf(name, 'crash'), Math.max(1, end - Date.now()));
    times.push(Date.now());
    assert.equal(e.data.fatal, true);
  }
  return times;
}

function assertGaps(times, nominal) {
  const gaps = times.slice(1).map((x, i) => x - times[i]);
  nominal.forEach((want, i) => {
    assert.ok(gaps[i] >= want - 30 && gaps[i] <= want + 300,
      `restart ${i + 1} came ${gaps[i]} ms after the crash before it, expected ~${want} ms (gaps ${gaps})`);
  });
  return gaps;
}

test('restarts back off (150, 300, 600 ms) and avd gives up after max_restarts (3) with a backend_error', T, async (t) => {
  const s = scope(t);
  const go = path.join(tmpDir(t), 'go');
  const conf = writeConfig(t, {
    backends: [{ name: 'flaky', command: exitCmd(go, 1), restart: 'on-failure', restart_backoff_ms: 150, max_restarts: 3 }],
  });
  const avd = await s.avd(['--config', conf]);
  const fe = await s.client(avd);
  fs.writeFileSync(go, '');
  const times = await crashTimes(fe, 'flaky', 4, 5000);
  const gaps = assertGaps(times, [150, 300, 600]);
  t.diagnostic(`gaps between crashes: ${gaps.join(', ')} ms`);
  const gaveUp = await fe.next(errorOf('flaky', 'startup'), 1000);
  assert.equal(gaveUp.data.fatal, true);
  assert.match(gaveUp.data.message, /gave up/i);
  assert.match(gaveUp.data.message, /\b3\b/, `the message says after how many restarts: ${gaveUp.data.message}`);
  await fe.expectNone(errorOf('flaky', 'crash'), 1500, 'started again after giving up');
});

test('with the default backoff the first restart waits ~500 ms, the second ~1000 ms', T, async (t) => {
  const s = scope(t);
  const go = path.join(tmpDir(t), 'go');
  const avd = await s.avd(['--backend', `slowstart=${exitCmd(go, 7)}`]);
  const fe = await s.client(avd);
  fs.writeFileSync(go, '');
  const times = await crashTimes(fe, 'slowstart', 3, 4000);
  const gaps = assertGaps(times, [500, 1000]);
  t.diagnostic(`gaps between crashes: ${gaps.join(', ')} ms`);
});

describe('restart policies', () => {
  let avd;
  let fe;
  let dir;
  before(async () => {
    dir = makeTmpDir('avd-pol-');
    const go = path.join(dir, 'go');
    const conf = writeConfig(null, {
      backends: [
        { name: 'no-1', command: exitCmd(go, 1), restart: 'no', restart_backoff_ms: 50 },
        { name: 'onfail-0', command: exitCmd(go, 0), restart: 'on-failure', restart_backoff_ms: 50 },
        { name: 'always-0', command: exitCmd(go, 0), restart: 'always', restart_backoff_ms: 50, max_restarts: 2 },
      ],
    }, dir);
    avd = await startAvd(['--config', conf]);
    fe = await Client.connect(avd);
    fs.writeFileSync(go, '');
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd) await avd.stop();
    removeDir(dir);
  });

  test('restart "no": a backend that exited with code 1 is not started again', T, async () => {
    const e = await fe.next(errorOf('no-1', 'crash'), 3000);
    assert.equal(e.data.exit_code, 1);
    assert.deepEqual(e.data.stderr_tail.map((l) => l.replace(/\d+/, 'N')), ['boot N']);
    await fe.expectNone(errorOf('no-1'), 800, 'another report after restart "no"');
  });

  test('restart "on-failure": a backend that exited with code 0 is not started again', T, async () => {
    const e = await fe.next(errorOf('onfail-0', 'crash'), 3000);
    assert.equal(e.data.exit_code, 0);
    await fe.expectNone(errorOf('onfail-0'), 800, 'restarted after a clean exit');
  });

  test('restart "always": a backend that exited with code 0 is started again', T, async () => {
    const a = await fe.next(errorOf('always-0', 'crash'), 3000);
    const b = await fe.next(errorOf('always-0', 'crash'), 3000);
    assert.equal(a.data.exit_code, 0);
    assert.equal(b.data.exit_code, 0);
    assert.notEqual(a.data.session, b.data.session, 'a new process, a new session');
  });
});

// ---- stderr ---------------------------------------------------------------------

describe('stderr of a supervised backend', () => {
  let avd;
  let fe;
  before(async () => {
    avd = await startAvd(['--backend', `err=${stdioCmd()}`]);
    fe = await Client.connect(avd, { subscribe: ['backend:stderr'] });
    await fe.next(readyOf('err'), 5000);
    fe.drain(stderrOf('err'));
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd) await avd.stop();
  });

  test('lines with CJK and emoji written in pieces cut inside characters arrive whole and in order as backend:stderr', T, async () => {
    const lines = ['第一行: 你好, 世界 😀', 'second — ünïcödé 🎉🎉', '第三行 𝄞 ok', 'ﾊﾝｶｸ and 한국어 😀😀😀'];
    const bytes = Buffer.from(lines.join('\n') + '\n', 'utf8');
    const pieces = [];
    for (let i = 0; i < bytes.length; i += 5) pieces.push(bytes.subarray(i, i + 5).toString('hex'));
    assert.equal(await fe.callOk('api.stderr', { pieces, delay_ms: 10 }, {}, 10000), true);
    const got = [];
    for (const _ of lines) got.push((await fe.next(stderrOf('err'), 2000)).data.line);
    assert.deepEqual(got, lines);
    assert.equal(got.some((l) => l.includes('\ufffd')), false);
  });

  test('a 20000-byte stderr line is split on character boundaries: every piece valid, joined equal to the original', T, async () => {
    const long = '字😀'.repeat(2858) + '末';
    assert.ok(Buffer.byteLength(long) > 20000);
    const bytes = Buffer.from(long + '\nafter the long line ✓\n', 'utf8');
    // Three writes, cut in the middle of characters.
    const cuts = [7001, 13003];
    const pieces = [bytes.subarray(0, cuts[0]), bytes.subarray(cuts[0], cuts[1]), bytes.subarray(cuts[1])]
      .map((b) => b.toString('hex'));
    await fe.callOk('api.stderr', { pieces, delay_ms: 20 }, {}, 10000);
    const parts = [];
    let joined = '';
    while (joined.length < long.length) {
      const m = await fe.next(stderrOf('err'), 2000);
      parts.push(m.data.line);
      joined += m.data.line;
    }
    assert.ok(parts.length >= 2, `split into ${parts.length} piece(s)`);
    for (const p of parts) {
      assert.equal(p.includes('\ufffd'), false, 'a piece holds U+FFFD: split inside a character');
      assert.equal(/[\ud800-\udbff]$|^[\udc00-\udfff]/.test(p), false, 'a piece splits a surrogate pair');
    }
    assert.equal(joined, long);
    assert.equal((await fe.next(stderrOf('err'), 2000)).data.line, 'after the long line ✓');
  });
});

// ---- stdout -----------------------------------------------------------------------

describe('bad stdout lines (--max-message-bytes 65536)', () => {
  let avd;
  let fe;
  let session;
  before(async () => {
    avd = await startAvd(['--max-message-bytes', '65536', '--backend', `out=${stdioCmd()}`]);
    fe = await Client.connect(avd, { subscribe: ['sup:fixed'] });
    fe.hooks.unshift((m) => { m.at = Date.now(); return false; }); // arrival times
    session = (await fe.next(readyOf('out'), 5000)).data.session;
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd) await avd.stop();
  });

  // backend_error reports of source stdout that arrive within ms.
  async function stdoutReports(ms) {
    const out = [];
    const end = Date.now() + ms;
    for (;;) {
      const m = await fe.maybeNext(errorOf('out'), Math.max(1, end - Date.now()));
      if (!m) return out;
      assert.equal(m.data.source, 'stdout', `unexpected backend_error ${JSON.stringify(m.data)}`);
      out.push({ at: m.at, data: m.data });
    }
  }

  test('not JSON, not UTF-8, longer than max_message_bytes: backend_error stdout, not fatal, with a count; the backend keeps working', T, async (t) => {
    const lines = [hex('this is not JSON'), 'fffefd'];
    assert.equal(await fe.callOk('api.stdout', { lines, long: 70000 }), true);
    const reports = await stdoutReports(1600);
    assert.ok(reports.length >= 1, 'no backend_error for the bad lines');
    let count = 0;
    for (const r of reports) {
      assert.equal(r.data.fatal, false);
      assert.equal(r.data.session, session);
      assert.equal(typeof r.data.message, 'string');
      assert.ok(Number.isInteger(r.data.count) && r.data.count > 0, `count ${r.data.count}`);
      count += r.data.count;
    }
    t.diagnostic(`reports: ${reports.map((r) => `${r.data.count}: ${r.data.message}`).join(' | ')}`);
    assert.equal(count, 3, `counted ${count} bad lines of 3`);
    // Still the same process, still answering.
    assert.deepEqual(await fe.callOk('api.echo', { still: 'here' }), { still: 'here' });
    const me = (await fe.callOk('avd.sessions')).sessions.find((x) => x.name === 'out');
    assert.equal(me.session, session);
    assert.equal(fe.drain(errorOf('out', 'crash')).length, 0);
  });

  test('reports come at most once a second and count every bad line', T, async (t) => {
    await sleep(1100); // let the previous test's report window pass
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      await fe.callOk('api.stdout', { lines: [hex(`garbage ${i}`)] });
      await sleep(100 - ((Date.now() - t0) % 100));
    }
    const reports = await stdoutReports(2500 - (Date.now() - t0) + 1200);
    const total = reports.reduce((n, r) => n + r.data.count, 0);
    t.diagnostic(`counts ${reports.map((r) => r.data.count)} at ${reports.map((r) => r.at - t0)} ms`);
    assert.equal(total, 20, `counts ${reports.map((r) => r.data.count)}`);
    assert.ok(reports.length >= 2 && reports.length <= 4, `${reports.length} reports for 20 bad lines in 2 s`);
    for (let i = 1; i < reports.length; i++) {
      const gap = reports[i].at - reports[i - 1].at;
      assert.ok(gap >= 900, `two reports ${gap} ms apart`);
    }
    assert.deepEqual(await fe.callOk('api.echo', 1), 1);
  });

  test('invalid UTF-8 inside a valid JSON line is replaced by U+FFFD and the message is used', T, async () => {
    const ev = Buffer.concat([Buffer.from('{"type":"event","event":"sup:fixed","data":{"text":"a'),
      Buffer.from([0xff]), Buffer.from('b 你"}}')]);
    await fe.callOk('api.stdout', { lines: [ev.toString('hex')] });
    const got = await fe.next((m) => isEvent(m, 'sup:fixed'), 2000);
    assert.equal(got.data.text, 'a\ufffdb 你');
    assert.equal(got.from, session);
    // A response carrying a stray byte still answers the call.
    const res = await fe.callOk('api.bad_result', { hex: hex('{"text":"caf') + 'c3' + hex(' ok"}') });
    assert.deepEqual(res, { text: 'caf\ufffd ok' });
    const reports = await stdoutReports(1500);
    assert.ok(reports.length >= 1, 'the repair is reported too');
    assert.ok(reports.every((r) => r.data.fatal === false));
  });
});

// ---- heartbeat ---------------------------------------------------------------------

describe('heartbeat of supervised backends (interval 100 ms, timeout 400 ms)', () => {
  let avd;
  let fe;
  before(async () => {
    avd = await startAvd(['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '400',
      '--backend', `quiet=${stdioCmd()}`,
      '--backend', `slowpy=FIXTURE_NS=slowpy ${pyCmd('pyclient_backend.py')}`]);
    fe = await Client.connect(avd);
    await fe.next(readyOf('quiet'), 5000);
    await fe.next(readyOf('slowpy'), 5000);
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd) await avd.stop();
  });

  test('a backend that stops answering becomes unhealthy (calls fail fast), then alive again when it speaks', T, async () => {
    await fe.callOk('api.silence', { ms: 1500 });
    const t0 = Date.now();
    const sick = await fe.next(healthOf('quiet', 'unhealthy'), 2000);
    const ms = Date.now() - t0;
    assert.ok(ms >= 300 && ms < 1200, `unhealthy after ${ms} ms of silence (timeout 400)`);
    const e = await fe.next(errorOf('quiet', 'heartbeat'), 1000);
    assert.equal(e.data.fatal, false);
    assert.equal(e.data.session, sick.data.session);
    const res = await fe.call('api.echo', {}, {}, 1000);
    assert.equal(assertErrorResponse(res, 'BACKEND_UNAVAILABLE').data.backend, 'quiet');
    const well = await fe.next(healthOf('quiet', 'alive'), 3000);
    const back = Date.now() - t0;
    assert.ok(back >= 1300, `alive again after ${back} ms, while it was still silent`);
    assert.equal(well.data.session, sick.data.session);
    assert.deepEqual(await fe.callOk('api.echo', ['back']), ['back']);
  });

  test('a Python client handler busy for 3 s does not trip the heartbeat; other calls are answered meanwhile', T, async () => {
    fe.drain();
    const t0 = Date.now();
    const slow = fe.call('slowpy.slow', { seconds: 3 }, {}, 6000);
    await sleep(300);
    const q0 = Date.now();
    assert.equal(await fe.callOk('slowpy.add', [2, 3]), 5);
    assert.ok(Date.now() - q0 < 500, 'a quick call waited for the slow one');
    const res = await slow;
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.deepEqual(res.result, { slept: 3 });
    assert.ok(Date.now() - t0 >= 2900);
    const bad = fe.drain((m) => healthOf('slowpy', 'unhealthy')(m) || errorOf('slowpy')(m));
    assert.deepEqual(bad, [], 'the busy backend was reported');
  });
});

// ---- shutdown ------------------------------------------------------------------------

test('SIGTERM of avd: pending calls get EVENT_LOOP_CLOSED first, avd exits 0 within 5 s, nothing of the backends\' process groups is left', { timeout: 20000 }, async (t) => {
  const s = scope(t);
  // One that exits when its stdin closes, and one that ignores both stdin's
  // end and SIGTERM behind a /bin/sh wrapper whose child it is.
  const stubborn = `trap '' TERM; ${stdioCmd('--ns', 'stub', '--ignore-eof', '--ignore-term')}; echo wrapper done >&2`;
  const avd = await s.avd(['--backend', `polite=${stdioCmd('--ns', 'polite')}`, '--backend', `stubborn=${stubborn}`]);
  const fe = await s.client(avd);
  await fe.next(readyOf('polite'), 5000);
  await fe.next(readyOf('stubborn'), 5000);
  const polite = await fe.callOk('polite.pid');
  const stub = await fe.callOk('stub.pid');
  assert.notEqual(stub.pid, stub.pgid, 'the stubborn backend runs under its shell');
  assert.equal(procStat(stub.pgid).ppid, avd.proc.pid);
  const calls = [fe.startCall('polite.hang', {}, { timeout_ms: 0 }, 8000),
    fe.startCall('stub.hang', {}, { timeout_ms: 0 }, 8000)];
  await fe.expectNone(isResponse, 200, 'a hanging call was answered');

  const t0 = Date.now();
  avd.proc.kill('SIGTERM');
  for (const c of calls) {
    const res = await c.response; // rejects if the connection closed first
    assertErrorResponse(res, 'EVENT_LOOP_CLOSED');
  }
  const exit = await within(avd.exited, 7000);
  const ms = Date.now() - t0;
  assert.ok(exit, 'avd still runs 7 s after SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(ms < 5500, `avd took ${ms} ms to stop`);
  t.diagnostic(`avd stopped ${ms} ms after SIGTERM`);

  for (const { pgid } of [polite, stub]) {
    // Grandchildren killed with their group are reaped by init, which may take a moment.
    const left = await waitFor(() => {
      const procs = procsInGroup(pgid);
      return procs.length === 0 ? [] : null;
    }, 1000) || procsInGroup(pgid);
    const running = left.filter((p) => p.state !== 'Z');
    assert.deepEqual(running, [], `processes of group ${pgid} still run`);
    assert.equal(left.some((p) => p.pid === pgid), false, `avd's own child ${pgid} was not reaped`);
    if (left.length) {
      // Only possible when PID 1 does not reap orphans (some containers).
      t.diagnostic(`zombie grandchildren of group ${pgid} left to an init that does not reap: ${JSON.stringify(left)}`);
      assert.ok(left.every((p) => p.ppid !== avd.proc.pid));
    }
  }
});

// ---- descriptors ---------------------------------------------------------------------

test('100 restarts leak no file descriptor of avd and leave no zombie', { timeout: 30000 }, async (t) => {
  const s = scope(t);
  const flag = path.join(tmpDir(t), 'run');
  fs.writeFileSync(flag, '');
  // While the flag file exists it is a real backend; without it, it exits at once.
  const command = `if [ -e ${q(flag)} ]; then exec ${stdioCmd('--ns', 'leak')}; fi; exit 0`;
  const conf = writeConfig(t, {
    backends: [{ name: 'leaky', command, restart: 'always', restart_backoff_ms: 1, restart_backoff_max_ms: 5, max_restarts: 1000 }],
  });
  const avd = await s.avd(['--config', conf]);
  const fe = await s.client(avd);
  const first = await fe.next(readyOf('leaky'), 5000);
  await sleep(200);
  const before = fdCount(avd.proc.pid);

  fs.unlinkSync(flag);
  assertErrorResponse(await fe.call('leak.exit', { code: 0 }, { timeout_ms: 0 }), 'BACKEND_UNAVAILABLE');
  let crashes = 0;
  const t0 = Date.now();
  while (crashes < 101) {
    await fe.next(errorOf('leaky', 'crash'), 5000);
    crashes++;
  }
  fs.writeFileSync(flag, '');
  const ready = await fe.next(readyOf('leaky', first.data.session), 5000);
  const restartMs = Date.now() - t0;
  crashes += fe.drain(errorOf('leaky', 'crash')).length;
  assert.equal(fe.drain(errorOf('leaky', 'startup')).length, 0, 'avd gave up');
  assert.deepEqual(await fe.callOk('leak.echo', ['ok']), ['ok']);
  await sleep(200);
  const afterCount = fdCount(avd.proc.pid);
  t.diagnostic(`${crashes} crashes in ${restartMs} ms; avd's descriptors ${before} before, ${afterCount} after`);
  assert.equal(afterCount, before, 'descriptors of avd');
  const zombies = await waitFor(() => {
    const z = childrenOf(avd.proc.pid).filter((c) => c.state === 'Z');
    return z.length === 0 ? [] : null;
  }, 1000) || childrenOf(avd.proc.pid).filter((c) => c.state === 'Z');
  assert.deepEqual(zombies, [], 'unreaped children of avd');
  const kids = childrenOf(avd.proc.pid);
  assert.equal(kids.length, 1, `avd has ${kids.length} children: ${JSON.stringify(kids)}`);
  assert.equal(ready.data.backend, 'leaky');
});

// ---- AuroraView -------------------------------------------------------------------

describe('an AuroraView packed backend, unmodified, under avd --backend', () => {
  let avd;
  let fe;
  let ready;
  before(async () => {
    avd = await startAvd(['--heartbeat-interval-ms', '300', '--heartbeat-timeout-ms', '1000',
      '--backend', `av=${pyCmd('auroraview_packed.py')}`]);
    fe = await Client.connect(avd);
    ready = await fe.next(readyOf('av'), 5000);
  });
  after(async () => {
    if (fe) await fe.close();
    if (avd && !avd.exitInfo()) await avd.stop();
  });

  test('its ready line makes backend_ready with its handlers; frontends call them', T, async () => {
    assert.deepEqual(ready.data.handlers, ['api.get_samples', 'api.echo', 'api.add', 'api.fail']);
    assert.deepEqual(await fe.callOk('api.get_samples'),
      [{ name: 'teapot', tris: 6320 }, { name: '犬', tris: 12 }]);
    assert.deepEqual(await fe.callOk('api.echo', { text: '你好 😀' }), { text: '你好 😀' });
    assert.equal(await fe.callOk('api.add', [40, 2]), 42);
  });

  test('its errors, which have no code, reach the caller as BACKEND_ERROR with its name and message', T, async () => {
    const res = await fe.call('api.fail', { reason: 'bad input ✗' });
    assert.equal(res.ok, false);
    assert.equal(res.error.code, 'BACKEND_ERROR');
    assert.equal(res.error.name, 'ValueError');
    assert.equal(res.error.message, 'bad input ✗');
  });

  test('its backend_health heartbeats reach frontends with backend and session added', T, async () => {
    // AuroraView's ts is time.time(): seconds, a float.
    const h = await fe.next((m) => healthOf('av', 'alive')(m) && m.data.ts > 1e9 && m.data.ts < 1e11, 3000);
    assert.equal(h.data.session, ready.data.session);
    assert.equal(h.data.schema_version, 1);
    assert.equal(h.data.status, 'alive');
  });

  test('it answers avd\'s __ping__, so it stays healthy between its 2 s heartbeats (timeout 1 s)', T, async () => {
    fe.drain();
    await sleep(2500);
    const bad = fe.drain((m) => healthOf('av', 'unhealthy')(m) || errorOf('av')(m));
    assert.deepEqual(bad, []);
    assert.equal(await fe.callOk('api.add', [1, 1]), 2);
  });

  test('it ends when avd closes its stdin: avd stops in under 2 s', T, async () => {
    const t0 = Date.now();
    await avd.stop();
    const ms = Date.now() - t0;
    assert.ok(ms < 1900, `avd needed ${ms} ms (the backend ignored its closed stdin?)`);
  });
});
