/**
 * Real processes for tests: hubs and workers on 127.0.0.1, each started with --port 0 and
 * read back from its own output, and every one killed by PID when the test file ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/server/cli.js */
export const CLI = path.resolve(here, '../../server/cli.js');
/** dist/test/fixtures/worker.js */
export const WORKER = path.resolve(here, '../fixtures/worker.js');
/** dist/test/fixtures/meshage-node.js: a node built with `meshage()`, every service echoing its message. */
export const MESHAGE_NODE = path.resolve(here, '../fixtures/meshage-node.js');

const started = new Set<ChildProcess>();

function killAll(): void {
  for (const p of started) {
    if (p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(p.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  started.clear();
}
process.on('exit', killAll);

/** Kills every process this test file started. Register with `after(stopAll)`. */
export async function stopAll(): Promise<void> {
  const waits = [...started].filter((p) => p.exitCode === null && p.signalCode === null).map((p) => once(p, 'exit'));
  killAll();
  await Promise.race([Promise.all(waits), sleep(2000)]);
}

/** A line-oriented view of a child's stdout, JSON lines parsed. */
export class Proc {
  readonly lines: unknown[] = [];
  readonly stderr: string[] = [];
  private waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process has exited and its stdout and stderr are read to the end. */
  readonly closed: Promise<void>;

  constructor(readonly child: ChildProcess) {
    started.add(child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let v: unknown = line;
      try {
        v = JSON.parse(line);
      } catch {
        // plain text line
      }
      this.lines.push(v);
      if (v && typeof v === 'object') {
        const rec = v as Record<string, unknown>;
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(rec)) return true;
          w.resolve(rec);
          return false;
        });
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => this.stderr.push(line));
    this.closed = once(child, 'close').then(() => undefined);
    this.exited = once(child, 'exit').then(([code, signal]) => {
      started.delete(child);
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first JSON line (past or future) that matches. */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs = 5000, what = 'line'): Promise<Record<string, unknown>> {
    for (const l of this.lines) if (l && typeof l === 'object' && pred(l as Record<string, unknown>)) return Promise.resolve(l as Record<string, unknown>);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stderr: ${this.stderr.slice(-12).join('\n')}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  }

  /** JSON lines with `event === name`. */
  events(name: string): Record<string, unknown>[] {
    return this.lines.filter((l): l is Record<string, unknown> => !!l && typeof l === 'object' && (l as Record<string, unknown>).event === name);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }
}

export interface HubProc extends Proc {
  port: number;
  url: string;
}

/**
 * Starts a hub process on `port` without waiting for it to listen: for a port another hub
 * holds or just left, where the test waits for its exit instead (see `Proc.exited`).
 */
export function spawnHub(port: number, flags: Record<string, string | number> = {}, env: NodeJS.ProcessEnv = {}): Proc {
  const args = [CLI, 'hub', '--port', String(port), '--log-level', 'info'];
  for (const [k, v] of Object.entries(flags)) args.push(`--${k}`, String(v));
  return new Proc(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

/** Starts a hub on a free port; `flags` are CLI flags such as {'default-timeout-ms': 500}. */
export function startHub(flags: Record<string, string | number> = {}, env: NodeJS.ProcessEnv = {}): Promise<HubProc> {
  return startHubOn(0, flags, env);
}

/** Starts a hub on `port` (0: a free one) and waits until it listens; rejects if it exits first. */
export async function startHubOn(port: number, flags: Record<string, string | number> = {}, env: NodeJS.ProcessEnv = {}): Promise<HubProc> {
  const proc = spawnHub(port, flags, env) as HubProc;
  const line = await listening(proc, 'hub');
  proc.port = line.port as number;
  proc.url = `http://127.0.0.1:${proc.port}`;
  return proc;
}

/** Resolves with the "listening" line of a hub (or node) process; rejects if it exits first. */
export function listening(proc: Proc, what: string): Promise<Record<string, unknown>> {
  return Promise.race([
    proc.waitFor((l) => l.msg === 'listening', 10_000, `${what} to listen`),
    proc.exited.then(async (e) => {
      await proc.closed;
      throw new Error(`${what} exited ${JSON.stringify(e)}: ${proc.stderr.join('\n')}`);
    }),
  ]);
}

/** Behaviour of one service in the fixture worker (see test/fixtures/worker.ts). */
export interface ServiceSpec {
  name: string;
  /** echo (default), meshage, sleep, fail, hang, exit */
  mode?: 'echo' | 'meshage' | 'sleep' | 'fail' | 'hang' | 'exit';
  sleepMs?: number;
  concurrency?: number;
  weight?: number;
  /** Keep running after cancel (and ack only when done). */
  ignoreCancel?: boolean;
}

export interface WorkerSpec {
  url: string;
  instanceId?: string;
  services: ServiceSpec[];
  /** The worker's token (a hub with auth on). */
  token?: string;
  /** A token with the monitor right, to watch /stats for the registration (a hub with auth on). */
  statsToken?: string;
}

/** Starts a fixture worker process (`fixture`: WORKER or MESHAGE_NODE) and waits until it is registered. */
export async function startWorker(spec: WorkerSpec, fixture = WORKER): Promise<Proc & { instanceId: string }> {
  const child = spawn(process.execPath, [fixture, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new Proc(child);
  const ready = await proc.waitFor((l) => l.event === 'ready', 10_000, 'worker to be ready');
  // Registered means the hub lists every service for this instance.
  await waitUntil(
    async () => {
      const st = await stats({ url: spec.url.split(',')[0]! }, spec.statsToken);
      const w = st.workers.find((x: { instanceId: string }) => x.instanceId === ready.instanceId);
      return w && w.services.length === spec.services.length;
    },
    5000,
    'worker registration',
  );
  (proc as Proc & { instanceId: string }).instanceId = ready.instanceId as string;
  return proc as Proc & { instanceId: string };
}

/**
 * A port for a hub that must restart on the same port: fixed (a --port 0 hub's port stays in
 * TIME_WAIT after it exits) and below the kernel's ephemeral range (32768 and up), so no
 * client connection's TIME_WAIT can hold it either.
 */
export function fixedPort(): number {
  return 20_000 + Math.floor(Math.random() * 12_000);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function waitUntil<T>(fn: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** GET /stats of a hub. */
// biome-ignore lint/suspicious/noExplicitAny: tests read the /stats JSON field by field
export async function stats(hub: { url: string }, token?: string): Promise<any> {
  const r = await fetch(`${hub.url}/stats`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return r.json();
}

/** POST a body and read the whole answer. */
export async function post(url: string, body: string | Uint8Array = '{}', headers: Record<string, string> = {}, signal?: AbortSignal) {
  const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, ...(signal ? { signal } : {}) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) };
}
