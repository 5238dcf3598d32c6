import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { type JobFrame, Op } from '../../client/protocol.js';
import { post, startHub, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

describe('backpressure at a worker socket', () => {
  after(stopAll);

  it('stops sending to a worker that does not read, and delivers everything once it does', async () => {
    const hub = await startHub({ 'max-body-bytes': 600_000, 'default-timeout-ms': 20_000 });
    const w = await RawSocket.worker(hub.url, 'slow-reader', { bulk: 64 });
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'bulk'), 2000, 'registered');
    const tcp = (w.ws as unknown as { _socket: Socket })._socket;
    tcp.pause();
    const body = 'x'.repeat(500_000);
    const answers = Array.from({ length: 40 }, (_, i) => post(`${hub.url}/service/bulk`, `"${i}${body}"`));
    const worker = () => stats(hub).then((st) => st.workers.find((x: { instanceId: string }) => x.instanceId === 'slow-reader'));
    await waitUntil(async () => (await worker())?.blocked === true, 10_000, 'the hub to mark the worker blocked');
    // Credit is 64, but the hub holds jobs back while the socket is full.
    const held = await worker();
    assert.ok(held.inflight < 40, `hub pushed ${held.inflight} jobs into a full socket`);
    const queued = (await stats(hub)).services.find((s: { name: string }) => s.name === 'bulk').queued;
    assert.ok(queued > 0, 'some jobs wait in the hub queue');
    tcp.resume();
    let replied = 0;
    const seen = new Set<number>();
    while (replied < 40) {
      const job = (await w.next((f) => f[0] === Op.Job && !seen.has(f[1] as number), 10_000)) as JobFrame;
      seen.add(job[1]);
      w.send([Op.Reply, job[1], 200, 'text/plain', null, job[9].subarray(0, 10)]);
      replied++;
    }
    const results = await Promise.all(answers);
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(new Set(results.map((r) => r.text)).size, 40);
    assert.equal((await worker()).blocked, false);
    w.close();
  });
});
