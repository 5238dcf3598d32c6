/**
 * Limits on a peer link, spoken by hand: forwards in flight from a peer (--max-forwards-per-peer,
 * the rest refused with ForwardError 503 E_OVERLOADED) and to it (the origin refuses its own
 * callers first), and a peer that reads slowly is not cut, while one that reads nothing is.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CloseCode, RequestMode } from '../../client/protocol.js';
import { type PeerFrame, PeerOp } from '../../server/mesh/peer-protocol.js';
import { type HubProc, post, sleep, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawPeer } from '../helpers/raw-peer.js';

type Of<N extends number> = Extract<PeerFrame, { 0: N }>;
const BODY = Buffer.alloc(64 * 1024, 0x62);

interface PeerStats {
  hubId: string | null;
  state: string;
  queuedBytes: number;
  inflightIn: number;
  forwardsRefused: number;
}

async function peerStats(hub: HubProc, hubId: string): Promise<PeerStats | undefined> {
  return (await stats(hub)).mesh.peers.find((p: PeerStats) => p.hubId === hubId);
}

function forward(p: RawPeer, id: number, instanceId: string, service: string, body: Buffer = BODY): void {
  p.send([PeerOp.Forward, id, RequestMode.Keyed, service, `k${id}`, instanceId, 5000, 1, null, null, null, body, 1]);
}

describe('peer link limits', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ 'hub-id': 'limits-hub', 'max-forwards-per-peer': 3, 'peer-timeout-ms': 1000, 'default-timeout-ms': 3000 });
    await startWorker({ url: hub.url, instanceId: 'hanger', services: [{ name: 'hang', mode: 'hang', concurrency: 10 }] });
  });
  after(stopAll);

  it('refuses a forward beyond --max-forwards-per-peer in flight with ForwardError 503 E_OVERLOADED, and takes one again once one settles', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-many');
    await p.next((f) => f[0] === PeerOp.Members);
    for (let id = 1; id <= 4; id++) forward(p, id, 'hanger', 'hang', Buffer.from('x'));
    const refused = (await p.next((f) => f[0] === PeerOp.ForwardError)) as Of<39>;
    assert.deepEqual([refused[1], refused[2], refused[3]], [4, 503, 'E_OVERLOADED']);
    assert.deepEqual(
      p.frames.filter((f) => f[0] === PeerOp.ForwardError).map((f) => f[1]),
      [4],
      'only the fourth is refused',
    );
    const st = await peerStats(hub, 'raw-many');
    assert.deepEqual([st?.inflightIn, st?.forwardsRefused], [3, 1]);
    // A cancelled forward frees its place.
    p.send([PeerOp.ForwardCancel, 1, 'E_CANCELLED']);
    await waitUntil(async () => (await peerStats(hub, 'raw-many'))?.inflightIn === 2, 2000, 'the cancelled forward gone');
    forward(p, 5, 'hanger', 'hang', Buffer.from('x'));
    await waitUntil(async () => (await peerStats(hub, 'raw-many'))?.inflightIn === 3, 2000, 'the fifth taken');
    assert.ok(!p.frames.some((f) => f[0] === PeerOp.ForwardError && f[1] === 5));
    p.close();
  });

  it('answers its own callers 503 E_OVERLOADED rather than forward more than a peer takes', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-owner');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Members, 0, [['far', 'far-w', 1]]]);
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'far'), 3000, 'the peer member in the ring');
    const first = [1, 2, 3].map((n) => post(`${hub.url}/api/far/k${n}`, `{"n":${n}}`));
    await waitUntil(() => p.frames.filter((f) => f[0] === PeerOp.Forward).length === 3, 3000, 'three forwards');
    const over = await post(`${hub.url}/api/far/k4`, '{"n":4}');
    assert.deepEqual([over.status, over.headers.get('x-error-code')], [503, 'E_OVERLOADED']);
    // One answered: the next goes out.
    const f1 = p.frames.find((f) => f[0] === PeerOp.Forward) as Of<37>;
    p.send([PeerOp.ForwardReply, f1[1], 200, null, null, Buffer.from('"one"'), 'raw-owner/far-w']);
    const next = post(`${hub.url}/api/far/k5`, '{"n":5}');
    const f5 = (await p.next((f) => f[0] === PeerOp.Forward && f[4] === 'k5')) as Of<37>;
    for (const f of p.frames.filter((x): x is Of<37> => x[0] === PeerOp.Forward && x[1] !== f1[1])) {
      p.send([PeerOp.ForwardReply, f[1], 200, null, null, Buffer.from(`"${f[4]}"`), 'raw-owner/far-w']);
    }
    assert.equal((await next).text, '"k5"');
    assert.equal((await Promise.all(first)).filter((r) => r.status === 200).length, 3);
    assert.ok(f5);
    p.close();
  });
});

/** A linked raw peer of `hub` that stops reading, with `n` forwards of 64 KiB sent to its echo worker. */
async function backedUp(hub: HubProc, hubId: string, n: number): Promise<{ p: RawPeer; tcp: Socket }> {
  const p = await RawPeer.linked(hub.url, hubId);
  await p.next((f) => f[0] === PeerOp.Members);
  const tcp = (p.ws as unknown as { _socket: Socket })._socket;
  tcp.pause();
  for (let id = 1; id <= n; id++) forward(p, id, 'echo-w', 'echo');
  return { p, tcp };
}

