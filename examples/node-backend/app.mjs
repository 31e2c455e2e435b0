// An avd backend in Node: three methods and an event.
//
// Supervised by avd (newline-delimited JSON over stdin/stdout):
//
//     avd --backend app='node examples/node-backend/app.mjs'
//
// Or on its own next to a running avd, over WebSocket with client-js (the
// address and token come from AVD_URL / AVD_TOKEN, else from the files avd
// wrote in $XDG_RUNTIME_DIR/avd/):
//
//     node examples/node-backend/app.mjs
//
// The methods are written once, against the API client-js offers
// (register, on, emit, announceReady); ./stdio.mjs offers the same few
// calls over stdin/stdout.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { connect } from '../../client-js/avd.js';
import { connectStdio } from './stdio.mjs';

const name = process.env.AVD_BACKEND_NAME || 'node-example';

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

const methods = {
  // {"text": "..."} -> the same text, and who answered.
  'node.echo': ({ text }) => ({ text, by: 'node' }),

  // [a, b] or {"a": a, "b": b} -> a + b.
  'node.add': (params) => (Array.isArray(params) ? params[0] + params[1] : params.a + params.b),

  // Streams {"i": 0} ... {"i": n-1}, one every delay_ms, then returns {"total": n}.
  // A cancel aborts ctx.signal and ends the generator (its finally runs).
  'node.count': async function* ({ n = 5, delay_ms = 100 } = {}, ctx) {
    for (let i = 0; i < n; i++) {
      await sleep(delay_ms, ctx.signal);
      if (ctx.signal.aborted) return undefined;
      yield { i };
    }
    return { total: n };
  },
};

// AVD_URL / AVD_TOKEN, else avd's runtime files (what avdctl and the Python
// client read too).
function endpoint() {
  const dirs = [];
  if (process.env.XDG_RUNTIME_DIR) dirs.push(path.join(process.env.XDG_RUNTIME_DIR, 'avd'));
  dirs.push(path.join('/tmp', `avd-${os.userInfo().uid}`));
  const read = (file) => {
    for (const dir of dirs) {
      try {
        const text = fs.readFileSync(path.join(dir, file), 'utf8').trim();
        if (text) return text;
      } catch { /* not there */ }
    }
    return undefined;
  };
  return {
    url: process.env.AVD_URL || read('url') || 'ws://127.0.0.1:7700/ws',
    token: process.env.AVD_TOKEN || read('token'),
  };
}

// Node 20 has no global WebSocket. client-js then imports the `ws` package
// from its own directory; loading it here first also finds it on NODE_PATH.
function webSocketClass() {
  if (typeof globalThis.WebSocket === 'function') return undefined;
  try {
    return createRequire(import.meta.url)('ws');
  } catch {
    return undefined;
  }
}

async function main() {
  const supervised = process.env.AURORAVIEW_PACKED === '1' && !process.stdin.isTTY;
  let avd;
  if (supervised) {
    avd = connectStdio();
  } else {
    const { url, token } = endpoint();
    avd = await connect(url, { token, role: 'backend', name, WebSocket: webSocketClass() });
    for (const sig of ['SIGINT', 'SIGTERM']) {
      process.once(sig, () => avd.close().then(() => process.exit(0)));
    }
  }

  await avd.register(methods);
  // Anyone may publish example:ping; we answer with example:pong.
  avd.on('example:ping', (data, { from }) => {
    avd.emit('example:pong', { by: 'node', got: data, to: from });
  });
  avd.announceReady(); // {"type":"ready","handlers":[...]}: frontends get backend_ready

  console.error(`node example backend "${name}" ready (${supervised ? 'stdio' : 'WebSocket'})`);
  if (supervised) {
    await avd.closed();
    console.error('node example backend stopped');
    process.exit(0);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
