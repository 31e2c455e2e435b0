'use strict';
// Helpers for the browser tests: headless Chromium driven by playwright-core,
// pages served by avd itself (a temporary --ui directory), so that every page
// comes from http://127.0.0.1:PORT and may open ws://127.0.0.1:PORT/ws.
//
// Every wait is bounded: playwright's default timeout is set low for each
// context, and each helper takes an explicit timeout.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { REPO, startAvd } = require('../integration/lib/harness.js');

const CHROMIUM = process.env.AVD_CHROMIUM || '/usr/bin/chromium';
const CLIENT_DIR = path.join(REPO, 'client-js');
const UI_DIR = path.join(REPO, 'ui');
const WAIT_MS = 5000;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

// Where screenshots go: the build tree's tests/artifacts (make check sets
// AVD_BUILDDIR), else the source tree's.
function artifactsDir() {
  const base = process.env.AVD_BUILDDIR || REPO;
  const dir = path.join(base, 'tests', 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// One Chromium per test file. playwright's launch() runs it with a fresh
// temporary --user-data-dir of its own and deletes it on close().
async function launchBrowser() {
  const { chromium } = require('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 20000,
  });
}

// Launches one Chromium for the calling test file (node:test before/after
// hooks) and returns a function giving it. Closing is bounded too.
function useBrowser() {
  const { before, after } = require('node:test');
  let browser = null;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    if (!browser) return;
    let timer;
    await Promise.race([
      browser.close().catch(() => {}),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 10000);
      }),
    ]);
    clearTimeout(timer);
  });
  return () => {
    if (!browser) throw new Error('Chromium did not start');
    return browser;
  };
}

// A fresh context + page with bounded waits; collects page errors and
// console errors so tests can assert there were none.
async function newPage(browser, t, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport || { width: 1280, height: 900 }, colorScheme: 'light' });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  page.errors = [];
  page.consoleErrors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(m.text());
  });
  t.after(() => context.close().catch(() => {}));
  return page;
}

// Starts avd serving `files` ({relative path: content}) from a temporary UI
// directory (or opts.ui, e.g. the real ui/), with client-js at /avd.js.
async function avdServing(s, files, args = [], opts = {}) {
  let ui = opts.ui;
  if (!ui) {
    ui = fs.mkdtempSync(path.join(os.tmpdir(), 'avd-browser-ui-'));
    for (const [rel, content] of Object.entries(files || {})) {
      const p = path.join(ui, rel);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
    s.cleanupDirs = s.cleanupDirs || [];
    s.cleanupDirs.push(ui);
  }
  const avd = await s.avd(['--ui', ui, '--client-dir', CLIENT_DIR, ...args]);
  return avd;
}

// scope(t) from the harness, plus removal of temporary UI directories.
function browserScope(t) {
  const { Scope } = require('../integration/lib/harness.js');
  const s = new Scope();
  t.after(async () => {
    try {
      await s.cleanup();
    } finally {
      for (const d of s.cleanupDirs || []) fs.rmSync(d, { recursive: true, force: true });
    }
  });
  return s;
}

// A temporary directory removed with the scope.
function tmpDir(s, prefix = 'avd-browser-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  s.cleanupDirs = s.cleanupDirs || [];
  s.cleanupDirs.push(dir);
  return dir;
}

// Waits until an element matching `selector` has text matching `re`
// (a RegExp or a plain substring); returns that text.
async function waitText(page, selector, re, timeout = WAIT_MS) {
  const pattern = re instanceof RegExp ? { source: re.source, flags: re.flags } : { source: re.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), flags: '' };
  try {
    const handle = await page.waitForFunction(
      ([sel, pat]) => {
        const rx = new RegExp(pat.source, pat.flags);
        for (const node of document.querySelectorAll(sel)) {
          if (rx.test(node.textContent)) return node.textContent;
        }
        return false;
      },
      [selector, pattern],
      { timeout }
    );
    return handle.jsonValue();
  } catch (e) {
    const seen = await page.$$eval(selector, (ns) => ns.map((n) => n.textContent.trim().slice(0, 200))).catch(() => []);
    throw new Error(`no ${selector} with text ${re} within ${timeout} ms; found: ${JSON.stringify(seen.slice(0, 10))}`);
  }
}

function pageUrl(avd, rel = '/', token = avd.token) {
  const sep = rel.includes('?') ? '&' : '?';
  return `${avd.httpUrl}${rel}${token ? `${sep}token=${token}` : ''}`;
}

// A supervised stdio backend written in Node (file written into `dir`):
// sends `ready` with opts.handlers, answers __ping__, and for any other call
// writes "handling METHOD" to stderr and answers {echo: params}; a method
// ending in ".crash" writes params.line to stderr and exits with params.code.
// opts.stderr: lines written at start.
function stdioBackendScript(dir, opts = {}) {
  const file = path.join(dir, 'stdio-backend.cjs');
  const src = `'use strict';
const rl = require('readline').createInterface({ input: process.stdin });
const opts = ${JSON.stringify(opts)};
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
out({ type: 'ready', handlers: opts.handlers || [] });
for (const line of opts.stderr || []) process.stderr.write(line + '\\n');
rl.on('line', (l) => {
  let m;
  try { m = JSON.parse(l); } catch (e) { return; }
  if (m.method === '__ping__') return out({ id: m.id, ok: true, result: { status: 'pong' } });
  if (!m.method) return;
  const p = m.params || {};
  if (m.method.endsWith('.crash')) {
    process.stderr.write(String(p.line || 'crashing') + '\\n', () => process.exit(p.code || 1));
    return;
  }
  process.stderr.write('handling ' + m.method + '\\n');
  out({ id: m.id, ok: true, result: { echo: p } });
});
`;
  fs.writeFileSync(file, src);
  return file;
}

module.exports = {
  CHROMIUM,
  CHROMIUM_ARGS,
  CLIENT_DIR,
  UI_DIR,
  WAIT_MS,
  artifactsDir,
  avdServing,
  browserScope,
  launchBrowser,
  newPage,
  pageUrl,
  stdioBackendScript,
  tmpDir,
  useBrowser,
  waitText,
};
