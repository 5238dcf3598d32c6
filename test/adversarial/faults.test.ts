/**
 * Faults: a worker killed with SIGKILL or frozen with SIGSTOP while it holds jobs, a hub of a
 * mesh killed with SIGKILL while it runs forwarded jobs, a worker whose connection ends in the
 * middle of a WebSocket frame. Every request gets exactly one outcome (redelivered and answered,
 * or the documented error), and the hubs left keep serving with their counters at baseline.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, afterEach, describe, it } from 'node:test';
import { encodeFrame, type JobFrame, Op } from '../../client/protocol.js';
import { converged, startMesh } from '../helpers/mesh.js';
import { post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { atBaseline } from '../helpers/raw-http.js';
import { RawSocket } from '../helpers/raw-socket.js';

/** Fires `n` requests at once and waits for every outcome; each promise settles once, by construction of fetch. */
async function burst(url: string, n: number, timeoutMs: number): Promise<{ status: number; text: string; code: string | null; attempt?: number }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const r = await post(url, JSON.stringify({ i }), { 'x-timeout-ms': String(timeoutMs) });
      return { status: r.status, text: r.text, code: r.headers.get('x-error-code') };
    }),
  );
}

/** Writes the first bytes of a masked binary WebSocket frame that announces `announced` payload bytes. */
function halfFrame(payload: Buffer, announced: number): Buffer {
  const head = Buffer.from([0x82, 0x80 | 126, announced >> 8, announced & 0xff, 1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ [1, 2, 3, 4][i % 4]!));
  return Buffer.concat([head, masked]);
}

