import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { post, startHub, startWorker, stats, stopAll, waitUntil, type HubProc } from '../helpers/processes.js';

describe('credit and deadlines', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 5000 });
  });
  after(stopAll);

  it('never has more unanswered jobs at a worker than its credit', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'credit3', mode: 'sleep', sleepMs: 40, concurrency: 3 }] });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => post(`${hub.url}/service/credit3`, `{"i":${i}}`)));
    assert.deepEqual(answers.map((a) => a.status), Array(30).fill(200));
    answers.forEach((a, i) => assert.equal(a.text, `{"i":${i}}`));
    const peak = Math.max(...w.events('job').map((e) => e.running as number));
    assert.equal(peak, 3, 'worker ran exactly its credit at the peak');
    const st = await stats(hub);
    const reg = st.workers.find((x: { instanceId: string }) => x.instanceId === w.instanceId).services[0];
    assert.equal(reg.credit, 3);
    assert.equal(reg.inflight, 0);
  });

  it('keeps credit held by a handler that ignores cancel until it really finishes', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'stubborn', mode: 'sleep', sleepMs: 500, concurrency: 2, ignoreCancel: true }] });
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(`${hub.url}/service/stubborn`, '{}', { 'x-timeout-ms': '150' })));
    assert.deepEqual(answers.map((a) => a.status), Array(6).fill(504));
    assert.ok(answers.every((a) => a.json().error.code === 'E_DEADLINE'));
    assert.ok(Date.now() - t0 < 1500, '504s come at the deadline, not after the handlers');
    // The two running handlers were cancelled but keep their credit; nothing else may start until they finish.
    await waitUntil(() => w.events('done').length >= 2, 3000, 'stubborn handlers to finish');
    const peak = Math.max(...w.events('job').map((e) => e.running as number));
    assert.ok(peak <= 2, `ran ${peak} at once with credit 2`);
    assert.equal(w.events('job').length, 2, 'expired queued jobs never reached the worker');
    assert.equal(w.events('cancel').length, 2);
    await waitUntil(async () => (await stats(hub)).workers.find((x: { instanceId: string }) => x.instanceId === w.instanceId).services[0].inflight === 0, 3000, 'credit back');
    const next = await post(`${hub.url}/service/stubborn`, '{"after":1}', { 'x-timeout-ms': '2000' });
    assert.equal(next.status, 200);
  });

  it('answers 504 at the deadline, cancels the job at the worker, and drops the late reply', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'late', mode: 'sleep', sleepMs: 400, concurrency: 1, ignoreCancel: true }] });
    const before = (await stats(hub)).jobs.lateReplies;
    const t0 = Date.now();
    const r = await post(`${hub.url}/service/late`, '{}', { 'x-timeout-ms': '200' });
    const took = Date.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(r.json().error.code, 'E_DEADLINE');
    assert.ok(took >= 190 && took < 1000, `504 after ${took} ms`);
    const job = await w.waitFor((l) => l.event === 'job');
    assert.ok((job.remainingMs as number) <= 200 && (job.remainingMs as number) > 0, `remainingMs ${job.remainingMs}`);
    const cancel = await w.waitFor((l) => l.event === 'cancel');
    assert.match(String(cancel.reason), /deadline/);
    await w.waitFor((l) => l.event === 'done');
    // ignoreCancel: the handler finished anyway, and the library acked the cancel; a hand-written
    // worker that replies late is covered in hostile-frames.test.ts.
    await waitUntil(async () => (await stats(hub)).jobs.expired >= 1, 2000, 'expiry counted');
    assert.equal((await stats(hub)).jobs.lateReplies, before, 'a cancel ack is not a late reply');
  });
});
