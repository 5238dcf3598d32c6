/**
 * Fault drills and abuse against meshage nodes (embedded hubs serving their handlers in-process):
 * handlers that never answer, throw what is not an Error, return what JSON cannot hold or what
 * no worker could send, call themselves, block the event loop; hostile HTTP at a node and hostile
 * links at its cluster port; a WebSocket worker killed beside the in-process handlers; a node
 * killed, stopped, frozen or cut off under load from callers on every node. Each case asserts the
 * documented outcome, one answer per request, and that the nodes keep serving.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ERRORS } from '../../client/errors.js';
import { type JobFrame, Op, type WelcomeFrame } from '../../client/protocol.js';
import { PeerOp } from '../../server/mesh/peer-protocol.js';
import { converged } from '../helpers/mesh.js';
import { distinctPorts, type NodeProc, startNode } from '../helpers/meshage-nodes.js';
import { post, sleep, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { atBaseline, errorAnswerProblem, exchange, HttpConnection, parseResponse, type RawResponse, rssKiB } from '../helpers/raw-http.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

after(stopAll);

const SCRIPT = 'meshage-hostile.mjs';
const SECRET = 'drill-secret';
const MAX_BODY = 256 * 1024;
/** Every node's hub: a secret on its cluster port, a small body limit and queue budget, short deadlines. */
const ENV = {
  ASTROMESH_CLUSTER_SECRET: SECRET,
  ASTROMESH_MAX_BODY_BYTES: String(MAX_BODY),
  ASTROMESH_MAX_QUEUED_BYTES: String(1024 * 1024),
  ASTROMESH_DEFAULT_TIMEOUT_MS: '2000',
};
/** The deadline every load request carries; a caller that waits past it (and a margin) counts as a hang. */
const DEADLINE_MS = 3000;

type Answer = Awaited<ReturnType<typeof post>>;

/** Starts a node of the hostile fixture, seeded with `seeds`, and waits until it has started. */
async function node(name: string, seeds: string[] = []): Promise<NodeProc> {
  const [cluster, http] = await distinctPorts(2);
  const n = await startNode(SCRIPT, { ...ENV, NODE_NAME: name, CLUSTER_PORT: String(cluster), HTTP_PORT: String(http), SEEDS: seeds.join(',') });
  await n.waitFor((l) => l.msg === 'started', 8000, `${name} started`);
  return n;
}

const seedOf = (n: NodeProc) => `127.0.0.1:${n.clusterPort}`;
const hubIdOf = (n: NodeProc) => `127.0.0.1-${n.clusterPort}`;
const localOf = (n: NodeProc) => `${hubIdOf(n)}/${hubIdOf(n)}.local`;
/** Lines the node logged when one of its peer links closed. */
const linkClosures = (n: NodeProc) => n.lines.filter((l) => (l as { msg?: string }).msg === 'peer link closed').length;

/** An error answer of the catalogue (JSON body, X-Error-Code, Retry-After on 503) with this status and code. */
function assertError(r: Answer, status: number, code: string, what: string, message?: string | RegExp): void {
  assert.equal(r.status, status, `${what}: ${r.text}`);
  assert.equal(r.headers.get('x-error-code'), code, what);
  const body = r.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, code, what);
  if (typeof message === 'string') assert.equal(body.error.message, message, what);
  else if (message) assert.match(body.error.message, message, what);
  if (status === 503) assert.equal(r.headers.get('retry-after'), '1', what);
}

/** Where each key of `stream` lands from `n`: the X-Served-By of an answer. */
async function owners(n: NodeProc, keys: string[], stream = 'echo'): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  await Promise.all(
    keys.map(async (k) => {
      const r = await post(`${n.url}/api/${stream}/${k}`, '{}', { 'x-timeout-ms': String(DEADLINE_MS) });
      assert.equal(r.status, 200, r.text);
      m.set(k, r.headers.get('x-served-by')!);
    }),
  );
  return m;
}

/** The ring digest of `stream` on `n`. */
async function digest(n: NodeProc, stream = 'echo'): Promise<string> {
  return (await stats(n)).services.find((s: { name: string }) => s.name === stream).ring.digest;
}

/** Sum over nodes of a service's jobs at its consumers and in its queue. */
async function held(nodes: NodeProc[], stream: string): Promise<{ inflight: number; queued: number }> {
  let inflight = 0;
  let queued = 0;
  for (const n of nodes) {
    const s = (await stats(n)).services.find((x: { name: string }) => x.name === stream);
    inflight += s?.inflight ?? 0;
    queued += s?.queued ?? 0;
  }
  return { inflight, queued };
}

/** Jobs of `victim`'s keys, asked at `from` in turn, all running at `victim` once this resolves; their answers. */
async function runningAt(victim: NodeProc, from: NodeProc[], keys: string[], ms: number): Promise<Promise<Answer>[]> {
  const answers = keys.map((k, i) => post(`${from[i % from.length]!.url}/api/slow/${k}`, JSON.stringify({ i, ms }), { 'x-timeout-ms': String(DEADLINE_MS) }));
  await waitUntil(async () => (await held([victim], 'slow')).inflight >= keys.length, 3000, 'jobs running at the victim');
  return answers;
}

