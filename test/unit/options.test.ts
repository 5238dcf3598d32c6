import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InvalidOptionError as ArgsError, parseCount, parseFlags } from '../../server/args.js';
import { HUB_DEFAULTS, hubOptionsFromSources, InvalidOptionError, OPTION_SPECS, optionsFromSources, resolveHubOptions } from '../../server/options.js';

function configFile(content: unknown): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'astromesh-'));
  const file = path.join(dir, 'hub.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

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

  it('has the documented limits, and the unsent bytes of a session hold at least one frame', () => {
    const o = resolveHubOptions();
    assert.equal(o.maxSessionQueuedBytes, 4 * o.maxBackpressureBytes);
    assert.deepEqual(
      [o.slowConsumerMs, o.helloTimeoutMs, o.maxProtocolErrors, o.maxServicesPerSession, o.maxForwardsPerPeer],
      [5_000, 2_000, 100, 1_000, 10_000],
    );
    assert.throws(() => resolveHubOptions({ maxSessionQueuedBytes: 1024 }), /"maxSessionQueuedBytes" must be at least "maxFrameBytes"/);
    assert.throws(() => resolveHubOptions({ helloTimeoutMs: 0 }), /"helloTimeoutMs" must be greater than 0/);
  });

  it('finds a frozen worker well within the default deadline with the default keep-alive', () => {
    const o = resolveHubOptions();
    // The close comes at most pongTimeoutMs + pingIntervalMs after the worker last answered.
    assert.deepEqual([o.pingIntervalMs, o.pongTimeoutMs], [5_000, 10_000]);
    assert.ok(o.pongTimeoutMs + o.pingIntervalMs <= o.defaultTimeoutMs / 2);
  });

  it('takes flags over environment over config file', () => {
    const file = configFile({ maxAttempts: 7, defaultTimeoutMs: 1000, serviceLingerMs: 5 });
    const { values: o } = optionsFromSources(['--config', file, '--default-timeout-ms', '2000', '--port=0'], {
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

  it('rejects malformed values and contradictions passed in code, naming the fields', () => {
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
    const { values: o } = optionsFromSources(['--longpoll-encoding', 'base64', '--longpoll-lease-ms', '250'], { ASTROMESH_LONGPOLL_WAIT_MS: '100' });
    assert.deepEqual(o, { longPollEncoding: 'base64', longPollLeaseMs: 250, longPollWaitMs: 100 });
    const r = resolveHubOptions();
    assert.equal(r.longPollWaitMs, 30_000);
    assert.equal(r.longPollMaxWaitMs, 120_000);
    assert.equal(r.longPollLeaseMs, 30_000);
    assert.equal(r.longPollEncoding, 'json');
  });
});

/** Runs fn and returns the message of the InvalidOptionError it throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidOptionError, `expected an InvalidOptionError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected an error');
}

describe('hub options from flags, environment and config file', () => {
  it('takes every option as --flag value and as --flag=value', () => {
    for (const s of OPTION_SPECS) {
      const raw = s.kind === 'int' ? '1_024' : s.kind === 'list' ? 'x-a,x-b' : 'v';
      const want = s.kind === 'int' ? 1024 : s.kind === 'list' ? ['x-a', 'x-b'] : 'v';
      assert.deepEqual(optionsFromSources([s.flag, raw], {}).values, { [s.key]: want }, s.flag);
      assert.deepEqual(optionsFromSources([`${s.flag}=${raw}`], {}).values, { [s.key]: want }, `${s.flag}=`);
      assert.deepEqual(optionsFromSources([], { [s.env]: raw }).values, { [s.key]: want }, s.env);
    }
  });

  it('ranks flags over environment over config file over defaults, for each option on its own', () => {
    const file = configFile({ maxAttempts: 5, maxServices: 6, maxPollers: 7 });
    const o = hubOptionsFromSources(['--max-attempts=1', '--config', file], { ASTROMESH_MAX_ATTEMPTS: '2', ASTROMESH_MAX_SERVICES: '3' });
    assert.equal(o.maxAttempts, 1);
    assert.equal(o.maxServices, 3);
    assert.equal(o.maxPollers, 7);
    assert.equal(o.maxConnections, HUB_DEFAULTS.maxConnections);
  });

  it('reads the config file named by ASTROMESH_CONFIG unless --config names another', () => {
    const a = configFile({ maxAttempts: 5 });
    const b = configFile({ maxAttempts: 6 });
    assert.equal(hubOptionsFromSources([], { ASTROMESH_CONFIG: a }).maxAttempts, 5);
    assert.equal(hubOptionsFromSources([`--config=${b}`], { ASTROMESH_CONFIG: a }).maxAttempts, 6);
  });

  it('names the flag the user typed when a flag value is malformed', () => {
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--max-body-bytes', 'abc'], {})),
      '--max-body-bytes must be a non-negative integer, got "abc"',
    );
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--max-body-bytes=-5'], {})),
      '--max-body-bytes must be a non-negative integer, got "-5"',
    );
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--port', '1.5'], {})),
      '--port must be a non-negative integer, got "1.5"',
    );
    for (const s of OPTION_SPECS.filter((x) => x.kind === 'int')) {
      assert.equal(
        errorOf(() => hubOptionsFromSources([s.flag, 'x'], {})),
        `${s.flag} must be a non-negative integer, got "x"`,
      );
    }
  });

  it('names flags, not fields, when values contradict each other or a limit', () => {
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--longpoll-wait-ms', '999999999'], {})),
      '--longpoll-wait-ms must not exceed --longpoll-max-wait-ms (999999999 > 120000)',
    );
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--max-attempts', '0'], {})),
      '--max-attempts must be greater than 0',
    );
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--port', '70000'], {})),
      '--port must be at most 65535, got 70000',
    );
    assert.match(
      errorOf(() => hubOptionsFromSources(['--max-frame-bytes', '2000'], {})),
      /^--max-frame-bytes must exceed --max-body-bytes by at least 1 KiB/,
    );
    assert.match(
      errorOf(() => hubOptionsFromSources(['--longpoll-encoding', 'hex'], {})),
      /^--longpoll-encoding must be "json" or "base64", got "hex"$/,
    );
    assert.match(
      errorOf(() => hubOptionsFromSources(['--forward-headers', 'cookie'], {})),
      /^--forward-headers may not include/,
    );
    assert.match(
      errorOf(() => hubOptionsFromSources(['--log-level', 'verbose'], {})),
      /^--log-level must be one of fatal, .*, got "verbose"$/,
    );
  });

  it('names the environment variable when the value came from the environment', () => {
    assert.equal(
      errorOf(() => hubOptionsFromSources([], { ASTROMESH_MAX_BODY_BYTES: 'abc' })),
      'ASTROMESH_MAX_BODY_BYTES must be a non-negative integer, got "abc"',
    );
    assert.equal(
      errorOf(() => hubOptionsFromSources([], { ASTROMESH_DEFAULT_TIMEOUT_MS: '400000' })),
      'ASTROMESH_DEFAULT_TIMEOUT_MS must not exceed --max-timeout-ms (400000 > 300000)',
    );
    // The flag wins, so a bad value in the environment underneath it is never read.
    assert.equal(hubOptionsFromSources(['--max-attempts', '2'], { ASTROMESH_MAX_ATTEMPTS: 'abc' }).maxAttempts, 2);
  });

  it('names the key and the file when the value came from the config file', () => {
    const file = configFile({ maxBodyBytes: 'abc' });
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--config', file], {})),
      `"maxBodyBytes" in ${file} must be a non-negative integer, got "abc"`,
    );
    const limits = configFile({ maxTimeoutMs: 100 });
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--default-timeout-ms', '200'], { ASTROMESH_CONFIG: limits })),
      `--default-timeout-ms must not exceed "maxTimeoutMs" in ${limits} (200 > 100)`,
    );
    const headers = configFile({ forwardHeaders: 'x-a' });
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--config', headers], {})),
      `"forwardHeaders" in ${headers} must be a list of strings, got "x-a"`,
    );
    const level = configFile({ logLevel: 3 });
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--config', level], {})),
      `"logLevel" in ${level} must be a string, got 3`,
    );
    const unknown = configFile({ maxBodyByte: 1 });
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--config', unknown], {})),
      `unknown option "maxBodyByte" in ${unknown}`,
    );
    const notObject = configFile([1]);
    assert.equal(
      errorOf(() => hubOptionsFromSources(['--config', notObject], {})),
      `config file ${notObject} must hold a JSON object`,
    );
    assert.match(
      errorOf(() => hubOptionsFromSources(['--config', configFile('{')], {})),
      /^cannot read config file .*hub\.json: /,
    );
    assert.match(
      errorOf(() => hubOptionsFromSources(['--config', '/nonexistent/hub.json'], {})),
      /^cannot read config file \/nonexistent\/hub\.json: .*ENOENT/,
    );
  });

  it('rejects unknown flags, flags without a value and stray arguments', () => {
    assert.equal(
      errorOf(() => optionsFromSources(['--nope', '1'], {})),
      'unknown option --nope',
    );
    assert.equal(
      errorOf(() => optionsFromSources(['--maxBodyBytes', '1'], {})),
      'unknown option --maxBodyBytes',
    );
    assert.equal(
      errorOf(() => optionsFromSources(['-p', '1'], {})),
      'unknown option -p',
    );
    assert.equal(
      errorOf(() => optionsFromSources(['--port'], {})),
      '--port needs a value',
    );
    assert.equal(
      errorOf(() => optionsFromSources(['--port', '--host', '0.0.0.0'], {})),
      '--port needs a value',
    );
    assert.equal(
      errorOf(() => optionsFromSources(['--config'], {})),
      '--config needs a value',
    );
    assert.equal(
      errorOf(() => optionsFromSources(['3000'], {})),
      'unexpected argument "3000"',
    );
  });
});

describe('command-line parser', () => {
  const specs = [
    { flag: '--key', kind: 'string' as const },
    { flag: '--broadcast', kind: 'boolean' as const },
    { flag: '--timeout-ms', kind: 'int' as const },
  ];

  it('throws the one error class the CLI turns into exit code 2', () => {
    assert.equal(ArgsError, InvalidOptionError);
  });

  it('keeps positionals where allowed, switches without values, and everything after -- as positionals', () => {
    const p = parseFlags(['svc', '--key', 'k', '{"a":1}', '--broadcast', '--timeout-ms=50', '--', '--key'], specs, { positionals: true });
    assert.deepEqual(p.positionals, ['svc', '{"a":1}', '--key']);
    assert.deepEqual(
      [...p.values],
      [
        ['--key', 'k'],
        ['--broadcast', true],
        ['--timeout-ms', '50'],
      ],
    );
    assert.equal(
      errorOf(() => parseFlags(['--broadcast=yes'], specs)),
      '--broadcast takes no value, got "yes"',
    );
  });

  it('takes a dash-led value after = or when it cannot be a flag', () => {
    assert.equal(parseFlags(['--key=-x'], specs).values.get('--key'), '-x');
    assert.equal(parseFlags(['--key', '-'], specs).values.get('--key'), '-');
    assert.equal(
      errorOf(() => parseFlags(['--key', '--broadcast'], specs)),
      '--key needs a value',
    );
  });

  it('reads non-negative integers with underscores and names the source in errors', () => {
    assert.equal(parseCount('--n', '1_000_000'), 1_000_000);
    assert.equal(parseCount('--n', '0'), 0);
    for (const bad of ['', ' ', 'abc', '-1', '1.5', '1e3', '0x10', '_1', '99999999999999999999']) {
      assert.equal(
        errorOf(() => parseCount('--n', bad)),
        `--n must be a non-negative integer, got ${JSON.stringify(bad)}`,
      );
    }
    assert.equal(
      errorOf(() => parseCount('--concurrency', '0', 1)),
      '--concurrency must be at least 1, got 0',
    );
  });
});
