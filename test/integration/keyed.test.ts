import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type HubProc, post, type ServiceSpec, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

const IDS = ['stick-a', 'stick-b', 'stick-c'];
// Plain echo (not the meshage facade) so the fixture prints a job event, with its key, per request.
const ECHO: ServiceSpec[] = [{ name: 'echo', mode: 'echo', concurrency: 8 }];
/** Fixed keys, so how evenly the ring spreads them is the same on every run. */
const SPREAD_KEYS = Array.from({ length: 100 }, (_, i) => `user-${i * 7919}`);

/**
 * The spread keys and 100 random ones, some with characters that need percent-encoding, one
 * multi-byte. All distinct: a key asked twice would count twice at its owner.
 */
function keySet(): string[] {
  const keys = new Set([...SPREAD_KEYS, 'user/42 with spaces', 'ключ-🔑', '%25-literal?&=#']);
  while (keys.size < 200) keys.add(randomBytes(1 + (randomBytes(1)[0]! % 24)).toString('base64url'));
  return [...keys];
}

describe('keyed stickiness and broadcast', { timeout: 90_000 }, () => {
  let hub: HubProc;
  const keys = keySet();
  let owners = new Map<string, string>();
  const procs = new Map<string, Awaited<ReturnType<typeof startWorker>>>();
  before(async () => {
    hub = await startHub({ 'default-timeout-ms': 5000, 'ping-interval-ms': 100, 'pong-timeout-ms': 300 });
  });
  after(stopAll);

  /** Asks for every key (16 at a time) and returns key → serving instanceId. */
  async function ownersOf(list: string[]): Promise<Map<string, string>> {
    const m = new Map<string, string>();
    for (let i = 0; i < list.length; i += 16) {
      await Promise.all(
        list.slice(i, i + 16).map(async (k) => {
          const r = await post(`${hub.url}/api/echo/${encodeURIComponent(k)}`, '{"q":1}');
          assert.equal(r.status, 200, `key ${k}`);
          assert.equal(r.text, '{"q":1}');
          m.set(k, (r.headers.get('x-served-by') ?? '').split('/')[1]!);
        }),
      );
    }
    return m;
  }

  async function workersOf(name: string): Promise<number | undefined> {
    return (await stats(hub)).services.find((s: { name: string }) => s.name === name)?.workers;
  }

  it('sends each of 200 keys to the same instance on every request, and spreads them over all', { timeout: 20_000 }, async () => {
    for (const instanceId of IDS) procs.set(instanceId, await startWorker({ url: hub.url, instanceId, services: ECHO }));
    owners = await ownersOf(keys);
    for (const id of owners.values()) assert.ok(IDS.includes(id), `served by ${id}`);
    for (const id of IDS) {
      const owned = SPREAD_KEYS.filter((k) => owners.get(k) === id).length;
      assert.ok(owned >= 15, `${id} owns ${owned} of 100 keys`);
    }
    for (let round = 0; round < 3; round++) assert.deepEqual(await ownersOf(keys), owners, `round ${round}`);
  });

  it('keeps a key at its owner while the owner is busy, rather than spilling to a free worker', { timeout: 20_000 }, async () => {
    await Promise.all(
      ['busy-a', 'busy-b'].map((instanceId) =>
        startWorker({ url: hub.url, instanceId, services: [{ name: 'busy', mode: 'sleep', sleepMs: 100, concurrency: 1 }] }),
      ),
    );
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => post(`${hub.url}/api/busy/the-one-key`, `{"i":${i}}`)));
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(6).fill(200),
    );
    assert.equal(new Set(answers.map((a) => a.headers.get('x-served-by'))).size, 1, 'one key, one instance');
  });

  it('hands jobs waiting for a busy owner to the next owner when the owner dies', { timeout: 20_000 }, async () => {
    const slow = await startWorker({ url: hub.url, instanceId: 'owner-slow', services: [{ name: 'handoff', mode: 'sleep', sleepMs: 20_000, concurrency: 1 }] });
    const next = await startWorker({ url: hub.url, instanceId: 'owner-next', services: [{ name: 'handoff', concurrency: 4 }] });
    // A key the slow worker owns: the first request for it runs there.
    let key = '';
    for (let i = 0; !key; i++) {
      const r = post(`${hub.url}/api/handoff/probe-${i}`, '{}');
      const who = await Promise.race([
        r.then(() => 'next'),
        slow
          .waitFor((l) => l.event === 'job' && l.key === `probe-${i}`, 1000)
          .then(
            () => 'slow',
            () => 'next',
          ),
      ]);
      if (who === 'slow') key = `probe-${i}`;
      assert.ok(i < 50, 'no key owned by the slow worker among 50');
    }
    const waiting = Array.from({ length: 3 }, (_, i) => post(`${hub.url}/api/handoff/${key}`, `{"w":${i}}`));
    await waitUntil(
      async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'handoff')?.queued === 3,
      2000,
      'three waiting for their owner',
    );
    assert.ok(!next.events('job').some((j) => j.key === key), 'a waiting job spilled to a worker that does not own its key');
    slow.kill('SIGKILL');
    const results = await Promise.all(waiting);
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.text, `{"w":${i}}`);
      assert.match(r.headers.get('x-served-by') ?? '', /\/owner-next$/);
    });
    const moved = next.events('job').filter((j) => j.key === key);
    assert.equal(moved.filter((j) => j.attempt === 2).length, 1, 'the running job was redelivered');
    assert.equal(moved.filter((j) => j.attempt === 1).length, 3, 'the waiting jobs were delivered for the first time');
  });

  it('moves only the keys of a killed worker, and gives them back when it returns with the same instanceId', { timeout: 30_000 }, async () => {
    const victim = IDS[1]!;
    const victimKeys = [...owners].filter(([, o]) => o === victim).map(([k]) => k);
    assert.ok(victimKeys.length > 0, 'the victim owns keys');
    procs.get(victim)!.kill('SIGKILL');
    await procs.get(victim)!.exited;
    await waitUntil(async () => (await workersOf('echo')) === 2, 3000, 'victim gone');
    const during = await ownersOf(keys);
    for (const [k, o] of owners) {
      if (o === victim) assert.notEqual(during.get(k), victim, `key ${k} still at the dead worker`);
      else assert.equal(during.get(k), o, `key ${k} of a live worker moved`);
    }
    procs.set(victim, await startWorker({ url: hub.url, instanceId: victim, services: ECHO }));
    await waitUntil(async () => (await workersOf('echo')) === 3, 3000, 'victim back');
    assert.deepEqual(await ownersOf(keys), owners, 'every key back at its first owner');
    const back = procs.get(victim)!.events('job');
    assert.equal(back.length, victimKeys.length);
    assert.deepEqual(new Set(back.map((j) => j.key)), new Set(victimKeys));
  });

  it('broadcasts to all three workers and returns three replies with x-broadcast-asked: 3', { timeout: 10_000 }, async () => {
    const r = await post(`${hub.url}/api/broadcast/echo/${encodeURIComponent('any key')}`, '{"hello":"world"}');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-broadcast-asked'), '3');
    assert.equal(r.headers.get('x-broadcast-failed'), '0');
    assert.equal(r.headers.get('x-broadcast-timed-out'), '0');
    const replies = r.json() as unknown[];
    assert.equal(replies.length, 3);
    assert.deepEqual(replies, [{ hello: 'world' }, { hello: 'world' }, { hello: 'world' }]);
    // Each instance got exactly one part.
    for (const id of IDS) {
      const parts = procs
        .get(id)!
        .events('job')
        .filter((j) => j.key === 'any key');
      assert.equal(parts.length, 1, `${id} got ${parts.length} parts`);
    }
  });

  it('reports a broadcast part that timed out without holding up the others', { timeout: 10_000 }, async () => {
    await startWorker({ url: hub.url, instanceId: 'mixed-fast', services: [{ name: 'mixed' }] });
    await startWorker({ url: hub.url, instanceId: 'mixed-stuck', services: [{ name: 'mixed', mode: 'hang' }] });
    const r = await post(`${hub.url}/api/broadcast/mixed/k`, '{"m":1}', { 'x-timeout-ms': '300' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-broadcast-asked'), '2');
    assert.equal(r.headers.get('x-broadcast-failed'), '0');
    assert.equal(r.headers.get('x-broadcast-timed-out'), '1');
    const replies = r.json() as Record<string, unknown>[];
    assert.equal(replies.length, 2);
    assert.ok(replies.some((x) => x.m === 1));
    assert.ok(replies.some((x) => (x.error as { code?: string } | undefined)?.code === 'E_DEADLINE'));
  });
});

