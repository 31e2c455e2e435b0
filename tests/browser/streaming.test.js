'use strict';
// Issue #5 in a real browser: a page served by avd loads /avd.js (client-js)
// in headless Chromium and rebuilds a 200 KB CJK+emoji text that a supervised
// client-python backend streams as deltas cut at random UTF-16 positions
// (surrogate pairs split), as chunks of a stream() call and as
// agui:text_message_content events.  The rebuilt text must equal the
// original exactly, at more than 1000 deltas per second.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

let playwrightMissing = null;
try {
  require.resolve('playwright-core');
} catch (_) {
  playwrightMissing = 'playwright-core is not installed (npm ci in tests/): browser streaming tests skipped';
}

const { withTimeout, uniq } = require('../integration/lib/harness');
const { pythonBackend, waitBackendReady, cjkEmojiText } = require('../integration/lib/streaming-helpers');
const browserLib = playwrightMissing ? null : require('./lib.js');
const browser = playwrightMissing ? null : browserLib.useBrowser();

const T = { timeout: 60000 };
const BACKEND = 'pybrowser';
const TEXT_BYTES = 200 * 1024;
const MIN_RATE = 1000;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>avd streaming</title></head>
<body>
<script type="module">
import { connect } from '/avd.js';

async function sha256(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

window.ready = connect().then((client) => { window.client = client; return client.session; });

// A stream() call: every chunk's delta appended in order.
window.rebuildChunks = async (params) => {
  const parts = [];
  let first = 0;
  let last = 0;
  const stream = window.client.stream('py.stream_deltas', params, { timeout: 30000 });
  for await (const chunk of stream) {
    last = performance.now();
    if (!first) first = last;
    parts.push(chunk.delta);
  }
  const result = await stream.result;
  const text = parts.join('');
  return {
    text, result, deltas: parts.length, ms: last - first, sha256: await sha256(text),
    wellFormed: parts.every((p) => p.isWellFormed()),
  };
};

// agui:text_message_content events of one message_id, until its end event.
window.rebuildEvents = async (params) => {
  const client = window.client;
  const parts = [];
  let first = 0;
  let last = 0;
  let dropped = 0;
  let ended;
  const end = new Promise((resolve) => { ended = resolve; });
  const offs = [
    client.on('agui:text_message_content', (d) => {
      if (d.message_id !== params.message_id) return;
      last = performance.now();
      if (!first) first = last;
      parts.push(d.delta);
    }),
    client.on('agui:text_message_end', (d) => { if (d.message_id === params.message_id) ended(); }),
    client.on('avd:dropped', (d) => { dropped += d.count; }),
  ];
  await client.sync();
  const result = await client.call('py.agui_deltas', params, { timeout: 30000 });
  await end;
  offs.forEach((off) => off());
  const text = parts.join('');
  return {
    text, result, deltas: parts.length, ms: last - first, dropped, sha256: await sha256(text),
    wellFormed: parts.every((p) => p.isWellFormed()),
  };
};
</script>
</body></html>
`;

function sha256(s) { return crypto.createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex'); }

function report(what, figures) {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 10) / 10 : v}`);
  // eslint-disable-next-line no-console
  console.log(`# ${what}: ${parts.join(' ')}`);
}

// What both rebuilds must show: the page has the original text, byte for
// byte, in whole characters only, received fast and without page errors.
function assertRebuilt(page, r, text, what) {
  assert.equal(r.text.length, text.length, 'same length in UTF-16 units');
  assert.ok(r.text === text, 'the page rebuilt the original text');
  assert.equal(r.sha256, sha256(text), 'byte for byte (SHA-256 of the UTF-8, computed in the page)');
  assert.ok(r.result.split_pairs > 100, `${r.result.split_pairs} deltas ended inside a surrogate pair`);
  assert.equal(r.wellFormed, true, 'every delta held whole characters only');
  const rate = r.deltas / Math.max(0.001, r.ms / 1000);
  report(what, { deltas: r.deltas, split_pairs: r.result.split_pairs, rate_per_s: rate, ms: r.ms });
  assert.ok(rate > MIN_RATE, `page received ${Math.round(rate)} deltas/s`);
  assert.deepEqual(page.errors.map(String), [], 'no page errors');
  assert.deepEqual(page.consoleErrors, [], 'no console errors');
}

describe('streaming into a page in headless Chromium', { skip: playwrightMissing || false }, () => {
  // avd serving the page, the Python backend, and a page connected to avd;
  // long texts reach the backend as files in a directory of the scope's.
  async function setUp(t) {
    const s = browserLib.browserScope(t);
    const py = pythonBackend(BACKEND, 'py_stream_backend.py');
    const avd = await browserLib.avdServing(s, { 'stream.html': PAGE },
      [...py.args, '--heartbeat-interval-ms', '60000', '--heartbeat-timeout-ms', '120000']);
    await waitBackendReady(avd, BACKEND);
    const page = await browserLib.newPage(browser(), t);
    await page.goto(browserLib.pageUrl(avd, '/stream.html'));
    const session = await withTimeout(page.evaluate(() => window.ready), 10000, 'client-js connect in the page');
    assert.match(session, /^s\d+$/);
    const dir = browserLib.tmpDir(s, 'avd-browser-text-');
    const textFile = (text) => {
      const file = path.join(dir, 'text.txt');
      fs.writeFileSync(file, text, 'utf8');
      return file;
    };
    return { page, textFile };
  }

  test('a page rebuilds a 200 KB text from chunk deltas cut inside surrogate pairs, exactly and fast', T, async (t) => {
    const { page, textFile } = await setUp(t);
    const text = cjkEmojiText(TEXT_BYTES, 21);
    const params = { text_file: textFile(text), seed: 21, min_units: 1, max_units: 24 };
    const r = await withTimeout(page.evaluate((p) => window.rebuildChunks(p), params), 40000, 'rebuildChunks in the page');
    assert.equal(r.result.sha256, sha256(text), 'the backend streamed the same text');
    assert.equal(r.deltas, r.result.deltas, 'one chunk per delta sent');
    assertRebuilt(page, r, text, 'browser chunk deltas');
  });

  test('a page rebuilds a 200 KB text from agui:text_message_content events, exactly and fast', T, async (t) => {
    const { page, textFile } = await setUp(t);
    const text = cjkEmojiText(TEXT_BYTES, 22);
    const params = { text_file: textFile(text), seed: 22, message_id: uniq('msg'), min_units: 1, max_units: 24 };
    const r = await withTimeout(page.evaluate((p) => window.rebuildEvents(p), params), 40000, 'rebuildEvents in the page');
    assert.equal(r.dropped, 0, 'no events dropped');
    assert.equal(r.deltas, r.result.deltas, 'one event per delta sent');
    assertRebuilt(page, r, text, 'browser event deltas');
  });
});
