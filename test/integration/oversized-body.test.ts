/**
 * Bodies over the limit get their 413 even from clients that write the whole body before they
 * read (Node's fetch and undici): the hub reads and drops the rest, within its linger bounds,
 * then answers with `Connection: close`.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type HubProc, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

const MiB = 1024 * 1024;

/** A body written in 64 KiB pieces a couple of milliseconds apart: the client is still writing when the limit is passed. */
function trickle(bytes: number): Readable {
  return Readable.from(
    (async function* () {
      for (let sent = 0; sent < bytes; sent += 65536) {
        yield Buffer.alloc(Math.min(65536, bytes - sent), 97);
        await new Promise((r) => setTimeout(r, 2));
      }
    })(),
  );
}

async function undiciStatus(url: string, body: Buffer | Readable, headers: Record<string, string> = {}): Promise<number | string> {
  try {
    const r = await request(url, { method: 'POST', body, headers });
    await r.body.text();
    return r.statusCode === 413 && r.headers.connection === 'close' ? 413 : `${r.statusCode} connection: ${r.headers.connection}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

async function fetchStatus(url: string, body: Buffer): Promise<number | string> {
  return fetch(url, { method: 'POST', body }).then(
    async (r) => {
      await r.text();
      return r.status;
    },
    (err: Error & { cause?: { code?: string } }) => err.cause?.code ?? err.message,
  );
}

describe('oversized bodies', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'body-linger-ms': 3000 });
    await startWorker({ url: hub.url, services: [{ name: 'big' }] });
  });
  after(stopAll);

  for (const mb of [1.1, 2, 8]) {
    it(`answers 413 to undici and fetch for ${mb} MB bodies, sent at once, trickled, with a length or chunked`, async () => {
      const size = Math.round(mb * MiB);
      const body = Buffer.alloc(size, 97);
      const url = `${hub.url}/service/big`;
      const outcomes = await Promise.all([
        ...Array.from({ length: 5 }, () => undiciStatus(url, body)),
        ...Array.from({ length: 5 }, () => fetchStatus(url, body)),
        ...Array.from({ length: 3 }, () => undiciStatus(url, trickle(size), { 'content-length': String(size) })),
        ...Array.from({ length: 3 }, () => undiciStatus(url, trickle(size))),
      ]);
      assert.deepEqual(outcomes, Array(16).fill(413));
      const st = await stats(hub);
      assert.equal(st.http.unanswered, 0);
      assert.equal(st.openJobs, 0);
    });
  }

  it('answers 413 after the linger time to a caller that declared a large body and stopped sending, and closes', async () => {
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect(hub.port, '127.0.0.1');
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('close', () => resolve(out));
      s.write(`POST /service/big HTTP/1.1\r\nHost: x\r\nContent-Length: ${4 * MiB}\r\n\r\n`);
      s.write(Buffer.alloc(100_000, 98));
    });
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /\r\nConnection: close\r\n/i);
    await waitUntil(async () => (await stats(hub)).http.unanswered === 0, 2000, 'nothing unanswered');
  });
});

describe('oversized bodies past the linger bounds', { timeout: 30_000 }, () => {
  after(stopAll);

  it('stops reading at --body-linger-bytes: answers 413 and closes, and keeps serving', async () => {
    const hub = await startHub({ 'max-body-bytes': 1000, 'body-linger-bytes': 65536 });
    await startWorker({ url: hub.url, services: [{ name: 'small' }] });
    const url = `${hub.url}/service/small`;
    // 4 MB past a 1,000-byte limit: the hub stops after 64 KiB more. The client sees the 413 or,
    // if it is still writing when the socket closes, a reset — never a hang.
    const outcome = await undiciStatus(url, trickle(4 * MiB), { 'content-length': String(4 * MiB) });
    assert.ok(outcome === 413 || outcome === 'EPIPE' || outcome === 'ECONNRESET' || outcome === 'UND_ERR_SOCKET', String(outcome));
    const ok = await request(url, { method: 'POST', body: 'fine' });
    assert.equal(ok.statusCode, 200);
    assert.equal(await ok.body.text(), 'fine');
    const st = await stats(hub);
    assert.equal(st.http.unanswered, 0);
  });
});

describe('oversized request heads', { timeout: 30_000 }, () => {
  after(stopAll);

  /** Sends a raw request with `n` extra headers of `size` bytes each; the answer's status line, or '' when closed without one. */
  function rawHead(port: number, n: number, size: number): Promise<string> {
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('close', () => resolve(out.split('\r\n')[0] ?? ''));
      s.on('error', () => {});
      s.setTimeout(3000, () => s.destroy());
      const extra = Array.from({ length: n }, (_, i) => `X-Pad-${i}: ${'p'.repeat(size)}\r\n`).join('');
      s.write(`POST /service/heads HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n${extra}\r\n{}`);
    });
  }

  it('answers 431 past the header limits (below the point where the socket is closed unanswered), and 200 within them', async () => {
    // Heads under 4 KiB: uWebSockets.js closes a larger head that does not arrive in one read.
    const hub = await startHub({ 'max-header-bytes': 2000 });
    await startWorker({ url: hub.url, services: [{ name: 'heads' }] });
    // Host and Content-Length are two of the lines.
    assert.match(await rawHead(hub.port, 38, 10), /^HTTP\/1\.1 200 /);
    for (const n of [39, 45, 46]) assert.match(await rawHead(hub.port, n, 10), /^HTTP\/1\.1 431 /, `${n + 2} header lines`);
    assert.match(await rawHead(hub.port, 10, 250), /^HTTP\/1\.1 431 /, 'about 2,600 bytes of headers');
    assert.match(await rawHead(hub.port, 10, 150), /^HTTP\/1\.1 200 /, 'about 1,600 bytes of headers');
    const r = await request(`${hub.url}/service/heads`, {
      method: 'POST',
      body: '{}',
      headers: Object.fromEntries(Array.from({ length: 45 }, (_, i) => [`x-h${i}`, 'v'])),
    });
    assert.equal(r.statusCode, 431);
    assert.equal(JSON.parse(await r.body.text()).error.code, 'E_HEADERS_TOO_LARGE');
    const st = await stats(hub);
    assert.deepEqual([st.http.unanswered, st.openJobs], [0, 0]);
  });
});
