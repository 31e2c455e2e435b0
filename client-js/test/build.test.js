import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildGlobal, SOURCE, TARGET } from '../tools/build-global.mjs';
import * as avd from '../avd.js';

const read = (rel) => readFileSync(new URL('../' + rel, import.meta.url), 'utf8');

test('the committed avd.global.js is what tools/build-global.mjs makes from avd.js (run `npm run build`)', () => {
  const expected = buildGlobal(readFileSync(SOURCE, 'utf8'));
  const actual = readFileSync(TARGET, 'utf8');
  assert.ok(actual === expected, 'avd.global.js is stale: run `npm run build` in client-js and commit the result');
});

test('buildGlobal refuses sources a classic script cannot hold', () => {
  const ok = 'const a = 1;\nexport { a };\n';
  assert.match(buildGlobal(ok), /root\.avd = avd;/);
  assert.throws(() => buildGlobal('const a = 1;\n'), /export/);
  assert.throws(() => buildGlobal('export const b = 2;\nconst a = 1;\nexport { a };\n'), /only through/);
  assert.throws(() => buildGlobal("import x from 'y';\nconst a = 1;\nexport { a };\n"), /static imports/);
  assert.throws(() => buildGlobal('const u = import.meta.url;\nexport { u };\n'), /import\.meta/);
  assert.throws(() => buildGlobal('const a = 1;\nexport { a };\nconst b = 2;\n'), /follow/);
});

test('index.d.ts declares every export of avd.js', () => {
  const dts = read('index.d.ts');
  for (const name of Object.keys(avd)) {
    const re = new RegExp('export (declare )?(const|function|class|type|interface) ' + name + '\\b');
    assert.match(dts, re, name + ' is declared in index.d.ts');
  }
});

test('package.json: ES module, types, ws dependency, npm scripts', () => {
  const pkg = JSON.parse(read('package.json'));
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.types, './index.d.ts');
  assert.equal(pkg.exports['.'].default, './avd.js');
  assert.ok(pkg.dependencies.ws);
  assert.equal(pkg.scripts.build, 'node tools/build-global.mjs');
  assert.match(pkg.scripts.test, /node --test/);
  assert.equal(avd.VERSION, pkg.version, 'VERSION in avd.js matches package.json');
  const lock = JSON.parse(read('package-lock.json'));
  assert.equal(lock.packages[''].dependencies.ws, pkg.dependencies.ws);
});