describe('the ring of a stream in /stats', { timeout: 30_000 }, () => {
  after(stopAll);

  it('lists the key owners in ring order with the PROTOCOL.md digest; long-pollers add capacity but are not members', async () => {
    const hub = await startHub({ 'default-timeout-ms': 5000 });
    await startWorker({ url: hub.url, instanceId: 'worker-c', services: [{ name: 'ringed', weight: 2 }] });
    await startWorker({ url: hub.url, instanceId: 'worker-a', services: [{ name: 'ringed', weight: 1 }] });
    await startWorker({ url: hub.url, instanceId: 'worker-b', services: [{ name: 'ringed', weight: 1 }] });
    const poll = fetch(`${hub.url}/service/ringed/jobs?wait=1`);
    await waitUntil(async () => (await stats(hub)).longPoll.waiting === 1, 3000, 'the long-poll to wait');
    const svc = (await stats(hub)).services.find((s: { name: string }) => s.name === 'ringed');
    assert.deepEqual(svc.ring.members, [
      { instanceId: 'worker-a', hubId: (await stats(hub)).hubId, weight: 1 },
      { instanceId: 'worker-b', hubId: (await stats(hub)).hubId, weight: 1 },
      { instanceId: 'worker-c', hubId: (await stats(hub)).hubId, weight: 2 },
    ]);
    // The digest PROTOCOL.md gives for worker-a 1, worker-b 1, worker-c 2.
    assert.equal(svc.ring.digest, '223aa4bd');
    assert.equal(svc.workers, 3);
    assert.equal((await poll).status, 204);
  });
});
