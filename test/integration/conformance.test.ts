/**
 * Speaks the protocol as a worker in another language would: a bare WebSocket and an
 * independent msgpack implementation (@msgpack/msgpack), following PROTOCOL.md alone. Every
 * frame from the hub is decoded with an extension codec that throws, so any extension type in
 * any frame fails the test.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decode, ExtensionCodec, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { type HubProc, sleep, startHub, stats, stopAll, waitUntil } from '../helpers/processes.js';

const strict = new ExtensionCodec();
for (let type = -128; type < 128; type++) {
  strict.register({
    type,
    encode: () => null,
    decode: () => {
      throw new Error(`extension type ${type} in a frame from the hub`);
    },
  });
}

type Wire = unknown[];
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: unknown): string => {
  assert.ok(b instanceof Uint8Array, 'a body is msgpack bin');
  return Buffer.from(b).toString('utf8');
};

/** A bare WebSocket that sends and receives frames with @msgpack/msgpack. */
class Peer {
  private readonly frames: Wire[] = [];
  private waiters: { pred: (f: Wire) => boolean; resolve: (f: Wire) => void }[] = [];
  private failure: Error | null = null;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        assert.ok(isBinary, 'frames from the hub are binary messages');
        const f = decode(data, { extensionCodec: strict });
        assert.ok(Array.isArray(f) && f.length > 0, 'a frame is a non-empty array');
        this.frames.push(f);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(f)) return true;
          this.frames.splice(this.frames.indexOf(f), 1);
          w.resolve(f);
          return false;
        });
      } catch (err) {
        this.failure = err as Error;
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  static async open(hub: HubProc): Promise<Peer> {
    const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/ws`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Peer(ws);
  }

  /** Opens and says hello; resolves with the Welcome frame. */
  static async hello(hub: HubProc, hello: Record<string, unknown>): Promise<[Peer, Wire]> {
    const p = await Peer.open(hub);
    p.send([1, hello]);
    return [p, await p.next((f) => f[0] === 2)];
  }

  send(frame: Wire): void {
    this.ws.send(encode(frame));
  }

  /** The first frame (already received or still to come) that matches; removes it. */
  next(pred: (f: Wire) => boolean, timeoutMs = 3000): Promise<Wire> {
    if (this.failure) return Promise.reject(this.failure);
    const found = this.frames.find(pred);
    if (found) {
      this.frames.splice(this.frames.indexOf(found), 1);
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(this.failure ?? new Error('timed out waiting for a frame')), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(t);
          resolve(f);
        },
      });
    });
  }

  /** Frames received and not yet taken. */
  pending(pred: (f: Wire) => boolean): Wire[] {
    if (this.failure) throw this.failure;
    return this.frames.filter(pred);
  }

  close(): void {
    this.ws.terminate();
  }
}

const isJob = (f: Wire): boolean => f[0] === 5;

describe('conformance: a worker and a caller built from PROTOCOL.md with another msgpack library', { timeout: 30_000 }, () => {
  let hub: HubProc;
  let worker: Peer;
  let welcome: Record<string, unknown>;
  const peers: Peer[] = [];

  before(async () => {
    hub = await startHub({ 'ping-interval-ms': 200, 'pong-timeout-ms': 1000 });
  });
  after(async () => {
    for (const p of peers) p.close();
    await stopAll();
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${hub.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

  it('answers Hello with a Welcome that has every field', async () => {
    const [w, frame] = await Peer.hello(hub, { versions: [1], role: 'worker', instanceId: 'foreign-1', name: 'conformance' });
    worker = w;
    peers.push(w);
    assert.equal(frame.length, 2);
    welcome = frame[1] as Record<string, unknown>;
    assert.equal(welcome.version, 1);
    assert.ok(typeof welcome.hubId === 'string' && welcome.hubId.length > 0);
    assert.ok(Number.isInteger(welcome.sessionId) && (welcome.sessionId as number) > 0);
    assert.equal(welcome.instanceId, 'foreign-1');
    assert.equal(welcome.maxFrameBytes, 1024 * 1024 + 64 * 1024);
    assert.equal(welcome.pingIntervalMs, 200);
    assert.equal(welcome.pongTimeoutMs, 1000);
  });

  it('delivers an HTTP request as a Job with every field, and answers the caller with the Reply', async () => {
    worker.send([3, 'foreign', 2, 1]);
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'foreign'), 2000, 'registered');

    const answer = post('/service/foreign?q=1', '{"n":1}', { 'x-request-id': 'rid-9', authorization: 'secret', cookie: 'c=1' });
    const job = await worker.next(isJob);
    assert.equal(job.length, 10);
    const [op, id, service, key, remaining, attempt, ct, headers, query, body] = job;
    assert.equal(op, 5);
    assert.ok(Number.isInteger(id) && (id as number) >= 1, 'jobId is a positive integer');
    assert.equal(service, 'foreign');
    assert.equal(key, null);
    assert.ok(Number.isInteger(remaining) && (remaining as number) > 25_000 && (remaining as number) <= 30_000, `remainingMs ${String(remaining)}`);
    assert.equal(attempt, 1);
    assert.equal(ct, 'application/json');
    assert.deepEqual(headers, { 'x-request-id': 'rid-9' }, 'only allowlisted headers, never authorization or cookies');
    assert.equal(query, 'q=1');
    assert.equal(text(body), '{"n":1}');

    worker.send([6, id, 201, 'text/plain', { 'x-custom': 'yes' }, utf8('made')]);
    const r = await answer;
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.headers.get('x-custom'), 'yes');
    assert.equal(r.headers.get('x-served-by'), `${String(welcome.hubId)}/foreign-1`);
    assert.equal(r.headers.get('x-error-code'), null);
    assert.equal(await r.text(), 'made');
  });

  it('answers the HTTP caller with an Error frame as a JSON error carrying x-error-code', async () => {
    const answer = post('/service/foreign', '{}');
    const job = await worker.next(isJob);
    worker.send([7, job[1], 422, 'MY_CODE', 'not like that']);
    const r = await answer;
    assert.equal(r.status, 422);
    assert.equal(r.headers.get('x-error-code'), 'MY_CODE');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(await r.json(), { error: { code: 'MY_CODE', message: 'not like that' } });
  });

  it("keeps the caller's connection open for a worker's own error, whatever code it names", async () => {
    const answer = post('/service/foreign', '{}');
    const job = await worker.next(isJob);
    worker.send([7, job[1], 413, 'E_BODY_TOO_LARGE', 'the handler says so']);
    const r = await answer;
    assert.deepEqual([r.status, r.headers.get('x-error-code'), r.headers.get('connection')], [413, 'E_BODY_TOO_LARGE', null]);
    await r.text();
  });

  it('never has more jobs at the worker than the concurrency it registered', async () => {
    const answers = [post('/service/foreign', '"a"'), post('/service/foreign', '"b"'), post('/service/foreign', '"c"')];
    const first = await worker.next(isJob);
    const second = await worker.next(isJob);
    await sleep(200);
    assert.equal(worker.pending(isJob).length, 0, 'a third job while two are unanswered');
    worker.send([6, first[1], 200, null, null, first[9]]);
    const third = await worker.next(isJob);
    for (const j of [second, third]) worker.send([6, j[1], 200, null, null, j[9]]);
    const bodies = await Promise.all(answers.map(async (a) => (await a).text()));
    assert.deepEqual(bodies.sort(), ['"a"', '"b"', '"c"']);
  });

  it('answers a Request from another bare socket with a Response', async () => {
    const [caller, w] = await Peer.hello(hub, { versions: [1], role: 'client' });
    peers.push(caller);
    assert.match(String((w[1] as Record<string, unknown>).instanceId), /^anon-/, 'the hub names a session that gave no instanceId');
    caller.send([10, 7, 1, 'foreign', 'k1', 2000, 'application/json', { 'x-request-id': 'ws-1' }, 'a=b', utf8('{"from":"ws"}')]);
    const job = await worker.next(isJob);
    const [, , service, key, remaining, attempt, ct, headers, query] = job;
    assert.deepEqual([service, key, attempt, ct, headers, query], ['foreign', 'k1', 1, 'application/json', { 'x-request-id': 'ws-1' }, 'a=b']);
    assert.ok(Number.isInteger(remaining) && (remaining as number) > 0 && (remaining as number) <= 2000, `remainingMs ${String(remaining)}`);
    worker.send([6, job[1], 200, null, null, job[9]]);
    const resp = await caller.next((f) => f[0] === 11);
    assert.equal(resp.length, 7);
    assert.deepEqual(resp.slice(0, 5), [11, 7, 200, null, null]);
    assert.equal(text(resp[5]), '{"from":"ws"}');
    assert.equal(resp[6], `${String(welcome.hubId)}/foreign-1`);

    // A refusal is a Response too: status, JSON error, x-error-code (and retry-after on 503).
    caller.send([10, 8, 0, 'no-such-service', null, null, null, null, null, new Uint8Array()]);
    const err = await caller.next((f) => f[0] === 11 && f[1] === 8);
    assert.deepEqual(err.slice(0, 5), [11, 8, 503, 'application/json', { 'x-error-code': 'E_NO_WORKERS', 'retry-after': '1' }]);
    assert.equal((JSON.parse(text(err[5])) as { error: { code: string } }).error.code, 'E_NO_WORKERS');
    assert.equal(err[6], welcome.hubId);
    // A broadcast to that service is no refusal: every worker it has (none) answered.
    caller.send([10, 10, 2, 'no-such-service', 'k', null, null, null, null, utf8('{}')]);
    const none = await caller.next((f) => f[0] === 11 && f[1] === 10);
    assert.deepEqual(none.slice(0, 5), [
      11,
      10,
      200,
      'application/json',
      { 'x-broadcast-asked': '0', 'x-broadcast-failed': '0', 'x-broadcast-timed-out': '0' },
    ]);
    assert.deepEqual([text(none[5]), none[6]], ['[]', null]);

    // Cancel from the caller: the worker gets Cancel E_CANCELLED, the caller no Response.
    caller.send([10, 9, 0, 'foreign', null, null, null, null, null, utf8('{}')]);
    const job9 = await worker.next(isJob);
    caller.send([8, 9, null]);
    assert.deepEqual(await worker.next((f) => f[0] === 8), [8, job9[1], 'E_CANCELLED']);
    worker.send([9, job9[1]]);
    await sleep(100);
    assert.equal(caller.pending((f) => f[0] === 11).length, 0, 'no Response after a Cancel');
  });

  it('cancels a job whose deadline passed with E_DEADLINE, and takes the credit back only with CancelAck', async () => {
    const timed = post('/service/foreign', '{}', { 'x-timeout-ms': '200' });
    const job = await worker.next(isJob);
    assert.ok((job[4] as number) <= 200, `remainingMs ${String(job[4])}`);
    const cancel = await worker.next((f) => f[0] === 8);
    assert.deepEqual(cancel, [8, job[1], 'E_DEADLINE']);
    const r = await timed;
    assert.equal(r.status, 504);
    assert.equal(r.headers.get('x-error-code'), 'E_DEADLINE');

    // Until the CancelAck the cancelled job still holds one of the two credits.
    const answers = [post('/service/foreign', '"x"'), post('/service/foreign', '"y"')];
    const one = await worker.next(isJob);
    await sleep(200);
    assert.equal(worker.pending(isJob).length, 0, 'credit came back before the CancelAck');
    worker.send([9, job[1]]);
    const two = await worker.next(isJob);
    for (const j of [one, two]) worker.send([6, j[1], 200, null, null, j[9]]);
    for (const a of answers) assert.equal((await a).status, 200);
  });

  it('refuses a bad Register with a non-fatal ProtocolError and keeps the session', async () => {
    worker.send([3, 'bad name', 1, 1]);
    const pe = await worker.next((f) => f[0] === 14);
    assert.equal(pe.length, 5);
    assert.equal(pe[1], 'E_BAD_NAME');
    assert.equal(typeof pe[2], 'string');
    assert.equal(pe[3], 'bad name');
    assert.equal(pe[4], false);
    const answer = post('/service/foreign', '"still"');
    const job = await worker.next(isJob);
    worker.send([6, job[1], 200, null, null, job[9]]);
    assert.equal(await (await answer).text(), '"still"');
  });

  it('refuses a Hello with no shared version with a fatal ProtocolError E_VERSION and close 1002', async () => {
    const p = await Peer.open(hub);
    peers.push(p);
    p.send([1, { versions: [99], role: 'worker' }]);
    const pe = await p.next((f) => f[0] === 14);
    assert.deepEqual([pe[0], pe[1], pe[3], pe[4]], [14, 'E_VERSION', null, true]);
    assert.equal(await p.closed, 1002);
  });
});

describe('reply headers a worker may not set', () => {
  after(stopAll);

  it('are dropped for WebSocket callers as they are for HTTP callers', async () => {
    const hub = await startHub();
    const { Worker } = await import('../../client/worker.js');
    const { Client } = await import('../../client/client.js');
    const w = new Worker({ url: hub.url });
    w.handle('forger', () => ({ body: '"fine"', headers: { 'x-error-code': 'E_FORGED', 'x-kept': 'yes', 'content-length': '1' } }));
    await w.start();
    try {
      for (const transport of ['http', 'ws'] as const) {
        const c = new Client({ url: hub.url, transport });
        const r = await c.request('forger', {});
        assert.equal(r.text(), '"fine"');
        assert.equal(r.headers['x-kept'], 'yes');
        assert.equal(r.headers['x-error-code'], undefined);
        await c.close();
      }
    } finally {
      w.close();
    }
  });
});
