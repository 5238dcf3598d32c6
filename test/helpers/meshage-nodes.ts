/** meshage nodes (embedded hubs) as processes, started from a script with meshage's environment variables. */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type HubProc, listening, Proc } from './processes.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** test/fixtures in the source tree (the scripts are JavaScript, run as they are). */
export const FIXTURES = path.resolve(here, '../../../test/fixtures');

/** Fast failure detection for the node's embedded hub, through its ASTROMESH_* environment. */
export const NODE_ENV = {
  ASTROMESH_PEER_TIMEOUT_MS: '600',
  ASTROMESH_PEER_RECONNECT_MAX_MS: '200',
  ASTROMESH_PEER_SYNC_TIMEOUT_MS: '2000',
  ASTROMESH_SHUTDOWN_GRACE_MS: '2000',
};

export interface NodeProc extends HubProc {
  clusterPort: number;
}

/** Runs `script` (in test/fixtures) with `env` and waits for its node to listen. */
export async function startNode(script: string, env: Record<string, string>): Promise<NodeProc> {
  const child = spawn(process.execPath, [path.join(FIXTURES, script)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...NODE_ENV, ...env } });
  const proc = new Proc(child) as NodeProc;
  const line = await listening(proc, 'node');
  proc.port = line.port as number;
  proc.clusterPort = line.clusterPort as number;
  proc.url = `http://127.0.0.1:${proc.port}`;
  return proc;
}

/** `n` distinct ports below the ephemeral range. */
export async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) {
    const p = 20_000 + Math.floor(Math.random() * 12_000);
    // Another test file running beside this one may hold a port of this range.
    if (await portFree(p)) ports.add(p);
  }
  return [...ports];
}

/** Whether `port` can be bound on `host` now. */
export function portFree(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}