describe('faults: each request gets exactly one outcome', { timeout: 120_000 }, () => {
  after(stopAll);
  afterEach(async () => {
    await stopAll();
  });

  it('answers every request once when a worker holding jobs is killed with SIGKILL', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000, 'ping-interval-ms': 200, 'pong-timeout-ms': 1000 });
    const doomed = await startWorker({ url: hub.url, instanceId: 'f-doomed', services: [{ name: 'f-slow', mode: 'sleep', sleepMs: 600, concurrency: 10 }] });
    const heir = await startWorker({ url: hub.url, instanceId: 'f-heir', services: [{ name: 'f-slow', mode: 'sleep', sleepMs: 50, concurrency: 10 }] });
    const answers = burst(`${hub.url}/service/f-slow`, 30, 5000);
    await waitUntil(() => doomed.events('job').length > 0, 3000, 'the doomed worker to hold jobs');
    doomed.kill('SIGKILL');
    const rs = await answers;
    assert.equal(rs.length, 30);
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.text, JSON.stringify({ i }));
    });
    assert.ok(
      heir.events('job').some((j) => j.attempt === 2),
      'the doomed worker’s jobs ran again',
    );
    const st = await atBaseline(hub);
    assert.equal(st.jobs.replied, 30, 'one reply per request, none twice');
    assert.equal(st.jobs.accepted, 30);
  });

  it('redelivers the jobs of a worker frozen with SIGSTOP once the pong timeout passes, and drops its replies when it thaws', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000, 'ping-interval-ms': 100, 'pong-timeout-ms': 500 });
    const frozen = await startWorker({ url: hub.url, instanceId: 'f-frozen', services: [{ name: 'f-freeze', mode: 'sleep', sleepMs: 300, concurrency: 8 }] });
    const heir = await startWorker({ url: hub.url, instanceId: 'f-thawed-heir', services: [{ name: 'f-freeze', mode: 'sleep', sleepMs: 20, concurrency: 8 }] });
    const answers = burst(`${hub.url}/service/f-freeze`, 16, 5000);
    await waitUntil(() => frozen.events('job').length > 0, 3000, 'the worker to hold jobs');
    frozen.kill('SIGSTOP');
    const t0 = Date.now();
    const rs = await answers;
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.text, JSON.stringify({ i }));
    });
    assert.ok(Date.now() - t0 < 3000, `answered ${Date.now() - t0} ms after the freeze`);
    assert.ok(heir.events('job').some((j) => j.attempt === 2));
    // Thawed, it finishes its old handlers on a session the hub closed, and reconnects.
    frozen.kill('SIGCONT');
    await waitUntil(() => frozen.events('welcome').length === 2, 5000, 'the thawed worker to reconnect');
    const st = await atBaseline(hub);
    assert.equal(st.jobs.replied, 16, 'no request answered twice');
    const r = await post(`${hub.url}/service/f-freeze`, '{"after":1}');
    assert.equal(r.status, 200);
  });

  it('answers every request that entered a hub once when the peer hub that ran them is killed with SIGKILL', async () => {
    const [a, b] = await startMesh(['f-a', 'f-b'], { 'default-timeout-ms': 4000, 'max-attempts': 3 });
    // The worker is on b, and moves to a (its next URL) when b dies: its keys follow it.
    const w = await startWorker({
      url: `${b!.url},${a!.url}`,
      instanceId: 'f-mesh-w',
      services: [{ name: 'f-keyed', mode: 'sleep', sleepMs: 400, concurrency: 20 }],
    });
    await converged([a!, b!], 'f-keyed', 1);
    const answers = Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const r = await post(`${a!.url}/api/f-keyed/key-${i}`, JSON.stringify({ i }), { 'x-timeout-ms': '4000' });
        return { status: r.status, text: r.text, code: r.headers.get('x-error-code'), servedBy: r.headers.get('x-served-by') };
      }),
    );
    await waitUntil(() => w.events('job').length >= 5, 3000, 'jobs forwarded to b and running');
    b!.kill('SIGKILL');
    const rs = await answers;
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.text, JSON.stringify({ i }));
      assert.equal(r.servedBy, 'f-a/f-mesh-w', 'answered by the worker, moved to a');
    });
    const st = await atBaseline(a!);
    assert.equal(st.jobs.replied, 20, 'no request answered twice');
    assert.equal((await post(`${a!.url}/api/f-keyed/after`, '{}')).status, 200);
  });

  it('redelivers the job of a worker whose connection ends in the middle of a frame', async () => {
    const hub = await startHub({ 'default-timeout-ms': 4000, 'ping-interval-ms': 200, 'pong-timeout-ms': 1000 });
    const heir = await startWorker({ url: hub.url, instanceId: 'f-midframe-heir', services: [{ name: 'f-mid' }] });
    for (const how of ['reset', 'end'] as const) {
      const s = await RawSocket.worker(hub.url, `f-midframe-${how}`, { 'f-mid': 1 });
      // The raw worker takes the job when the heir is busy or by chance; ask until it holds one.
      const answers: ReturnType<typeof post>[] = [];
      let job: JobFrame | null = null;
      for (let i = 0; i < 20 && !job; i++) {
        answers.push(post(`${hub.url}/service/f-mid`, JSON.stringify({ how, i })));
        job = (await s.next((f) => f[0] === Op.Job, 200).catch(() => null)) as JobFrame | null;
      }
      assert.ok(job, 'the raw worker got a job');
      const reply = Buffer.from(encodeFrame([Op.Reply, job[1], 200, null, null, Buffer.from('{"never":"whole"}')]));
      const socket = (s.ws as unknown as { _socket: Socket })._socket;
      socket.write(halfFrame(reply.subarray(0, 8), reply.length));
      if (how === 'reset') socket.resetAndDestroy();
      else socket.end();
      const rs = await Promise.all(answers);
      for (const r of rs) {
        assert.equal(r.status, 200);
        assert.doesNotMatch(r.text, /never/);
      }
      assert.ok(
        heir.events('job').some((j) => j.attempt === 2),
        `${how}: the half-answered job ran again`,
      );
      await waitUntil(async () => !(await stats(hub)).workers.some((x: { instanceId: string }) => x.instanceId === `f-midframe-${how}`), 3000, 'session gone');
    }
    const st = await atBaseline(hub);
    assert.equal(st.jobs.unknownReplies, 0, 'no half frame read as a reply');
    assert.equal((await post(`${hub.url}/service/f-mid`, '{"after":1}')).status, 200);
  });
});
