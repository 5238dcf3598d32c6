/**
 * meshage's own node code, word for word but for the import, run as meshage's README runs it:
 * nodes that are embedded hubs, serving their handlers in-process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { converged } from '../helpers/mesh.js';
import { distinctPorts, FIXTURES, type NodeProc, portFree, startNode } from '../helpers/meshage-nodes.js';
import { Proc, post, stats, stopAll, waitUntil } from '../helpers/processes.js';

after(stopAll);

const SEED = 'meshage-seed.cjs';

/** meshage README's request: `curl -sX POST .../api/echo/$RANDOM -H 'Content-Type: application/json' -d '{"hello":"world"}'`. */
function curlEcho(node: NodeProc, path: string) {
  return post(`${node.url}${path}`, '{"hello":"world"}', { 'content-type': 'application/json' });
}

/** Where each of `keys` lands when sent to `node`: its X-Served-By. */
async function owners(node: NodeProc, keys: string[]): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  await Promise.all(
    keys.map(async (k) => {
      const r = await post(`${node.url}/api/echo/${k}`, '{}');
      assert.equal(r.status, 200, r.text);
      m.set(k, r.headers.get('x-served-by')!);
    }),
  );
  return m;
}

describe('the meshage README node, on astromesh', () => {
  test('two nodes started as the README shows: its examples give its answers from either node; keys land on one handler', async () => {
    const [c1, c2, h1, h2] = await distinctPorts(4);
    // The README's first node sets SERVICE_PORT, which meshage never read: with no HTTP_PORT the
    // node takes ASTROMESH_PORT (8080 without it, which this machine may have in use).
    const n1 = await startNode(SEED, { CLUSTER_PORT: String(c1), SERVICE_PORT: '8080', ASTROMESH_PORT: String(h1) });
    const n2 = await startNode(SEED, { CLUSTER_PORT: String(c2), SEEDS: `127.0.0.1:${c1}`, HTTP_PORT: String(h2) });
    assert.equal(n1.clusterPort, c1);
    assert.equal(n2.port, h2);
    await converged([n1, n2], 'echo', 2);

    for (const n of [n1, n2]) {
      const r = await curlEcho(n, '/api/echo/4985');
      assert.equal(r.status, 200);
      assert.equal(r.text, '{"echoed":{"stream":"echo","partitionKey":"4985","hello":"world"}}');
      const b = await curlEcho(n, '/api/broadcast/echo/4985');
      assert.equal(b.status, 200);
      assert.deepEqual(b.json(), [
        { echoed: { stream: 'echo', partitionKey: '4985', hello: 'world' } },
        { echoed: { stream: 'echo', partitionKey: '4985', hello: 'world' } },
      ]);
    }

    const keys = Array.from({ length: 200 }, (_, i) => `k${i}-${Math.floor(Math.random() * 32768)}`);
    const [from1, from2] = [await owners(n1, keys), await owners(n2, keys)];
    assert.deepEqual(from2, from1, 'every key lands on the same handler from both nodes');
    const counts = new Map<string, number>();
    for (const o of from1.values()) counts.set(o, (counts.get(o) ?? 0) + 1);
    assert.equal(counts.size, 2, `both nodes own keys: ${JSON.stringify([...counts])}`);
    for (const n of counts.values()) assert.ok(n > 40, `a fair share of 200 keys each: ${JSON.stringify([...counts])}`);
  });

  test('what meshage got wrong stays fixed on nodes: escaped keys, keys named broadcast, the body overriding the URL, serviceId; every method; broadcast to no handler', async () => {
    const [c1, c2, h1, h2] = await distinctPorts(4);
    const n1 = await startNode(SEED, { CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    const n2 = await startNode(SEED, { CLUSTER_PORT: String(c2), SEEDS: `127.0.0.1:${c1}`, HTTP_PORT: String(h2) });
    await converged([n1, n2], 'echo', 2);
    const both = (path: string, body = '{}') => Promise.all([n1, n2].map((n) => post(`${n.url}${path}`, body)));
    for (const escaped of ['a%2Fb', '100%25', '%C3%A9t%C3%A9', '%F0%9F%90%99', 'broadcast', 'xbroadcastx']) {
      const key = decodeURIComponent(escaped);
      const [a, b] = await both(`/api/echo/${escaped}`, '{"x":1}');
      assert.deepEqual([a!.status, a!.json()], [200, { echoed: { stream: 'echo', partitionKey: key, x: 1 } }], escaped);
      assert.equal(a!.text, b!.text, escaped);
      assert.equal(a!.headers.get('x-served-by'), b!.headers.get('x-served-by'), `${escaped}: one owner from both nodes`);
      for (const r of await both(`/api/broadcast/echo/${escaped}`, '{"x":1}')) assert.equal(r.json().length, 2, escaped);
    }
    for (const r of await both('/api/echo/k1', '{"stream":"other","partitionKey":"other","serviceId":"s-1","a":1}')) {
      assert.deepEqual([r.status, r.json()], [200, { echoed: { stream: 'echo', partitionKey: 'k1', serviceId: 's-1', a: 1 } }]);
    }
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
      const r = await fetch(`${n2.url}/api/echo/m1`, {
        method,
        ...(method === 'GET' ? {} : { body: '{"m":1}', headers: { 'content-type': 'application/json' } }),
      });
      const expected = method === 'GET' ? { stream: 'echo', partitionKey: 'm1' } : { stream: 'echo', partitionKey: 'm1', m: 1 };
      assert.deepEqual([r.status, await r.json()], [200, { echoed: expected }], method);
    }
    const none = await post(`${n1.url}/api/broadcast/nobody/k`, '{}');
    assert.deepEqual([none.status, none.text, none.headers.get('x-broadcast-asked')], [200, '[]', '0']);
    const health = await fetch(`${n2.url}/api/health`);
    assert.deepEqual([health.status, await health.json()], [200, { status: 'up' }]);
  });

  test('killing one of three nodes (kill -9) moves only its keys', async () => {
    const [c1, c2, c3, h1, h2, h3] = await distinctPorts(6);
    const n1 = await startNode(SEED, { CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    const n2 = await startNode(SEED, { CLUSTER_PORT: String(c2), SEEDS: `127.0.0.1:${c1}`, HTTP_PORT: String(h2) });
    const n3 = await startNode(SEED, { CLUSTER_PORT: String(c3), SEEDS: `127.0.0.1:${c1}`, HTTP_PORT: String(h3) });
    await converged([n1, n2, n3], 'echo', 3);
    const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);
    const before = await owners(n1, keys);
    const victim = [...before.values()].find((o) => o.startsWith(`127.0.0.1-${c3}/`))!;
    assert.ok(victim, 'the third node owns keys');

    n3.kill('SIGKILL');
    await converged([n1, n2], 'echo', 2);
    const afterKill = await owners(n2, keys);
    let moved = 0;
    for (const k of keys) {
      if (before.get(k) === victim) {
        moved++;
        assert.notEqual(afterKill.get(k), victim);
      } else {
        assert.equal(afterKill.get(k), before.get(k), `key ${k} was not the killed node's: it stays where it was`);
      }
    }
    assert.ok(moved > 20, `the killed node's keys moved (${moved})`);
  });

  test('SIGTERM: a node leaves at once, its keys go to the others, callers of the other nodes see no failure', async () => {
    const [c1, c2, h1, h2] = await distinctPorts(4);
    const n1 = await startNode(SEED, { CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    const n2 = await startNode(SEED, { CLUSTER_PORT: String(c2), SEEDS: `127.0.0.1:${c1}`, HTTP_PORT: String(h2) });
    await converged([n1, n2], 'echo', 2);
    let failures = 0;
    let sent = 0;
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await post(`${n1.url}/api/echo/load-${i % 50}`, '{}');
        sent++;
        if (r.status !== 200) failures++;
      }
    })();
    await waitUntil(() => sent > 50, 5000, 'load');
    const t0 = Date.now();
    n2.kill('SIGTERM');
    const exit = await n2.exited;
    const tookMs = Date.now() - t0;
    await waitUntil(async () => (await stats(n1)).services.find((s: { name: string }) => s.name === 'echo').ring.members.length === 1, 3000, 'one member left');
    const more = sent + 50;
    await waitUntil(() => sent > more, 5000, 'load after the leave');
    stop = true;
    await load;
    assert.equal(exit.code, 0);
    assert.equal(failures, 0, `${failures} of ${sent} requests failed`);
    // In-process handlers cannot move: no lame-duck wait for them (the peer timeout is 600 ms here).
    assert.ok(tookMs < 1500, `the node left in ${tookMs} ms`);
  });

  test('SIGTERM on the only node of a stream: the jobs queued for its handler are answered, not left to the grace period', async () => {
    const [c1, h1] = await distinctPorts(2);
    const n = await startNode('meshage-rules.mjs', { NODE_NAME: 'solo', CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    await n.waitFor((l) => l.msg === 'started', 5000, 'node started');
    // `late` runs one at a time: three of the four wait in its queue when the signal comes.
    const t0 = Date.now();
    const answers = Array.from({ length: 4 }, () => post(`${n.url}/api/late/k`, '{"ms":200}'));
    await new Promise((r) => setTimeout(r, 100));
    n.kill('SIGTERM');
    const rs = await Promise.all(answers);
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 200, 200, 200],
      rs.map((r) => r.text).join('\n'),
    );
    // NODE_ENV's grace period is 2 s: the last answer came when its handler was done, well before.
    assert.ok(Date.now() - t0 < 1500, `answered in ${Date.now() - t0} ms`);
    assert.equal((await n.exited).code, 0);
  });

  test("the node's HTTP port and host and its advertised address come from ASTROMESH_CONFIG and ASTROMESH_ADVERTISE when the code names none", async () => {
    const [c1, h1] = await distinctPorts(2);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'meshage-node-')), 'hub.json');
    writeFileSync(file, JSON.stringify({ port: h1, host: '127.0.0.1' }));
    const n = await startNode(SEED, { CLUSTER_PORT: String(c1), ASTROMESH_CONFIG: file, ASTROMESH_ADVERTISE: `localhost:${c1}` });
    const line = n.lines.find((l) => (l as { msg?: string }).msg === 'listening') as { port: number; host: string; hubId: string };
    assert.deepEqual([line.port, line.host, line.hubId], [h1, '127.0.0.1', `localhost-${c1}`]);
    assert.equal((await stats(n)).mesh.advertise, `localhost:${c1}`);
    assert.equal((await curlEcho(n, '/api/echo/1')).status, 200);
  });

  test('nodes with IPv6 cluster addresses form a mesh', async (t) => {
    if (!(await portFree(0, '::1'))) return t.skip('no IPv6 loopback on this machine');
    const [c1, c2, h1, h2] = await distinctPorts(4);
    const n1 = await startNode(SEED, { CLUSTER_PORT: `[::1]:${c1}`, HTTP_PORT: String(h1) });
    const n2 = await startNode(SEED, { CLUSTER_PORT: `[::1]:${c2}`, SEEDS: `[::1]:${c1}`, HTTP_PORT: String(h2) });
    await converged([n1, n2], 'echo', 2);
    const b = await curlEcho(n2, '/api/broadcast/echo/6');
    assert.equal(b.json().length, 2, b.text);
  });

  test('an application that listens for SIGTERM itself, from after start(), decides what it means', async () => {
    const [c1, h1] = await distinctPorts(2);
    const n = await startNode('meshage-own-signals.mjs', { CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    await n.waitFor((l) => l.msg === 'started', 5000, 'node started');
    n.kill('SIGTERM');
    assert.equal((await n.exited).code, 7);
    assert.ok(
      n.lines.some((l) => (l as { msg?: string }).msg === 'application cleanup done'),
      'the node did not end the process under the application',
    );
  });

  test('stop() while the node is still starting stops it: the process ends by itself', async () => {
    const [c1, c2, h1] = await distinctPorts(3);
    // The seed never answers: start() waits for it up to the sync timeout (2 s here).
    const n = await startNode('meshage-stop-early.mjs', { CLUSTER_PORT: String(c1), SEEDS: `127.0.0.1:${c2}`, HTTP_PORT: String(h1) });
    const stopped = await n.waitFor((l) => l.msg === 'stopped', 5000, 'stop() to resolve');
    assert.equal(stopped.port, h1, 'stop() resolved once the node had started and stopped');
    const exit = await Promise.race([n.exited, new Promise((r) => setTimeout(() => r('still running'), 3000))]);
    assert.deepEqual(exit, { code: 0, signal: null });
  });

  test('start() reports a port it cannot take to its callback', async () => {
    const [c1, c2, h1] = await distinctPorts(3);
    await startNode(SEED, { CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    const child = new Proc(
      spawn(process.execPath, [path.join(FIXTURES, 'meshage-rules.mjs')], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_NAME: 'x', CLUSTER_PORT: String(c2), HTTP_PORT: String(h1) },
      }),
    );
    const exit = await child.exited;
    await child.closed;
    assert.equal(exit.code, 3, child.stderr.join('\n'));
    assert.match(child.stderr.join('\n'), new RegExp(`cannot listen on 0.0.0.0:${h1}`));
  });

  test('with neither HTTP_PORT nor ASTROMESH_PORT the node serves HTTP on 8080', async (t) => {
    if (!(await portFree(8080))) return t.skip('port 8080 is in use on this machine');
    const [c1] = await distinctPorts(1);
    const n = await startNode(SEED, { CLUSTER_PORT: String(c1), SERVICE_PORT: '8080' });
    assert.equal(n.port, 8080);
    const r = await curlEcho(n, '/api/echo/7');
    assert.equal(r.text, '{"echoed":{"stream":"echo","partitionKey":"7","hello":"world"}}');
    n.kill('SIGTERM');
    assert.equal((await n.exited).code, 0);
  });
});