/** Jobs the nodes ran again after their consumer (a peer's handler) was lost. */
async function redeliveries(nodes: NodeProc[]): Promise<number> {
  let n = 0;
  for (const x of nodes) n += (await stats(x)).jobs.redelivered;
  return n;
}

interface Outcome {
  at: string;
  kind: 'keyed' | 'broadcast';
  status: number;
  code: string | null;
  text: string;
  ms: number;
  /** The request failed without an answer: 'connection' (the node's socket went away) or 'hang'. */
  failure?: 'connection' | 'hang';
}

/**
 * Callers on nodes, each sending one request after another until stopped: keyed requests to
 * `slow` (over 40 keys) or broadcasts to `echo`. Every outcome is kept.
 */
class Load {
  /** Loads not stopped yet: a test that fails stops its own in afterEach. */
  static readonly running = new Set<Load>();
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(callers: { at: NodeProc; kind: 'keyed' | 'broadcast'; ms?: number }[]) {
    for (const [n, c] of callers.entries()) this.loops.push(this.loop(c.at, c.kind, n, c.ms ?? 30));
    Load.running.add(this);
  }

  static async stopAll(): Promise<void> {
    await Promise.all([...Load.running].map((l) => l.stop()));
  }

  private async loop(at: NodeProc, kind: 'keyed' | 'broadcast', n: number, ms: number): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const path = kind === 'keyed' ? `/api/slow/load-${(n * 7 + i) % 40}` : `/api/broadcast/echo/b-${i}`;
      const t0 = Date.now();
      const o: Outcome = { at: at.url, kind, status: 0, code: null, text: '', ms: 0 };
      try {
        const r = await fetch(`${at.url}${path}`, {
          method: 'POST',
          body: JSON.stringify({ i, ms }),
          headers: { 'content-type': 'application/json', 'x-timeout-ms': String(DEADLINE_MS) },
          signal: AbortSignal.timeout(DEADLINE_MS + 2000),
        });
        o.status = r.status;
        o.code = r.headers.get('x-error-code');
        o.text = await r.text();
      } catch (err) {
        o.failure = (err as Error).name === 'TimeoutError' ? 'hang' : 'connection';
        // A node that is gone refuses at once: do not spin on it.
        await sleep(20);
      }
      o.ms = Date.now() - t0;
      this.outcomes.push(o);
    }
  }

  /** Resolves once `n` more answers have come. */
  async more(n: number, timeoutMs = 8000): Promise<void> {
    const target = this.outcomes.length + n;
    await waitUntil(() => this.outcomes.length >= target, timeoutMs, `${n} more answers`);
  }

  async stop(): Promise<Outcome[]> {
    this.stopped = true;
    Load.running.delete(this);
    await Promise.all(this.loops);
    return this.outcomes;
  }
}

/**
 * How strict a check of answers is: `all` takes only 200s whose every broadcast part is an echo;
 * `parts` lets a broadcast part be E_WORKER_GONE (its node went away or left before it ran, see
 * README "Moving from meshage"); `documented` also takes a 502, 503 or 504 error answer of the
 * catalogue, and any catalogue error as a part.
 */
type Strictness = 'all' | 'parts' | 'documented';

/**
 * The problem with an answer a node gave to a caller of the load, or null: a keyed answer is the
 * slow handler's (`{"i":…}`), a broadcast answer an array of echoes (or errors, as `strictness` allows).
 */
function problem(o: Outcome, strictness: Strictness): string | null {
  if (o.failure) return `${o.failure} after ${o.ms} ms`;
  if (o.ms > DEADLINE_MS + 1000) return `answered after ${o.ms} ms, past its deadline`;
  if (o.status !== 200) {
    if (strictness !== 'documented') return `${o.status} ${o.code}`;
    if (![502, 503, 504].includes(o.status) || !o.code || !Object.hasOwn(ERRORS, o.code)) return `${o.status} ${o.code} ${o.text}`;
    return JSON.parse(o.text).error?.code === o.code ? null : `body ${o.text}`;
  }
  if (o.kind === 'keyed') return /^\{"i":\d+\}$/.test(o.text) ? null : `keyed answer ${o.text}`;
  const parts = JSON.parse(o.text) as { echoed?: unknown; error?: { code: string } }[];
  if (!Array.isArray(parts) || parts.length === 0) return `broadcast answer ${o.text}`;
  for (const p of parts) {
    if (p.echoed) continue;
    const allowed = strictness === 'documented' ? Object.hasOwn(ERRORS, p.error?.code ?? '') : strictness === 'parts' && p.error?.code === 'E_WORKER_GONE';
    if (!allowed) return `broadcast part ${JSON.stringify(p)}`;
  }
  return null;
}

function assertAnswers(outcomes: Outcome[], strictness: Strictness, what: string): void {
  assert.ok(outcomes.length > 0, `${what}: no requests`);
  const bad = outcomes.map((o) => [o, problem(o, strictness)] as const).filter(([, p]) => p !== null);
  assert.deepEqual(
    bad.slice(0, 5).map(([o, p]) => `${o.kind} at ${o.at}: ${p}`),
    [],
    `${what}: ${bad.length} of ${outcomes.length} answers wrong`,
  );
}

