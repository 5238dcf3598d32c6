import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type JobFrame, Op } from '../../client/protocol.js';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

/** A request with an exact path (fetch would normalise `..`), answered as status and JSON. */
function rawPost(
  port: number,
  path: string,
  body = '{}',
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        agent: false,
        timeout: 3000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes raw bytes as one HTTP/1.1 request with Connection: close and reads the whole answer. */
function rawExchange(port: number, parts: (string | Buffer)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', (err) => (out ? resolve(out) : reject(err)));
    s.setTimeout(3000, () => s.destroy());
    for (const p of parts) s.write(p);
  });
}

function service(st: { services: { name: string; queued: number; workers: number }[] }, name: string) {
  return st.services.find((s) => s.name === name);
}

describe('queue limits, refusals and bad input', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({
      'max-queue-per-service': 5,
      'max-body-bytes': 1000,
      'service-linger-ms': 500,
      'default-timeout-ms': 3000,
      'max-timeout-ms': 10_000,
      'ping-interval-ms': 100,
      'pong-timeout-ms': 300,
    });
  });
  after(stopAll);

  it('answers 503 E_QUEUE_FULL with Retry-After once the service queue is full, and serves what it queued', { timeout: 10_000 }, async () => {
    const s = await RawSocket.worker(hub.url, 'full-1', { full: 1 });
    await waitUntil(async () => service(await stats(hub), 'full')?.workers === 1, 2000, 'registered');
    const before = (await stats(hub)).jobs.rejectedQueueFull;
    const accepted = Array.from({ length: 6 }, (_, i) => post(`${hub.url}/service/full`, `{"n":${i}}`));
    await waitUntil(async () => service(await stats(hub), 'full')?.queued === 5, 2000, 'five queued behind one running');
    for (let i = 0; i < 2; i++) {
      const over = await post(`${hub.url}/service/full`, '{"over":true}');
      assert.equal(over.status, 503);
      assert.equal(over.json().error.code, 'E_QUEUE_FULL');
      assert.equal(over.headers.get('x-error-code'), 'E_QUEUE_FULL');
      assert.equal(over.headers.get('retry-after'), '1');
    }
    assert.equal((await stats(hub)).jobs.rejectedQueueFull, before + 2);
    // The worker answers one job at a time; every accepted request gets its own reply.
    const answered = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const job = (await s.next((f) => f[0] === Op.Job && !answered.has(f[1]))) as JobFrame;
      answered.add(job[1]);
      s.send([Op.Reply, job[1], 200, 'application/json', null, job[9]]);
    }
    const results = await Promise.all(accepted);
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.text, `{"n":${i}}`);
    });
    const over = s.frames.filter((f) => f[0] === Op.Job && Buffer.from((f as JobFrame)[9]).toString() === '{"over":true}');
    assert.equal(over.length, 0, 'a refused request reached the worker');
    s.close();
  });

  it('answers 503 E_QUEUE_FULL once the queued bodies would pass --max-queued-bytes', { timeout: 10_000 }, async () => {
    const small = await startHub({ 'max-body-bytes': 1000, 'max-queued-bytes': 2500, 'default-timeout-ms': 3000 });
    const s = await RawSocket.worker(small.url, 'bytes-1', { bytes: 1 });
    await waitUntil(async () => service(await stats(small), 'bytes')?.workers === 1, 2000, 'registered');
    const body = (c: string) => JSON.stringify(c.repeat(998));
    const running = post(`${small.url}/service/bytes`, body('r'));
    await s.next((f) => f[0] === Op.Job);
    const queued = [post(`${small.url}/service/bytes`, body('a')), post(`${small.url}/service/bytes`, body('b'))];
    await waitUntil(async () => (await stats(small)).queuedBytes === 2000, 2000, 'two bodies queued');
    const over = await post(`${small.url}/service/bytes`, body('c'));
    assert.equal(over.status, 503);
    assert.equal(over.json().error.code, 'E_QUEUE_FULL');
    // A small body still fits under the byte limit.
    const fits = post(`${small.url}/service/bytes`, '"tiny"');
    await waitUntil(async () => (await stats(small)).queuedBytes === 2006, 2000, 'tiny body queued');
    const seen = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const job = (await s.next((f) => f[0] === Op.Job && !seen.has(f[1]))) as JobFrame;
      seen.add(job[1]);
      s.send([Op.Reply, job[1], 200, 'application/json', null, job[9]]);
    }
    assert.deepEqual(
      (await Promise.all([running, ...queued, fits])).map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal((await stats(small)).queuedBytes, 0);
    s.close();
  });

  it('answers 503 E_NO_WORKERS at once for a service that never had workers, a broadcast 200 [], creating no state', async () => {
    for (const path of ['/service/ghost', '/api/ghost/k1']) {
      const r = await post(hub.url + path, '{}', { 'x-timeout-ms': '4000' });
      assert.equal(r.status, 503, path);
      assert.equal(r.json().error.code, 'E_NO_WORKERS', path);
      assert.equal(r.headers.get('retry-after'), '1', path);
    }
    const t0 = Date.now();
    const b = await post(`${hub.url}/api/broadcast/ghost/k1`, '{}', { 'x-timeout-ms': '4000' });
    assert.ok(Date.now() - t0 < 1000, 'answered at once');
    assert.deepEqual([b.status, b.headers.get('content-type'), b.text], [200, 'application/json', '[]']);
    assert.equal(b.headers.get('x-broadcast-asked'), '0');
    assert.equal(service(await stats(hub), 'ghost'), undefined);
  });

  it('answers a keyed request 503 E_NO_WORKERS at once when only long-pollers, which own no keys, serve the service, and a broadcast []', {
    timeout: 10_000,
  }, async () => {
    const ac = new AbortController();
    const poll = fetch(`${hub.url}/service/pollonly/jobs?wait=5`, { signal: ac.signal }).catch(() => null);
    try {
      await waitUntil(async () => service(await stats(hub), 'pollonly') !== undefined, 2000, 'poller waiting');
      const b = await post(`${hub.url}/api/broadcast/pollonly/k1`, '{}', { 'x-timeout-ms': '3000' });
      assert.deepEqual([b.status, b.text], [200, '[]']);
      const r = await post(`${hub.url}/api/pollonly/k1`, '{}', { 'x-timeout-ms': '3000' });
      assert.equal(r.status, 503);
      assert.equal(r.json().error.code, 'E_NO_WORKERS');
    } finally {
      ac.abort();
      await poll;
    }
  });

  it('queues a job while its service lost its worker less than serviceLingerMs ago and serves it when a worker comes back', { timeout: 10_000 }, async () => {
    // Raw sockets leave at a moment the test controls: the request goes out as soon as the
    // hub has closed the session, well inside the 500 ms window.
    const gone = await RawSocket.worker(hub.url, 'linger-1', { linger: 1 });
    await waitUntil(async () => service(await stats(hub), 'linger')?.workers === 1, 2000, 'registered');
    gone.ws.close();
    await gone.closed;
    const pending = post(`${hub.url}/service/linger`, '{"waited":true}', { 'x-timeout-ms': '8000' });
    await waitUntil(async () => service(await stats(hub), 'linger')?.queued === 1, 2000, 'job queued in the linger window');
    const back = await startWorker({ url: hub.url, instanceId: 'linger-2', services: [{ name: 'linger' }] });
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"waited":true}');
    assert.match(r.headers.get('x-served-by') ?? '', /\/linger-2$/);
    assert.equal(back.events('job')[0]?.attempt, 1);
    const last = await RawSocket.worker(hub.url, 'linger-3', { linger: 1 });
    back.kill('SIGKILL');
    await back.exited;
    await waitUntil(async () => service(await stats(hub), 'linger')?.workers === 1, 2000, 'only the raw worker left');
    last.ws.close();
    await last.closed;
    // A job queued in the window that no worker takes ends at its deadline.
    const expires = await post(`${hub.url}/service/linger`, '{}', { 'x-timeout-ms': '200' });
    assert.equal(expires.status, 504);
    assert.equal(expires.json().error.code, 'E_DEADLINE');
    await sleep(600);
    const t0 = Date.now();
    const late = await post(`${hub.url}/service/linger`, '{}', { 'x-timeout-ms': '3000' });
    assert.ok(Date.now() - t0 < 1000, 'past the linger window the hub refuses at once instead of queueing');
    assert.equal(late.status, 503);
    assert.equal(late.json().error.code, 'E_NO_WORKERS');
    assert.equal(late.headers.get('retry-after'), '1');
  });

  it('answers 413 E_BODY_TOO_LARGE over --max-body-bytes, by content-length and by chunked body', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'sizes', services: [{ name: 'sizes' }] });
    const exact = await post(`${hub.url}/service/sizes`, 'y'.repeat(1000), { 'content-type': 'text/plain' });
    assert.equal(exact.status, 200);
    assert.equal(exact.text, 'y'.repeat(1000));
    for (const size of [1001, 3_000_000]) {
      const r = await post(`${hub.url}/service/sizes`, 'x'.repeat(size), { 'content-type': 'text/plain' });
      assert.equal(r.status, 413, `${size} bytes`);
      assert.equal(r.json().error.code, 'E_BODY_TOO_LARGE');
      assert.equal(r.headers.get('x-error-code'), 'E_BODY_TOO_LARGE');
    }
    const head = 'POST /service/sizes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n';
    const small = await rawExchange(hub.port, [head, '5\r\nhello\r\n', '6\r\n world\r\n', '0\r\n\r\n']);
    assert.match(small, /^HTTP\/1\.1 200 /);
    assert.ok(small.endsWith('\r\n\r\nhello world'), small);
    const chunk = 'z'.repeat(600);
    const big = await rawExchange(hub.port, [head, `258\r\n${chunk}\r\n`, `258\r\n${chunk}\r\n`, '0\r\n\r\n']);
    assert.match(big, /^HTTP\/1\.1 413 /);
    assert.match(big, /"code":"E_BODY_TOO_LARGE"/);
    assert.ok(!w.events('job').some((j) => String(j.body).startsWith('x') || String(j.body).startsWith('z')), 'an oversized body reached the worker');
    assert.equal((await stats(hub)).openJobs, 0);
  });

  it('answers 400 for bad names, keys and X-Timeout-Ms values, and creates no state for them', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'inputs', services: [{ name: 'inputs' }] });
    const bad: [string, Record<string, string>, string][] = [
      [`/service/${'a'.repeat(129)}`, {}, 'E_BAD_NAME'],
      ['/service/..', {}, 'E_BAD_NAME'],
      ['/service/...', {}, 'E_BAD_NAME'],
      ['/service/%2E%2E', {}, 'E_BAD_NAME'],
      ['/service/bad%ZZname', {}, 'E_BAD_NAME'],
      ['/service/bad%E0%A4name', {}, 'E_BAD_NAME'],
      ['/service/sp%20ace', {}, 'E_BAD_NAME'],
      [`/api/${'s'.repeat(129)}/k`, {}, 'E_BAD_NAME'],
      [`/api/broadcast/../k`, {}, 'E_BAD_NAME'],
      [`/api/inputs/${'k'.repeat(257)}`, {}, 'E_BAD_KEY'],
      [`/api/inputs/${encodeURIComponent(`${'é'.repeat(128)}k`)}`, {}, 'E_BAD_KEY'],
      [`/api/broadcast/inputs/${'k'.repeat(257)}`, {}, 'E_BAD_KEY'],
      ['/api/inputs/bad%ZZkey', {}, 'E_BAD_KEY'],
      ['/service/inputs', { 'x-timeout-ms': '0' }, 'E_BAD_TIMEOUT'],
      ['/service/inputs', { 'x-timeout-ms': '-5' }, 'E_BAD_TIMEOUT'],
      ['/service/inputs', { 'x-timeout-ms': 'abc' }, 'E_BAD_TIMEOUT'],
      ['/service/inputs', { 'x-timeout-ms': '1.5' }, 'E_BAD_TIMEOUT'],
      ['/service/inputs', { 'x-timeout-ms': '1e3' }, 'E_BAD_TIMEOUT'],
      ['/api/inputs/k', { 'x-timeout-ms': '0' }, 'E_BAD_TIMEOUT'],
    ];
    // The hub drops services that lingered out once a second; let it drop those of earlier tests
    // first, so that a drop between the two snapshots does not look like a change.
    await waitUntil(async () => (await stats(hub)).services.every((s: { workers: number }) => s.workers > 0), 3000, 'idle services swept');
    const before = await stats(hub);
    for (const [path, headers, code] of bad) {
      const r = await rawPost(hub.port, path, '{"bad":true}', headers);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(headers)}`);
      assert.equal(JSON.parse(r.text).error.code, code, `${path} ${JSON.stringify(headers)}`);
      assert.equal(r.headers['x-error-code'], code);
    }
    const after = await stats(hub);
    assert.deepEqual(after.services.map((s: { name: string }) => s.name).sort(), before.services.map((s: { name: string }) => s.name).sort());
    assert.equal(after.jobs.accepted, before.jobs.accepted);
    assert.ok(!w.events('job').some((j) => j.body === '{"bad":true}'), 'a bad request reached the worker');
    // The limits themselves are fine: 128 characters of name, 256 bytes of key.
    assert.equal((await post(`${hub.url}/service/${'a'.repeat(128)}`)).json().error.code, 'E_NO_WORKERS');
    assert.equal((await post(`${hub.url}/api/inputs/${encodeURIComponent('é'.repeat(128))}`)).status, 200);
    assert.equal((await post(`${hub.url}/api/inputs/${'k'.repeat(256)}`)).status, 200);
  });

  it('clamps a large X-Timeout-Ms to the maximum instead of refusing it', { timeout: 10_000 }, async () => {
    const w = await startWorker({ url: hub.url, instanceId: 'clamp', services: [{ name: 'clamp' }] });
    for (const value of ['10001', '99999999', '999999999999999']) {
      const r = await post(`${hub.url}/service/clamp`, `{"t":"${value}"}`, { 'x-timeout-ms': value });
      assert.equal(r.status, 200, value);
      const job = await w.waitFor((l) => l.event === 'job' && l.body === `{"t":"${value}"}`);
      // Clamped to the 10 s maximum: more than the 3 s default, never more than the maximum.
      assert.ok((job.remainingMs as number) <= 10_000 && (job.remainingMs as number) > 5000, `remainingMs ${job.remainingMs} for X-Timeout-Ms ${value}`);
    }
  });

  it('answers unknown routes and methods with a JSON 404', async () => {
    const routes: [string, string][] = [
      ['GET', '/nope'],
      ['POST', '/nope'],
      ['GET', '/service/inputs'],
      ['PUT', '/service/inputs'],
      ['DELETE', '/service/inputs'],
      ['PATCH', '/service/inputs'],
      ['OPTIONS', '/api/inputs/k'],
      ['OPTIONS', '/api/broadcast/inputs/k'],
      ['POST', '/service'],
      ['POST', '/service/'],
      ['POST', '/api/inputs'],
      ['POST', '/service/inputs/extra'],
      ['GET', '/service/inputs/jobz'],
      ['POST', '/api/broadcast/inputs/k/extra'],
    ];
    for (const [method, path] of routes) {
      const r = await fetch(hub.url + path, { method, ...(method === 'GET' || method === 'OPTIONS' ? {} : { body: '{}' }) });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${method} ${path}`);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'E_NOT_FOUND', `${method} ${path}`);
    }
  });

  it('answers HEAD on an unknown route with a bodiless 404 that keeps the connection usable', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ask = (method: string, path: string) =>
      new Promise<{ status: number | string; code: unknown; text: string; length?: number }>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: hub.port, method, path, agent, timeout: 3000 }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
          res.on('end', () =>
            resolve({ status: res.statusCode!, code: res.headers['x-error-code'], text, ...(method === 'HEAD' && res.statusCode === 200 ? { length } : {}) }),
          );
        });
        req.on('error', (err) => resolve({ status: `error: ${err.message}`, code: null, text: '' }));
        req.end();
      });
    try {
      for (const path of ['/nope', '/service/inputs', '/api/inputs/k', '/api/broadcast/inputs/k', '/nope']) {
        assert.deepEqual(await ask('HEAD', path), { status: 404, code: 'E_NOT_FOUND', text: '' }, `HEAD ${path}`);
        const after = await ask('GET', '/healthz');
        assert.equal(after.status, 200, `GET after HEAD ${path}`);
        assert.equal(JSON.parse(after.text).ok, true);
      }
      // Probes and link checkers use HEAD on the operator pages: their GET's status and length, no body.
      for (const path of ['/', '/healthz', '/readyz', '/dashboard/dashboard.js']) {
        const head = await ask('HEAD', path);
        const get = await ask('GET', path);
        assert.deepEqual([head.status, head.text], [200, ''], `HEAD ${path}`);
        assert.equal(get.status, 200, `GET ${path} after HEAD`);
        assert.equal(head.length, Buffer.byteLength(get.text), `HEAD ${path} reports the GET's length`);
      }
    } finally {
      agent.destroy();
    }
  });
});
