'use strict';
// Helpers for the tests of supervised backends (supervise*.test.js): the
// fixtures' command lines, config files, and what /proc says about processes.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { isEvent } = require('./harness');

const FIXTURES = path.join(__dirname, '..', 'fixtures');

// Debian's Python has `websockets` (the Python client's WebSocket transport
// needs it); the stdio fixtures need only the standard library.
const PY = process.env.AVD_TEST_PYTHON ||
  (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

// Quote for /bin/sh.
function q(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

// The command line of fixtures/NAME.py with arguments, for --backend or a config.
function pyCmd(name, ...args) {
  return [PY, path.join(FIXTURES, name), ...args].map(q).join(' ');
}

function stdioCmd(...args) {
  return pyCmd('stdio_backend.py', ...args);
}

function makeTmpDir(prefix = 'avd-sup-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function removeDir(dir) {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

// A temporary directory removed when test context t ends.
function tmpDir(t, prefix) {
  const dir = makeTmpDir(prefix);
  t.after(() => removeDir(dir));
  return dir;
}

// Write a config file (an object) into dir, or a temporary directory removed
// when test context t ends.
function writeConfig(t, obj, dir) {
  const file = path.join(dir || tmpDir(t, 'avd-conf-'), 'avd.json');
  fs.writeFileSync(file, JSON.stringify(obj, null, 2));
  return file;
}

function readyOf(name, notSession) {
  return (m) => isEvent(m, 'backend_ready') && m.data && m.data.backend === name &&
    (notSession === undefined || m.data.session !== notSession);
}

function errorOf(name, source) {
  return (m) => isEvent(m, 'backend_error') && m.data && m.data.backend === name &&
    (source === undefined || m.data.source === source);
}

function stderrOf(name, pred = () => true) {
  return (m) => isEvent(m, 'backend:stderr') && m.data && m.data.backend === name && pred(m.data.line);
}

function healthOf(name, status) {
  return (m) => isEvent(m, 'backend_health') && m.data && m.data.backend === name &&
    (status === undefined || m.data.status === status);
}

// /proc/PID/stat: {pid, state, ppid, pgrp}, or null when there is no such process.
function procStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (_) {
    return null;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid: Number(pid), state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) };
}

// Every process (zombies included) whose process group is pgid.
function procsInGroup(pgid) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(name);
    if (st && st.pgrp === pgid) out.push(st);
  }
  return out;
}

function alive(pid) {
  const st = procStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

// Direct children of pid (all its threads), with their state.
function childrenOf(pid) {
  const out = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch (_) { /* thread gone */ }
    for (const c of text.trim().split(/\s+/).filter(Boolean)) {
      const st = procStat(c);
      if (st) out.push(st);
    }
  }
  return out;
}

// Poll fn() until it returns a truthy value or ms pass; returns the last value.
async function waitFor(fn, ms, every = 20) {
  const end = Date.now() + ms;
  let v = fn();
  while (!v && Date.now() < end) {
    await new Promise((r) => setTimeout(r, every));
    v = fn();
  }
  return v;
}

// The value of promise, or null if it takes longer than ms (the timer is
// cleared either way, so it never keeps the test process alive).
function within(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// Percentile of a sorted array.
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

module.exports = {
  FIXTURES,
  PY,
  alive,
  childrenOf,
  errorOf,
  fdCount,
  healthOf,
  makeTmpDir,
  percentile,
  procStat,
  procsInGroup,
  pyCmd,
  q,
  readyOf,
  removeDir,
  stderrOf,
  stdioCmd,
  tmpDir,
  waitFor,
  within,
  writeConfig,
};
