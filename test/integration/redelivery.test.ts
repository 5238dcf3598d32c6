import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

const FAST = { 'default-timeout-ms': 5000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 };

async function service(hub: HubProc, name: string): Promise<{ queued: number; workers: number } | undefined> {
  return (await stats(hub)).services.find((s: { name: string }) => s.name === name);
}

describe('redelivery when a worker vanishes', { timeout: 90_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub(FAST);
  });
  after(stopAll);

  it('redelivers the in-flight jobs of a worker killed with SIGKILL to a second worker with attempt 2', { timeout: 15_000 }, async () => {
    const base = (await stats(hub)).jobs;
    const doomed = await startWorker({ url: hub.url, instanceId: 'doomed', services: [{ name: 'work', mode: 'sleep', sleepMs: 20_000, concurrency: 3 }] });
    // Three jobs run at the doomed worker and two wait in the hub's queue behind its credit.
    const answers = Array.from({ length: 5 }, (_, i) => post(`${hub.url}/service/work`, `{"i":${i}}`));
    await waitUntil(() => doomed.events('job').length === 3, 3000, 'three jobs at the doomed worker');
    await waitUntil(async () => (await service(hub, 'work'))?.queued === 2, 3000, 'two queued');
    const inFlight = new Set(doomed.events('job').map((j) => j.body as string));
    const rescuer = await startWorker({ url: hub.url, instanceId: 'rescuer', services: [{ name: 'work', mode: 'sleep', sleepMs: 20, concurrency: 2 }] });
    doomed.kill('SIGKILL');
    const results = await Promise.all(answers);
    results.forEach((r, i) => {
      assert.equal(r.status, 200, `job ${i}`);
      assert.equal(r.text, `{"i":${i}}`);
    });
    // The queued jobs may have gone to the rescuer before the kill; the three in flight went there after it.
    for (const r of results.filter((x) => inFlight.has(x.text))) assert.match(r.headers.get('x-served-by') ?? '', /\/rescuer$/);
    const jobs = rescuer.events('job');
    assert.equal(jobs.length, 5, 'each job ran once at the rescuer');
    for (const j of jobs) assert.equal(j.attempt, inFlight.has(j.body as string) ? 2 : 1, `attempt of ${j.body}`);
    assert.equal(jobs.filter((j) => j.attempt === 2).length, 3);
    assert.ok(Math.max(...rescuer.events('done').map((d) => d.maxRunning as number)) <= 2, "redelivery respects the rescuer's credit");
    assert.equal((await stats(hub)).jobs.redelivered, base.redelivered + 3);
    assert.equal((await stats(hub)).openJobs, 0);
  });

  it('redelivers keyed jobs of a killed owner to the next owner in the ranking, with attempt 2', { timeout: 15_000 }, async () => {
    const base = (await stats(hub)).jobs;
    const doomed = await startWorker({ url: hub.url, instanceId: 'keyed-doomed', services: [{ name: 'kv', mode: 'sleep', sleepMs: 20_000, concurrency: 32 }] });
    const heir = await startWorker({ url: hub.url, instanceId: 'keyed-heir', services: [{ name: 'kv', concurrency: 32 }] });
    const answers = Array.from({ length: 20 }, (_, i) => post(`${hub.url}/api/kv/key-${i}`, `{"k":${i}}`));
    // The heir answers its own keys at once; the doomed worker holds the rest.
    await waitUntil(() => doomed.events('job').length + heir.events('job').length === 20, 3000, 'twenty keyed jobs delivered');
    const held = doomed.events('job').map((j) => j.body as string);
    assert.ok(held.length > 0 && held.length < 20, `the doomed worker owns ${held.length} of 20 keys`);
    doomed.kill('SIGKILL');
    const results = await Promise.all(answers);
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.text, `{"k":${i}}`);
      assert.match(r.headers.get('x-served-by') ?? '', /\/keyed-heir$/);
    });
    const redelivered = heir.events('job').filter((j) => held.includes(j.body as string));
    assert.equal(redelivered.length, held.length);
    assert.ok(redelivered.every((j) => j.attempt === 2));
    assert.equal((await stats(hub)).jobs.redelivered, base.redelivered + held.length);
  });

  it('keeps a redelivered job queued while no worker is left, and answers 504 at its deadline', { timeout: 10_000 }, async () => {
    const base = (await stats(hub)).jobs;
    const only = await startWorker({ url: hub.url, instanceId: 'only', services: [{ name: 'orphan', mode: 'sleep', sleepMs: 20_000 }] });
    const t0 = Date.now();
    const answer = post(`${hub.url}/service/orphan`, '{"o":1}', { 'x-timeout-ms': '1500' });
    await only.waitFor((l) => l.event === 'job');
    only.kill('SIGKILL');
    await waitUntil(
      async () => {
        const s = await service(hub, 'orphan');
        return s?.workers === 0 && s.queued === 1;
      },
      1000,
      'the job back in the queue with no worker',
    );
    const r = await answer;
    assert.equal(r.status, 504);
    assert.equal(r.json().error.code, 'E_DEADLINE');
    assert.ok(Date.now() - t0 >= 1500, '504 before the deadline');
    const after = (await stats(hub)).jobs;
    assert.equal(after.redelivered, base.redelivered + 1);
    assert.equal(after.expired, base.expired + 1);
    assert.equal((await service(hub, 'orphan'))?.queued, 0);
    assert.equal((await stats(hub)).openJobs, 0);
  });

  it('answers 502 E_WORKER_GONE with --max-attempts 1 and never hands the job to another worker', { timeout: 15_000 }, async () => {
    const once = await startHub({ ...FAST, 'max-attempts': 1 });
    const first = await startWorker({ url: once.url, instanceId: 'once-a', services: [{ name: 'once', mode: 'sleep', sleepMs: 20_000, concurrency: 1 }] });
    const answer = post(`${once.url}/service/once`, '{"once":1}');
    await first.waitFor((l) => l.event === 'job');
    const other = await startWorker({ url: once.url, instanceId: 'once-b', services: [{ name: 'once', concurrency: 1 }] });
    first.kill('SIGKILL');
    const r = await answer;
    assert.equal(r.status, 502);
    assert.equal(r.json().error.code, 'E_WORKER_GONE');
    assert.equal(r.headers.get('x-error-code'), 'E_WORKER_GONE');
    await sleep(100);
    assert.equal(other.events('job').length, 0);
    assert.equal((await stats(once)).jobs.redelivered, 0);
  });

  it('answers 502 E_WORKER_GONE when the worker of every attempt is killed in turn', { timeout: 20_000 }, async () => {
    const three = await startHub({ ...FAST, 'max-attempts': 3 });
    let w = await startWorker({ url: three.url, instanceId: 'cursed-1', services: [{ name: 'cursed', mode: 'sleep', sleepMs: 20_000 }] });
    const pending = post(`${three.url}/service/cursed`, '{"cursed":1}');
    for (let attempt = 1; attempt <= 3; attempt++) {
      const job = await w.waitFor((l) => l.event === 'job', 3000, `attempt ${attempt}`);
      assert.equal(job.attempt, attempt);
      const next =
        attempt < 3
          ? await startWorker({ url: three.url, instanceId: `cursed-${attempt + 1}`, services: [{ name: 'cursed', mode: 'sleep', sleepMs: 20_000 }] })
          : null;
      w.kill('SIGKILL');
      await w.exited;
      if (next) w = next;
    }
    const r = await pending;
    assert.equal(r.status, 502);
    assert.equal(r.json().error.code, 'E_WORKER_GONE');
    assert.equal((await stats(three)).jobs.redelivered, 2);
  });

  it("passes an error reply to the caller as final: 500 with the handler's code, never redelivered", { timeout: 15_000 }, async () => {
    const base = (await stats(hub)).jobs;
    const ws = await Promise.all(
      ['fail-a', 'fail-b'].map((instanceId) => startWorker({ url: hub.url, instanceId, services: [{ name: 'broken', mode: 'fail' }] })),
    );
    for (let i = 0; i < 4; i++) {
      const r = await post(`${hub.url}/service/broken`, `{"f":${i}}`);
      assert.equal(r.status, 500);
      assert.deepEqual(r.json(), { error: { code: 'E_FIXTURE', message: 'fixture failure' } });
      assert.equal(r.headers.get('x-error-code'), 'E_FIXTURE');
      assert.match(r.headers.get('x-served-by') ?? '', /\/fail-[ab]$/);
    }
    await sleep(100);
    const jobs = [...ws[0]!.events('job'), ...ws[1]!.events('job')];
    assert.equal(jobs.length, 4, 'one job event per request across both workers');
    assert.ok(jobs.every((j) => j.attempt === 1));
    const after = (await stats(hub)).jobs;
    assert.equal(after.errorReplies, base.errorReplies + 4);
    assert.equal(after.redelivered, base.redelivered);
  });

  it('redelivers the job of a worker process that exits mid-job', { timeout: 15_000 }, async () => {
    const base = (await stats(hub)).jobs;
    const quitter = await startWorker({ url: hub.url, instanceId: 'quitter', services: [{ name: 'flaky', mode: 'exit' }] });
    const answer = post(`${hub.url}/service/flaky`, '{"x":1}');
    const exit = await quitter.exited;
    assert.equal(exit.code, 3);
    assert.equal(quitter.events('job').length, 1);
    await waitUntil(async () => (await service(hub, 'flaky'))?.workers === 0, 3000, 'quitter gone');
    const steady = await startWorker({ url: hub.url, instanceId: 'steady', services: [{ name: 'flaky' }] });
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"x":1}');
    assert.match(r.headers.get('x-served-by') ?? '', /\/steady$/);
    assert.equal(steady.events('job')[0]?.attempt, 2);
    assert.equal((await stats(hub)).jobs.redelivered, base.redelivered + 1);
  });
});
