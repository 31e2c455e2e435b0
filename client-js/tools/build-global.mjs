#!/usr/bin/env node
// Generates avd.global.js (a classic script) from avd.js (the ES module), so
// that the two never drift apart. `npm run build` runs it; the output is
// committed, and test/build.test.js fails when it is stale.
//
// The classic script wraps the module's code in a function, publishes the
// module's exports as window.avd and, in a page, installs window.auroraview
// (unless window.__AVD__.autoInstall or window.__AURORAVIEW_CONFIG__.autoInstall
// is false, or a window.auroraview from avd is already there).

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const SOURCE = join(here, '..', 'avd.js');
export const TARGET = join(here, '..', 'avd.global.js');

export function buildGlobal(source) {
  const exportRe = /^export\s*\{([^}]*)\};?[ \t]*$/m;
  const m = exportRe.exec(source);
  if (!m) throw new Error('avd.js must end with one `export { ... };` statement');
  const body = source.slice(0, m.index);
  const tail = source.slice(m.index + m[0].length);
  if (tail.trim() !== '') throw new Error('nothing may follow the export statement in avd.js');
  if (/^\s*export\s/m.test(body)) throw new Error('avd.js may export only through its final `export { ... };`');
  const code = body.replace(/^\s*\/\/.*$/gm, ''); // checks ignore line comments
  if (/^\s*import\s[^(]/m.test(code) || /import\.meta/.test(code)) {
    throw new Error('avd.js may not use static imports or import.meta (they do not work in a classic script)');
  }
  const names = m[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!/^[A-Za-z_$][\w$]*$/.test(n)) throw new Error('unsupported export entry: ' + n);
  }
  const lines = [
    '// avd.global.js: GENERATED from avd.js by tools/build-global.mjs; do not edit, run `npm run build`.',
    '// Classic-script build of the avd client: defines window.avd (the module\'s exports) and',
    '// window.auroraview (AuroraView-compatible bridge over an avd connection).',
    '(function (root) {',
    "'use strict';",
    body.trimEnd(),
    '',
    '// ---- classic-script glue (from tools/build-global.mjs) ----',
    'const avd = Object.freeze({',
    ...names.map((n) => '  ' + n + ','),
    '});',
    'root.avd = avd;',
    'const avdCfg = root.__AVD__ || {};',
    'const avCfg = root.__AURORAVIEW_CONFIG__ || {};',
    'const isPage = root.location != null && typeof root.location === \'object\';',
    'if (isPage && avdCfg.autoInstall !== false && avCfg.autoInstall !== false && !(root.auroraview && root.auroraview._isAvd)) {',
    '  try {',
    '    installAuroraView(root);',
    '  } catch (e) {',
    "    if (typeof console !== 'undefined') console.warn('[avd] window.auroraview not installed:', e && e.message);",
    '  }',
    '}',
    "})(typeof window !== 'undefined' ? window : globalThis);",
    '',
  ];
  return lines.join('\n');
}

function main() {
  const out = buildGlobal(readFileSync(SOURCE, 'utf8'));
  writeFileSync(TARGET, out);
  process.stdout.write('wrote ' + TARGET + ' (' + out.length + ' bytes)\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
