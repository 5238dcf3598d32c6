/**
 * Callers that keep sending until a hub exits, for shutdown tests, and what their requests came
 * to. A request that fails is told apart by the connection it went out on: one reused after an
 * earlier answer said nothing of closing, or a new one. A hub logs how many caller requests it
 * read in its "closed" line; when every one of them reached its caller as an answer, a failed
 * request on a new connection was never read.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { Agent, request } from 'undici';
import type { Proc } from './processes.js';
import { sleep } from './processes.js';

/** `reused`: sent on a connection that had carried an answer; `none`: no connection was made. */
export type Connection = 'reused' | 'new' | 'none';

/** An answer, or the connection-level error that came instead of one. */
export type Outcome = { status: number; sent: string; text: string } | { error: string; sent: string; connection: Connection };

// undici does not say which connection a request took; its diagnostics channels do.
const requestsOnSocket = new WeakMap<object, number>();
const sentOnReused = new WeakMap<object, boolean>();
const failedOnReused = new WeakMap<object, boolean>();
diagnostics.subscribe('undici:client:sendHeaders', (message) => {
  const { request, socket } = message as { request: object; socket: object };
  const before = requestsOnSocket.get(socket) ?? 0;
  requestsOnSocket.set(socket, before + 1);
  sentOnReused.set(request, before > 0);
});
diagnostics.subscribe('undici:request:error', (message) => {
  const { request, error } = message as { request: object; error: object };
  const reused = sentOnReused.get(request);
  if (reused !== undefined) failedOnReused.set(error, reused);
});

function connectionOf(err: unknown): Connection {
  const reused = typeof err === 'object' && err !== null ? failedOnReused.get(err) : undefined;
  return reused === undefined ? 'none' : reused ? 'reused' : 'new';
}

export interface Load {
  readonly outcomes: Outcome[];
  /** Ends the loops (after the hub exited) and closes their connections. */
  stop(): Promise<void>;
}

/**
 * `callers` loops, each POSTing `{"c":caller,"n":k}` to `url` over an agent with `connections`
 * keep-alive connections (no pipelining), until `stop()`.
 */
export function callUntilStopped(url: string, callers: number, connections: number): Load {
  const agent = new Agent({ connections, pipelining: 1 });
  const outcomes: Outcome[] = [];
  let stopped = false;
  const loops = Array.from({ length: callers }, async (_, c) => {
    for (let n = 0; !stopped; n++) {
      const sent = `{"c":${c},"n":${n}}`;
      try {
        const r = await request(url, { method: 'POST', body: sent, headers: { 'content-type': 'application/json' }, dispatcher: agent });
        outcomes.push({ status: r.statusCode, sent, text: await r.body.text() });
      } catch (err) {
        outcomes.push({ error: errorName(err), sent, connection: connectionOf(err) });
        // Once the port is closed a new connection is refused at once: do not spin.
        await sleep(10);
      }
    }
  });
  let stopping: Promise<void> | null = null;
  return {
    outcomes,
    stop() {
      stopped = true;
      stopping ??= Promise.all(loops).then(() => agent.close());
      return stopping;
    },
  };
}

/** ECONNREFUSED, ECONNRESET, or undici's socket error with its cause ("other side closed": a FIN). */
function errorName(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  if (e.code === 'UND_ERR_SOCKET') return `UND_ERR_SOCKET(${e.cause?.code ?? e.message})`;
  return e.code ?? e.message;
}

export interface Tally {
  answered: Extract<Outcome, { status: number }>[];
  failed: Extract<Outcome, { error: string }>[];
  /** Outcomes by status or by error and connection, for messages. */
  counts: Record<string, number>;
}

export function tally(outcomes: Outcome[]): Tally {
  const t: Tally = { answered: [], failed: [], counts: {} };
  for (const o of outcomes) {
    const key = 'error' in o ? `${o.error} (${o.connection} connection)` : String(o.status);
    t.counts[key] = (t.counts[key] ?? 0) + 1;
    if ('error' in o) t.failed.push(o);
    else t.answered.push(o);
  }
  return t;
}

/**
 * Asserts that the (exited) hub reset nothing it should not have:
 * - no request on a reused keep-alive connection failed: the hub closes a connection only after
 *   an answer that said so;
 * - besides refusals once the port is closed, a request on a new connection failed only if the
 *   hub never read it: the kernel resets connections still in its accept queue when the port
 *   closes (before or after the request went out), and one accepted just before whose request
 *   comes after the hub exited meets a closed socket. As many answers reached the callers as the
 *   hub read caller requests, so none of these was read. Each caller has one request at a time:
 *   at most `callers` of them.
 */
export async function assertNoReadRequestLost(outcomes: Outcome[], hub: Proc, callers: number): Promise<Tally & { read: number }> {
  const t = tally(outcomes);
  const read = await callerRequestsRead(hub);
  const counts = JSON.stringify(t.counts);
  assert.deepEqual(
    t.failed.filter((f) => f.connection === 'reused').map((f) => f.error),
    [],
    `no request on a reused connection failed (${counts})`,
  );
  assert.equal(t.answered.length, read, `every request the hub read reached its caller as an answer (${counts})`);
  const unread = t.failed.filter((f) => f.error !== 'ECONNREFUSED').length;
  assert.ok(unread <= callers, `${unread} requests on new connections failed unread (${counts})`);
  return { ...t, read };
}

/** The caller requests a hub read, from its "closed" line; call after the process exited. */
export async function callerRequestsRead(hub: Proc): Promise<number> {
  await hub.closed;
  const line = hub.lines.find((l) => (l as { msg?: string }).msg === 'closed') as { callerRequests?: number } | undefined;
  if (typeof line?.callerRequests !== 'number') throw new Error('the hub logged no "closed" line with callerRequests');
  return line.callerRequests;
}
