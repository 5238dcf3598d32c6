/**
 * meshage callers against a mesh of two hub processes, with a node built with `meshage()` on
 * each: the routes meshage's callers and probes use answer as they did, from either hub, and
 * what was a bug in meshage stays fixed (keys that need escaping, keys named "broadcast", body
 * fields that overrode the URL, a body naming a service id).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Op } from '../../client/protocol.js';
import { memberSeed, ownerOf } from '../../server/ring.js';
import { converged, startMesh } from '../helpers/mesh.js';
import { type HubProc, MESHAGE_NODE, post, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

/** Keys as a caller puts them in the URL: a slash, a percent sign, accented letters, an emoji. */
const ESCAPED_KEYS = ['a%2Fb', '100%25', '%C3%A9t%C3%A9', '%F0%9F%90%99'];
const ZERO_COUNTS = { asked: '0', failed: '0', timedOut: '0' };

type Answer = Awaited<ReturnType<typeof post>>;
const servedBy = (r: Answer) => r.headers.get('x-served-by');
const counts = (r: Answer) => ({
  asked: r.headers.get('x-broadcast-asked'),
  failed: r.headers.get('x-broadcast-failed'),
  timedOut: r.headers.get('x-broadcast-timed-out'),
});

describe('meshage callers on a mesh of two hubs with a meshage node on each', { timeout: 90_000 }, () => {
  let hubs: HubProc[];
  let ring: { instanceId: string; hubId: string; weight: number; seed: number }[];
  before(async () => {
    hubs = await startMesh(['mh-a', 'mh-b']);
    // Streams named like the hub's own /api routes, to show those routes are not shadowed.
    await startWorker({ url: hubs[0]!.url, instanceId: 'node-a', services: [{ name: 'echo' }, { name: 'zeta' }, { name: 'health' }] }, MESHAGE_NODE);
    await startWorker({ url: hubs[1]!.url, instanceId: 'node-b', services: [{ name: 'echo' }, { name: 'alpha' }, { name: 'services' }] }, MESHAGE_NODE);
    ring = (await converged(hubs, 'echo', 2)).map((m) => ({ ...m, seed: memberSeed(m.instanceId) }));
    for (const stream of ['zeta', 'health', 'alpha', 'services']) await converged(hubs, stream, 1);
  });
  after(stopAll);

  /** The same request to both hubs. */
  const both = (path: string, body = '{}') => Promise.all(hubs.map((h) => post(h.url + path, body)));

  it('sends each of 200 keys to the same handler from either hub, the one the ring names', async () => {
    const keys = Array.from({ length: 200 }, (_, i) => `user-${i * 7919}`);
    const byNode = new Map<string, number>();
    for (let i = 0; i < keys.length; i += 25) {
      await Promise.all(
        keys.slice(i, i + 25).map(async (key) => {
          const answers = await both(`/api/echo/${key}`, `{"k":"${key}"}`);
          for (const a of answers) assert.deepEqual([a.status, a.json()], [200, { echoed: { stream: 'echo', partitionKey: key, k: key } }], key);
          assert.equal(servedBy(answers[0]!), servedBy(answers[1]!), `key ${key}`);
          const owner = ownerOf(key, ring)!;
          assert.equal(servedBy(answers[0]!), `${owner.hubId}/${owner.instanceId}`, `key ${key}`);
          byNode.set(owner.instanceId, (byNode.get(owner.instanceId) ?? 0) + 1);
        }),
      );
    }
    assert.ok((byNode.get('node-a') ?? 0) > 40 && (byNode.get('node-b') ?? 0) > 40, JSON.stringify([...byNode]));
  });

  it('hands keys with %2F, %25 and non-ASCII characters to the same handler from either hub, decoded', async () => {
    for (const escaped of ESCAPED_KEYS) {
      const key = decodeURIComponent(escaped);
      const answers = await both(`/api/echo/${escaped}`, '{"x":1}');
      for (const a of answers) assert.deepEqual([a.status, a.json()], [200, { echoed: { stream: 'echo', partitionKey: key, x: 1 } }], escaped);
      const owner = ownerOf(key, ring)!;
      assert.deepEqual(answers.map(servedBy), Array(2).fill(`${owner.hubId}/${owner.instanceId}`), escaped);
      for (const b of await both(`/api/broadcast/echo/${escaped}`, '{"x":1}')) {
        assert.deepEqual([b.status, b.json()], [200, Array(2).fill({ echoed: { stream: 'echo', partitionKey: key, x: 1 } })], escaped);
      }
    }
  });

  it('answers a key named broadcast, or holding the word, once on each route, from either hub', async () => {
    const t0 = Date.now();
    for (const key of ['broadcast', 'xbroadcastx']) {
      const message = { stream: 'echo', partitionKey: key };
      for (const a of await both(`/api/echo/${key}`)) assert.deepEqual([a.status, a.json()], [200, { echoed: message }], key);
      for (const b of await both(`/api/broadcast/echo/${key}`)) {
        assert.deepEqual([b.status, b.json()], [200, [{ echoed: message }, { echoed: message }]], key);
        assert.deepEqual(counts(b), { asked: '2', failed: '0', timedOut: '0' });
      }
    }
    // A request that went round between hubs would have run into its deadline (5 s here).
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  });

  it("keeps the URL's stream and key over the body's, and passes serviceId as an ordinary field", async () => {
    const body = '{"stream":"other","partitionKey":"x","serviceId":"mh-b/node-b","a":1}';
    const echoed = '{"stream":"echo","partitionKey":"k1","serviceId":"mh-b/node-b","a":1}';
    for (const a of await both('/api/echo/k1', body)) assert.deepEqual([a.status, a.text], [200, `{"echoed":${echoed}}`]);
    for (const b of await both('/api/broadcast/echo/k1', body)) assert.deepEqual([b.status, b.text], [200, `[{"echoed":${echoed}},{"echoed":${echoed}}]`]);
  });

  it("answers with express's content type from the facade, and a broadcast's array as application/json", async () => {
    for (const a of await both('/api/echo/k2')) assert.equal(a.headers.get('content-type'), 'application/json; charset=utf-8');
    for (const b of await both('/api/broadcast/echo/k2')) assert.equal(b.headers.get('content-type'), 'application/json');
  });

  it('answers /api/health on every hub for each method meshage callers use, and leaves streams named health or services routed', async () => {
    for (const h of hubs) {
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        const r = await fetch(`${h.url}/api/health`, { method, ...(method === 'GET' ? {} : { body: '{"x":1}' }) });
        assert.deepEqual([r.status, r.headers.get('content-type'), await r.text()], [200, 'application/json; charset=utf-8', '{"status":"up"}'], method);
      }
      for (const [method, path] of [
        ['HEAD', '/api/health'],
        ['OPTIONS', '/api/health'],
        ['POST', '/api/services'],
        ['HEAD', '/api/services'],
      ] as const) {
        const r = await fetch(h.url + path, { method });
        assert.deepEqual([r.status, r.headers.get('x-error-code')], [404, 'E_NOT_FOUND'], `${method} ${path}`);
      }
      // One segment more, and they are a stream and a key.
      for (const stream of ['health', 'services']) {
        const r = await post(`${h.url}/api/${stream}/k`);
        assert.deepEqual([r.status, r.json()], [200, { echoed: { stream, partitionKey: 'k' } }], stream);
        const b = await post(`${h.url}/api/broadcast/${stream}/k`);
        assert.deepEqual([b.status, b.json()], [200, [{ echoed: { stream, partitionKey: 'k' } }]], stream);
      }
    }
  });

  it('lists every handler of every stream in the mesh at GET /api/services, from either hub, by stream and id', async () => {
    const expected = [
      { id: 'mh-b/node-b', stream: 'alpha', address: 'mh-b' },
      { id: 'mh-a/node-a', stream: 'echo', address: 'mh-a' },
      { id: 'mh-b/node-b', stream: 'echo', address: 'mh-b' },
      { id: 'mh-a/node-a', stream: 'health', address: 'mh-a' },
      { id: 'mh-b/node-b', stream: 'services', address: 'mh-b' },
      { id: 'mh-a/node-a', stream: 'zeta', address: 'mh-a' },
    ];
    for (const h of hubs) {
      const r = await fetch(`${h.url}/api/services`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.deepEqual(await r.json(), expected, h.url);
    }
  });

  it('answers a broadcast to a stream without handlers 200 [] from either hub: never seen, or its workers gone, over HTTP and WebSocket', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      for (const h of hubs) {
        const r = await fetch(`${h.url}/api/broadcast/nobody/k`, { method });
        assert.deepEqual([r.status, r.headers.get('content-type'), await r.text()], [200, 'application/json', '[]'], method);
        assert.deepEqual([r.headers.get('x-broadcast-asked'), r.headers.get('x-broadcast-failed'), r.headers.get('x-broadcast-timed-out')], ['0', '0', '0']);
      }
    }
    const fleeting = await startWorker({ url: hubs[1]!.url, instanceId: 'fleeting-b', services: [{ name: 'fleeting' }] });
    await converged(hubs, 'fleeting', 1);
    const before = await post(`${hubs[0]!.url}/api/broadcast/fleeting/k`, '{"f":1}');
    assert.deepEqual([before.status, before.json()], [200, [{ f: 1 }]]);
    fleeting.kill('SIGKILL');
    await waitUntil(
      async () => {
        const rings = await Promise.all(hubs.map(async (h) => (await stats(h)).services.find((s: { name: string }) => s.name === 'fleeting')?.ring));
        return rings.every((r) => !r || r.members.length === 0);
      },
      5000,
      'the worker gone from both rings',
    );
    for (const b of await both('/api/broadcast/fleeting/k')) {
      assert.deepEqual([b.status, b.text], [200, '[]']);
      assert.deepEqual(counts(b), ZERO_COUNTS);
    }
    const caller = await RawSocket.open(hubs[0]!.url);
    try {
      caller.send([Op.Hello, { versions: [1], role: 'client' }]);
      await caller.next((f) => f[0] === Op.Welcome);
      for (const [id, service] of [
        [1, 'fleeting'],
        [2, 'nobody'],
      ] as const) {
        caller.send([Op.Request, id, 2, service, 'k', null, null, null, null, Buffer.from('{}')]);
        const r = await caller.next((f) => f[0] === Op.Response && f[1] === id);
        assert.deepEqual(
          r.slice(2, 5),
          [200, 'application/json', { 'x-broadcast-asked': '0', 'x-broadcast-failed': '0', 'x-broadcast-timed-out': '0' }],
          service,
        );
        assert.deepEqual([Buffer.from(r[5] as Uint8Array).toString(), r[6]], ['[]', null], service);
      }
    } finally {
      caller.close();
    }
  });
});
