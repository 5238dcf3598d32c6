import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type JobFrame, Op } from '../../client/protocol.js';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

interface RegStats {
  name: string;
  credit: number;
  inflight: number;
}

/** The hub's view of one registration: credit granted and jobs it holds unanswered. */
async function registration(hub: HubProc, instanceId: string, service: string): Promise<RegStats | undefined> {
  const st = await stats(hub);
  const w = st.workers.find((x: { instanceId: string }) => x.instanceId === instanceId);
  return w?.services.find((s: RegStats) => s.name === service);
}

async function queued(hub: HubProc, service: string): Promise<number | undefined> {
  return (await stats(hub)).services.find((s: { name: string }) => s.name === service)?.queued;
}

describe('credit: the hub never has more unanswered jobs at a worker than its credit', { timeout: 90_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 5000, 'max-timeout-ms': 10_000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 });
  });
  after(stopAll);

  it('answers 30 concurrent requests on a worker with concurrency 3 and never runs more than 3 at once', { timeout: 15_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'three', services: [{ name: 'credit-three', mode: 'sleep', sleepMs: 100, concurrency: 3 }] });
    // Watch the hub's side of the credit while the load runs.
    const held: number[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r = await registration(hub, 'three', 'credit-three');
        if (r) held.push(r.inflight);
        await sleep(10);
      }
    })();
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => post(`${hub.url}/service/credit-three`, `{"i":${i}}`)));
    watching = false;
    await watcher;
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(30).fill(200),
    );
    for (const [i, a] of answers.entries()) assert.equal(a.text, `{"i":${i}}`);
    const done = (await waitUntil(() => (w.events('done').length === 30 ? w.events('done') : null), 3000, '30 done events'))!;
    const maxRunning = Math.max(...done.map((d) => d.maxRunning as number));
    assert.equal(maxRunning, 3, `worker ran ${maxRunning} at once with credit 3`);
    assert.ok(w.events('job').every((j) => (j.running as number) <= 3 && j.attempt === 1));
    assert.equal(new Set(w.events('job').map((j) => j.body)).size, 30, 'each job ran once');
    assert.ok(held.length > 0 && held.every((n) => n <= 3), `hub held ${Math.max(...held)} jobs at a worker with credit 3`);
    const r = await registration(hub, 'three', 'credit-three');
    assert.deepEqual({ credit: r?.credit, inflight: r?.inflight }, { credit: 3, inflight: 0 });
  });

  it('keeps the credit of hung handlers that ignore cancel, after their deadlines passed', { timeout: 15_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'hung', services: [{ name: 'credit-hang', mode: 'hang', ignoreCancel: true, concurrency: 2 }] });
    const first = await Promise.all(Array.from({ length: 5 }, (_, i) => post(`${hub.url}/service/credit-hang`, `{"i":${i}}`, { 'x-timeout-ms': '200' })));
    for (const a of first) {
      assert.equal(a.status, 504);
      assert.equal(a.json().error.code, 'E_DEADLINE');
    }
    await waitUntil(() => w.events('cancel').length === 2, 3000, 'both running handlers cancelled');
    // The handlers still run: the hub keeps their credit and sends nothing more.
    assert.equal(w.events('job').length, 2);
    assert.equal((await registration(hub, 'hung', 'credit-hang'))?.inflight, 2);
    assert.equal(await queued(hub, 'credit-hang'), 0, 'expired queued jobs left the queue');
    const second = await Promise.all(Array.from({ length: 3 }, (_, i) => post(`${hub.url}/service/credit-hang`, `{"again":${i}}`, { 'x-timeout-ms': '200' })));
    assert.deepEqual(
      second.map((a) => a.status),
      [504, 504, 504],
    );
    await sleep(100);
    assert.equal(w.events('job').length, 2, 'no job went to a worker whose credit is held by hung handlers');
    assert.ok(w.events('job').every((j) => (j.running as number) <= 2));
    assert.equal(w.events('done').length, 0);
    assert.equal((await registration(hub, 'hung', 'credit-hang'))?.inflight, 2);
    assert.equal((await stats(hub)).openJobs, 0, 'every caller was answered');
  });

  it('gives credit back only when a handler that ignored cancel really finishes', { timeout: 15_000 }, async () => {
    const w = await startWorker({
      url: hub.url,
      instanceId: 'slow',
      services: [{ name: 'credit-slow', mode: 'sleep', sleepMs: 1000, ignoreCancel: true, concurrency: 2 }],
    });
    const lateRepliesBefore = (await stats(hub)).jobs.lateReplies;
    const t0 = Date.now();
    const expired = Promise.all(Array.from({ length: 6 }, (_, i) => post(`${hub.url}/service/credit-slow`, `{"late":${i}}`, { 'x-timeout-ms': '150' })));
    const expiredAfter = expired.then(() => Date.now() - t0);
    await waitUntil(() => w.events('job').length === 2, 3000, 'two jobs running');
    // Sent while the two stubborn handlers still hold the credit: they wait for it.
    const patient = Promise.all(Array.from({ length: 4 }, (_, i) => post(`${hub.url}/service/credit-slow`, `{"patient":${i}}`, { 'x-timeout-ms': '8000' })));
    const late = await expired;
    assert.deepEqual(
      late.map((a) => a.status),
      Array(6).fill(504),
    );
    assert.ok(late.every((a) => a.json().error.code === 'E_DEADLINE'));
    // The handlers take 1000 ms: the 504s come at the deadline, not when the credit comes back.
    const took = await expiredAfter;
    assert.ok(took < 1000, `504s after ${took} ms`);
    const served = await patient;
    assert.deepEqual(
      served.map((a) => a.status),
      [200, 200, 200, 200],
    );
    for (const [i, a] of served.entries()) assert.equal(a.text, `{"patient":${i}}`);
    await waitUntil(() => w.events('done').length === 6, 3000, 'six handlers done');
    const maxRunning = Math.max(...w.events('done').map((d) => d.maxRunning as number));
    assert.equal(maxRunning, 2, `worker ran ${maxRunning} at once with credit 2`);
    // Of the expired jobs only the two that held the credit ever ran.
    const bodies = w.events('job').map((j) => String(j.body));
    assert.equal(bodies.filter((b) => b.startsWith('{"late"')).length, 2);
    // The first patient job started only after a stubborn handler was done.
    const lines = w.lines as Record<string, unknown>[];
    const firstPatient = lines.findIndex((l) => l?.event === 'job' && String(l.body).startsWith('{"patient"'));
    const firstDone = lines.findIndex((l) => l?.event === 'done');
    assert.ok(firstDone !== -1 && firstDone < firstPatient, 'a patient job started before any stubborn handler finished');
    assert.equal(w.events('cancel').length, 2, 'only the two running expired jobs were cancelled');
    await waitUntil(async () => (await registration(hub, 'slow', 'credit-slow'))?.inflight === 0, 2000, 'credit back');
    // A handler that ignored its cancel ends with a cancel ack, not a reply the hub must drop.
    assert.equal((await stats(hub)).jobs.lateReplies, lateRepliesBefore);
  });

  it('sends a raw worker no job beyond its credit until it acknowledges a cancel', { timeout: 15_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'raw-credit', { 'credit-raw': 2 });
    await waitUntil(async () => (await registration(hub, 'raw-credit', 'credit-raw')) !== undefined, 2000, 'registered');
    const short = Array.from({ length: 4 }, (_, i) => post(`${hub.url}/service/credit-raw`, `{"short":${i}}`, { 'x-timeout-ms': '200' }));
    const jobs = () => s.frames.filter((f): f is JobFrame => f[0] === Op.Job);
    await waitUntil(() => jobs().length === 2, 2000, 'two jobs at the raw worker');
    assert.deepEqual(
      (await Promise.all(short)).map((a) => a.status),
      [504, 504, 504, 504],
    );
    const cancels = (await waitUntil(
      () => {
        const c = s.frames.filter((f) => f[0] === Op.Cancel);
        return c.length === 2 ? c : null;
      },
      2000,
      'two cancels',
    ))!;
    assert.deepEqual(
      cancels.map((c) => c[1]).sort(),
      jobs()
        .map((j) => j[1])
        .sort(),
    );
    assert.ok(cancels.every((c) => c[2] === 'E_DEADLINE'));
    // A patient request waits: both credits are held by cancelled, unacknowledged jobs.
    const patient = post(`${hub.url}/service/credit-raw`, '{"patient":true}', { 'x-timeout-ms': '5000' });
    await waitUntil(async () => (await queued(hub, 'credit-raw')) === 1, 2000, 'patient job queued');
    await sleep(150);
    assert.equal(jobs().length, 2, 'a job went out beyond the credit');
    const held = jobs().map((j) => j[1]);
    s.send([Op.CancelAck, held[0]!]);
    const next = (await s.next((f) => f[0] === Op.Job && !held.includes(f[1]))) as JobFrame;
    assert.equal(Buffer.from(next[9]).toString(), '{"patient":true}');
    s.send([Op.Reply, next[1], 200, 'application/json', null, Buffer.from('{"done":1}')]);
    const r = await patient;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"done":1}');
    assert.equal((await registration(hub, 'raw-credit', 'credit-raw'))?.inflight, 1, 'the unacknowledged cancel still holds one credit');
    s.close();
  });

  it('keeps a worker within its concurrency when it reconnects while handlers of the dropped session still run', { timeout: 15_000 }, async () => {
    const w = await startWorker({
      url: hub.url,
      instanceId: 'survivor',
      services: [{ name: 'credit-reconnect', mode: 'sleep', sleepMs: 1500, ignoreCancel: true, concurrency: 1 }],
    });
    const old = post(`${hub.url}/service/credit-reconnect`, '{"old":1}');
    await w.waitFor((l) => l.event === 'job');
    // Another session claims the worker's instanceId: the hub drops the worker's session (4001)
    // while its handler still runs; the worker reconnects and takes its identity back.
    const usurper = await RawSocket.worker(hub.url, 'survivor');
    assert.equal(await usurper.closed, 4001);
    await waitUntil(async () => (await registration(hub, 'survivor', 'credit-reconnect')) !== undefined, 5000, 'worker back and registered');
    const r = await post(`${hub.url}/service/credit-reconnect`, '{"new":1}');
    assert.equal(r.status, 200);
    assert.equal((await old).status, 200, 'the job of the dropped session was redelivered');
    await waitUntil(() => w.events('done').length >= 3, 5000, 'all handlers done');
    const maxRunning = Math.max(...w.events('done').map((d) => d.maxRunning as number));
    assert.equal(maxRunning, 1, `worker with concurrency 1 ran ${maxRunning} handlers at once after a reconnect`);
  });

  it('registers only the free slots on the new session and raises them as the old handlers return', { timeout: 15_000 }, async () => {
    const w = await startWorker({
      url: hub.url,
      instanceId: 'halfway',
      services: [{ name: 'credit-slots', mode: 'sleep', sleepMs: 1200, ignoreCancel: true, concurrency: 2 }],
    });
    const old = post(`${hub.url}/service/credit-slots`, '{"old":1}');
    await w.waitFor((l) => l.event === 'job');
    const usurper = await RawSocket.worker(hub.url, 'halfway');
    assert.equal(await usurper.closed, 4001);
    await waitUntil(async () => (await registration(hub, 'halfway', 'credit-slots'))?.credit === 1, 5000, 'back with one free slot');
    await waitUntil(async () => (await registration(hub, 'halfway', 'credit-slots'))?.credit === 2, 5000, 'both slots once the old handler returned');
    assert.equal((await old).status, 200, 'the dropped job was redelivered and answered');
  });
});
