/**
 * A WebSocket caller that sends requests but does not read its answers: past
 * --max-session-queued-bytes of unsent frames its requests are refused (503 E_OVERLOADED), and
 * a session that does not catch up within --slow-consumer-ms is closed (4003), so the hub's
 * memory stays bounded however long the flood goes on.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Op, type ResponseFrame } from '../../client/protocol.js';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawSocket } from '../helpers/raw-socket.js';

const MiB = 1024 * 1024;
const CAP = 2 * MiB;
const BODY = Buffer.alloc(64 * 1024, 0x61);

interface SessionStats {
  sessionId: number;
  name?: string;
  queuedBytes: number;
}

/** A field of /proc/PID/status in bytes (VmRSS: now, VmHWM: the peak). */
function procBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  assert.ok(m, `${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** A caller session that says hello and then stops reading its socket. */
async function nonReader(hub: HubProc, name: string): Promise<{ s: RawSocket; tcp: Socket }> {
  const s = await RawSocket.open(hub.url);
  s.send([Op.Hello, { versions: [1], role: 'client', name }]);
  await s.next((f) => f[0] === Op.Welcome);
  const tcp = (s.ws as unknown as { _socket: Socket })._socket;
  tcp.pause();
  return { s, tcp };
}

function request(s: RawSocket, id: number): void {
  s.send([Op.Request, id, 0, 'echo', null, 10_000, 'application/octet-stream', null, null, BODY]);
}

describe('a caller that does not read its socket', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({
      'max-session-queued-bytes': CAP,
      'slow-consumer-ms': 1000,
      // Requests in flight never reach this cap: the answers, not the jobs, are what piles up.
      'max-requests-per-session': 64,
      'ping-interval-ms': 100,
      'pong-timeout-ms': 5000,
    });
    await startWorker({ url: hub.url, instanceId: 'echo-1', services: [{ name: 'echo', concurrency: 64 }] });
  });
  after(stopAll);

  const session = async (name: string): Promise<SessionStats | undefined> =>
    (await stats(hub)).workers.find((w: SessionStats) => w.name === name) as SessionStats | undefined;

  it('refuses its requests past the cap, and keeps the session when it reads again in time', async () => {
    const { s, tcp } = await nonReader(hub, 'catches-up');
    let id = 0;
    // Fill the socket's buffers and then the session's queue, a few requests per turn.
    await waitUntil(
      async () => {
        for (let i = 0; i < 8; i++) request(s, ++id);
        return ((await session('catches-up'))?.queuedBytes ?? 0) > CAP;
      },
      20_000,
      'the session over its cap',
    );
    const refusedId = 1_000_000;
    request(s, refusedId);
    await sleep(100);
    tcp.resume();
    const r = (await s.next((f) => f[0] === Op.Response && f[1] === refusedId, 10_000)) as ResponseFrame;
    assert.equal(r[2], 503);
    assert.equal(r[4]?.['x-error-code'], 'E_OVERLOADED');
    assert.match(JSON.parse(Buffer.from(r[5]).toString()).error.message, /unsent frames/);
    // It read in time: it stays, and its requests are taken again.
    await waitUntil(async () => (await session('catches-up'))?.queuedBytes === 0, 5000, 'the queue drained');
    request(s, refusedId + 1);
    const ok = (await s.next((f) => f[0] === Op.Response && f[1] === refusedId + 1, 5000)) as ResponseFrame;
    assert.equal(ok[2], 200);
    assert.equal(s.closeCode, null);
    s.close();
  });

  it('closes it as a slow consumer; memory stays bounded and other callers are served meanwhile', async () => {
    // Warm up the paths the flood takes, then take the baseline.
    for (let i = 0; i < 20; i++) assert.equal((await post(`${hub.url}/service/echo`, BODY)).status, 200);
    const baseline = procBytes(hub.pid, 'VmRSS');
    const before = (await stats(hub)).sockets.slowConsumers;
    const until = Date.now() + 6000;
    const closeCodes: number[] = [];
    let served = 0;
    let maxQueued = 0;
    const control = (async () => {
      while (Date.now() < until) {
        const r = await post(`${hub.url}/service/echo`, `{"n":${served}}`);
        assert.equal(r.status, 200, 'another caller is served');
        assert.equal(r.text, `{"n":${served}}`);
        served++;
        await sleep(50);
      }
    })();
    // One non-reader after another: each floods until the hub closes it, then the next starts.
    for (let n = 0; Date.now() < until; n++) {
      const name = `flooder-${n}`;
      const { s, tcp } = await nonReader(hub, name);
      let id = 0;
      const flood = setInterval(() => {
        for (let i = 0; i < 4; i++) request(s, ++id);
      }, 5);
      for (;;) {
        const st = await session(name);
        if (!st) break;
        maxQueued = Math.max(maxQueued, st.queuedBytes);
        if (Date.now() > until + 10_000) assert.fail(`${name} was never closed`);
        await sleep(50);
      }
      clearInterval(flood);
      tcp.resume();
      closeCodes.push(await s.closed);
    }
    await control;
    const peak = procBytes(hub.pid, 'VmHWM');
    const st = await waitUntil(
      async () => {
        const x = await stats(hub);
        return x.sockets.queuedBytes === 0 && x.workers.every((w: SessionStats) => !w.name?.startsWith('flooder')) ? x : null;
      },
      5000,
      'queued bytes back to 0',
    );
    console.log(
      `slow consumer flood: ${closeCodes.length} sessions closed (${closeCodes.join(',')}), largest queue ${(maxQueued / MiB).toFixed(1)} MiB, ` +
        `hub RSS ${(baseline / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB; ${served} control requests served`,
    );
    assert.ok(closeCodes.length >= 1);
    // The close frame waits behind what the socket holds; a client that gives up first sees 1006.
    for (const code of closeCodes) assert.ok(code === 4003 || code === 1006, `close code ${code}`);
    assert.ok(closeCodes.includes(4003), 'at least one client read its way to the 4003 close');
    assert.equal(st.sockets.slowConsumers - before, closeCodes.length);
    assert.ok(maxQueued <= 2 * CAP + 2 * BODY.length, `a session held ${maxQueued} bytes unsent`);
    assert.ok(served >= 10, `only ${served} control requests served`);
    assert.ok(peak < baseline + 64 * MiB, `peak RSS ${peak} against a baseline of ${baseline}`);
  });
});