/** A hub with an echo worker, and what a peer that stops reading meets there. */
async function echoHub(hubId: string, peerTimeoutMs: number): Promise<HubProc> {
  const hub = await startHub({ 'hub-id': hubId, 'max-body-bytes': 65_536, 'peer-timeout-ms': peerTimeoutMs, 'default-timeout-ms': 5000 });
  await startWorker({ url: hub.url, instanceId: 'echo-w', services: [{ name: 'echo', concurrency: 64 }] });
  return hub;
}

describe('a peer that reads slowly', { timeout: 90_000 }, () => {
  let hub: HubProc;
  // A peer that stops reading is dropped after the peer timeout: long here, so answers pile up
  // past the cap first whatever else the machine is doing (it takes seconds when the kernel's
  // socket buffers grow large, or the machine is busy).
  before(async () => {
    hub = await echoHub('slow-peer-hub', 30_000);
  });
  after(stopAll);
  it('keeps a link whose peer falls behind by more than four times the backpressure limit, and answers every forward once it reads', async () => {
    const n = 200;
    const { p, tcp } = await backedUp(hub, 'raw-slow', n);
    // Four times the default backpressure limit of this hub: (64 KiB + 64 KiB) × 4 × 4.
    await waitUntil(async () => ((await peerStats(hub, 'raw-slow'))?.queuedBytes ?? 0) > 2 * 1024 * 1024, 15_000, 'answers piling up');
    await sleep(200);
    tcp.resume();
    const answers = () => p.frames.filter((f): f is Of<38> | Of<39> => f[0] === PeerOp.ForwardReply || f[0] === PeerOp.ForwardError);
    await waitUntil(() => answers().length === n, 15_000, 'every answer');
    // Forwards the hub read only once its queue was past the cap were refused (see the next
    // test); how many depends on how much the kernel's buffers took first. Each has one answer.
    assert.deepEqual(new Set(answers().map((f) => f[1])).size, n);
    for (const f of answers()) if (f[0] === PeerOp.ForwardError) assert.deepEqual([f[2], f[3]], [503, 'E_OVERLOADED']);
    assert.ok(answers().filter((f) => f[0] === PeerOp.ForwardReply).length > 32, 'more answers than the cap holds were queued and delivered');
    const st = await peerStats(hub, 'raw-slow');
    assert.equal(st?.state, 'open');
    assert.equal(st?.queuedBytes, 0);
    p.close();
  });

  it('refuses new forwards (503 E_OVERLOADED) while more than --max-session-queued-bytes of its frames wait, so its queue stops growing', async () => {
    const n = 200;
    const { p, tcp } = await backedUp(hub, 'raw-greedy', n);
    // The cap: 4 × this hub's backpressure limit, (64 KiB + 64 KiB) × 4 × 4 = 2 MiB.
    await waitUntil(async () => ((await peerStats(hub, 'raw-greedy'))?.queuedBytes ?? 0) > 2.5 * 1024 * 1024, 15_000, 'past the cap');
    for (let id = n + 1; id <= n + 10; id++) forward(p, id, 'echo-w', 'echo');
    await sleep(300);
    tcp.resume();
    await waitUntil(() => p.frames.filter((f) => f[0] === PeerOp.ForwardReply || f[0] === PeerOp.ForwardError).length === n + 10, 15_000, 'every answer');
    const refused = p.frames.filter((f): f is Of<39> => f[0] === PeerOp.ForwardError);
    const replied = p.frames.filter((f): f is Of<38> => f[0] === PeerOp.ForwardReply);
    // The ten sent past the cap are refused; so may be the last of the first batch, if the hub
    // read them only once its queue was past the cap. Every forward has one answer.
    for (let id = n + 1; id <= n + 10; id++)
      assert.ok(
        refused.some((f) => f[1] === id),
        `forward ${id} refused`,
      );
    for (const f of refused) assert.deepEqual([f[2], f[3]], [503, 'E_OVERLOADED']);
    assert.equal(new Set([...refused, ...replied].map((f) => f[1])).size, n + 10);
    assert.equal((await peerStats(hub, 'raw-greedy'))?.state, 'open');
    p.close();
  });
});

const DEAF_TIMEOUT_MS = 3000;

describe('a peer that reads nothing', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await echoHub('deaf-peer-hub', DEAF_TIMEOUT_MS);
  });
  after(stopAll);

  it('drops (4002) a link whose peer reads nothing while frames wait for it, within about the peer timeout', async () => {
    const { p } = await backedUp(hub, 'raw-deaf', 200);
    await waitUntil(async () => ((await peerStats(hub, 'raw-deaf'))?.queuedBytes ?? 0) > 0, 5000, 'answers piling up');
    const started = Date.now();
    // It keeps sending, so its frames alone would make it look alive.
    const chatter = setInterval(() => p.send([PeerOp.SnapshotRequest]), 100);
    await waitUntil(async () => !(await peerStats(hub, 'raw-deaf')), 3 * DEAF_TIMEOUT_MS, 'the link dropped');
    clearInterval(chatter);
    // About the peer timeout after it was last heard from, with room for a busy machine.
    assert.ok(Date.now() - started < DEAF_TIMEOUT_MS + 5000, `dropped after ${Date.now() - started} ms`);
    (p.ws as unknown as { _socket: Socket })._socket.resume();
    assert.equal(await p.closed, CloseCode.Unresponsive);
  });
});
