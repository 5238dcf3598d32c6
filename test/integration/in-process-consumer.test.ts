/**
 * The in-process consumer (a meshage node's handlers) keeps every rule of the other consumers:
 * credit, deadlines, cancel through an AbortSignal, one answer per request; and a node's handlers
 * can send and broadcast from inside it. Standalone hubs and WebSocket workers join its mesh.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { converged } from '../helpers/mesh.js';
import { distinctPorts, type NodeProc, startNode } from '../helpers/meshage-nodes.js';
import { post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

after(stopAll);

const SCRIPT = 'meshage-rules.mjs';

describe('in-process consumer', () => {
  let a: NodeProc;
  let b: NodeProc;
  let ports: number[];

  before(async () => {
    ports = await distinctPorts(4);
    const [c1, c2, h1, h2] = ports;
    a = await startNode(SCRIPT, { NODE_NAME: 'a', CLUSTER_PORT: String(c1), HTTP_PORT: String(h1) });
    b = await startNode(SCRIPT, { NODE_NAME: 'b', CLUSTER_PORT: String(c2), SEEDS: `127.0.0.1:${c1}`, HTTP_PORT: String(h2) });
    for (const n of [a, b]) await n.waitFor((l) => l.msg === 'started', 5000, 'node started');
    assert.equal(a.lines.find((l) => (l as { msg?: string }).msg === 'started') !== undefined, true);
    await converged([a, b], 'echo', 2);
  });

  test('start calls back with (null, the node)', () => {
    const line = a.lines.find((l) => (l as { msg?: string }).msg === 'started') as { same: boolean };
    assert.equal(line.same, true);
  });

  test('credit: a handler registered with concurrency 2 never runs more than 2 at once', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, () => post(`${a.url}/api/hold/one-key`, '{"ms":120}')));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    const most = Math.max(...rs.map((r) => r.json().most as number));
    assert.equal(most, 2);
  });

  test('a deadline cancels the handler through its AbortSignal (E_DEADLINE), a caller that leaves too (E_CANCELLED)', async () => {
    const t0 = Date.now();
    const r = await post(`${a.url}/api/wait/k1`, '{}', { 'x-timeout-ms': '200' });
    assert.equal(r.status, 504);
    assert.equal(r.headers.get('x-error-code'), 'E_DEADLINE');
    assert.ok(Date.now() - t0 < 1500);
    const ac = new AbortController();
    const gone = post(`${a.url}/api/wait/k1`, '{}', {}, ac.signal).catch((e: Error) => e);
    await new Promise((res) => setTimeout(res, 150));
    ac.abort();
    assert.ok((await gone) instanceof Error);
    // Both ran on the owner of k1; ask that node what its handlers saw.
    const owner = (await post(`${a.url}/api/echo/k1`, '{}')).json().node as string;
    const node = owner === 'a' ? a : b;
    const seen = await waitUntil(
      async () => {
        const got = (await post(`${node.url}/service/aborts`, '{}')).json() as string[];
        return got.length >= 2 ? got : null;
      },
      3000,
      'both cancels seen by the handler',
    );
    assert.deepEqual(seen!.slice(-2), ['E_DEADLINE', 'E_CANCELLED']);
  });

  test('one answer per request, and credit comes back only when the handler returns', async () => {
    // The first times out at 150 ms while its handler runs 600 ms; the second waits for that credit.
    const first = post(`${a.url}/api/late/k2`, '{"ms":600}', { 'x-timeout-ms': '150' });
    await new Promise((res) => setTimeout(res, 30));
    const t0 = Date.now();
    const second = post(`${a.url}/api/late/k2`, '{"ms":10}', { 'x-timeout-ms': '3000' });
    const r1 = await first;
    assert.equal(r1.status, 504);
    const r2 = await second;
    assert.equal(r2.status, 200, r2.text);
    assert.ok(Date.now() - t0 >= 450, `the second ran after the first handler returned (${Date.now() - t0} ms)`);
    assert.equal(r2.json().lateRuns, 2);
  });

  test('a throw is an error answer: its own status and code, or 500 E_HANDLER', async () => {
    const typed = await post(`${a.url}/api/throws/k`, '{"typed":true}');
    assert.equal(typed.status, 409);
    assert.equal(typed.headers.get('x-error-code'), 'E_CONFLICT');
    assert.deepEqual(typed.json(), { error: { code: 'E_CONFLICT', message: 'that order exists' } });
    const plain = await post(`${a.url}/api/throws/k`, '{}');
    assert.equal(plain.status, 500);
    assert.equal(plain.headers.get('x-error-code'), 'E_HANDLER');
    assert.equal(plain.json().error.message, 'boom');
  });

  test('a handler returning nothing answers null', async () => {
    const r = await post(`${a.url}/api/nothing/k`, '{}');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'null');
  });

  test('send and broadcast from inside a node reach the key owner and every node', async () => {
    for (let i = 0; i < 20; i++) {
      const key = `relay-${i}`;
      const owner = (await post(`${b.url}/api/echo/${key}`, '{}')).json().node;
      for (const from of [a, b]) {
        const r = await post(`${from.url}/api/relay/${key}`, '{}');
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json(), { echoed: { stream: 'echo', partitionKey: key, via: r.json().echoed.via }, node: owner });
      }
    }
    const fan = await post(`${a.url}/api/fanout/f1`, '{}');
    assert.equal(fan.status, 200, fan.text);
    const nodes = (fan.json() as { node: string; echoed: unknown }[]).map((x) => x.node).sort();
    assert.deepEqual(nodes, ['a', 'b']);
    const unkeyed = await post(`${a.url}/api/unkeyed/u`, '{}');
    assert.equal(unkeyed.status, 200, unkeyed.text);
    assert.deepEqual(unkeyed.json().echoed, { stream: 'echo', note: 'no key' });
  });

  test('register and unregister while the node is starting take effect', async () => {
    const r = await post(`${a.url}/api/registered-while-starting/k7`, '{}');
    assert.deepEqual([r.status, r.json()], [200, { registered: 'k7' }]);
    const services = (await (await fetch(`${a.url}/api/services`)).json()) as { stream: string }[];
    assert.deepEqual(
      services.filter((x) => x.stream === 'dropped'),
      [],
    );
    const gone = await post(`${a.url}/api/dropped/k7`, '{}', { 'x-timeout-ms': '300' });
    assert.notEqual(gone.status, 200, gone.text);
  });

  test('/stats lists the in-process handlers like a session', async () => {
    const s = await stats(a);
    const local = s.workers.find((w: { name?: string }) => w.name === 'in-process');
    assert.ok(local, JSON.stringify(s.workers));
    assert.equal(local.sessionId, 0);
    assert.ok(local.services.some((x: { name: string; credit: number }) => x.name === 'hold' && x.credit === 2));
  });

  test('a standalone hub and a WebSocket worker join the nodes’ mesh', async () => {
    const hub = await startHub({ peers: `127.0.0.1:${ports[0]}`, 'peer-timeout-ms': 600, 'peer-reconnect-max-ms': 200 });
    await startWorker({ url: hub.url, instanceId: 'ws-worker-1', services: [{ name: 'echo', mode: 'meshage' }] });
    const members = await converged([a, b, hub], 'echo', 3);
    assert.ok(members.some((m) => m.instanceId === 'ws-worker-1'));
    const servedBy = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const r = await post(`${hub.url}/api/echo/mix-${i}`, '{}');
      assert.equal(r.status, 200, r.text);
      servedBy.add(r.headers.get('x-served-by')!.split('/')[1]!);
    }
    assert.equal(servedBy.size, 3, `keys spread over the two nodes and the worker: ${[...servedBy]}`);
  });
});
