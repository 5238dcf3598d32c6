import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '../../client/client.js';
import { Worker } from '../../client/worker.js';
import { type HubProc, post, startHub, startWorker, stopAll } from '../helpers/processes.js';
import { exchange } from '../helpers/raw-http.js';

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
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8', "express's res.json");
    assert.match(r.headers.get('x-served-by') ?? '', /^hub-[^/]+\/echo-1$/);
  });

  it('takes GET, PUT, PATCH and DELETE on the meshage routes as it takes POST', async () => {
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE', 'POST']) {
      // fetch sends no body with GET: an empty body is the message {} to the facade.
      const body = method === 'GET' ? undefined : `{"m":"${method}"}`;
      const fields = method === 'GET' ? '' : `,"m":"${method}"`;
      const keyed = await fetch(`${hub.url}/api/echo/4985`, { method, body });
      assert.equal(keyed.status, 200, method);
      assert.equal(await keyed.text(), `{"echoed":{"stream":"echo","partitionKey":"4985"${fields}}}`, method);
      assert.match(keyed.headers.get('x-served-by') ?? '', /\/echo-1$/, method);
      const all = await fetch(`${hub.url}/api/broadcast/echo/4985`, { method, body });
      assert.equal(all.status, 200, method);
      assert.equal(all.headers.get('x-broadcast-asked'), '1', method);
      assert.equal(await all.text(), `[{"echoed":{"stream":"echo","partitionKey":"4985"${fields}}}]`, method);
    }
    // A GET with a body passes it on like any other method's.
    const url = new URL(hub.url);
    const x = await exchange(Number(url.port), ['GET /api/raw/k HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello']);
    assert.deepEqual([x.responses[0]?.status, x.responses[0]?.headers['content-type'], x.responses[0]?.body.toString()], [200, 'text/plain', 'hello']);
  });

  it('passes bodies, content type, query and allowed headers through untouched', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    const r = await fetch(`${hub.url}/service/raw?x=1&y=2`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream', 'x-request-id': 'abc' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('x-instance'), 'echo-1');
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), body);
  });

  it('carries bodies of every size byte for byte, sent whole, in pieces with a length, and chunked', { timeout: 20_000 }, async () => {
    const { randomBytes } = await import('node:crypto');
    const { connect } = await import('node:net');
    const url = new URL(hub.url);
    /** Sends `body` over a raw socket in `pieces` writes, with Content-Length or chunked. */
    const raw = (body: Buffer, pieces: number, chunked: boolean): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const sock = connect(Number(url.port), url.hostname);
        const out: Buffer[] = [];
        sock.on('data', (d) => out.push(d));
        sock.on('error', reject);
        sock.on('close', () => {
          const all = Buffer.concat(out);
          const split = all.indexOf('\r\n\r\n');
          const head = all.subarray(0, split).toString();
          if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head));
          resolve(all.subarray(split + 4));
        });
        sock.write(
          `POST /service/raw HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`}\r\n\r\n`,
        );
        const step = Math.ceil(body.length / pieces);
        let at = 0;
        const next = (): void => {
          if (at >= body.length) {
            if (chunked) sock.write('0\r\n\r\n');
            return;
          }
          const part = body.subarray(at, at + step);
          at += part.length;
          sock.write(chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part);
          setTimeout(next, 5); // separate TCP segments, so the hub sees several data events
        };
        next();
      });
    for (const size of [1, 100, 65_537, 300_000]) {
      const body = randomBytes(size);
      const whole = await fetch(`${hub.url}/service/raw`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(body), `${size} bytes sent whole`);
      assert.ok((await raw(body, 4, false)).equals(body), `${size} bytes in 4 pieces with Content-Length`);
      const echoed = await raw(body, 3, true);
      // The answer to a chunked request has a Content-Length of its own: compare the bytes.
      assert.ok(echoed.equals(body), `${size} bytes chunked`);
    }
  });

  it('serves callers over HTTP and over one multiplexed WebSocket with the client library', async () => {
    for (const transport of ['http', 'ws'] as const) {
      const client = new Client({ url: hub.url, transport });
      try {
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.requestKeyed('echo', `k${i}`, { i })));
        for (const [i, a] of answers.entries()) assert.deepEqual(a.json(), { echoed: { stream: 'echo', partitionKey: `k${i}`, i } });
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

  it('turns a handler status the protocol does not allow into a 500 and keeps the session', async () => {
    const w = new Worker({ url: hub.url });
    const drops: unknown[] = [];
    w.connection.on('socketError', (e) => drops.push(e));
    w.handle('odd-status', (job) => ({ status: Number(job.text()), body: 'x' }));
    await w.start();
    try {
      for (const [status, want] of [
        [150, 500],
        [700, 500],
        [201, 201],
        [599, 599],
      ] as const) {
        const r = await post(`${hub.url}/service/odd-status`, String(status));
        assert.equal(r.status, want, `handler status ${status}`);
        if (want === 500) assert.equal(r.headers.get('x-error-code'), 'E_HANDLER');
      }
      assert.equal(w.connection.state, 'open');
      assert.deepEqual(drops, []);
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
