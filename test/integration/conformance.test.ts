/**
 * Speaks the protocol with an independent msgpack implementation (@msgpack/msgpack) and a bare
 * WebSocket, as a worker in another language would, and fails on any extension type.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, ExtensionCodec } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { post, startHub, stats, stopAll, waitUntil, type HubProc } from '../helpers/processes.js';

const strict = new ExtensionCodec();
for (let type = -128; type < 128; type++) {
  strict.register({ type, encode: () => null, decode: () => { throw new Error(`extension type ${type} in a hub frame`); } });
}
const dec = (d: Buffer) => decode(d, { extensionCodec: strict }) as unknown[];

class Peer {
  readonly frames: unknown[][] = [];
  private waiters: [(f: unknown[]) => boolean, (f: unknown[]) => void][] = [];
  readonly closed: Promise<number>;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      assert.ok(isBinary, 'hub frames are binary');
      const f = dec(d);
      this.frames.push(f);
      this.waiters = this.waiters.filter(([p, r]) => (p(f) ? (r(f), false) : true));
    });
    this.closed = new Promise((r) => ws.on('close', (c) => r(c)));
  }
  static async connect(url: string): Promise<Peer> {
    const ws = new WebSocket(url.replace('http', 'ws') + '/ws');
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    return new Peer(ws);
  }
  send(f: unknown[]): void {
    this.ws.send(encode(f));
  }
  next(op: number, timeoutMs = 3000): Promise<unknown[]> {
    const found = this.frames.find((f) => f[0] === op);
    if (found) {
      this.frames.splice(this.frames.indexOf(found), 1);
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no frame with op ${op}`)), timeoutMs);
      this.waiters.push([(f) => f[0] === op, (f) => { clearTimeout(t); this.frames.splice(this.frames.indexOf(f), 1); resolve(f); }]);
    });
  }
}

describe('conformance with an independent msgpack implementation', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'ping-interval-ms': 200, 'pong-timeout-ms': 1000 });
  });
  after(stopAll);

  it('serves an HTTP caller through a worker written against PROTOCOL.md alone', async () => {
    const w = await Peer.connect(hub.url);
    w.send([1, { versions: [1], role: 'worker', instanceId: 'foreign-1' }]);
    const welcome = await w.next(2);
    const info = welcome[1] as Record<string, unknown>;
    assert.equal(info.version, 1);
    assert.equal(info.instanceId, 'foreign-1');
    assert.equal(typeof info.hubId, 'string');
    assert.equal(info.pingIntervalMs, 200);
    w.send([3, 'foreign', 2, 1]);
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'foreign'), 2000, 'registered');

    const answer = fetch(`${hub.url}/service/foreign?q=1`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json', 'x-request-id': 'rid-9', authorization: 'secret' } });
    const job = await w.next(5);
    assert.equal(job.length, 10);
    const [op, id, service, key, remaining, attempt, ct, headers, query, body] = job;
    assert.equal(op, 5);
    assert.equal(typeof id, 'number');
    assert.equal(service, 'foreign');
    assert.equal(key, null);
    assert.ok(typeof remaining === 'number' && remaining > 0 && remaining <= 30_000);
    assert.equal(attempt, 1);
    assert.equal(ct, 'application/json');
    assert.deepEqual(headers, { 'x-request-id': 'rid-9' });
    assert.equal(query, 'q=1');
    assert.ok(body instanceof Uint8Array, 'body is bin');
    assert.equal(Buffer.from(body).toString(), '{"n":1}');
    w.send([6, id, 201, 'text/plain', { 'x-custom': 'yes' }, new TextEncoder().encode('made')]);
    const r = await answer;
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.headers.get('x-custom'), 'yes');
    assert.equal(r.headers.get('x-served-by'), `${info.hubId}/foreign-1`);
    assert.equal(await r.text(), 'made');

    // A caller on another bare socket: Request → Job → Reply → Response.
    const c = await Peer.connect(hub.url);
    c.send([1, { versions: [1], role: 'client' }]);
    await c.next(2);
    c.send([10, 7, 0, 'foreign', null, 2000, 'application/json', null, null, new TextEncoder().encode('{"from":"ws"}')]);
    const job2 = await w.next(5);
    w.send([6, job2[1], 200, null, null, job2[9]]);
    const resp = await c.next(11);
    assert.deepEqual([resp[0], resp[1], resp[2]], [11, 7, 200]);
    assert.equal(Buffer.from(resp[5] as Uint8Array).toString(), '{"from":"ws"}');
    assert.equal(resp[6], `${info.hubId}/foreign-1`);

    // Deadline: a Cancel with E_DEADLINE, then our CancelAck returns the credit.
    const timed = fetch(`${hub.url}/service/foreign`, { method: 'POST', body: '{}', headers: { 'x-timeout-ms': '200' } });
    const job3 = await w.next(5);
    const cancel = await w.next(8);
    assert.deepEqual(cancel, [8, job3[1], 'E_DEADLINE']);
    assert.equal((await timed).status, 504);
    w.send([9, job3[1]]);

    // An error Response carries x-error-code.
    c.send([10, 8, 0, 'no-such-service', null, null, null, null, null, new Uint8Array()]);
    const err = await c.next(11);
    assert.equal(err[2], 503);
    assert.deepEqual(err[4], { 'x-error-code': 'E_NO_WORKERS', 'retry-after': '1' });

    // A refused register is a non-fatal ProtocolError.
    w.send([3, 'bad name', 1, 1]);
    const pe = await w.next(14);
    assert.deepEqual(pe.slice(0, 2), [14, 'E_BAD_NAME']);
    assert.equal(pe[4], false);
    w.ws.close();
    c.ws.close();
  });
});
