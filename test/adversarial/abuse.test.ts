/**
 * Floods: connections, registrations, services, requests, long-polls and peer frames, each past
 * the limit that bounds it. Each is refused as documented (README "HTTP API" and CLI table,
 * PROTOCOL.md), the hub keeps serving others, its counters come back to baseline, and its
 * memory (VmRSS from /proc) stays bounded: a second round of the same floods adds next to nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { Op, type ResponseFrame } from '../../client/protocol.js';
import { PeerOp } from '../../server/mesh/peer-protocol.js';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { exchange, rssKiB, servesAgain } from '../helpers/raw-http.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { RawSocket } from '../helpers/raw-socket.js';

const LIMITS = {
  'max-connections': 40,
  'max-services': 30,
  'max-requests-per-session': 50,
  'max-pollers-per-service': 10,
  'max-pollers': 25,
  'max-queue-per-service': 20,
};

describe('abuse: floods past every limit', { timeout: 120_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({
      'hub-id': 'ab',
      ...LIMITS,
      'default-timeout-ms': 2000,
      'longpoll-wait-ms': 1000,
      'service-linger-ms': 300,
      'ping-interval-ms': 200,
      'pong-timeout-ms': 2000,
      'peer-timeout-ms': 2000,
    });
    await startWorker({ url: hub.url, instanceId: 'ab-healthy', services: [{ name: 'healthy' }] });
  });
  after(stopAll);

  async function stillServes(tag: string): Promise<void> {
    await servesAgain(hub, 'healthy', tag);
    // What each flood cost the hub, for the record (peak = the most the process ever held).
    console.log(`${tag}: hub RSS ${Math.round((await rssKiB(hub.pid)) / 1024)} MiB, peak ${Math.round((await rssKiB(hub.pid, 'VmHWM')) / 1024)} MiB`);
  }

  /** Opens WebSockets at /ws (or /peer) until `n` are open or one is refused; returns both lists. */
  async function openMany(n: number, path = '/ws'): Promise<{ open: WebSocket[]; refused: { status: number; code: string | undefined }[] }> {
    const open: WebSocket[] = [];
    const refused: { status: number; code: string | undefined }[] = [];
    await Promise.all(
      Array.from({ length: n }, async () => {
        const ws = new WebSocket(`${hub.url.replace('http', 'ws')}${path}`);
        ws.on('error', () => {});
        await new Promise<void>((resolve) => {
          ws.once('open', () => {
            open.push(ws);
            resolve();
          });
          ws.once('unexpected-response', (_req, res) => {
            refused.push({ status: res.statusCode ?? 0, code: res.headers['x-error-code'] as string | undefined });
            res.resume();
            resolve();
          });
          ws.once('close', () => resolve());
        });
      }),
    );
    return { open, refused };
  }

  /** Services of a flood linger a moment after their sessions: wait for the healthy worker's alone. */
  async function swept(): Promise<void> {
    await waitUntil(async () => (await stats(hub)).services.length === 1, 5000, 'services of the last flood swept');
  }

  async function floods(round: number): Promise<void> {
    await swept();
    // Connections: the healthy worker holds one; the rest of --max-connections open, then 503.
    const conns = await openMany(LIMITS['max-connections'] + 20);
    assert.equal(conns.open.length, LIMITS['max-connections'] - 1, `round ${round}: open`);
    assert.equal(conns.refused.length, 21);
    for (const r of conns.refused) assert.deepEqual(r, { status: 503, code: 'E_OVERLOADED' });
    // Peer links count toward the same limit.
    const peers = await openMany(3, '/peer');
    assert.equal(peers.open.length, 0);
    assert.equal(peers.refused.length, 3);
    await stillServes(`round ${round}: connections at the limit`);
    for (const ws of conns.open) ws.terminate();
    await waitUntil(async () => (await stats(hub)).sockets.connections === 1, 3000, 'the flood of connections gone');

    // Registrations: one session registers one service 2000 times (one registration, updated),
    // then more services than --max-services.
    const s = await RawSocket.worker(hub.url, `ab-reg-${round}`);
    for (let i = 1; i <= 2000; i++) s.send([Op.Register, 'ab-same', (i % 100) + 1, 1]);
    const names = Array.from({ length: LIMITS['max-services'] + 10 }, (_, i) => `ab-svc-${i}`);
    for (const name of names) s.send([Op.Register, name, 1, 1]);
    await waitUntil(() => s.frames.filter((f) => f[0] === Op.ProtocolError).length >= 12, 3000, 'refusals');
    const refusedNames = s.frames.filter((f) => f[0] === Op.ProtocolError).map((f) => [f[1], f[3], f[4]]);
    // The hub's own services: healthy and ab-same are two of the 30.
    assert.deepEqual(
      refusedNames,
      names.slice(LIMITS['max-services'] - 2).map((n) => ['E_OVERLOADED', n, false]),
    );
    const me = (await stats(hub)).workers.find((w: { instanceId: string }) => w.instanceId === `ab-reg-${round}`);
    assert.equal(me.services.length, LIMITS['max-services'] - 1);
    assert.equal(me.services.find((x: { name: string }) => x.name === 'ab-same').credit, 1);

    // Requests over one session: --max-requests-per-session in flight, then 503 E_OVERLOADED each.
    s.send([Op.Register, 'ab-same', 100, 1]);
    for (let id = 1; id <= LIMITS['max-requests-per-session'] + 5; id++)
      s.send([Op.Request, id, 0, 'ab-same', null, 1500, null, null, null, Buffer.from('{}')]);
    await waitUntil(() => s.frames.filter((f) => f[0] === Op.Response).length === 5, 3000, 'refused requests');
    for (const r of s.frames.filter((f) => f[0] === Op.Response) as ResponseFrame[]) {
      assert.equal(r[2], 503);
      assert.equal(r[4]?.['x-error-code'], 'E_OVERLOADED');
      assert.ok(r[1] > LIMITS['max-requests-per-session'], `request ${r[1]} refused`);
    }
    // The jobs reached this same session as a worker: it never answers them; closing it ends both.
    s.close();
    await stillServes(`round ${round}: registrations and requests`);

    // HTTP requests past the queue: a service whose only worker never answers.
    await swept();
    const hang = await RawSocket.worker(hub.url, `ab-hang-${round}`, { 'ab-hang': 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'ab-hang' && x.workers === 1),
      2000,
      'ab-hang',
    );
    const calls = Array.from({ length: 60 }, () => post(`${hub.url}/service/ab-hang`, '{}', { 'x-timeout-ms': '800' }));
    const outcomes = (await Promise.all(calls)).map((r) => `${r.status} ${r.headers.get('x-error-code')}`);
    // One at the worker, 20 queued: both wait for their deadline; the other 39 are refused at once.
    assert.equal(outcomes.filter((o) => o === '504 E_DEADLINE').length, 1 + LIMITS['max-queue-per-service']);
    assert.equal(outcomes.filter((o) => o === '503 E_QUEUE_FULL').length, 60 - 1 - LIMITS['max-queue-per-service']);
    hang.close();
    await stillServes(`round ${round}: queue flood`);

    // Long-polls: 10 wait per service, 25 in all; the rest get 503 E_OVERLOADED at once.
    const poll = (name: string) => exchange(hub.port, [`GET /service/${name}/jobs?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n`], { waitMs: 4000 });
    const polled = await Promise.all([...Array(12).fill('ab-poll-a'), ...Array(10).fill('ab-poll-b'), ...Array(8).fill('ab-poll-c')].map(poll));
    const got = polled.map((x) => `${x.responses[0]?.status} ${x.responses[0]?.headers['x-error-code'] ?? ''}`.trim());
    assert.equal(got.filter((g) => g === '204').length, LIMITS['max-pollers'], got.join(','));
    assert.equal(got.filter((g) => g === '503 E_OVERLOADED').length, 30 - LIMITS['max-pollers'], got.join(','));
    await stillServes(`round ${round}: polls`);

    // A raw peer: snapshot requests answered at most once a second, services of its members
    // capped at a budget of their own, forwards for instances the hub does not hold handed back.
    const p = await RawPeer.linked(hub.url, `ab-peer-${round}`);
    await p.next((f) => f[0] === PeerOp.Members);
    for (let i = 0; i < 500; i++) p.send([PeerOp.SnapshotRequest]);
    p.send([PeerOp.Members, 0, Array.from({ length: 5 * LIMITS['max-services'] }, (_, i) => [`ab-far-${i}`, `far-${i}`, 1] as [string, string, number])]);
    for (let i = 1; i <= 200; i++) p.send([PeerOp.Forward, i, 1, 'healthy', 'k', 'not-here', 1000, 1, null, null, null, Buffer.from('{}'), 1]);
    await waitUntil(() => p.frames.filter((f) => f[0] === PeerOp.HandBack).length === 200, 3000, 'every forward handed back');
    assert.ok(p.frames.filter((f) => f[0] === PeerOp.Members).length <= 2, 'snapshots answered at most once a second');
    const far = (await stats(hub)).services.filter((x: { name: string }) => x.name.startsWith('ab-far-'));
    assert.equal(far.length, LIMITS['max-services']);
    // The hub's own workers still have all of their budget.
    const own = await RawSocket.worker(hub.url, `ab-own-${round}`, { 'ab-own': 1 });
    await waitUntil(
      async () => (await stats(hub)).services.some((x: { name: string; workers: number }) => x.name === 'ab-own' && x.workers === 1),
      2000,
      'own service',
    );
    own.close();
    p.close();
    await waitUntil(async () => !(await stats(hub)).services.some((x: { name: string }) => x.name.startsWith('ab-far-')), 3000, "the peer's services gone");
    await stillServes(`round ${round}: peer flood`);
  }

  it('refuses each flood as documented, keeps serving, and holds its memory steady over a second round', async () => {
    await floods(1);
    const rss1 = await rssKiB(hub.pid);
    await floods(2);
    await floods(3);
    const rss3 = await rssKiB(hub.pid);
    assert.ok(rss3 - rss1 < 40 * 1024, `RSS grew from ${rss1} KiB to ${rss3} KiB over two more rounds`);
    assert.ok(rss3 < 400 * 1024, `RSS ${rss3} KiB`);
  });
});
