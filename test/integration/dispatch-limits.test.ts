import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { post, sleep, startHub, startWorker, stats, stopAll, waitUntil, type HubProc } from '../helpers/processes.js';

/** Sends a raw HTTP request and returns the status line and body. */
function rawHttp(port: number, text: string | (string | Buffer)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => {
      out += d.toString();
      if (/\r\n\r\n/.test(out)) {
        const m = /content-length: (\d+)/i.exec(out);
        const bodyAt = out.indexOf('\r\n\r\n') + 4;
        if (m && out.length - bodyAt >= Number(m[1])) s.end();
      }
    });
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(3000, () => s.destroy());
    if (typeof text === 'string') s.write(text);
    else for (const c of text) s.write(c);
  });
}

describe('dispatch limits and bad input', () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'max-queue-per-service': 3, 'max-body-bytes': 1000, 'service-linger-ms': 400, 'default-timeout-ms': 3000, 'max-timeout-ms': 4000 });
  });
  after(stopAll);

  it('answers 503 E_NO_WORKERS at once for a service that never had workers, creating no state', async () => {
    const r = await post(`${hub.url}/service/never-seen`);
    assert.equal(r.status, 503);
    assert.equal(r.json().error.code, 'E_NO_WORKERS');
    assert.equal(r.headers.get('retry-after'), '1');
    const st = await stats(hub);
    assert.equal(st.services.find((s: { name: string }) => s.name === 'never-seen'), undefined);
  });

  it('answers 503 E_QUEUE_FULL with Retry-After once the service queue is full', async () => {
    const w = await startWorker({ url: hub.url, services: [{ name: 'slow', mode: 'sleep', sleepMs: 600, concurrency: 1 }] });
    const first = post(`${hub.url}/service/slow`, '{"n":0}');
    await w.waitFor((l) => l.event === 'job');
    const queued = [1, 2, 3].map((n) => post(`${hub.url}/service/slow`, `{"n":${n}}`));
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'slow')?.queued === 3, 3000, 'three queued');
    const over = await post(`${hub.url}/service/slow`, '{"n":4}');
    assert.equal(over.status, 503);
    assert.equal(over.json().error.code, 'E_QUEUE_FULL');
    assert.equal(over.headers.get('retry-after'), '1');
    const results = await Promise.all([first, ...queued]);
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200]);
    w.kill();
    await w.exited;
  });

  it('queues while a service lost its worker less than serviceLingerMs ago, then answers 503 at once', async () => {
    const w1 = await startWorker({ url: hub.url, services: [{ name: 'linger' }] });
    w1.kill();
    await w1.exited;
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'linger')?.workers === 0, 3000, 'worker gone');
    const pending = post(`${hub.url}/service/linger`, '{"queued":true}');
    await sleep(100);
    const w2 = await startWorker({ url: hub.url, services: [{ name: 'linger' }] });
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"queued":true}');
    w2.kill();
    await w2.exited;
    await sleep(500);
    const t = Date.now();
    const late = await post(`${hub.url}/service/linger`);
    assert.equal(late.status, 503);
    assert.equal(late.json().error.code, 'E_NO_WORKERS');
    assert.ok(Date.now() - t < 1000);
  });

  it('answers 413 for a body over the limit, by content-length and by chunked transfer', async () => {
    await startWorker({ url: hub.url, services: [{ name: 'big' }] });
    const r = await post(`${hub.url}/service/big`, 'x'.repeat(1001));
    assert.equal(r.status, 413);
    assert.equal(r.json().error.code, 'E_BODY_TOO_LARGE');
    const ok = await post(`${hub.url}/service/big`, 'y'.repeat(1000), { 'content-type': 'text/plain' });
    assert.equal(ok.status, 200);
    assert.equal(ok.text.length, 1000);
    const chunk = 'z'.repeat(600);
    const out = await rawHttp(hub.port, [
      'POST /service/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n',
      Buffer.from(`${(600).toString(16)}\r\n${chunk}\r\n`), Buffer.from(`${(600).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`),
    ]);
    assert.match(out, /^HTTP\/1\.1 (413|400)/);
  });

  it('answers 400 for bad names, keys and timeouts, and clamps large timeouts', async () => {
    await startWorker({ url: hub.url, services: [{ name: 'ok' }] });
    const bad: [string, Record<string, string>, string][] = [
      [`/service/${'a'.repeat(129)}`, {}, 'E_BAD_NAME'],
      ['/service/...', {}, 'E_BAD_NAME'],
      ['/service/a%ZZb', {}, 'E_BAD_NAME'],
      ['/service/sp%20ace', {}, 'E_BAD_NAME'],
      [`/api/ok/${'é'.repeat(129)}`, {}, 'E_BAD_KEY'],
      ['/service/ok', { 'x-timeout-ms': '0' }, 'E_BAD_TIMEOUT'],
      ['/service/ok', { 'x-timeout-ms': '-5' }, 'E_BAD_TIMEOUT'],
      ['/service/ok', { 'x-timeout-ms': 'abc' }, 'E_BAD_TIMEOUT'],
      ['/service/ok', { 'x-timeout-ms': '1.5' }, 'E_BAD_TIMEOUT'],
    ];
    for (const [path, headers, code] of bad) {
      const r = await post(hub.url + path, '{}', headers);
      assert.equal(r.status, 400, path);
      assert.equal(r.json().error.code, code, path);
    }
    assert.equal((await post(`${hub.url}/service/${'a'.repeat(128)}`)).json().error.code, 'E_NO_WORKERS');
    assert.equal((await post(`${hub.url}/api/ok/${'é'.repeat(128)}`)).status, 200);
    const clamped = await post(`${hub.url}/service/ok`, '{"c":1}', { 'x-timeout-ms': '99999999' });
    assert.equal(clamped.status, 200);
  });

  it('answers unknown routes and methods with a JSON 404', async () => {
    for (const [method, path] of [['GET', '/nope'], ['PUT', '/service/ok'], ['DELETE', '/api/a/b'], ['GET', '/service/ok/jobz']]) {
      const r = await fetch(hub.url + path, { method });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'E_NOT_FOUND');
    }
  });
});
