'use strict';
// Helpers shared by the streaming and flow-control tests (issue #5):
// the real client-js in Node with a tap on its socket, supervised Python
// backends, avd's resident memory, the encoding corpus.

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const WebSocket = require('ws');
const { REPO, Client, isEvent, withTimeout } = require('./harness');

const PYTHON = process.env.AVD_TEST_PYTHON || '/usr/bin/python3';
const FIXTURES = path.join(__dirname, '..', 'fixtures');
const DATA = path.join(REPO, 'tests', 'data');

function corpus() {
  return JSON.parse(fs.readFileSync(path.join(DATA, 'encoding-corpus.json'), 'utf8'));
}

let clientJs = null;
// The client-js module (ES module) loaded from the source tree.
function loadClientJs() {
  if (!clientJs) clientJs = import(pathToFileURL(path.join(REPO, 'client-js', 'avd.js')).href);
  return clientJs;
}

// A `ws` WebSocket class that records every text frame it receives, in
// order, before client-js sees it: tap.frames = [{t, msg}] (msg parsed; for
// events only type/event/data.seq/data.message_id are kept when slim).
function tappedWebSocket(tap) {
  return class TappedWebSocket extends WebSocket {
    constructor(url, protocols, options) {
      super(url, protocols, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024, ...(options || {}) });
      tap.sockets.push(this);
      this.on('message', (data, isBinary) => {
        if (isBinary) return;
        let msg;
        try { msg = JSON.parse(data.toString('utf8')); } catch (_) { msg = { unparsed: true }; }
        tap.frames.push({ t: performance.now(), msg: tap.slim ? tap.slim(msg) : msg });
      });
    }
  };
}

function newTap(slim) {
  return { frames: [], sockets: [], slim };
}

// Connect the real client-js to avd; returns {client, tap, avdjs}.
// opts: tap slimmer, plus any connect() option.
async function connectClientJs(avd, opts = {}) {
  const avdjs = await loadClientJs();
  const tap = newTap(opts.slim);
  const { slim, ...rest } = opts;
  const client = await withTimeout(avdjs.connect(avd.wsUrl, {
    token: avd.token,
    reconnect: false,
    WebSocket: tappedWebSocket(tap),
    onError: () => {},
    ...rest,
  }), 5000, 'client-js connect');
  return { client, tap, avdjs };
}

// Args (and env, for callers that want it) to run fixture `file` (in
// fixtures/) with /usr/bin/python3 as a supervised backend named `name`, with
// client-python on PYTHONPATH (set in the command itself, so the args work
// without the env too).
function pythonBackend(name, file) {
  const script = path.join(FIXTURES, file);
  const pythonPath = path.join(REPO, 'client-python');
  return {
    args: ['--backend', `${name}=exec env PYTHONPATH='${pythonPath}' ${PYTHON} -u '${script}'`],
    env: { PYTHONPATH: pythonPath },
  };
}

// Wait until a frontend sees backend_ready for `name` (it comes right after
// welcome when the backend is ready already).  Returns the event data.
async function waitBackendReady(avd, name, timeoutMs = 8000) {
  const c = await Client.connect(avd);
  try {
    const ev = await c.next((m) => isEvent(m, 'backend_ready') && m.data.backend === name, timeoutMs,
      `backend_ready for ${name}`);
    return ev.data;
  } finally {
    await c.close(500);
  }
}

// Resident memory of a process in KiB (VmRSS), or null.
function rssKb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch (_) {
    return null;
  }
}

// Sample a process's VmRSS every `everyMs` until stop(); stop() returns
// {maxKb, samples}.
function sampleRss(pid, everyMs = 25) {
  const samples = [];
  const take = () => { const v = rssKb(pid); if (v !== null) samples.push(v); };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { maxKb: Math.max(...samples), samples: samples.length };
    },
  };
}

// Deterministic pseudo-random numbers (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// About `bytes` bytes (UTF-8) of CJK text mixed with emoji, skin tones, flags
// and ZWJ sequences: many surrogate pairs for a cutter to split.
function cjkEmojiText(bytes, seed = 1) {
  const rand = rng(seed);
  const emoji = ['😀', '🎉', '🚀', '🌏', '🔥', '💯', '👍🏽', '👋🏿', '🇯🇵', '🇨🇳', '👨‍👩‍👧‍👦', '🧑🏽‍🚀', '❤️‍🔥', '𠮷', '𪚥'];
  const parts = [];
  let size = 0;
  while (size < bytes) {
    let piece;
    const r = rand();
    if (r < 0.45) {
      piece = String.fromCodePoint(0x4E00 + Math.floor(rand() * 0x5000));
    } else if (r < 0.8) {
      piece = emoji[Math.floor(rand() * emoji.length)];
    } else if (r < 0.9) {
      piece = String.fromCodePoint(0x3041 + Math.floor(rand() * 0x50));
    } else if (r < 0.95) {
      piece = '，。！？'[Math.floor(rand() * 4)];
    } else {
      piece = rand() < 0.5 ? '\n' : ' ';
    }
    parts.push(piece);
    size += Buffer.byteLength(piece);
  }
  return parts.join('');
}

module.exports = {
  PYTHON,
  FIXTURES,
  DATA,
  corpus,
  loadClientJs,
  tappedWebSocket,
  newTap,
  connectClientJs,
  pythonBackend,
  waitBackendReady,
  rssKb,
  sampleRss,
  rng,
  cjkEmojiText,
};