describe('meshage nodes: hostile handlers, callers and peers', { timeout: 120_000 }, () => {
  let a: NodeProc;
  let b: NodeProc;

  before(async () => {
    a = await node('a');
    b = await node('b', [seedOf(a)]);
    await converged([a, b], 'echo', 2);
    await converged([a, b], 'raw', 2);
  });

  /** Both nodes are alive, no peer link closed since `closures`, and a keyed echo works from each. */
  async function stillServe(closures: number, what: string): Promise<void> {
    for (const n of [a, b]) {
      assert.equal(n.child.exitCode, null, `${what}: node alive`);
      const r = await post(`${n.url}/api/echo/still-${what.length}`, '{"x":1}');
      assert.equal(r.status, 200, `${what}: ${r.text}`);
    }
    assert.equal(linkClosures(a) + linkClosures(b), closures, `${what}: the nodes' link stayed up`);
  }

  it('a handler that throws what is not an Error answers 500 E_HANDLER, from its own node and through its peer', async () => {
    const closures = linkClosures(a) + linkClosures(b);
    const messages: Record<string, [string, string]> = {
      string: ['a string', 'a string'],
      null: ['null', 'handler rejected'],
      undefined: ['handler threw undefined', 'handler rejected'],
      number: ['42', '42'],
      object: ['[object Object]', '[object Object]'],
      nullproto: ['[object Object]', '[object Object]'],
      symbol: ['Symbol(s)', 'Symbol(s)'],
    };
    for (const [kind, [thrown, rejected]] of Object.entries(messages)) {
      for (const async of [false, true]) {
        for (const n of [a, b]) {
          const r = await post(`${n.url}/api/throw/t1`, JSON.stringify({ kind, async }));
          assertError(r, 500, 'E_HANDLER', `${kind} ${async ? 'rejected' : 'thrown'} at ${n.url}`, async ? rejected : thrown);
        }
      }
    }
    await stillServe(closures, 'throws');
  });

  it('a value JSON cannot hold is 500 E_HANDLER; one it drops is null; a reply over the body limit is 502 E_BAD_REPLY and does not cut the link', async () => {
    const closures = linkClosures(a) + linkClosures(b);
    const keys = ['w1', 'w2', 'w3', 'w4', 'w5', 'w6'];
    const own = await owners(a, keys);
    // A key of each node, asked from both: served in-process at one, forwarded from the other.
    const pick = [keys.find((k) => own.get(k) === localOf(a))!, keys.find((k) => own.get(k) === localOf(b))!];
    assert.ok(pick[0] && pick[1], `keys of both nodes among ${JSON.stringify([...own])}`);
    for (const key of pick) {
      for (const n of [a, b]) {
        const ask = (kind: string, extra = {}) => post(`${n.url}/api/ret/${key}`, JSON.stringify({ kind, ...extra }), { 'x-timeout-ms': '3000' });
        const where = `key ${key} asked at ${n.url}`;
        assertError(await ask('bigint'), 500, 'E_HANDLER', `bigint, ${where}`, /BigInt/);
        assertError(await ask('circular'), 500, 'E_HANDLER', `circular, ${where}`, /circular/);
        for (const [kind, text] of [
          ['symbol', 'null'],
          ['fn', 'null'],
          ['nan', 'null'],
          ['number', '404'],
          ['buffer', '{"type":"Buffer","data":[104,105]}'],
        ]) {
          const r = await ask(kind!);
          assert.deepEqual([r.status, r.text, r.headers.get('content-type')], [200, text, 'application/json; charset=utf-8'], `${kind}, ${where}`);
        }
        // The largest reply that fits the limit (a JSON string: its quotes count).
        const fits = await ask('huge', { n: MAX_BODY - 2 });
        assert.equal(fits.status, 200, `${where}: ${fits.text.slice(0, 200)}`);
        assert.equal(fits.text.length, MAX_BODY, where);
        assert.equal(fits.headers.get('x-served-by'), own.get(key), where);
        const over = await ask('huge', { n: MAX_BODY - 1 });
        assertError(over, 502, 'E_BAD_REPLY', `one byte over, ${where}`);
        assert.equal(over.headers.get('x-served-by'), own.get(key), `${where}: the handler that answered is named`);
      }
    }
    await stillServe(closures, 'weird values');
  });

  it('an in-process handler of the hub that returns what no worker could send: 500 E_HANDLER (a reply of the wrong shape, as a Worker answers it) or 502 E_BAD_REPLY (a body over the limit); the node and its link stay up', async () => {
    const closures = linkClosures(a) + linkClosures(b);
    for (const key of ['r1', 'r2', 'r3', 'r4']) {
      for (const n of [a, b]) {
        const ask = (kind: string, extra = {}) => post(`${n.url}/api/raw/${key}`, JSON.stringify({ kind, ...extra }));
        for (const kind of ['headers', 'contentType', 'headerValue', 'body'])
          assertError(await ask(kind), 500, 'E_HANDLER', `${kind}, key ${key} at ${n.url}`, /the handler's reply was refused/);
        assertError(await ask('huge', { n: MAX_BODY + 1 }), 502, 'E_BAD_REPLY', `huge, key ${key} at ${n.url}`);
        assertError(await ask('status'), 500, 'E_HANDLER', `status, key ${key} at ${n.url}`, /status 200\.5/);
        const fine = await ask('huge', { n: MAX_BODY });
        assert.deepEqual([fine.status, fine.text.length], [200, MAX_BODY], `fine, key ${key} at ${n.url}`);
      }
    }
    await stillServe(closures, 'raw replies');
  });

  it('a handler that never returns: 504 at the deadline, its credit stays held, the next requests queue within the budget, other streams are served', async () => {
    const t0 = Date.now();
    const first = await post(`${a.url}/api/never/n1`, '{}', { 'x-timeout-ms': '300' });
    assertError(first, 504, 'E_DEADLINE', 'the first request');
    assert.ok(Date.now() - t0 < 1500, `504 after ${Date.now() - t0} ms`);
    // The handler still runs: its one credit is held, on the node that owns n1.
    await waitUntil(async () => (await held([a, b], 'never')).inflight === 1, 3000, 'the credit held');
    const owner = (await stats(a)).services.find((s: { name: string }) => s.name === 'never').inflight === 1 ? a : b;

    // 100 KiB bodies against a 1 MiB queue budget: 10 wait, the rest are refused at once.
    const body = JSON.stringify({ pad: 'p'.repeat(100 * 1024) });
    const t1 = Date.now();
    const waiting = Array.from({ length: 15 }, () =>
      post(`${owner.url}/api/never/n1`, body, { 'x-timeout-ms': '800' }).then((r) => [r, Date.now() - t1] as const),
    );
    await sleep(100);
    // Meanwhile the node serves its other streams at once.
    const t2 = Date.now();
    const echo = await post(`${owner.url}/api/echo/n1`, '{}');
    assert.equal(echo.status, 200);
    assert.ok(Date.now() - t2 < 300, `echo answered in ${Date.now() - t2} ms`);
    const rs = await Promise.all(waiting);
    const full = rs.filter(([r]) => r.status === 503);
    const expired = rs.filter(([r]) => r.status === 504);
    assert.equal(full.length, 5, rs.map(([r]) => r.status).join(' '));
    assert.equal(expired.length, 10);
    for (const [r, ms] of full) {
      assertError(r, 503, 'E_QUEUE_FULL', 'over the queued bytes');
      assert.ok(ms < 700, `refused at once (${ms} ms)`);
    }
    for (const [r, ms] of expired) {
      assertError(r, 504, 'E_DEADLINE', 'waited for the held credit');
      assert.ok(ms >= 750, `expired at its deadline (${ms} ms)`);
    }
    assert.deepEqual(await held([owner], 'never'), { inflight: 1, queued: 0 });
    assert.equal((await stats(owner)).queuedBytes, 0);
    // When the handler returns at last, its answer goes nowhere and its credit comes back.
    assert.equal((await post(`${owner.url}/service/release`, '{}')).json(), 1);
    await atBaseline(a);
    await atBaseline(b);
    const again = await post(`${a.url}/api/never/n1`, '{}', { 'x-timeout-ms': '300' });
    assertError(again, 504, 'E_DEADLINE', 'the stream serves again');
    await post(`${owner.url}/service/release`, '{}');
  });

  it('a handler that sends to its own key: the recursion stops at the stream’s credit, the caller gets 504, the credit comes back at the inner deadline', async () => {
    const t0 = Date.now();
    const r = await post(`${a.url}/api/recurse/self`, '{"depth":0}', { 'x-timeout-ms': '500' });
    assertError(r, 504, 'E_DEADLINE', 'the recursive request');
    assert.ok(Date.now() - t0 < 1500);
    const owner = (await post(`${a.url}/api/echo/self`, '{}')).json().node === 'a' ? a : b;
    // 16 handlers at once (the default concurrency) hold every credit; the 17th send waits.
    assert.equal((await post(`${owner.url}/service/deepest`, '{}')).json(), 15);
    const echo = await post(`${owner.url}/api/echo/self`, '{}');
    assert.equal(echo.status, 200, 'other streams are served meanwhile');
    // The sends inside carry the node's default deadline (2 s here), not the caller's: at that
    // deadline the innermost fails and every level returns its credit.
    await waitUntil(async () => (await held([a, b], 'recurse')).inflight === 0, 4000, 'the recursion unwound');
    assert.ok(Date.now() - t0 >= 1900, `unwound after ${Date.now() - t0} ms`);
    await atBaseline(a);
  });

  it('hostile HTTP: oversized, malformed, array and null bodies, a stack-deep body, each refused as documented', async () => {
    const closures = linkClosures(a) + linkClosures(b);
    for (const n of [a, b]) {
      const big = await exchange(n.port, [`POST /api/echo/h1 HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`, 'x'.repeat(MAX_BODY + 1)], {
        waitMs: 5000,
      });
      assert.equal(big.responses.length, 1);
      const r = big.responses[0]!;
      assert.equal(r.status, 413);
      assert.equal(errorAnswerProblem(r), null);
      assert.equal(r.headers['x-error-code'], 'E_BODY_TOO_LARGE');
      assert.equal(r.headers.connection, 'close');
      for (const body of ['{"a":', '[1,"two"]', 'null', '"text"', '12', 'not json']) {
        for (const key of ['h1', 'h2', 'h3']) {
          assertError(await post(`${n.url}/api/echo/${key}`, body), 400, 'E_BAD_MESSAGE', `${body} at ${n.url}`, 'message body must be a JSON object');
        }
      }
      const exact = await post(`${n.url}/api/sink/h1`, JSON.stringify({ pad: 'p'.repeat(MAX_BODY - 10) }));
      assert.deepEqual([exact.status, exact.json()], [200, { n: MAX_BODY - 10 }]);
      const empty = await post(`${n.url}/api/echo/h1`, '');
      assert.deepEqual(empty.json().echoed, { stream: 'echo', partitionKey: 'h1' });
      // Nesting deep enough that echoing it back overflows the stack: the handler fails, not the node.
      const depth = 40_000;
      const deep = await post(`${n.url}/api/echo/h2`, `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
      assertError(deep, 500, 'E_HANDLER', `a body ${depth} deep at ${n.url}`, /call stack/);
    }
    await stillServe(closures, 'hostile HTTP');
    await atBaseline(a);
    await atBaseline(b);
  });

  it('10,000 connections at once each get their answer; 200 callers that never read their answer cost nothing once gone', async () => {
    const N = 10_000;
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < N; i += 500) {
        const wave = Array.from({ length: Math.min(500, N - i) }, () => {
          const s = net.connect(a.port, '127.0.0.1');
          sockets.push(s);
          return new Promise<void>((resolve, reject) => {
            s.once('connect', resolve);
            s.once('error', reject);
          });
        });
        await Promise.all(wave);
      }
      const answers = await Promise.all(
        sockets.map(
          (s, i) =>
            new Promise<RawResponse | null>((resolve) => {
              let buf = Buffer.alloc(0);
              s.on('data', (d: Buffer) => {
                buf = Buffer.concat([buf, d]);
                const p = parseResponse(buf);
                if (p) resolve(p.response);
              });
              s.on('close', () => resolve(null));
              const path = i % 2 ? `/api/echo/c${i}` : '/api/health';
              s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
            }),
        ),
      );
      const statuses = new Map<number, number>();
      for (const r of answers) statuses.set(r?.status ?? 0, (statuses.get(r?.status ?? 0) ?? 0) + 1);
      assert.deepEqual([...statuses], [[200, N]]);
    } finally {
      for (const s of sockets) s.destroy();
    }

    // Slow readers: each asks for a reply near the body limit and reads none of it.
    const baseline = await rssKiB(a.pid);
    const read = (await stats(a)).http.callerRequests;
    const readers = Array.from({ length: 200 }, (_, i) => {
      const s = net.connect(a.port, '127.0.0.1');
      s.pause();
      const body = JSON.stringify({ kind: 'huge', n: MAX_BODY - 100 });
      s.write(`POST /api/ret/slow-${i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return s;
    });
    await waitUntil(
      async () => {
        const { http } = await stats(a);
        return http.callerRequests >= read + readers.length && http.unanswered === 0;
      },
      8000,
      'every slow reader answered',
    );
    const r = await post(`${a.url}/api/echo/while-slow`, '{}');
    assert.equal(r.status, 200);
    for (const s of readers) s.destroy();
    await atBaseline(a);
    const grown = (await rssKiB(a.pid)) - baseline;
    assert.ok(grown < 128 * 1024, `RSS grew ${Math.round(grown / 1024)} MiB`);
  });

  it('the cluster port serves peer links only, and only to peers that prove the secret', async () => {
    const cluster = `http://127.0.0.1:${a.clusterPort}`;
    // Anything but /peer there, and /peer on the HTTP port, is not found.
    for (const [url, method] of [
      [`${cluster}/`, 'GET'],
      [`${cluster}/stats`, 'GET'],
      [`${cluster}/healthz`, 'GET'],
      [`${cluster}/api/health`, 'GET'],
      [`${cluster}/api/echo/k`, 'POST'],
      [`${cluster}/service/echo`, 'POST'],
      [`${cluster}/peer`, 'GET'],
      [`${a.url}/peer`, 'GET'],
    ] as const) {
      const r = await fetch(url, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
      assert.equal(r.status, 404, `${method} ${url}`);
      assert.equal(r.headers.get('x-error-code'), 'E_NOT_FOUND', `${method} ${url}`);
    }
    for (const url of [`${cluster.replace('http', 'ws')}/ws`, `${a.url.replace('http', 'ws')}/peer`]) {
      const ws = new WebSocket(url);
      ws.on('error', () => {});
      const status = await new Promise<number>((resolve) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => resolve(101));
      });
      assert.equal(status, 404, url);
    }
    // A dialer without the secret, or with another, is refused (4011) before it learns anything.
    for (const secret of [undefined, 'not-the-secret']) {
      const p = await RawPeer.linked(cluster, 'intruder', secret);
      assert.equal(await p.closed, 4011, `secret ${secret}`);
      assert.ok(!p.frames.some((f) => f[0] !== PeerOp.Challenge), 'nothing but the Challenge came');
    }
    // The same dialer with the secret is welcomed.
    const insider = await RawPeer.linked(cluster, 'insider', SECRET);
    await insider.next((f) => f[0] === PeerOp.PeerWelcome);
    insider.close();
    // Bytes that are not a frame, and a text message, before the handshake: 1002.
    for (const send of [(ws: WebSocket) => ws.send(Buffer.from([0xc1, 0xff, 0x00])), (ws: WebSocket) => ws.send('hello')]) {
      const p = await RawPeer.open(cluster);
      send(p.ws);
      assert.equal(await p.closed, 1002);
    }
    // A request its parser refuses: the connection closes at once, nothing answers.
    const junk = await exchange(a.clusterPort, ['FOO /peer HTTP/1.1\r\nHost: x\r\n\r\n'], { waitMs: 3000 });
    assert.deepEqual([junk.responses.length, junk.closed], [0, true]);
    // The real peer is still linked, and no one else is.
    await waitUntil(
      async () => {
        const peers = (await stats(a)).mesh.peers as { hubId: string | null; state: string }[];
        return JSON.stringify(peers.map((p) => [p.hubId, p.state])) === JSON.stringify([[hubIdOf(b), 'open']]);
      },
      3000,
      'b alone linked to a',
    );
  });

  it('a WebSocket worker at a node’s /ws shares a stream with the in-process handlers; killed with jobs in flight, its jobs run again on them', async () => {
    const worker = await startWorker({ url: a.url, instanceId: 'ws-at-a', services: [{ name: 'slow', mode: 'sleep', sleepMs: 400, concurrency: 32 }] });
    const members = await converged([a, b], 'slow', 3);
    assert.ok(members.some((m) => m.instanceId === 'ws-at-a' && m.hubId === hubIdOf(a)));
    const keys = Array.from({ length: 60 }, (_, i) => `ws-${i}`);
    const [fromA, fromB] = [await owners(a, keys, 'slow'), await owners(b, keys, 'slow')];
    assert.deepEqual(fromB, fromA, 'one owner per key from both nodes');
    assert.equal(new Set(fromA.values()).size, 3, 'the worker and both nodes own keys');

    const jobsBefore = worker.events('job').length;
    const answers = Promise.all(
      keys.map((k, i) => post(`${(i % 2 ? a : b).url}/api/slow/${k}`, JSON.stringify({ i }), { 'x-timeout-ms': String(DEADLINE_MS) })),
    );
    await waitUntil(() => worker.events('job').length > jobsBefore, 3000, 'the worker to hold jobs');
    worker.kill('SIGKILL');
    const rs = await answers;
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, JSON.stringify({ i }));
      if (fromA.get(keys[i]!)!.endsWith('/ws-at-a')) assert.notEqual(r.headers.get('x-served-by'), fromA.get(keys[i]!), 'ran again on a node');
    });
    await converged([a, b], 'slow', 2);
    await atBaseline(a);
    await atBaseline(b);
  });

  it('a WebSocket worker’s reply that fits its own frame but not a peer frame: the forwarded caller gets 502 E_BAD_REPLY, the link stays up', async () => {
    const closures = linkClosures(a) + linkClosures(b);
    const w = await RawSocket.worker(a.url, 'raw-big', { big: 4 });
    const maxFrame = (w.frames.find((f) => f[0] === Op.Welcome) as WelcomeFrame)[1].maxFrameBytes;
    await converged([a, b], 'big', 1);
    // A Reply frame adds about 30 bytes to its body; the ForwardReply b would get adds its own fields.
    const answered = new Set<number>();
    for (const [n, status] of [
      [maxFrame - 2000, 200],
      [maxFrame - 40, 502],
    ] as const) {
      const asked = post(`${b.url}/api/big/k`, '{}', { 'x-timeout-ms': '3000' });
      const job = (await w.next((f) => f[0] === Op.Job && !answered.has(f[1]))) as JobFrame;
      answered.add(job[1]);
      w.send([Op.Reply, job[1], 200, 'text/plain', null, Buffer.alloc(n, 120)]);
      const r = await asked;
      if (status === 200) assert.deepEqual([r.status, r.text.length], [200, n]);
      else assertError(r, 502, 'E_BAD_REPLY', `a reply of ${n} bytes`);
      assert.equal(r.headers.get('x-served-by'), `${hubIdOf(a)}/raw-big`);
    }
    w.close();
    await stillServe(closures, 'a big worker reply');
  });

  it('memory: 50,000 requests of 64 KiB leave the node near its baseline RSS', async () => {
    const body = JSON.stringify({ pad: 'm'.repeat(64 * 1024) });
    const request = Buffer.from(`POST /service/sink HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const run = async (n: number) => {
      let sent = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          const conn = await HttpConnection.open(a.port);
          while (sent < n) {
            sent++;
            const r = await conn.ask(request);
            assert.deepEqual([r?.status, r?.body.toString()], [200, `{"n":${64 * 1024}}`]);
          }
          conn.close();
        }),
      );
    };
    await run(2000);
    const baseline = await rssKiB(a.pid);
    await run(50_000);
    await atBaseline(a);
    const grown = (await rssKiB(a.pid)) - baseline;
    console.log(`node RSS ${Math.round(baseline / 1024)} MiB before 50,000 requests of 64 KiB, ${Math.round(grown / 1024)} MiB more after`);
    assert.ok(grown < 48 * 1024, `RSS grew ${Math.round(grown / 1024)} MiB`);
  });

  it('a handler that blocks its node’s event loop past the peer timeout: the peer drops the link and serves the keys itself; a forwarded job runs again there', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `bl-${i}`);
    const before = await owners(b, keys);
    const ofA = keys.filter((k) => before.get(k) === localOf(a));
    const dig = await digest(a);
    // Asked at a, its owner: it blocks a for 2 s.
    const blocked = post(`${a.url}/api/block/${ofA[0]}`, '{"ms":2000}', { 'x-timeout-ms': '6000' });
    await sleep(100);
    // Callers of b meanwhile get every key answered, a's too once b has dropped the link; a's callers after the block.
    const t0 = Date.now();
    const during = await Promise.all(
      keys.flatMap((k) => [a, b].map((n) => post(`${n.url}/api/echo/${k}`, '{}', { 'x-timeout-ms': '6000' }).then((r) => ({ n, r, ms: Date.now() - t0 })))),
    );
    assert.deepEqual([(await blocked).status, (await blocked).json()], [200, { node: 'a', blocked: 2000 }]);
    for (const { n, r, ms } of during) {
      assert.equal(r.status, 200, r.text);
      if (n === b) assert.ok(ms < 1500, `answered at b in ${ms} ms`);
    }
    await waitUntil(async () => (await digest(a)) === dig && (await digest(b)) === dig, 8000, 'the ring as before');

    // Asked at b, it is forwarded to a; b gives up on a at the peer timeout and runs the job again
    // itself (at least once): it blocked both nodes, and its caller gets b's answer.
    const t1 = Date.now();
    const twice = await post(`${b.url}/api/block/${ofA[0]}`, '{"ms":1000}', { 'x-timeout-ms': '6000' });
    assert.deepEqual([twice.status, twice.json(), twice.headers.get('x-served-by')], [200, { node: 'b', blocked: 1000 }, localOf(b)]);
    assert.ok(Date.now() - t1 >= 1500, `${Date.now() - t1} ms: after the peer timeout and b's own run`);
    await waitUntil(async () => (await digest(a)) === dig && (await digest(b)) === dig, 8000, 'the ring as before');
    assert.deepEqual(await owners(b, keys), before, 'keys back with their owners');
    await atBaseline(a);
    await atBaseline(b);
  });
});

