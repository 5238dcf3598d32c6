import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { post, startHub, startWorker, stats, stopAll, waitUntil, type HubProc, type ServiceSpec } from '../helpers/processes.js';

const echo: ServiceSpec[] = [{ name: 'echo', mode: 'meshage' }];

describe('keyed routing and broadcast on one hub', () => {
  let hub: HubProc;
  const ids = ['node-a', 'node-b', 'node-c'];
  before(async () => {
    hub = await startHub();
  });
  after(stopAll);

  async function owners(keys: string[]): Promise<Map<string, string>> {
    const m = new Map<string, string>();
    for (const k of keys) {
      const r = await post(`${hub.url}/api/echo/${encodeURIComponent(k)}`, '{}');
      assert.equal(r.status, 200);
      m.set(k, (r.headers.get('x-served-by') ?? '').split('/')[1]!);
    }
    return m;
  }

  it('sends each key to the same worker instance every time, and spreads keys over all', async () => {
    const procs = await Promise.all(ids.map((instanceId) => startWorker({ url: hub.url, instanceId, services: echo })));
    const keys = Array.from({ length: 100 }, (_, i) => `user-${i * 7919}`);
    const first = await owners(keys);
    const second = await owners(keys);
    assert.deepEqual(second, first);
    for (const id of ids) assert.ok([...first.values()].filter((v) => v === id).length >= 15, `${id} owns too few keys`);

    // A worker restarted with the same instanceId gets its keys back; while it is away they fail over.
    const victim = procs[1]!;
    victim.kill('SIGKILL');
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'echo')?.workers === 2, 3000, 'victim gone');
    const during = await owners(keys);
    for (const [k, o] of first) {
      if (o === 'node-b') assert.notEqual(during.get(k), 'node-b');
      else assert.equal(during.get(k), o, 'keys of live workers never move');
    }
    await startWorker({ url: hub.url, instanceId: 'node-b', services: echo });
    assert.deepEqual(await owners(keys), first);
  });

  it('broadcasts to every worker instance and counts them in headers', async () => {
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'echo')?.workers === 3, 3000, 'three workers');
    const r = await post(`${hub.url}/api/broadcast/echo/4985`, '{"hello":"world"}');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-broadcast-asked'), '3');
    assert.equal(r.headers.get('x-broadcast-failed'), '0');
    assert.equal(r.headers.get('x-broadcast-timed-out'), '0');
    const replies = r.json() as unknown[];
    assert.equal(replies.length, 3);
    for (const x of replies) assert.deepEqual(x, { echoed: { stream: 'echo', partitionKey: '4985', hello: 'world' } });
  });

  it('reports a broadcast part that timed out without holding up the others', async () => {
    await startWorker({ url: hub.url, instanceId: 'mixed-fast', services: [{ name: 'mixed' }] });
    await startWorker({ url: hub.url, instanceId: 'mixed-stuck', services: [{ name: 'mixed', mode: 'hang' }] });
    const r = await post(`${hub.url}/api/broadcast/mixed/k`, '{"m":1}', { 'x-timeout-ms': '300' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-broadcast-asked'), '2');
    assert.equal(r.headers.get('x-broadcast-timed-out'), '1');
    const replies = r.json() as Record<string, unknown>[];
    assert.ok(replies.some((x) => x.m === 1));
    assert.ok(replies.some((x) => (x.error as { code?: string } | undefined)?.code === 'E_DEADLINE'));
  });
});
