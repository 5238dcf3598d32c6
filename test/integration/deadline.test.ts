import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type JobFrame, Op } from '../../client/protocol.js';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

function service(st: { services: { name: string; queued: number; workers: number; inflight: number }[] }, name: string) {
  return st.services.find((s) => s.name === name);
}

describe('deadlines', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 3000, 'max-timeout-ms': 5000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 });
  });
  after(stopAll);

  it('answers 504 E_DEADLINE when the worker does not answer in X-Timeout-Ms, never before it, and cancels the job at the worker', {
    timeout: 10_000,
  }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'hanger', services: [{ name: 'hang', mode: 'hang', concurrency: 1 }] });
    const before = (await stats(hub)).jobs;
    const t0 = Date.now();
    const r = await post(`${hub.url}/service/hang`, '{"h":1}', { 'x-timeout-ms': '300' });
    const took = Date.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(r.json().error.code, 'E_DEADLINE');
    assert.equal(r.headers.get('x-error-code'), 'E_DEADLINE');
    assert.ok(took >= 300, `504 after ${took} ms, before the 300 ms deadline`);
    assert.ok(took < 1000, `504 after ${took} ms, long after the 300 ms deadline`);
    const job = await w.waitFor((l) => l.event === 'job');
    assert.ok((job.remainingMs as number) > 0 && (job.remainingMs as number) <= 300, `remainingMs ${job.remainingMs}`);
    assert.equal(job.attempt, 1);
    // The handler's job.signal aborted with the deadline as its reason.
    const cancel = await w.waitFor((l) => l.event === 'cancel' && l.id === job.id, 2000, 'cancel event');
    assert.match(String(cancel.reason), /deadline/);
    await w.waitFor((l) => l.event === 'done' && l.id === job.id, 2000, 'handler ended by the abort');
    await waitUntil(async () => service(await stats(hub), 'hang')?.inflight === 0, 2000, 'credit back after the cancel ack');
    const after = (await stats(hub)).jobs;
    assert.equal(after.expired, before.expired + 1);
    assert.equal(after.lateReplies, before.lateReplies, 'a cancel ack is not a late reply');
    assert.equal((await stats(hub)).openJobs, 0);
  });

  it('tells the worker the remaining time, less the time the job waited in the queue', { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'clock', { remaining: 1 });
    await waitUntil(async () => service(await stats(hub), 'remaining')?.workers === 1, 2000, 'registered');
    const first = post(`${hub.url}/service/remaining`, '{"first":1}', { 'x-timeout-ms': '2000' });
    const a = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    assert.ok(a[4] <= 2000 && a[4] > 0, `remainingMs ${a[4]}`);
    const second = post(`${hub.url}/service/remaining`, '{"second":1}', { 'x-timeout-ms': '1000' });
    await waitUntil(async () => service(await stats(hub), 'remaining')?.queued === 1, 2000, 'second job queued');
    // The second job has been accepted; it waits at least 300 ms more for the credit.
    await sleep(300);
    s.send([Op.Reply, a[1], 200, 'application/json', null, Buffer.from('{"a":1}')]);
    const b = (await s.next((f) => f[0] === Op.Job && f[1] !== a[1])) as JobFrame;
    assert.ok(b[4] > 0 && b[4] <= 700, `remainingMs ${b[4]} after waiting 300 ms of a 1000 ms deadline`);
    s.send([Op.Reply, b[1], 200, 'application/json', null, Buffer.from('{"b":1}')]);
    assert.equal((await first).text, '{"a":1}');
    assert.equal((await second).text, '{"b":1}');
    s.close();
  });

  it('drops and counts a reply that comes after the 504, and the credit comes back with it', { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'tardy', { tardy: 1 });
    await waitUntil(async () => service(await stats(hub), 'tardy')?.workers === 1, 2000, 'registered');
    const before = (await stats(hub)).jobs;
    const answer = post(`${hub.url}/service/tardy`, '{"t":1}', { 'x-timeout-ms': '200' });
    const job = (await s.next((f) => f[0] === Op.Job)) as JobFrame;
    const r = await answer;
    assert.equal(r.status, 504);
    assert.equal(r.json().error.code, 'E_DEADLINE');
    const cancel = await s.next((f) => f[0] === Op.Cancel);
    assert.deepEqual(cancel.slice(0, 3), [Op.Cancel, job[1], 'E_DEADLINE']);
    // No ack yet: the hub still counts the job against the credit.
    assert.equal(service(await stats(hub), 'tardy')?.inflight, 1);
    s.send([Op.Reply, job[1], 200, 'application/json', null, Buffer.from('{"too":"late"}')]);
    await waitUntil(async () => (await stats(hub)).jobs.lateReplies === before.lateReplies + 1, 2000, 'late reply counted');
    assert.equal((await stats(hub)).jobs.replied, before.replied, 'a late reply is not a reply');
    assert.equal(service(await stats(hub), 'tardy')?.inflight, 0);
    assert.equal(s.closeCode, null, 'a late reply does not close the session');
    const next = post(`${hub.url}/service/tardy`, '{"t":2}');
    const job2 = (await s.next((f) => f[0] === Op.Job && f[1] !== job[1])) as JobFrame;
    s.send([Op.Reply, job2[1], 200, 'application/json', null, Buffer.from('{"on":"time"}')]);
    assert.equal((await next).text, '{"on":"time"}');
    s.close();
  });

  it('answers 504 for a job still queued at its deadline, and it never reaches the worker', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'busy', services: [{ name: 'busy', mode: 'sleep', sleepMs: 1500, concurrency: 1 }] });
    const first = post(`${hub.url}/service/busy`, '{"first":1}');
    await w.waitFor((l) => l.event === 'job');
    const t0 = Date.now();
    const queued = await post(`${hub.url}/service/busy`, '{"queued":1}', { 'x-timeout-ms': '200' });
    assert.equal(queued.status, 504);
    assert.equal(queued.json().error.code, 'E_DEADLINE');
    assert.ok(Date.now() - t0 >= 200);
    assert.equal(service(await stats(hub), 'busy')?.queued, 0, 'the expired job left the queue');
    assert.equal((await first).status, 200);
    await sleep(100);
    assert.ok(!w.events('job').some((j) => j.body === '{"queued":1}'), 'the expired job reached the worker');
    assert.equal(w.events('cancel').length, 0);
  });

  it('expires keyed jobs waiting for their owner, and each part of a broadcast on its own', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'owner', services: [{ name: 'owned', mode: 'hang', concurrency: 1 }] });
    const first = post(`${hub.url}/api/owned/k1`, '{"k":1}', { 'x-timeout-ms': '1000' });
    await w.waitFor((l) => l.event === 'job');
    const waiting = await post(`${hub.url}/api/owned/k2`, '{"k":2}', { 'x-timeout-ms': '150' });
    assert.equal(waiting.status, 504);
    assert.equal((await first).status, 504);
    await w.waitFor((l) => l.event === 'cancel');
    await waitUntil(async () => service(await stats(hub), 'owned')?.inflight === 0, 2000, 'credit back');
    const b = await post(`${hub.url}/api/broadcast/owned/k3`, '{"b":1}', { 'x-timeout-ms': '200' });
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('x-broadcast-asked'), '1');
    assert.equal(b.headers.get('x-broadcast-timed-out'), '1');
    assert.equal(b.json()[0].error.code, 'E_DEADLINE');
    await waitUntil(() => w.events('cancel').length === 2, 2000, 'broadcast part cancelled');
    await waitUntil(async () => (await stats(hub)).openJobs === 0, 2000, 'no open jobs');
  });
});
