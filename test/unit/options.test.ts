import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { HUB_DEFAULTS, InvalidOptionError, optionsFromSources, resolveHubOptions } from '../../server/options.js';

describe('hub options', () => {
  it('has the documented defaults and derives the frame and backpressure limits', () => {
    const o = resolveHubOptions();
    assert.equal(o.port, 3000);
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.maxBodyBytes, 1024 * 1024);
    assert.equal(o.maxFrameBytes, 1024 * 1024 + 64 * 1024);
    assert.equal(o.maxBackpressureBytes, 4 * o.maxFrameBytes);
    assert.equal(o.defaultTimeoutMs, 30_000);
    assert.equal(o.maxTimeoutMs, 300_000);
    assert.equal(o.maxAttempts, 3);
    assert.equal(o.maxQueuePerService, 10_000);
    assert.equal(o.maxQueuedBytes, 256 * 1024 * 1024);
    assert.equal(o.serviceLingerMs, 30_000);
    assert.deepEqual(o.forwardHeaders, ['x-request-id', 'traceparent', 'tracestate']);
    assert.deepEqual(HUB_DEFAULTS.forwardHeaders, ['x-request-id', 'traceparent', 'tracestate']);
  });

  it('takes flags over environment over config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'astromesh-'));
    const file = path.join(dir, 'hub.json');
    writeFileSync(file, JSON.stringify({ maxAttempts: 7, defaultTimeoutMs: 1000, serviceLingerMs: 5 }));
    const o = optionsFromSources(['--config', file, '--default-timeout-ms', '2000', '--port=0'], {
      ASTROMESH_DEFAULT_TIMEOUT_MS: '3000',
      ASTROMESH_SERVICE_LINGER_MS: '9',
      ASTROMESH_FORWARD_HEADERS: 'x-a, X-B',
    });
    assert.equal(o.defaultTimeoutMs, 2000);
    assert.equal(o.serviceLingerMs, 9);
    assert.equal(o.maxAttempts, 7);
    assert.equal(o.port, 0);
    assert.deepEqual(resolveHubOptions(o).forwardHeaders, ['x-a', 'x-b']);
  });

  it('rejects unknown flags, malformed numbers and contradictions, naming the fields', () => {
    assert.throws(() => optionsFromSources(['--nope', '1'], {}), /unknown option --nope/);
    assert.throws(() => optionsFromSources(['--port', 'abc'], {}), /"port"/);
    assert.throws(() => optionsFromSources(['--port'], {}), /needs a value/);
    assert.throws(() => resolveHubOptions({ defaultTimeoutMs: 10, maxTimeoutMs: 5 }), /"defaultTimeoutMs" must not exceed "maxTimeoutMs"/);
    assert.throws(() => resolveHubOptions({ maxBodyBytes: 100, maxFrameBytes: 200 }), /"maxFrameBytes"/);
    assert.throws(() => resolveHubOptions({ pingIntervalMs: 100, pongTimeoutMs: 50 }), /"pongTimeoutMs"/);
    assert.throws(() => resolveHubOptions({ forwardHeaders: ['Authorization'] }), InvalidOptionError);
    assert.throws(() => resolveHubOptions({ maxAttempts: 0 }), /"maxAttempts" must be greater than 0/);
    assert.throws(() => resolveHubOptions({ port: 70000 }), /"port"/);
    assert.throws(() => resolveHubOptions({ longPollEncoding: 'hex' }), /"longPollEncoding"/);
    assert.throws(() => resolveHubOptions({ longPollWaitMs: 5000, longPollMaxWaitMs: 1000 }), /"longPollWaitMs" must not exceed "longPollMaxWaitMs"/);
  });

  it('spells the long-poll flags as --longpoll-*', () => {
    const o = optionsFromSources(['--longpoll-encoding', 'base64', '--longpoll-lease-ms', '250'], { ASTROMESH_LONGPOLL_WAIT_MS: '100' });
    assert.deepEqual(o, { longPollEncoding: 'base64', longPollLeaseMs: 250, longPollWaitMs: 100 });
    const r = resolveHubOptions();
    assert.equal(r.longPollWaitMs, 30_000);
    assert.equal(r.longPollMaxWaitMs, 120_000);
    assert.equal(r.longPollLeaseMs, 30_000);
    assert.equal(r.longPollEncoding, 'json');
  });
});
