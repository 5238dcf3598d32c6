import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { OPTION_SPECS } from '../../server/options.js';
import { CLI, fixedPort, Proc, startHub, startHubOn, stats, stopAll } from '../helpers/processes.js';

/** Runs the CLI to its end and collects what it printed. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const { code } = await new Proc(child).exited;
  return { code, stdout, stderr };
}

/** Exit code 2 and exactly `message` as the one line on stderr: no usage dump, no stack trace. */
async function refuses(args: string[], message: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await cli(args, env);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr, `astromesh: ${message}\n`);
  assert.equal(r.stdout, '');
}

describe('astromesh CLI arguments', () => {
  after(stopAll);

  it('refuses a malformed hub flag naming the flag, in both spellings', async () => {
    await refuses(['hub', '--max-body-bytes', 'abc'], '--max-body-bytes must be a non-negative integer, got "abc"');
    await refuses(['hub', '--max-body-bytes=abc'], '--max-body-bytes must be a non-negative integer, got "abc"');
    await refuses(['--port', '-1'], '--port must be a non-negative integer, got "-1"');
  });

  it('names the flag when a hub value breaks a limit', async () => {
    await refuses(['hub', '--longpoll-wait-ms', '999999999'], '--longpoll-wait-ms must not exceed --longpoll-max-wait-ms (999999999 > 120000)');
  });

  it('names the environment variable or the config file key the value came from', async () => {
    await refuses(['hub'], 'ASTROMESH_MAX_BODY_BYTES must be a non-negative integer, got "abc"', { ASTROMESH_MAX_BODY_BYTES: 'abc' });
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-')), 'hub.json');
    writeFileSync(file, JSON.stringify({ maxBodyBytes: 'abc' }));
    await refuses(['hub', '--config', file], `"maxBodyBytes" in ${file} must be a non-negative integer, got "abc"`);
    await refuses(['hub'], `"maxBodyBytes" in ${file} must be a non-negative integer, got "abc"`, { ASTROMESH_CONFIG: file });
  });

  it('refuses unknown flags, missing values, stray arguments and unknown commands', async () => {
    await refuses(['hub', '--nope', '1'], 'unknown option --nope');
    await refuses(['hub', '--port'], '--port needs a value');
    await refuses(['hub', '3000'], 'unexpected argument "3000"');
    await refuses(['serve'], 'unknown command "serve" (astromesh help lists the commands)');
  });

  it('checks the echo and request flags', async () => {
    await refuses(['echo', 'svc', '--concurrency', 'abc'], '--concurrency must be a non-negative integer, got "abc"');
    await refuses(['echo', 'svc', '--concurrency=0'], '--concurrency must be at least 1, got 0');
    await refuses(['echo', 'svc', '--timeout-ms', '5'], 'unknown option --timeout-ms');
    await refuses(['echo'], 'echo: name at least one service');
    await refuses(['request', 'svc', '--timeout-ms', 'soon'], '--timeout-ms must be a non-negative integer, got "soon"');
    await refuses(['request', 'svc', '--timeout-ms'], '--timeout-ms needs a value');
    await refuses(['request', 'svc', '--broadcast=yes'], '--broadcast takes no value, got "yes"');
    await refuses(['request', 'svc', '--count', '0'], '--count must be at least 1, got 0');
    await refuses(['request'], 'request: name a service');
    await refuses(['owner', 'svc'], 'owner: name a stream and a key');
  });

  it('lists every hub option with its flag and variable under --help', async () => {
    for (const args of [['help'], ['--help'], ['hub', '--help']]) {
      const r = await cli(args);
      assert.equal(r.code, 0);
      for (const s of OPTION_SPECS) {
        const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`${s.flag} `));
        assert.ok(line?.includes(s.env) && line.includes(s.help), `${args.join(' ')}: ${s.flag}`);
      }
      assert.match(r.stdout, /--config <file>\s+ASTROMESH_CONFIG/);
    }
  });

  it('answers --help for every command with its own usage, and --version', async () => {
    for (const [cmd, what] of [
      ['echo', /astromesh echo <service\.\.\.>/],
      ['request', /--count N/],
      ['owner', /astromesh owner <stream> <key>/],
      ['token', /astromesh token \[name\]/],
      ['hash-token', /astromesh hash-token/],
    ] as const) {
      for (const flag of ['--help', '-h']) {
        const r = await cli([cmd, flag]);
        assert.equal(r.code, 0, `${cmd} ${flag}`);
        assert.match(r.stdout, what, `${cmd} ${flag}`);
      }
    }
    const v = await cli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^astromesh \d+\.\d+\.\d+\n$/);
  });

  it('reads a YAML config file, keys as option names or flags, naming the key the user wrote in errors', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'astromesh-'));
    const good = path.join(dir, 'hub.yaml');
    // A count may be written as a flag's value is, digits grouped with underscores.
    writeFileSync(good, 'hub-id: from-yaml\nmaxBodyBytes: "2_048"\n');
    const hub = await startHub({ config: good }, {});
    const st = await stats(hub);
    assert.equal(st.hubId, 'from-yaml');
    const bad = path.join(dir, 'bad.yml');
    writeFileSync(bad, 'max-body-bytes: lots\n');
    await refuses(['hub', '--config', bad], `"max-body-bytes" in ${bad} must be a non-negative integer, got "lots"`);
    writeFileSync(bad, 'max-body-bytes: 10\nmaxBodyBytes: 20\n');
    await refuses(['hub', '--config', bad], `"max-body-bytes" and "maxBodyBytes" in ${bad} name the same option`);
    writeFileSync(bad, 'max-body-bytes: 1_0x\n');
    await refuses(['hub', '--config', bad], `"max-body-bytes" in ${bad} must be a non-negative integer, got "1_0x"`);
    writeFileSync(bad, 'nope: 1\n');
    await refuses(['hub', '--config', bad], `unknown option "nope" in ${bad}`);
    writeFileSync(bad, '- a list\n');
    await refuses(['hub', '--config', bad], `config file ${bad} must hold a YAML mapping`);
    await refuses(['hub', '--log-format', 'fancy'], '--log-format must be one of json, pretty, got "fancy"');
  });

  it('logs aligned text with --log-format pretty', async () => {
    const child = spawn(process.execPath, [CLI, 'hub', '--port', '0', '--log-format', 'pretty'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new Proc(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const until = Date.now() + 5000;
    while (!/\n/.test(out) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    await proc.exited;
    assert.match(out.split('\n')[0]!, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}listening {2}port=\d+ host=127\.0\.0\.1 /);
  });

  it('starts a hub with flags over the environment, and serves an echo worker and a request given with flag=value', async () => {
    // A fixed port (not 0): the hub restarts on it below, which a port-0 hub's TIME_WAIT would block.
    const hub = await startHubOn(fixedPort(), { 'hub-id': 'from-flag' }, { ASTROMESH_HUB_ID: 'from-env' });
    assert.equal((await stats(hub)).hubId, 'from-flag');
    const echo = new Proc(
      spawn(process.execPath, [CLI, 'echo', 'cli-echo', `--url=${hub.url}`, '--concurrency=2', '--instance-id', 'cli-1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ASTROMESH_LOG_LEVEL: 'info' },
      }),
    );
    const serving = await echo.waitFor((l) => /^serving cli-echo on ws:\/\//.test(String(l.msg)), 10_000, 'echo worker to serve');
    assert.equal(serving.msg, `serving cli-echo on ${hub.url.replace('http', 'ws')}/ws`);
    const r = await cli(['request', 'cli-echo', '{"a":1}', '--url', hub.url, '--timeout-ms=5000', '--key=k1']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { echoed: { stream: 'cli-echo', partitionKey: 'k1', a: 1 } });
    assert.match(r.stderr, /^200 in \d+\.\d ms \(served by from-flag\/cli-1\)\n$/);
    const v = await cli(['request', 'cli-echo', '{}', '--url', hub.url, '-v']);
    assert.match(v.stderr, /^x-served-by: from-flag\/cli-1$/m);
    const failed = await cli(['request', 'no-such-service', '{}', '--url', hub.url]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^503 E_NO_WORKERS in \d+\.\d ms: /);
    const load = await cli(['request', 'cli-echo', '{}', '--url', hub.url, '--count', '200', '--concurrency', '8']);
    assert.equal(load.code, 0, load.stderr);
    assert.match(
      load.stdout,
      /^200 requests, 8 at a time, in [\d.]+ s: \d+ req\/s\noutcomes: ok 200\nlatency ms: min [\d.]+ {2}p50 [\d.]+ {2}p90 [\d.]+ {2}p99 [\d.]+ {2}max [\d.]+\n$/,
    );
    const owner = await cli(['owner', 'cli-echo', 'user-7', '--url', hub.url]);
    assert.equal(owner.code, 0, owner.stderr);
    assert.match(owner.stdout, /^ {2}1 {2}cli-1 {2}hub from-flag {2}weight 1 {2}<- owner$/m);
    // The worker says once that it lost the hub, and again when it serves on the hub that came back.
    hub.kill('SIGKILL');
    await echo.waitFor((l) => l.msg === 'lost the hub; reconnecting', 5000, 'the loss');
    const back = await startHubOn(hub.port, { 'hub-id': 'from-flag' });
    await echo.waitFor((l) => /^serving cli-echo on .* again$/.test(String(l.msg)), 10_000, 'serving again');
    assert.equal(echo.lines.filter((l) => (l as { msg?: string }).msg === 'lost the hub; reconnecting').length, 1);
    back.kill('SIGTERM');
  });
});
