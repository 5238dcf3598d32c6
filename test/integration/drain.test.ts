import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { assertNoReadRequestLost, callUntilStopped } from '../helpers/drain-load.js';
import { post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';

describe('a clean drain', () => {
  after(stopAll);

  it('resets no request it read under keep-alive load on SIGTERM: each gets one answer, 200 or 503', { timeout: 30_000 }, async (t) => {
    const hub = await startHub({ 'shutdown-grace-ms': 3000, 'default-timeout-ms': 10_000 });
    const w = await startWorker({ url: hub.url, services: [{ name: 'drain-slow', mode: 'sleep', sleepMs: 1000, concurrency: 64 }] });
    const callers = 48;
    const load = callUntilStopped(`${hub.url}/service/drain-slow`, callers, 48);
    try {
      // Every keep-alive connection busy with its second one-second job when the signal comes.
      await waitUntil(async () => (await stats(hub)).jobs.accepted >= 2 * callers, 5000, 'load');
      hub.kill('SIGTERM');
      const exit = await hub.exited;
      await load.stop();
      assert.equal(exit.code, 0, `hub exit ${JSON.stringify(exit)}`);
      const { answered, counts, read } = await assertNoReadRequestLost(load.outcomes, hub, callers);
      t.diagnostic(`outcomes ${JSON.stringify(counts)}; the hub read ${read}`);
      const ok = new Set<string>();
      for (const a of answered) {
        if (a.status === 200) {
          assert.equal(a.text, a.sent);
          ok.add(a.sent);
        } else {
          assert.equal(a.status, 503, a.text);
          assert.equal(JSON.parse(a.text).error.code, 'E_SHUTTING_DOWN');
        }
      }
      // Each job the worker ran was answered to its caller, once, with the worker's reply.
      const ran = w.events('job').map((j) => j.body as string);
      assert.equal(new Set(ran).size, ran.length, 'no job ran twice');
      for (const body of ran) assert.ok(ok.has(body), `job ${body} ran but its caller got no 200`);
      assert.ok(ok.size >= callers, `only ${ok.size} answered with 200`);
    } finally {
      await load.stop();
    }
  });

  it('closes the connection after every answer while draining: job, error, operator, 404 and long-poll answers', { timeout: 20_000 }, async () => {
    const hub = await startHub({ 'shutdown-grace-ms': 5000, 'default-timeout-ms': 10_000 });
    await startWorker({ url: hub.url, services: [{ name: 'hold', mode: 'sleep', sleepMs: 1500 }] });
    // Before the signal: a job that keeps the hub draining, a long-poll that waits through the
    // drain, and a keep-alive connection whose first answer did not close it.
    const job = new RawHttp(hub.port);
    job.send('POST /service/hold HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"j":42}');
    const poll = new RawHttp(hub.port);
    poll.send('GET /service/legacy/jobs?wait=30 HTTP/1.1\r\nHost: hub\r\n\r\n');
    const kept = new RawHttp(hub.port);
    kept.send('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n');
    const first = await kept.answer();
    assert.equal(first.status, 200);
    assert.equal(first.headers.connection, undefined, 'a keep-alive answer before the drain');
    await waitUntil(async () => (await stats(hub)).longPoll.waiting === 1 && (await stats(hub)).openJobs === 1, 3000, 'job and poll waiting');

    hub.kill('SIGTERM');
    await waitUntil(async () => (await fetch(`${hub.url}/readyz`).catch(() => null))?.status === 503, 2000, 'draining');
    kept.send('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n');
    const onKept = await kept.answer();
    assert.deepEqual([onKept.status, onKept.headers.connection, await kept.closedByHub()], [200, 'close', true], 'keep-alive connection');
    const cases: [string, string, number][] = [
      ['GET /healthz', 'GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n', 200],
      ['GET /readyz', 'GET /readyz HTTP/1.1\r\nHost: hub\r\n\r\n', 503],
      ['GET /stats', 'GET /stats HTTP/1.1\r\nHost: hub\r\n\r\n', 200],
      ['GET /nowhere', 'GET /nowhere HTTP/1.1\r\nHost: hub\r\n\r\n', 404],
      ['POST /service/hold', 'POST /service/hold HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\n{}', 503],
      ['POST /service/bad name', 'POST /service/bad%20name HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\n{}', 400],
      ['GET /service/legacy/jobs', 'GET /service/legacy/jobs HTTP/1.1\r\nHost: hub\r\n\r\n', 503],
      ['POST /jobs/unknown', 'POST /jobs/AAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\n{}', 404],
      [
        'GET /ws (upgrade)',
        'GET /ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        503,
      ],
    ];
    for (const [what, text, status] of cases) {
      const c = new RawHttp(hub.port);
      c.send(text);
      const a = await c.answer();
      assert.deepEqual([a.status, a.headers.connection, await c.closedByHub()], [status, 'close', true], what);
    }
    // A HEAD answer has no body: it says close, and the caller closes.
    const head = new RawHttp(hub.port);
    head.send('HEAD /nowhere HTTP/1.1\r\nHost: hub\r\n\r\n');
    const h = await head.answer(true);
    assert.deepEqual([h.status, h.headers.connection], [404, 'close']);
    head.end();

    // The job in flight and the waiting poll are answered at the end of the drain, and closed.
    const done = await job.answer();
    assert.deepEqual([done.status, done.body, done.headers.connection, await job.closedByHub()], [200, '{"j":42}', 'close', true]);
    const polled = await poll.answer(true);
    assert.deepEqual([polled.status, polled.headers.connection, await poll.closedByHub()], [204, 'close', true]);
    assert.equal((await hub.exited).code, 0);
    // Refused after the port closed: nothing the hub read is left.
    await assert.rejects(post(`${hub.url}/service/hold`), /fetch failed/);
  });
});

/** One HTTP/1.1 connection written and read by hand, to see its headers and who closes it. */
class RawHttp {
  private readonly socket: net.Socket;
  private data = '';
  private readonly ended: Promise<void>;
  private waiter: (() => void) | null = null;

  constructor(port: number) {
    // Half-open allowed: the hub's FIN is seen as such, not answered by ours.
    this.socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.socket.setEncoding('latin1');
    this.socket.on('error', () => {});
    this.socket.on('data', (d: string) => {
      this.data += d;
      this.waiter?.();
    });
    this.ended = new Promise((resolve) => this.socket.once('end', () => resolve()));
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** The next answer on the connection (`noBody`: for HEAD and 204, which carry none). */
  async answer(noBody = false): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const until = Date.now() + 8000;
    for (;;) {
      const end = this.data.indexOf('\r\n\r\n');
      if (end !== -1) {
        const lines = this.data.slice(0, end).split('\r\n');
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
        const length = noBody ? 0 : Number(headers['content-length'] ?? 0);
        if (this.data.length >= end + 4 + length) {
          const body = this.data.slice(end + 4, end + 4 + length);
          this.data = this.data.slice(end + 4 + length);
          return { status: Number(lines[0]!.split(' ')[1]), headers, body };
        }
      }
      if (Date.now() > until) throw new Error(`no answer; got ${JSON.stringify(this.data)}`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  /** Whether the hub closed its side (FIN) within a second. */
  closedByHub(): Promise<boolean> {
    return Promise.race([this.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
  }

  end(): void {
    this.socket.end();
  }
}
