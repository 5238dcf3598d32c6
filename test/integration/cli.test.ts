import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { OPTION_SPECS } from '../../server/options.js';
import { CLI, Proc, startHub, stats, stopAll } from '../helpers/processes.js';

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
    await refuses(['request', 'svc', '--concurrency', '4'], 'unknown option --concurrency');
    await refuses(['request'], 'request: name a service');
  });

  it('lists every hub option with its flag and variable under --help', async () => {
    for (const args of [['help'], ['--help'], ['hub', '--help'], ['echo', '-h']]) {
      const r = await cli(args);
      assert.equal(r.code, 0);
      for (const s of OPTION_SPECS) {
        const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`${s.flag} `));
        assert.ok(line?.includes(s.env) && line.includes(s.help), `${args.join(' ')}: ${s.flag}`);
      }
      assert.match(r.stdout, /--config <file>\s+ASTROMESH_CONFIG/);
    }
  });

  it('starts a hub with flags over the environment, and serves an echo worker and a request given with flag=value', async () => {
    const hub = await startHub({ 'hub-id': 'from-flag' }, { ASTROMESH_HUB_ID: 'from-env' });
    assert.equal((await stats(hub)).hubId, 'from-flag');
    const echo = new Proc(
      spawn(process.execPath, [CLI, 'echo', 'cli-echo', `--url=${hub.url}`, '--concurrency=2', '--instance-id', 'cli-1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ASTROMESH_LOG_LEVEL: 'info' },
      }),
    );
    await echo.waitFor((l) => l.msg === 'serving', 10_000, 'echo worker to serve');
    const r = await cli(['request', 'cli-echo', '{"a":1}', '--url', hub.url, '--timeout-ms=5000', '--key=k1']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { echoed: { stream: 'cli-echo', partitionKey: 'k1', a: 1 } });
  });
});
