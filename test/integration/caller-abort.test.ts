import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '../../client/client.js';
import { BusError } from '../../client/errors.js';
import { Op, RequestMode } from '../../client/protocol.js';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

interface ServiceStats {
  name: string;
  queued: number;
  inflight: number;
  workers: number;
}

async function service(hub: HubProc, name: string): Promise<ServiceStats | undefined> {
  return (await stats(hub)).services.find((s: ServiceStats) => s.name === name);
}

/** Opens a raw HTTP connection and sends `head` plus the first `sent` bytes of `body`. */
async function rawRequest(port: number, path: string, body: string, sent = body.length): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, sent)}`);
  return s;
}

describe('callers that abort mid-request', { timeout: 90_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 5000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 });
  });
  after(stopAll);

  it('cancels the job at the worker and gives the credit back when a fetch is aborted', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'fetch-abort', services: [{ name: 'abort-fetch', mode: 'sleep', sleepMs: 5000, concurrency: 1 }] });
    const before = (await stats(hub)).jobs.cancelled;
    const ac = new AbortController();
    const gone = post(`${hub.url}/service/abort-fetch`, '{"n":1}', {}, ac.signal).then(
      () => null,
      (e: Error) => e,
    );
    const job = await w.waitFor((l) => l.event === 'job');
    ac.abort();
    assert.ok((await gone) instanceof Error);
    const cancel = await w.waitFor((l) => l.event === 'cancel' && l.id === job.id, 2000, 'cancel at the worker');
    assert.match(String(cancel.reason), /caller went away/);
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
    await waitUntil(async () => (await service(hub, 'abort-fetch'))?.inflight === 0, 2000, 'credit back');
    assert.equal((await stats(hub)).jobs.cancelled, before + 1);
    // Concurrency 1: the next request can only run because the credit came back.
    const next = post(`${hub.url}/service/abort-fetch`, '{"n":2}', { 'x-timeout-ms': '3000' });
    const job2 = await w.waitFor((l) => l.event === 'job' && l.body === '{"n":2}', 1500, 'next job delivered');
    assert.equal(job2.running, 1);
    const ac2 = new AbortController();
    const third = post(`${hub.url}/service/abort-fetch`, '{"n":3}', {}, ac2.signal).then(
      () => null,
      (e: Error) => e,
    );
    await waitUntil(async () => (await service(hub, 'abort-fetch'))?.queued === 1, 2000, 'third queued');
    ac2.abort();
    await third;
    await waitUntil(async () => (await service(hub, 'abort-fetch'))?.queued === 0, 2000, 'third dropped');
    assert.equal((await next).status, 504);
    assert.ok(!w.events('job').some((j) => j.body === '{"n":3}'));
  });

  it("cancels the job and frees the slot when the caller's socket is destroyed", { timeout: 10_000 }, async () => {
    const w = await startWorker({
      url: hub.url,
      instanceId: 'socket-abort',
      services: [{ name: 'abort-socket', mode: 'sleep', sleepMs: 5000, concurrency: 1 }],
    });
    const s = await rawRequest(hub.port, '/service/abort-socket', '{"raw":1}');
    const job = await w.waitFor((l) => l.event === 'job');
    s.destroy();
    await w.waitFor((l) => l.event === 'cancel' && l.id === job.id, 2000, 'cancel at the worker');
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
    await waitUntil(async () => (await service(hub, 'abort-socket'))?.inflight === 0, 2000, 'credit back');
    // Concurrency 1: the next request reaches the worker only because the credit came back.
    const s2 = await rawRequest(hub.port, '/service/abort-socket', '{"raw":2}');
    const job2 = await w.waitFor((l) => l.event === 'job' && l.body === '{"raw":2}', 2000, 'next job delivered');
    assert.equal(job2.running, 1);
    s2.destroy();
    await w.waitFor((l) => l.event === 'cancel' && l.id === job2.id, 2000, 'second cancel');
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
    await waitUntil(async () => (await service(hub, 'abort-socket'))?.inflight === 0, 2000, 'credit back again');
  });

  it('drops a queued job whose caller vanished, so it never reaches a worker', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'queue-abort', services: [{ name: 'abort-queue', mode: 'sleep', sleepMs: 2000, concurrency: 1 }] });
    const first = post(`${hub.url}/service/abort-queue`, '{"first":1}');
    await w.waitFor((l) => l.event === 'job');
    const ghosts = await Promise.all([1, 2, 3].map((n) => rawRequest(hub.port, '/service/abort-queue', `{"ghost":${n}}`)));
    const ac = new AbortController();
    const fetched = post(`${hub.url}/service/abort-queue`, '{"ghost":4}', {}, ac.signal).then(
      () => null,
      (e: Error) => e,
    );
    await waitUntil(async () => (await service(hub, 'abort-queue'))?.queued === 4, 2000, 'ghosts queued');
    for (const g of ghosts) g.destroy();
    ac.abort();
    await fetched;
    await waitUntil(async () => (await service(hub, 'abort-queue'))?.queued === 0, 2000, 'ghosts dropped');
    assert.equal((await first).status, 200);
    const after = await post(`${hub.url}/service/abort-queue`, '{"after":1}');
    assert.equal(after.status, 200);
    assert.ok(!w.events('job').some((j) => String(j.body).includes('ghost')), 'a ghost job reached the worker');
    assert.equal(w.events('cancel').length, 0);
    assert.equal((await stats(hub)).openJobs, 0);
  });

  it('forgets a request whose caller left while the body was still arriving', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'partial', services: [{ name: 'abort-partial' }] });
    const before = (await stats(hub)).jobs.accepted;
    const s = await rawRequest(hub.port, '/service/abort-partial', `{"partial":"${'p'.repeat(100)}"}`, 20);
    await sleep(100);
    s.destroy();
    await sleep(100);
    const st = await stats(hub);
    assert.equal(st.jobs.accepted, before);
    assert.equal(st.openJobs, 0);
    assert.equal(w.events('job').length, 0);
    assert.equal((await post(`${hub.url}/service/abort-partial`, '{"whole":1}')).text, '{"whole":1}');
  });

  it('keeps the credit of a handler that ignores the cancel until it finishes', { timeout: 10_000 }, async () => {
    const w = await startWorker({
      url: hub.url,
      instanceId: 'stubborn',
      services: [{ name: 'abort-stubborn', mode: 'sleep', sleepMs: 500, concurrency: 1, ignoreCancel: true }],
    });
    const ac = new AbortController();
    const gone = post(`${hub.url}/service/abort-stubborn`, '{"s":1}', {}, ac.signal).then(
      () => null,
      (e: Error) => e,
    );
    const job = await w.waitFor((l) => l.event === 'job');
    ac.abort();
    await gone;
    await w.waitFor((l) => l.event === 'cancel' && l.id === job.id, 2000, 'cancel at the worker');
    const next = await post(`${hub.url}/service/abort-stubborn`, '{"s":2}', { 'x-timeout-ms': '3000' });
    assert.equal(next.status, 200);
    const lines = w.lines as Record<string, unknown>[];
    const firstDone = lines.findIndex((l) => l?.event === 'done' && l.id === job.id);
    const secondJob = lines.findIndex((l) => l?.event === 'job' && l.body === '{"s":2}');
    assert.ok(firstDone !== -1 && firstDone < secondJob, 'the next job started before the cancelled handler finished');
    assert.equal(Math.max(...w.events('done').map((d) => d.maxRunning as number)), 1);
  });

  it('cancels every part of a broadcast whose caller aborts', { timeout: 10_000 }, async () => {
    const ws = await Promise.all(
      ['bc-a', 'bc-b'].map((instanceId) => startWorker({ url: hub.url, instanceId, services: [{ name: 'abort-broadcast', mode: 'hang', concurrency: 1 }] })),
    );
    const ac = new AbortController();
    const gone = post(`${hub.url}/api/broadcast/abort-broadcast/k`, '{"b":1}', { 'x-timeout-ms': '4000' }, ac.signal).then(
      () => null,
      (e: Error) => e,
    );
    await Promise.all(ws.map((w) => w.waitFor((l) => l.event === 'job')));
    ac.abort();
    await gone;
    await Promise.all(ws.map((w) => w.waitFor((l) => l.event === 'cancel', 2000, 'broadcast part cancelled at the worker')));
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
    await waitUntil(async () => (await service(hub, 'abort-broadcast'))?.inflight === 0, 2000, 'credit back');
  });

  it('cancels at the worker when a WebSocket caller aborts with its signal, and answers it exactly once', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'ws-signal', services: [{ name: 'abort-signal', mode: 'sleep', sleepMs: 3000, concurrency: 1 }] });
    const client = new Client({ url: hub.url, transport: 'ws' });
    try {
      const ac = new AbortController();
      const gone = client.request('abort-signal', { a: 1 }, { signal: ac.signal }).then(
        () => null,
        (e: Error) => e,
      );
      const job = await w.waitFor((l) => l.event === 'job');
      ac.abort();
      const err = await gone;
      assert.ok(err instanceof BusError && err.code === 'E_CANCELLED', `rejected with E_CANCELLED, got ${String(err)}`);
      await w.waitFor((l) => l.event === 'cancel' && l.id === job.id, 2000, 'cancel at the worker');
      await waitUntil(async () => (await service(hub, 'abort-signal'))?.inflight === 0, 4000, 'credit back');
      // The same socket still serves: the cancelled request got no second answer to confuse it.
      const again = await client.request('abort-signal', { b: 2 }, { timeoutMs: 5000 });
      assert.deepEqual(again.json(), { b: 2 });
      assert.equal((await stats(hub)).openJobs, 0);
    } finally {
      await client.close();
    }
  });

  it('cancels the in-flight request of a WebSocket caller that disconnects', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'ws-abort', services: [{ name: 'abort-ws', mode: 'sleep', sleepMs: 3000, concurrency: 2 }] });
    const s = await RawSocket.open(hub.url);
    s.send([Op.Hello, { versions: [1], role: 'client' }]);
    await s.next((f) => f[0] === Op.Welcome);
    s.send([Op.Request, 1, RequestMode.Any, 'abort-ws', null, null, null, null, null, Buffer.from('{}')]);
    const job = await w.waitFor((l) => l.event === 'job');
    s.close();
    await w.waitFor((l) => l.event === 'cancel' && l.id === job.id, 2000, 'cancel at the worker');
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
    await waitUntil(async () => (await service(hub, 'abort-ws'))?.inflight === 0, 2000, 'credit back');
  });
});
