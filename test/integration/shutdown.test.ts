import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { assertNoReadRequestLost, callUntilStopped } from '../helpers/drain-load.js';
import { post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

describe('graceful shutdown', () => {
  after(stopAll);

  it('answers every request exactly once under load on SIGTERM and exits 0', async () => {
    const hub = await startHub({ 'shutdown-grace-ms': 3000, 'default-timeout-ms': 10_000 });
    const w = await startWorker({ url: hub.url, services: [{ name: 'steady', mode: 'sleep', sleepMs: 50, concurrency: 32 }] });
    const load = callUntilStopped(`${hub.url}/service/steady`, 64, 64);
    try {
      await sleep(400);
      const ready = await fetch(`${hub.url}/readyz`);
      assert.equal(ready.status, 200);
      hub.kill('SIGTERM');
      const exit = await hub.exited;
      await load.stop();
      assert.equal(exit.code, 0, `hub exit ${JSON.stringify(exit)}`);
      // No request the hub read is reset: every one got its 200 or 503.
      const { answered } = await assertNoReadRequestLost(load.outcomes, hub, 64);
      const served = new Set<string>();
      for (const a of answered) {
        if (a.status === 200) {
          assert.equal(a.text, a.sent);
          served.add(a.text);
        } else assert.equal(JSON.parse(a.text).error.code, 'E_SHUTTING_DOWN');
      }
      assert.ok(served.size > 100, `only ${served.size} requests served`);
      // Every job a worker received was answered to its caller with the worker's reply.
      const received = w.events('job').map((j) => j.body as string);
      assert.ok(received.length >= served.size);
      for (const body of received) assert.ok(served.has(body), `job ${body} reached the worker but its caller got no 200`);
    } finally {
      await load.stop();
    }
  });

  it('answers 200 requests in flight at SIGTERM with 200, refuses later ones with 503, turns /readyz 503 and exits 0', { timeout: 20_000 }, async () => {
    const hub = await startHub({ 'shutdown-grace-ms': 2000, 'default-timeout-ms': 10_000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 });
    const w = await startWorker({ url: hub.url, services: [{ name: 'drain-load', mode: 'sleep', sleepMs: 50, concurrency: 10 }] });
    const agent = new Agent({ connections: 256 });
    const send = (body: string) =>
      request(`${hub.url}/service/drain-load`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent }).then(
        async (r) => ({ status: r.statusCode, text: await r.body.text() }),
        (err: NodeJS.ErrnoException) => ({ status: -1, text: String(err.code ?? err) }),
      );
    try {
      assert.equal((await fetch(`${hub.url}/readyz`)).status, 200);
      // 200 requests in flight: ten run at the worker, the rest wait in the hub's queue (about a second of work).
      const inFlight = Array.from({ length: 200 }, (_, i) => send(`{"n":${i}}`));
      await waitUntil(async () => (await stats(hub)).jobs.accepted >= 200, 5000, 'all 200 accepted');
      hub.kill('SIGTERM');
      await waitUntil(async () => (await fetch(`${hub.url}/readyz`)).status === 503, 2000, '/readyz 503 while draining');
      const late = await Promise.all(Array.from({ length: 20 }, (_, i) => send(`{"late":${i}}`)));
      const exit = await hub.exited;
      const answers = await Promise.all(inFlight);
      assert.equal(exit.code, 0, `hub exit ${JSON.stringify(exit)}`);
      for (const [i, a] of answers.entries()) assert.deepEqual(a, { status: 200, text: `{"n":${i}}` }, `request ${i}`);
      for (const a of late) {
        assert.equal(a.status, 503, a.text);
        assert.equal(JSON.parse(a.text).error.code, 'E_SHUTTING_DOWN');
      }
      // Each accepted job ran exactly once; no refused one reached the worker.
      const ran = w.events('job').map((j) => j.body as string);
      assert.equal(ran.length, 200);
      assert.equal(new Set(ran).size, 200);
      assert.ok(!ran.some((b) => b.startsWith('{"late"')));
    } finally {
      await agent.close();
    }
  });

  it('finishes in-flight jobs within the grace period before closing', async () => {
    const hub = await startHub({ 'shutdown-grace-ms': 3000 });
    await startWorker({ url: hub.url, services: [{ name: 'slowpoke', mode: 'sleep', sleepMs: 1000 }] });
    const answer = fetch(`${hub.url}/service/slowpoke`, { method: 'POST', body: '{"slow":1}' }).then(async (r) => [r.status, await r.text()]);
    await sleep(100);
    hub.kill('SIGTERM');
    // While the job runs the hub is draining: not ready, and new requests are refused.
    await waitUntil(async () => (await fetch(`${hub.url}/readyz`)).status === 503, 800, 'readyz 503');
    const refused = await post(`${hub.url}/service/slowpoke`, '{}');
    assert.equal(refused.status, 503);
    assert.equal(refused.json().error.code, 'E_SHUTTING_DOWN');
    // meshage's health check is a liveness check, like /healthz: up while the hub drains.
    const health = await fetch(`${hub.url}/api/health`);
    assert.deepEqual([health.status, await health.text()], [200, '{"status":"up"}']);
    // A broadcast too, to a stream with workers or without (which otherwise answers []).
    for (const path of ['/api/broadcast/slowpoke/k', '/api/broadcast/ghost/k']) {
      const b = await post(hub.url + path, '{}');
      assert.deepEqual([b.status, b.headers.get('x-error-code')], [503, 'E_SHUTTING_DOWN'], path);
    }
    assert.deepEqual(await answer, [200, '{"slow":1}']);
    assert.equal((await hub.exited).code, 0);
  });

  it('answers 503 E_SHUTTING_DOWN for jobs still open when the grace period ends', async () => {
    const hub = await startHub({ 'shutdown-grace-ms': 300 });
    await startWorker({ url: hub.url, services: [{ name: 'forever', mode: 'hang' }] });
    const answer = fetch(`${hub.url}/service/forever`, { method: 'POST', body: '{}' }).then(async (r) => [
      r.status,
      ((await r.json()) as { error: { code: string } }).error.code,
    ]);
    await sleep(100);
    hub.kill('SIGTERM');
    assert.deepEqual(await answer, [503, 'E_SHUTTING_DOWN']);
    assert.equal((await hub.exited).code, 0);
  });
});
