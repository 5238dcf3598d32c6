import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../../client/client.js';
import { Worker } from '../../client/worker.js';
import { post, startHub, startWorker, stopAll, type HubProc } from '../helpers/processes.js';

describe('round trips through one hub', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub();
    await startWorker({ url: hub.url, instanceId: 'echo-1', services: [{ name: 'echo', mode: 'meshage' }, { name: 'raw' }] });
  });
  after(stopAll);

  it('answers the meshage example byte for byte', async () => {
    const r = await post(`${hub.url}/api/echo/4985`, '{"hello":"world"}');
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"echoed":{"stream":"echo","partitionKey":"4985","hello":"world"}}');
    assert.match(r.headers.get('x-served-by') ?? '', /^hub-[^/]+\/echo-1$/);
  });

  it('passes bodies, content type, query and allowed headers through untouched', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    const r = await fetch(`${hub.url}/service/raw?x=1&y=2`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'x-request-id': 'abc' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('x-instance'), 'echo-1');
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), body);
  });

  it('serves callers over HTTP and over one multiplexed WebSocket with the client library', async () => {
    for (const transport of ['http', 'ws'] as const) {
      const client = new Client({ url: hub.url, transport });
      try {
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.requestKeyed('echo', `k${i}`, { i })));
        answers.forEach((a, i) => assert.deepEqual(a.json(), { echoed: { stream: 'echo', partitionKey: `k${i}`, i } }));
        const plain = await client.request('echo', { a: 1 });
        assert.deepEqual(plain.json(), { echoed: { stream: 'echo', a: 1 } });
        const b = await client.broadcast('echo', 'k', { b: 2 });
        assert.deepEqual(b.replies, [{ echoed: { stream: 'echo', partitionKey: 'k', b: 2 } }]);
      } finally {
        await client.close();
      }
    }
  });

  it('lets a worker call another service over its own socket', async () => {
    const w = new Worker({ url: hub.url });
    w.handle('caller', async (job) => {
      const inner = await w.request('echo', job.body, { key: 'inner' });
      return { body: inner.body };
    });
    await w.start();
    try {
      const client = new Client({ url: hub.url });
      const r = await client.request('caller', { via: 'ws' });
      assert.deepEqual(r.json(), { echoed: { stream: 'echo', partitionKey: 'inner', via: 'ws' } });
      await client.close();
    } finally {
      w.close();
    }
  });

  it('answers the meshage facade error for a body that is not a JSON object', async () => {
    const r = await post(`${hub.url}/api/echo/1`, '[1,2]');
    assert.equal(r.status, 400);
    assert.equal(r.json().error.code, 'E_BAD_MESSAGE');
    assert.equal(r.headers.get('x-error-code'), 'E_BAD_MESSAGE');
  });
});
