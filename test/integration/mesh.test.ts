/**
 * A mesh of hubs as separate processes on 127.0.0.1: keyed requests land on the same worker
 * whichever hub receives them, broadcasts reach every worker on every hub, and forwarded jobs
 * are cancelled, timed out and refused as a single hub would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CloseCode } from '../../client/protocol.js';
import { memberSeed, ownerOf, ringDigest } from '../../server/ring.js';
import { converged, MESH_FLAGS, startMesh } from '../helpers/mesh.js';
import { fixedPort, type HubProc, post, sleep, startHub, startHubOn, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const servedBy = (r: { headers: Headers }) => r.headers.get('x-served-by');

describe('a mesh of three hubs', { timeout: 120_000 }, () => {
  let hubs: HubProc[];
  before(async () => {
    hubs = await startMesh(['hub-a', 'hub-b', 'hub-c']);
    await startWorker({
      url: hubs[0]!.url,
      instanceId: 'worker-a',
      services: [
        { name: 'echo', weight: 1 },
        { name: 'slow', mode: 'hang', concurrency: 1 },
      ],
    });
    await startWorker({ url: hubs[1]!.url, instanceId: 'worker-b', services: [{ name: 'echo', weight: 1 }] });
    await startWorker({ url: hubs[2]!.url, instanceId: 'worker-c', services: [{ name: 'echo', weight: 2 }] });
    await converged(hubs, 'echo', 3);
    await converged(hubs, 'slow', 1);
  });
  after(stopAll);

  it('routes each of 300 keys to the same worker through every hub, the owner the PROTOCOL.md formula names', async () => {
    const members = await converged(hubs, 'echo', 3);
    const ring = members.map((m) => ({ ...m, seed: memberSeed(m.instanceId) }));
    const keys = Array.from({ length: 300 }, (_, i) => `key-${i * 7919}`);
    const counts = new Map<string, number>();
    for (let i = 0; i < keys.length; i += 25) {
      await Promise.all(
        keys.slice(i, i + 25).map(async (key) => {
          const answers = await Promise.all(hubs.map((h) => post(`${h.url}/api/echo/${encodeURIComponent(key)}`, `{"k":"${key}"}`)));
          for (const a of answers) assert.equal(a.status, 200, a.text);
          const served = answers.map(servedBy);
          assert.equal(new Set(served).size, 1, `key ${key} served by ${served.join(', ')}`);
          const owner = ownerOf(key, ring)!;
          assert.equal(served[0], `${owner.hubId}/${owner.instanceId}`, `key ${key}`);
          counts.set(owner.instanceId, (counts.get(owner.instanceId) ?? 0) + 1);
        }),
      );
    }
    // Weights 1 : 1 : 2 — worker-c owns about half the keys.
    const c = counts.get('worker-c') ?? 0;
    assert.ok(c > 110 && c < 190, `worker-c owns ${c} of 300 keys`);
  });

  it('gives every hub the same ring digest, the one PROTOCOL.md defines over the members', async () => {
    const members = await converged(hubs, 'echo', 3);
    const digests = await Promise.all(hubs.map(async (h) => (await stats(h)).services.find((s: { name: string }) => s.name === 'echo').ring.digest));
    assert.deepEqual(digests, Array(3).fill(ringDigest(members).toString(16).padStart(8, '0')));
  });

  it('broadcasts to every worker on every hub, in ring order, from any hub', async () => {
    for (const h of hubs) {
      const r = await post(`${h.url}/api/broadcast/echo/any`, '{"b":1}');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-broadcast-asked'), '3');
      assert.equal(r.headers.get('x-broadcast-failed'), '0');
      assert.deepEqual(r.json(), [{ b: 1 }, { b: 1 }, { b: 1 }]);
    }
  });

  it('cancels a forwarded job at the far worker when its caller aborts, and frees that worker', async () => {
    // `slow` hangs until cancelled and serves one job at a time, on hub-a only.
    const ac = new AbortController();
    const call = post(`${hubs[2]!.url}/api/slow/k1`, '{}', {}, ac.signal).catch((e: Error) => e.name);
    await waitUntil(async () => (await stats(hubs[0]!)).services.find((s: { name: string }) => s.name === 'slow')?.inflight === 1, 3000, 'the job at worker-a');
    ac.abort();
    assert.equal(await call, 'AbortError');
    await waitUntil(
      async () => (await stats(hubs[0]!)).services.find((s: { name: string }) => s.name === 'slow')?.inflight === 0,
      3000,
      'the far job cancelled',
    );
    // Credit is back: a job with a deadline runs and is cancelled by that deadline, answering 504.
    const timed = await post(`${hubs[1]!.url}/api/slow/k2`, '{}', { 'x-timeout-ms': '300' });
    assert.equal(timed.status, 504, timed.text);
    assert.equal(timed.json().error.code, 'E_DEADLINE');
    await waitUntil(
      async () => (await stats(hubs[0]!)).services.find((s: { name: string }) => s.name === 'slow')?.inflight === 0,
      3000,
      'the timed-out job cancelled',
    );
    const peers = (await stats(hubs[2]!)).mesh.peers;
    assert.ok(
      peers.every((p: { inflightOut: number; heldBytes: number }) => p.inflightOut === 0 && p.heldBytes === 0),
      JSON.stringify(peers),
    );
  });

  it('counts forwarded jobs per peer in /stats', async () => {
    const st = await stats(hubs[0]!);
    const out = st.mesh.peers.reduce((n: number, p: { forwardedOut: number }) => n + p.forwardedOut, 0);
    assert.ok(out > 100, `hub-a forwarded ${out}`);
    for (const p of st.mesh.peers) assert.equal(typeof p.rttMs === 'number' || p.rttMs === null, true);
  });
});

describe('unkeyed work across hubs', { timeout: 120_000 }, () => {
  after(stopAll);

  it('spills unkeyed work over to a peer with idle workers: 40 jobs of 200 ms over 1 + 4 workers in under 2.5 s', async () => {
    const [a, b] = await startMesh(['spill-a', 'spill-b']);
    await startWorker({ url: a!.url, instanceId: 'spill-a1', services: [{ name: 'spill', mode: 'sleep', sleepMs: 200, concurrency: 1 }] });
    for (let i = 0; i < 4; i++)
      await startWorker({ url: b!.url, instanceId: `spill-b${i}`, services: [{ name: 'spill', mode: 'sleep', sleepMs: 200, concurrency: 1 }] });
    await waitUntil(
      async () => {
        const st = await stats(a!);
        return st.mesh.peers[0]?.granted?.spill === 4;
      },
      3000,
      'hub-b to grant its 4 workers',
    );
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`${a!.url}/service/spill`, `{"i":${i}}`)));
    const took = Date.now() - started;
    for (const [i, r] of answers.entries()) assert.equal(r.text, `{"i":${i}}`);
    const byB = answers.filter((r) => r.headers.get('x-served-by')?.startsWith('spill-b/')).length;
    assert.ok(took < 2500, `40 jobs took ${took} ms`);
    assert.ok(byB >= 24, `only ${byB} of 40 served by hub-b's four workers`);
  });

  it("shares a peer's workers fairly between that peer's callers and its own", async () => {
    const [a, b] = await startMesh(['fair-a', 'fair-b']);
    for (let i = 0; i < 2; i++)
      await startWorker({ url: b!.url, instanceId: `fair-b${i}`, services: [{ name: 'fair', mode: 'sleep', sleepMs: 20, concurrency: 2 }] });
    await waitUntil(async () => (await stats(a!)).mesh.peers[0]?.granted?.fair === 4, 3000, 'the grant');
    const done = { a: 0, b: 0 };
    const until = Date.now() + 2500;
    const loop = async (hub: 'a' | 'b') => {
      const url = `${(hub === 'a' ? a : b)!.url}/service/fair`;
      while (Date.now() < until) {
        const r = await post(url, '{}');
        assert.equal(r.status, 200, r.text);
        done[hub]++;
      }
    };
    await Promise.all([...Array.from({ length: 8 }, () => loop('a')), ...Array.from({ length: 8 }, () => loop('b'))]);
    const ratio = done.a / done.b;
    assert.ok(ratio > 0.75 && ratio < 1.25, `hub-a completed ${done.a}, hub-b ${done.b}`);
  });

  it('queues or refuses unkeyed work by the workers of the whole mesh: 503 only when no hub has any', async () => {
    const [a, b] = await startMesh(['none-a', 'none-b']);
    const w = await startWorker({ url: b!.url, instanceId: 'only-on-b', services: [{ name: 'elsewhere' }] });
    await waitUntil(async () => (await stats(a!)).mesh.peers[0]?.granted?.elsewhere === 16, 3000, 'the grant');
    const ok = await post(`${a!.url}/service/elsewhere`, '{"x":1}');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-served-by'), 'none-b/only-on-b');
    const never = await post(`${a!.url}/service/nowhere`, '{}');
    assert.equal(never.status, 503);
    assert.equal(never.json().error.code, 'E_NO_WORKERS');
    w.kill('SIGKILL');
    await waitUntil(async () => (await stats(a!)).mesh.peers[0]?.granted?.elsewhere === undefined, 5000, 'the grant withdrawn');
  });
});

describe('legacy long-poll workers in a mesh', { timeout: 60_000 }, () => {
  after(stopAll);

  it('passes a reply posted to another hub on to the hub that leased the job', async () => {
    const [a, b] = await startMesh(['lp-a', 'lp-b']);
    const poll = fetch(`${a!.url}/service/legacy/jobs?wait=3`);
    await waitUntil(async () => (await stats(a!)).longPoll.waiting === 1, 3000, 'the poll to wait');
    const call = post(`${a!.url}/service/legacy`, '{"n":1}', { 'x-timeout-ms': '5000' });
    const polled = await poll;
    assert.equal(polled.status, 200);
    const env = (await polled.json()) as { id: string; originalRequest: unknown };
    assert.match(env.id, /^[A-Za-z0-9_-]{21}\.lp-a$/);
    // A load balancer sends the reply to the other hub.
    const r = await fetch(`${b!.url}/jobs/${env.id}`, { method: 'POST', body: '{"done":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    const answer = await call;
    assert.equal(answer.text, '{"done":1}');
    assert.equal(answer.headers.get('x-served-by'), 'lp-a/longpoll');
    // Answered already: the second reply, wherever it goes, is refused.
    const again = await fetch(`${b!.url}/jobs/${env.id}`, { method: 'POST', body: '{}' });
    assert.equal(again.status, 404);
    // An id naming a hub that is not linked.
    const stray = await fetch(`${b!.url}/jobs/${env.id.slice(0, 21)}.no-such-hub`, { method: 'POST', body: '{}' });
    assert.equal(stray.status, 404);
    assert.match(((await stray.json()) as { error: { message: string } }).error.message, /no-such-hub/);
  });
});

describe('peer failures', { timeout: 120_000 }, () => {
  after(stopAll);

  it('is ready once its seeds have synced, or the sync timeout passed, and not while draining', async () => {
    const ready = async (h: HubProc) => (await fetch(`${h.url}/readyz`)).status;
    const seedPort = fixedPort();
    // Its seed is not up: not ready until the sync timeout passes, then ready (serving alone).
    const b = await startHub({ ...MESH_FLAGS, 'hub-id': 'ready-b', peers: `127.0.0.1:${seedPort}`, 'peer-sync-timeout-ms': 1500 });
    const startedAt = Date.now();
    assert.equal(await ready(b), 503);
    await waitUntil(async () => (await ready(b)) === 200, 5000, 'ready after the sync timeout');
    assert.ok(Date.now() - startedAt >= 1000, 'not before the sync timeout');
    // A hub whose seed is up is ready once it has that seed's membership.
    const a = await startHubOn(seedPort, { ...MESH_FLAGS, 'hub-id': 'ready-a' });
    const c = await startHub({ ...MESH_FLAGS, 'hub-id': 'ready-c', peers: `127.0.0.1:${seedPort}`, 'peer-sync-timeout-ms': 30_000 });
    await waitUntil(async () => (await ready(c)) === 200, 5000, 'ready after the seed synced');
    assert.ok((await stats(c)).mesh.peers.some((p: { hubId: string; synced: boolean }) => p.hubId === 'ready-a' && p.synced));
    // Draining: not ready, while it still answers.
    await startWorker({ url: c.url, services: [{ name: 'slowish', mode: 'sleep', sleepMs: 1500 }] });
    const slow = post(`${c.url}/service/slowish`, '{}');
    await sleep(100);
    c.kill('SIGTERM');
    await waitUntil(async () => (await ready(c).catch(() => 0)) === 503, 3000, 'not ready while draining');
    assert.equal((await slow).status, 200);
    assert.equal(await ready(a), 200);
  });

  it('survives kill -9 of a hub under keyed load: one outcome per request, and the keys of its worker move to live workers', async () => {
    const hubs = await startMesh(['fail-a', 'fail-b', 'fail-c']);
    // Each worker knows two hubs: its own first, then the next one.
    for (const [i, h] of hubs.entries()) {
      await startWorker({
        url: `${h.url},${hubs[(i + 1) % 3]!.url}`,
        instanceId: `fw-${i}`,
        services: [{ name: 'kv', mode: 'sleep', sleepMs: 20, concurrency: 32 }],
      });
    }
    await converged(hubs, 'kv', 3);
    const live = [hubs[0]!, hubs[2]!];
    const outcomes: { status: number; hub: number; served: string | null }[] = [];
    let stop = false;
    let n = 0;
    const callers = Array.from({ length: 16 }, async (_, c) => {
      while (!stop) {
        const h = c % 2;
        const key = `k${n++ % 200}`;
        try {
          const r = await post(`${live[h]!.url}/api/kv/${key}`, `{"n":${n}}`, { 'x-timeout-ms': '3000' });
          outcomes.push({ status: r.status, hub: h, served: servedBy(r) });
        } catch {
          outcomes.push({ status: -1, hub: h, served: null });
        }
      }
    });
    await sleep(400);
    hubs[1]!.kill('SIGKILL');
    const killedAt = Date.now();
    // The dead hub's worker reconnects to the next hub of its list with its instanceId: it is
    // back in every ring (its keys come back to it) within the peer timeout and a reconnect.
    await waitUntil(async () => (await stats(hubs[2]!)).workers.some((w: { instanceId: string }) => w.instanceId === 'fw-1'), 5000, 'fw-1 on fail-c');
    const members = await converged(live, 'kv', 3);
    const movedAfter = Date.now() - killedAt;
    assert.deepEqual(
      members.map((m) => `${m.hubId}/${m.instanceId}`),
      ['fail-a/fw-0', 'fail-c/fw-1', 'fail-c/fw-2'],
    );
    await sleep(400);
    stop = true;
    await Promise.all(callers);
    assert.ok(movedAfter < 3000, `ring converged ${movedAfter} ms after the kill`);
    assert.ok(
      outcomes.slice(-100).some((o) => o.served === 'fail-c/fw-1'),
      'fw-1 serves its keys again, from fail-c',
    );
    // Requests entering live hubs whose worker lives succeed; a job forwarded to the dead hub
    // is routed again (attempt 2) to the key's new owner, so none fails.
    const failed = outcomes.filter((o) => o.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} failed`);
    // A busy machine runs fewer: what counts is that load ran before, during and after the kill.
    assert.ok(outcomes.length > 60, `${outcomes.length} requests`);
    const late = outcomes.slice(-50);
    assert.ok(
      late.every((o) => !o.served?.startsWith('fail-b/')),
      'nothing served by the dead hub after it left',
    );
  });

  it('leaves the mesh on SIGTERM as a lame duck: no request fails, no key changes its worker, exit 0', async () => {
    // A lame duck lasts at most the peer timeout: room for a loaded machine to move the worker.
    const hubs = await startMesh(['leave-a', 'leave-b', 'leave-c'], { 'shutdown-grace-ms': 4000, 'peer-timeout-ms': 2000 });
    const workers = [];
    for (const [i, h] of hubs.entries()) {
      workers[i] = await startWorker({
        url: `${h.url},${hubs[(i + 1) % 3]!.url}`,
        instanceId: `lw-${i}`,
        services: [{ name: 'lv', mode: 'sleep', sleepMs: 30, concurrency: 16 }],
      });
    }
    await converged(hubs, 'lv', 3);
    const live = [hubs[0]!, hubs[2]!];
    const statuses: number[] = [];
    /** Every worker instance that served each key. */
    const servedKey = new Map<string, Set<string>>();
    let stop = false;
    let n = 0;
    const callers = Array.from({ length: 8 }, async (_, c) => {
      while (!stop) {
        const key = `k${n++ % 100}`;
        const r = await post(`${live[c % 2]!.url}/api/lv/${key}`, '{}', { 'x-timeout-ms': '4000' });
        statuses.push(r.status);
        const instance = servedBy(r)?.split('/')[1];
        if (instance) servedKey.set(key, (servedKey.get(key) ?? new Set()).add(instance));
      }
    });
    await sleep(300);
    hubs[1]!.kill('SIGTERM');
    assert.equal((await hubs[1]!.exited).code, 0);
    // Its worker moved to the next hub of its list at once, before its old hub withdrew it.
    const withdrawn = hubs[1]!.lines.find((l) => typeof l === 'object' && (l as { msg?: string }).msg === 'members withdrawn from the mesh') as
      | { members: number; moved: number }
      | undefined;
    // On failure, the leaving hub's account of its leave says why.
    const leaveLog = () => JSON.stringify(hubs[1]!.lines.filter((l) => /leav|withdraw|peer|drain/i.test(String((l as { msg?: string }).msg))));
    assert.deepEqual([withdrawn?.members, withdrawn?.moved], [1, 1], `the leaving hub withdrew its member after it moved: ${leaveLog()}`);
    const ring = await converged(live, 'lv', 3);
    assert.ok(
      ring.some((m) => m.instanceId === 'lw-1' && m.hubId === 'leave-c'),
      JSON.stringify(ring),
    );
    await sleep(300);
    stop = true;
    await Promise.all(callers);
    const failed = statuses.filter((s) => s !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${statuses.length} failed: ${leaveLog()}`);
    const moved = [...servedKey].filter(([, instances]) => instances.size > 1).map(([k, i]) => `${k}: ${[...i].join(', ')}`);
    assert.deepEqual(moved, [], `keys served by more than one worker instance during the leave: ${leaveLog()}`);
    assert.equal(servedKey.size, 100);
    // While it had two sessions, the moving worker never ran more jobs than its concurrency.
    const peak = Math.max(...workers[1]!.events('done').map((e) => e.maxRunning as number));
    assert.ok(peak <= 16, `ran ${peak} at once`);
    assert.equal(workers[1]!.events('protocolError').length, 0);
  });

  it('answers 503 E_OVERLOADED for new forwards once a peer holds all the forwarded bytes it may', async () => {
    const hubs = await startMesh(['cap-a', 'cap-b'], { 'max-forward-bytes-per-peer': 2000 });
    await startWorker({ url: hubs[1]!.url, instanceId: 'cap-w', services: [{ name: 'held', mode: 'hang', concurrency: 8 }] });
    await converged(hubs, 'held', 1);
    const body = JSON.stringify({ pad: 'x'.repeat(1000) });
    // Two bodies of ~1 KB held for the two jobs running at hub-b reach the cap: a third is refused.
    const running = [
      post(`${hubs[0]!.url}/api/held/k1`, body, { 'x-timeout-ms': '1500' }),
      post(`${hubs[0]!.url}/api/held/k2`, body, { 'x-timeout-ms': '1500' }),
    ];
    await waitUntil(async () => (await stats(hubs[0]!)).mesh.peers[0]?.heldBytes > 2000, 3000, 'two forwards held');
    await post(`${hubs[0]!.url}/api/held/k3`, body, { 'x-timeout-ms': '1500' }).then((r) => {
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json().error.code, 'E_OVERLOADED');
    });
    for (const r of await Promise.all(running)) assert.equal(r.status, 504);
    // Settled: nothing is held any more, and forwards go through again.
    await waitUntil(async () => (await stats(hubs[0]!)).mesh.peers[0]?.heldBytes === 0, 3000, 'bytes released');
  });

  it('refuses a second live hub with the same hub id, with a log line that says so', async () => {
    const [a] = await startMesh(['twin-a']);
    const b1 = await startHub({ ...MESH_FLAGS, 'hub-id': 'twin-b', peers: `127.0.0.1:${a!.port}` });
    await waitUntil(
      async () => (await stats(a!)).mesh.peers.some((p: { hubId: string; state: string }) => p.hubId === 'twin-b' && p.state === 'open'),
      5000,
      'twin-b linked',
    );
    const first = (await stats(a!)).mesh.peers.find((p: { hubId: string }) => p.hubId === 'twin-b').advertise;
    await startHub({ ...MESH_FLAGS, 'hub-id': 'twin-b', peers: `127.0.0.1:${a!.port}` });
    await a!.waitFor((l) => /two live hubs use one hub id/.test(String(l.msg)), 5000, 'the refusal log line');
    const open = (await stats(a!)).mesh.peers.filter((p: { state: string }) => p.state === 'open');
    assert.deepEqual(
      open.map((p: { hubId: string; advertise: string }) => [p.hubId, p.advertise]),
      [['twin-b', first]],
      'the first twin keeps its link',
    );
    assert.ok(b1);
  });

  it('takes a hub restarted under its id (on a new port) back in place of the dead one', async () => {
    const [a, b] = await startMesh(['again-a', 'again-b']);
    await startWorker({ url: b!.url, instanceId: 'again-w', services: [{ name: 'again' }] });
    await converged([a!, b!], 'again', 1);
    b!.kill('SIGKILL');
    // At once, before hub-a's peer timeout: the new boot of again-b replaces the old link.
    const b2 = await startHub({ ...MESH_FLAGS, 'hub-id': 'again-b', peers: `127.0.0.1:${a!.port}` });
    await startWorker({ url: b2.url, instanceId: 'again-w', services: [{ name: 'again' }] });
    const ring = await converged([a!, b2], 'again', 1);
    assert.deepEqual(ring, [{ instanceId: 'again-w', hubId: 'again-b', weight: 1 }]);
    const peers = (await stats(a!)).mesh.peers.filter((p: { state: string }) => p.state === 'open');
    assert.deepEqual(
      peers.map((p: { hubId: string }) => p.hubId),
      ['again-b'],
    );
    const r = await post(`${a!.url}/api/again/k`, '{}');
    assert.equal(r.headers.get('x-served-by'), 'again-b/again-w');
  });

  it('detects a partition within the peer timeout, serves each side alone, and heals with equal digests', async () => {
    // hub-b reaches hub-a only through a proxy the test can silence (hub-a never dials hub-b).
    const a = await startHub({ ...MESH_FLAGS, 'hub-id': 'part-a' });
    const proxyA = await TcpProxy.start(a.port);
    const b = await startHub({ ...MESH_FLAGS, 'hub-id': 'part-b', peers: proxyA.address });
    const proxies = [proxyA];
    after(() => {
      for (const p of proxies) p.close();
    });
    await startWorker({ url: a.url, instanceId: 'part-wa', services: [{ name: 'split' }] });
    await startWorker({ url: b.url, instanceId: 'part-wb', services: [{ name: 'split' }] });
    const before = await converged([a, b], 'split', 2);
    assert.equal(before.length, 2);
    proxyA.partition();
    const cutAt = Date.now();
    // Each side notices the silence and serves with its own worker alone.
    await converged([a], 'split', 1);
    await converged([b], 'split', 1);
    const noticed = Date.now() - cutAt;
    assert.ok(noticed < 600 * 2 + 500, `partition noticed after ${noticed} ms (peer timeout 600 ms)`);
    for (const [h, w] of [
      [a, 'part-a/part-wa'],
      [b, 'part-b/part-wb'],
    ] as const) {
      const r = await post(`${h.url}/api/split/any-key`, '{}');
      assert.equal(r.headers.get('x-served-by'), w);
    }
    proxyA.heal();
    const after2 = await converged([a, b], 'split', 2);
    assert.deepEqual(after2, before);
  });

  it('closes the older session of a worker instance that opened a new one on another hub, and every ring follows it', async () => {
    const hubs = await startMesh(['claim-a', 'claim-b']);
    const old = await RawSocket.worker(hubs[0]!.url, 'mover', { moving: 4 });
    await converged(hubs, 'moving', 1);
    assert.equal((await converged(hubs, 'moving', 1))[0]!.hubId, 'claim-a');
    // The worker moved (its old socket is not closed yet): the new session claims the instance.
    await startWorker({ url: hubs[1]!.url, instanceId: 'mover', services: [{ name: 'moving' }] });
    assert.equal(await old.closed, CloseCode.Replaced);
    await waitUntil(async () => (await converged(hubs, 'moving', 1))[0]!.hubId === 'claim-b', 5000, 'the ring to follow the move');
    const r = await post(`${hubs[0]!.url}/api/moving/k`, '{}');
    assert.equal(r.headers.get('x-served-by'), 'claim-b/mover');
  });

  it('refuses a peer without the cluster secret or with another one, and links peers that share one of a rotation list', async () => {
    const a = await startHub({ ...MESH_FLAGS, 'hub-id': 'sec-a', 'cluster-secret': 'new-secret,old-secret' });
    const wrong = await startHub({ ...MESH_FLAGS, 'hub-id': 'sec-wrong', 'cluster-secret': 'guess', peers: `127.0.0.1:${a.port}` });
    const none = await startHub({ ...MESH_FLAGS, 'hub-id': 'sec-none', peers: `127.0.0.1:${a.port}` });
    const old = await startHub({ ...MESH_FLAGS, 'hub-id': 'sec-old', 'cluster-secret': 'old-secret', peers: `127.0.0.1:${a.port}` });
    await waitUntil(
      async () => (await stats(a)).mesh.peers.some((p: { hubId: string; state: string }) => p.hubId === 'sec-old' && p.state === 'open'),
      5000,
      'sec-old linked',
    );
    await sleep(500);
    const peers = (await stats(a)).mesh.peers.filter((p: { state: string }) => p.state === 'open').map((p: { hubId: string }) => p.hubId);
    assert.deepEqual(peers, ['sec-old']);
    assert.ok(a.lines.some((l) => typeof l === 'object' && /sec-wrong.*did not prove the cluster secret/.test(String((l as { msg?: string }).msg))));
    assert.ok(a.lines.some((l) => typeof l === 'object' && /sec-none.*did not prove the cluster secret/.test(String((l as { msg?: string }).msg))));
    assert.ok(
      none.lines.some((l) => typeof l === 'object' && /no cluster secret/.test(String((l as { msg?: string }).msg))),
      'a hub with peers and no secret warns',
    );
    for (const h of [wrong, none]) assert.equal((await stats(h)).mesh.peers.filter((p: { state: string }) => p.state === 'open').length, 0);
    assert.ok(old);
  });
});