describe('meshage nodes: kill -9, SIGTERM, SIGSTOP and a partition under load', { timeout: 120_000 }, () => {
  let a: NodeProc;
  let b: NodeProc;
  afterEach(() => Load.stopAll());

  before(async () => {
    a = await node('a');
    b = await node('b', [seedOf(a)]);
  });

  it('kill -9 of a node under keyed and broadcast load: one answer per request, only its keys move, the ring converges', async () => {
    const c = await node('c', [seedOf(a)]);
    await converged([a, b, c], 'slow', 3);
    const keys = Array.from({ length: 100 }, (_, i) => `kill-${i}`);
    const before = await owners(a, keys);
    const redelivered = await redeliveries([a, b]);
    const load = new Load(
      [a, b, c].flatMap((at) => [
        { at, kind: 'keyed' as const },
        { at, kind: 'keyed' as const },
        { at, kind: 'broadcast' as const },
      ]),
    );
    await load.more(30);
    // Besides the load, jobs certain to be running at c when it dies (c's keys, asked at a and b).
    const ofC = keys.filter((k) => before.get(k) === localOf(c)).slice(0, 6);
    const running = await runningAt(c, [a, b], ofC, 1000);
    c.kill('SIGKILL');
    await converged([a, b], 'slow', 2);
    await load.more(60);
    const outcomes = await load.stop();
    const survivors = outcomes.filter((o) => o.at !== c.url);
    assertAnswers(survivors, 'parts', 'callers of the surviving nodes');
    // Callers of the killed node lost their connection (or had their answer before).
    assertAnswers(
      outcomes.filter((o) => o.at === c.url && o.failure !== 'connection'),
      'all',
      'callers of the killed node, answered',
    );
    for (const [i, r] of (await Promise.all(running)).entries()) {
      assert.deepEqual([r.status, r.text], [200, JSON.stringify({ i })]);
      assert.notEqual(r.headers.get('x-served-by'), localOf(c));
    }
    assert.ok((await redeliveries([a, b])) >= redelivered + ofC.length, 'jobs forwarded to the killed node ran again');
    const afterKill = await owners(b, keys);
    for (const k of keys) {
      if (before.get(k) === localOf(c)) assert.notEqual(afterKill.get(k), localOf(c));
      else assert.equal(afterKill.get(k), before.get(k), `key ${k} stays`);
    }
    await atBaseline(a);
    await atBaseline(b);
  });

  it('SIGTERM of a node under load: no failure at the other nodes, work in flight at it answered, exit 0 within its grace', async () => {
    const d = await node('d', [seedOf(a)]);
    await converged([a, b, d], 'slow', 3);
    const keys = Array.from({ length: 40 }, (_, i) => `term-${i}`);
    const ofD = [...(await owners(a, keys))].filter(([, o]) => o === localOf(d)).map(([k]) => k);
    assert.ok(ofD.length >= 4, `d owns keys: ${ofD.length}`);
    const load = new Load(
      [a, b].flatMap((at) => [
        { at, kind: 'keyed' as const, ms: 200 },
        { at, kind: 'keyed' as const, ms: 200 },
        { at, kind: 'broadcast' as const },
      ]),
    );
    const atD = new Load([
      { at: d, kind: 'keyed' },
      { at: d, kind: 'broadcast' },
    ]);
    await load.more(30);
    // Besides the load, jobs certain to be running at d when it is told to stop.
    const running = await runningAt(d, [a, b], ofD.slice(0, 4), 600);
    const t0 = Date.now();
    d.kill('SIGTERM');
    const exit = await d.exited;
    const took = Date.now() - t0;
    await converged([a, b], 'slow', 2);
    await load.more(30);
    assertAnswers(await load.stop(), 'parts', 'callers of the other nodes');
    // At the leaving node: answers, then 503 E_SHUTTING_DOWN, then a refused connection.
    assertAnswers(
      (await atD.stop()).filter((o) => o.failure !== 'connection'),
      'documented',
      'callers of the leaving node',
    );
    for (const [i, r] of (await Promise.all(running)).entries()) {
      assert.deepEqual([r.status, r.text, r.headers.get('x-served-by')], [200, JSON.stringify({ i }), localOf(d)], 'answered by the leaving node');
    }
    assert.equal(exit.code, 0);
    assert.ok(took < 2000 + 1000, `exited ${took} ms after SIGTERM`);
    await atBaseline(a);
    await atBaseline(b);
  });

  it('SIGSTOP of a node under load: the other node answers every request within the peer timeout; after SIGCONT its callers are answered and its keys come back', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `load-${i}`);
    const before = await owners(a, keys, 'slow');
    const dig = await digest(a, 'slow');
    const redelivered = await redeliveries([a]);
    const load = new Load([
      { at: a, kind: 'keyed' },
      { at: a, kind: 'keyed' },
      { at: a, kind: 'broadcast' },
    ]);
    await load.more(20);
    b.kill('SIGSTOP');
    const frozenAt = Date.now();
    const atB = new Load([{ at: b, kind: 'keyed' }]);
    await sleep(1500);
    b.kill('SIGCONT');
    await waitUntil(async () => (await digest(a, 'slow')) === dig && (await digest(b, 'slow')) === dig, 8000, 'the ring as before');
    await load.more(20);
    const outcomes = await load.stop();
    assertAnswers(outcomes, 'parts', 'callers of the running node');
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    assert.ok(slowest < 1800, `slowest answer ${slowest} ms (frozen ${Date.now() - frozenAt} ms ago)`);
    assertAnswers(await atB.stop(), 'all', 'callers of the frozen node, once it runs again');
    assert.ok((await redeliveries([a])) > redelivered, 'jobs forwarded to the frozen node ran again');
    assert.deepEqual(await owners(a, keys, 'slow'), before);
  });

  it('a partition between two nodes’ cluster ports: each serves every key alone, nothing hangs, and the ring heals to what it was', async () => {
    const p1 = await node('p1');
    const proxy = await TcpProxy.start(p1.clusterPort);
    after(() => proxy.close());
    const p2 = await node('p2', [proxy.address]);
    await converged([p1, p2], 'slow', 2);
    const keys = Array.from({ length: 40 }, (_, i) => `load-${i}`);
    const before = await owners(p1, keys, 'slow');
    const dig = await digest(p1, 'slow');
    const redelivered = await redeliveries([p1, p2]);
    const load = new Load(
      [p1, p2].flatMap((at) => [
        { at, kind: 'keyed' as const },
        { at, kind: 'keyed' as const },
        { at, kind: 'broadcast' as const },
      ]),
    );
    await load.more(30);
    proxy.partition();
    await waitUntil(async () => (await digest(p1, 'slow')) !== dig && (await digest(p2, 'slow')) !== dig, 3000, 'each side alone');
    const split = await Promise.all([p1, p2].map(async (n) => new Set((await owners(n, keys, 'slow')).values())));
    assert.deepEqual(
      split.map((s) => [...s]),
      [[localOf(p1)], [localOf(p2)]],
      'each side serves every key itself',
    );
    await load.more(30);
    proxy.heal();
    await waitUntil(async () => (await digest(p1, 'slow')) === dig && (await digest(p2, 'slow')) === dig, 8000, 'the ring healed');
    await load.more(30);
    const outcomes = await load.stop();
    assertAnswers(outcomes, 'parts', 'callers of both sides');
    assert.ok(Math.max(...outcomes.map((o) => o.ms)) < 1800, 'no answer waited past the peer timeout and a retry');
    assert.deepEqual(await owners(p2, keys, 'slow'), before, 'every key back with its owner');
    assert.ok((await redeliveries([p1, p2])) > redelivered, 'jobs forwarded across the cut ran again');
  });
});
