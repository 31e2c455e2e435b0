import test from 'node:test';
import assert from 'node:assert/strict';
import * as avd from '../avd.js';

// Section 9 of the protocol: code -> name.
const TABLE = [
  ['PARSE_ERROR', 'ParseError'],
  ['INVALID_REQUEST', 'InvalidRequest'],
  ['UNSUPPORTED_SCHEMA', 'UnsupportedSchema'],
  ['UNAUTHORIZED', 'Unauthorized'],
  ['ENCODING', 'EncodingError'],
  ['PAYLOAD_TOO_LARGE', 'PayloadTooLarge'],
  ['METHOD_NOT_FOUND', 'MethodNotFound'],
  ['ALREADY_REGISTERED', 'AlreadyRegistered'],
  ['BACKEND_UNAVAILABLE', 'BackendUnavailableError'],
  ['TIMEOUT', 'TimeoutError'],
  ['CANCELLED', 'CancelledError'],
  ['QUEUE_FULL', 'QueueFull'],
  ['EVENT_LOOP_CLOSED', 'EventLoopClosed'],
  ['SCRIPT_EXECUTION', 'ScriptExecutionError'],
  ['WINDOW_OPERATION', 'WindowOperationError'],
  ['INTERNAL', 'InternalError'],
];

test('every protocol error code has an exported class with that name and code', () => {
  assert.equal(Object.keys(avd.ERRORS).length, TABLE.length);
  for (const [code, name] of TABLE) {
    const cls = avd[name];
    assert.equal(typeof cls, 'function', name + ' is exported');
    assert.equal(avd.ERRORS[code], cls);
    assert.equal(cls.code, code);
    const e = new cls('boom', { data: { k: 1 } });
    assert.ok(e instanceof Error);
    assert.ok(e instanceof avd.AvdError);
    assert.equal(e.name, name);
    assert.equal(e.code, code);
    assert.equal(e.message, 'boom');
    assert.deepEqual(e.data, { k: 1 });
    assert.equal(cls.name, name);
  }
});

test('errorFromWire picks the class by code and keeps message and data', () => {
  const e = avd.errorFromWire({ code: 'TIMEOUT', name: 'TimeoutError', message: 'api.slow timed out', data: { method: 'api.slow', timeout_ms: 5 } });
  assert.ok(e instanceof avd.TimeoutError);
  assert.equal(e.code, 'TIMEOUT');
  assert.equal(e.name, 'TimeoutError');
  assert.equal(e.message, 'api.slow timed out');
  assert.deepEqual(e.data, { method: 'api.slow', timeout_ms: 5 });

  const nf = avd.errorFromWire({ code: 'METHOD_NOT_FOUND', message: 'no such method' });
  assert.ok(nf instanceof avd.MethodNotFound);
  assert.equal(nf.name, 'MethodNotFound');
});

test('errorFromWire keeps a backend\'s own name and code', () => {
  const e = avd.errorFromWire({ code: 'BACKEND_ERROR', name: 'ValueError', message: 'bad value', data: { field: 'x' } });
  assert.ok(e instanceof avd.AvdError);
  assert.equal(e.constructor, avd.AvdError);
  assert.equal(e.name, 'ValueError');
  assert.equal(e.code, 'BACKEND_ERROR');
  assert.deepEqual(e.data, { field: 'x' });

  const custom = avd.errorFromWire({ code: 'FILE_NOT_FOUND', name: 'FileNotFoundError', message: 'missing' });
  assert.equal(custom.code, 'FILE_NOT_FOUND');
  assert.equal(custom.name, 'FileNotFoundError');

  const nocode = avd.errorFromWire({ message: 'x' });
  assert.equal(nocode.code, 'BACKEND_ERROR');
  assert.equal(nocode.name, 'AvdError');

  const str = avd.errorFromWire('plain');
  assert.equal(str.message, 'plain');
  assert.equal(str.code, 'BACKEND_ERROR');
});

test('errorToWire: name, code (BACKEND_ERROR when unset), message, data', () => {
  assert.deepEqual(avd.errorToWire(new TypeError('nope')), { code: 'BACKEND_ERROR', name: 'TypeError', message: 'nope', data: null });
  const e = new Error('gone');
  e.code = 'FILE_NOT_FOUND';
  e.data = { path: '/x' };
  assert.deepEqual(avd.errorToWire(e), { code: 'FILE_NOT_FOUND', name: 'Error', message: 'gone', data: { path: '/x' } });
  assert.deepEqual(avd.errorToWire('just a string'), { code: 'BACKEND_ERROR', name: 'Error', message: 'just a string', data: null });
  assert.deepEqual(avd.errorToWire(new avd.QueueFull('full', { data: { queue_len: 3 } })), {
    code: 'QUEUE_FULL',
    name: 'QueueFull',
    message: 'full',
    data: { queue_len: 3 },
  });
});

test('AvdError.toJSON gives the wire shape and round-trips', () => {
  const e = new avd.CancelledError('stop', { data: { method: 'm' } });
  const wire = JSON.parse(JSON.stringify(e));
  assert.deepEqual(wire, { code: 'CANCELLED', name: 'CancelledError', message: 'stop', data: { method: 'm' } });
  const back = avd.errorFromWire(wire);
  assert.ok(back instanceof avd.CancelledError);
  assert.equal(back.message, 'stop');
});
