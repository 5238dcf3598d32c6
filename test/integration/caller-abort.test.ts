import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { post, sleep, startHub, startWorker, stats, stopAll, waitUntil, type HubProc } from '../helpers/processes.js';

describe('callers that go away', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 5000 });
  });
  after(stopAll);

  it('cancels the job at the worker and frees its credit when the HTTP caller aborts', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'abortable', mode: 'sleep', sleepMs: 3000, concurrency: 1 }] });
    const ac = new AbortController();
    const gone = post(`${hub.url}/service/abortable`, '{"n":1}', {}, ac.signal).catch((e: Error) => e);
    await w.waitFor((l) => l.event === 'job');
    ac.abort();
    assert.ok((await gone) instanceof Error);
    const cancel = await w.waitFor((l) => l.event === 'cancel');
    assert.match(String(cancel.reason), /caller went away|cancel/i);
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
    // Credit 1 came back: a new request is served at once (the sleep handler aborts fast on cancel).
    const started = Date.now();
    const next = post(`${hub.url}/service/abortable`, '{"n":2}', { 'x-timeout-ms': '1000' });
    await w.waitFor((l) => l.event === 'job' && l.body === '{"n":2}', 2000);
    assert.ok(Date.now() - started < 1500);
    // Its worker dies: the job is redelivered, waits in the queue (no other worker), and times out.
    w.kill();
    assert.equal((await next).status, 504);
  });

  it('drops a queued job whose caller vanished before any worker took it', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'busy', mode: 'sleep', sleepMs: 400, concurrency: 1 }] });
    const first = post(`${hub.url}/service/busy`, '{"first":1}');
    await w.waitFor((l) => l.event === 'job');
    // A raw socket that sends a whole request and then dies while the job is queued.
    const s = net.connect(hub.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    const body = '{"ghost":1}';
    s.write(`POST /service/busy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitUntil(async () => (await stats(hub)).services.find((x: { name: string }) => x.name === 'busy')?.queued === 1, 2000, 'ghost queued');
    s.destroy();
    await waitUntil(async () => (await stats(hub)).services.find((x: { name: string }) => x.name === 'busy')?.queued === 0, 2000, 'ghost dropped');
    assert.equal((await first).status, 200);
    await sleep(100);
    assert.ok(!w.events('job').some((j) => j.body === body), 'the ghost job never reached the worker');
    assert.equal((await stats(hub)).openJobs, 0);
  });

  it('cancels in-flight requests of a WebSocket caller that disconnects', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'wsabort', mode: 'sleep', sleepMs: 3000, concurrency: 2 }] });
    const { RawSocket } = await import('../helpers/raw-socket.js');
    const { Op } = await import('../../client/protocol.js');
    const s = await RawSocket.open(hub.url);
    s.send([Op.Hello, { versions: [1], role: 'client' }]);
    await s.next((f) => f[0] === Op.Welcome);
    s.send([Op.Request, 1, 0, 'wsabort', null, null, null, null, null, Buffer.from('{}')]);
    await w.waitFor((l) => l.event === 'job');
    s.close();
    await w.waitFor((l) => l.event === 'cancel');
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
  });
});
