import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

describe('workers that crash or fail', () => {
  after(stopAll);

  it('redelivers jobs of a worker killed with SIGKILL to another worker, with attempt 2', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000 });
    const doomed = await startWorker({ url: hub.url, instanceId: 'doomed', services: [{ name: 'work', mode: 'sleep', sleepMs: 10_000, concurrency: 4 }] });
    const answers = Array.from({ length: 4 }, (_, i) => post(`${hub.url}/service/work`, `{"i":${i}}`));
    await waitUntil(() => doomed.events('job').length === 4, 3000, 'four jobs at the doomed worker');
    const rescuer = await startWorker({ url: hub.url, instanceId: 'rescuer', services: [{ name: 'work', mode: 'echo', concurrency: 4 }] });
    doomed.kill('SIGKILL');
    const results = await Promise.all(answers);
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.text, `{"i":${i}}`);
      assert.match(r.headers.get('x-served-by') ?? '', /\/rescuer$/);
    });
    const jobs = rescuer.events('job');
    assert.equal(jobs.length, 4);
    assert.ok(jobs.every((j) => j.attempt === 2));
    assert.equal((await stats(hub)).jobs.redelivered, 4);
  });

  it('answers 502 E_WORKER_GONE when every attempt\'s worker dies', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000, 'max-attempts': 2 });
    const ids = ['a', 'b'];
    const first = await startWorker({ url: hub.url, instanceId: ids[0], services: [{ name: 'cursed', mode: 'sleep', sleepMs: 10_000 }] });
    const answer = post(`${hub.url}/service/cursed`, '{}');
    await first.waitFor((l) => l.event === 'job');
    const second = await startWorker({ url: hub.url, instanceId: ids[1], services: [{ name: 'cursed', mode: 'sleep', sleepMs: 10_000 }] });
    first.kill('SIGKILL');
    const j2 = await second.waitFor((l) => l.event === 'job');
    assert.equal(j2.attempt, 2);
    second.kill('SIGKILL');
    const r = await answer;
    assert.equal(r.status, 502);
    assert.equal(r.json().error.code, 'E_WORKER_GONE');
  });

  it('redelivers the job of a worker process that exits mid-job', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000 });
    const quitter = await startWorker({ url: hub.url, instanceId: 'quitter', services: [{ name: 'flaky', mode: 'exit' }] });
    const answer = post(`${hub.url}/service/flaky`, '{"x":1}');
    await quitter.exited;
    const steady = await startWorker({ url: hub.url, instanceId: 'steady', services: [{ name: 'flaky' }] });
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"x":1}');
    assert.equal(steady.events('job')[0]?.attempt, 2);
  });

  it('passes an error reply to the caller as is and never redelivers it', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000 });
    const w1 = await startWorker({ url: hub.url, services: [{ name: 'broken', mode: 'fail' }] });
    const w2 = await startWorker({ url: hub.url, services: [{ name: 'broken', mode: 'fail' }] });
    const r = await post(`${hub.url}/service/broken`, '{}');
    assert.equal(r.status, 500);
    assert.equal(r.json().error.code, 'E_FIXTURE');
    assert.equal(r.json().error.message, 'fixture failure');
    assert.equal(r.headers.get('x-error-code'), 'E_FIXTURE');
    assert.equal(w1.events('job').length + w2.events('job').length, 1);
    const st = await stats(hub);
    assert.equal(st.jobs.errorReplies, 1);
    assert.equal(st.jobs.redelivered, 0);
  });
});
