import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, type JobFrame, Op } from '../../client/protocol.js';
import { post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

describe('keep-alive and reconnect', () => {
  after(stopAll);

  it('closes a session that stops answering pings (4002) and redelivers its jobs', async () => {
    const hub = await startHub({ 'ping-interval-ms': 100, 'pong-timeout-ms': 300, 'default-timeout-ms': 5000 });
    // A worker whose socket never answers pings: it took a job and then went silent.
    const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/ws`, { autoPong: false });
    await new Promise((r) => ws.once('open', r));
    const jobs: JobFrame[] = [];
    ws.on('message', (d: Buffer) => {
      const f = decodeFrame(d, false);
      if (f[0] === Op.Job) jobs.push(f);
    });
    ws.send(encodeFrame([Op.Hello, { versions: [1], role: 'worker', instanceId: 'silent' }]));
    ws.send(encodeFrame([Op.Register, 'quiet', 1, 1]));
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'quiet'), 2000, 'registered');
    const answer = post(`${hub.url}/service/quiet`, '{"q":1}');
    await waitUntil(() => jobs.length === 1, 2000, 'job at the silent worker');
    const closed = await new Promise<number>((r) => ws.once('close', (code) => r(code)));
    assert.equal(closed, 4002);
    const rescuer = await startWorker({ url: hub.url, services: [{ name: 'quiet' }] });
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(rescuer.events('job')[0]?.attempt, 2);
  });

  it('keeps a library worker that answers pings connected, and reconnects and re-registers it when its session is dropped', async () => {
    const hub = await startHub({ 'ping-interval-ms': 100, 'pong-timeout-ms': 300 });
    const w = await startWorker({ url: hub.url, instanceId: 'comeback', services: [{ name: 'phoenix' }] });
    await new Promise((r) => setTimeout(r, 800));
    assert.equal((await post(`${hub.url}/service/phoenix`, '"alive"')).text, '"alive"');
    assert.equal(w.events('welcome').length, 1, 'no reconnect while pings are answered');
    // Another session claims the same instanceId: the hub closes the library worker's session
    // (4001); the worker reconnects with backoff, takes its identity back and registers again.
    const usurper = new WebSocket(`${hub.url.replace('http', 'ws')}/ws`);
    await new Promise((r) => usurper.once('open', r));
    usurper.send(encodeFrame([Op.Hello, { versions: [1], role: 'worker', instanceId: 'comeback' }]));
    const usurperClosed = new Promise<number>((r) => usurper.once('close', (code) => r(code)));
    await waitUntil(() => w.events('welcome').length === 2, 5000, 'worker reconnected');
    assert.equal(await usurperClosed, 4001, 'the returning worker replaced the usurper');
    await waitUntil(
      async () => (await stats(hub)).workers.some((x: { instanceId: string; services: unknown[] }) => x.instanceId === 'comeback' && x.services.length === 1),
      5000,
      're-registered',
    );
    assert.equal((await post(`${hub.url}/service/phoenix`, '"again"')).text, '"again"');
  });
});
