/**
 * The peer protocol as PROTOCOL.md writes it, spoken by hand to a real hub: the handshake and
 * its proofs, membership, forwarding, one hop only, hand-backs and refusals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CloseCode, RequestMode } from '../../client/protocol.js';
import { proofOf } from '../../server/mesh/peer-auth.js';
import { type PeerFrame, PeerOp, RING_ALGORITHM } from '../../server/mesh/peer-protocol.js';
import { memberSeed, ownerOf } from '../../server/ring.js';
import { type HubProc, post, startHub, startWorker, stats, stopAll, waitUntil } from '../helpers/processes.js';
import { RawPeer } from '../helpers/raw-peer.js';

type Of<N extends number> = Extract<PeerFrame, { 0: N }>;
const FLAGS = { 'peer-timeout-ms': 1000, 'default-timeout-ms': 3000, 'hub-id': 'proto-hub' };

describe('peer protocol, spoken by hand', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub(FLAGS);
    await startWorker({ url: hub.url, instanceId: 'local-w', services: [{ name: 'echo' }] });
  });
  after(stopAll);

  it('opens with a Challenge, welcomes a dialer without a secret, then sends its Members and takes ours', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-1');
    const welcome = (await p.next((f) => f[0] === PeerOp.PeerWelcome)) as Of<34>;
    assert.equal(welcome[1].proof, null);
    const members = (await p.next((f) => f[0] === PeerOp.Members)) as Of<35>;
    assert.deepEqual(members[2], [['echo', 'local-w', 1]]);
    // A member of ours joins the hub's ring for echo, on our hub id.
    p.send([PeerOp.Members, 0, [['echo', 'remote-w', 2]]]);
    await waitUntil(
      async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'echo').ring.members.length === 2,
      3000,
      'remote member in the ring',
    );
    const ring = (await stats(hub)).services.find((s: { name: string }) => s.name === 'echo').ring.members;
    assert.deepEqual(ring, [
      { instanceId: 'local-w', hubId: 'proto-hub', weight: 1 },
      { instanceId: 'remote-w', hubId: 'raw-1', weight: 2 },
    ]);
    // A delta out of order is not applied: the hub asks for a snapshot instead.
    p.send([PeerOp.MembersDelta, 5, [['echo', 'remote-w', 0]]]);
    await p.next((f) => f[0] === PeerOp.SnapshotRequest);
    assert.equal((await stats(hub)).services.find((s: { name: string }) => s.name === 'echo').ring.members.length, 2);
    // In order, it is.
    p.send([PeerOp.Members, 6, [['echo', 'remote-w', 2]]]);
    p.send([PeerOp.MembersDelta, 7, [['echo', 'remote-w', 0]]]);
    await waitUntil(
      async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'echo').ring.members.length === 1,
      3000,
      'remote member gone',
    );
    p.close();
  });

  it('runs a Forward on the named local worker and answers with ForwardReply naming it', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-2');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Forward, 1, RequestMode.Keyed, 'echo', 'k', 'local-w', 2000, 1, 'text/plain', null, null, Buffer.from('hi'), 1]);
    const r = (await p.next((f) => f[0] === PeerOp.ForwardReply)) as Of<38>;
    assert.deepEqual([r[1], r[2], Buffer.from(r[5]).toString(), r[6]], [1, 200, 'hi', 'proto-hub/local-w']);
    p.close();
  });

  it('refuses a dialer that speaks only peer protocol version 1 (4012)', async () => {
    const p = await RawPeer.open(hub.url);
    const c = (await p.next((f) => f[0] === PeerOp.Challenge)) as Of<32>;
    assert.deepEqual(c[1].versions, [2]);
    p.send([
      PeerOp.PeerHello,
      { hubId: 'old-hub', bootNonce: 'n', versions: [1], ring: RING_ALGORITHM, challenge: Buffer.alloc(16), advertise: '127.0.0.1:1', proof: null },
    ]);
    assert.equal(await p.closed, CloseCode.PeerRefused);
  });

  it('speaks Batch frames: runs every frame of one, in order, and batches its own', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-batch');
    assert.deepEqual(p.remoteVersions, [2]);
    // The handshake's frame goes alone; what the hub sends in the same turn after it is one Batch.
    const welcome = await p.next((f) => f[0] === PeerOp.PeerWelcome);
    assert.equal(p.batched.has(welcome), false);
    const members = await p.next((f) => f[0] === PeerOp.Members);
    const grants = await p.next((f) => f[0] === PeerOp.Grants);
    assert.ok(p.batched.has(members) && p.batched.has(grants), 'Members and Grants came in a Batch');
    const forward = (id: number, body: string): PeerFrame => [
      PeerOp.Forward,
      id,
      RequestMode.Keyed,
      'echo',
      'k',
      'local-w',
      2000,
      1,
      'text/plain',
      null,
      null,
      Buffer.from(body),
      1,
    ];
    p.send([PeerOp.Batch, forward(1, 'a'), forward(2, 'b'), forward(3, 'c')]);
    const bodies: string[] = [];
    for (const id of [1, 2, 3]) {
      const r = (await p.next((f) => f[0] === PeerOp.ForwardReply && f[1] === id)) as Of<38>;
      bodies.push(Buffer.from(r[5]).toString());
    }
    assert.deepEqual(bodies, ['a', 'b', 'c']);
    // A frame in a Batch that closes the link (a forward id already in flight) closes it as it would alone.
    p.send([PeerOp.Batch, forward(4, 'd'), forward(4, 'again'), forward(5, 'never')]);
    assert.equal(await p.closed, CloseCode.Protocol);
  });

  it('closes a link that sends a Batch holding a handshake frame or another Batch', async () => {
    for (const inner of [
      [PeerOp.PeerWelcome, { advertise: '127.0.0.1:1', proof: null }],
      [PeerOp.Batch, [PeerOp.SnapshotRequest]],
    ] as PeerFrame[]) {
      const p = await RawPeer.linked(hub.url, 'raw-bad-batch');
      await p.next((f) => f[0] === PeerOp.Members);
      p.send([PeerOp.Batch, [PeerOp.SnapshotRequest], inner]);
      assert.equal(await p.closed, CloseCode.Protocol);
    }
  });

  it('refuses a Forward that travelled more than one hop, and hands back one for an instance it does not hold', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-3');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Forward, 1, RequestMode.Keyed, 'echo', 'k', 'local-w', 2000, 1, null, null, null, Buffer.from('x'), 2]);
    const e = (await p.next((f) => f[0] === PeerOp.ForwardError)) as Of<39>;
    assert.deepEqual([e[1], e[2], e[3]], [1, 400, 'E_PROTOCOL']);
    p.send([PeerOp.Forward, 2, RequestMode.Keyed, 'echo', 'k', 'nobody-here', 2000, 1, null, null, null, Buffer.from('x'), 1]);
    const hb = (await p.next((f) => f[0] === PeerOp.HandBack)) as Of<41>;
    assert.deepEqual([hb[1], hb[2]], [2, false]);
    // The link still serves; then a frame that is not a peer frame closes it with 1002.
    p.send([PeerOp.Forward, 3, RequestMode.Keyed, 'echo', 'k', 'local-w', 2000, 1, null, null, null, Buffer.from('x'), 1]);
    await p.next((f) => f[0] === PeerOp.ForwardReply && f[1] === 3);
    p.send(['not a frame' as never]);
    assert.equal(await p.closed, CloseCode.Protocol);
  });

  it('forwards a keyed request to a member a peer announced, and answers the caller with its ForwardReply', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-4');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Members, 0, [['far', 'far-w', 1]]]);
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'far'), 3000, 'far service');
    const call = post(`${hub.url}/api/far/some-key`, '{"q":1}', { 'x-request-id': 'r-9' });
    const fwd = (await p.next((f) => f[0] === PeerOp.Forward)) as Of<37>;
    assert.equal(fwd[3], 'far');
    assert.equal(fwd[4], 'some-key');
    assert.equal(fwd[5], 'far-w');
    assert.ok(fwd[6] > 2000 && fwd[6] <= 3000, `remainingMs ${fwd[6]}`);
    assert.equal(fwd[7], 1);
    assert.deepEqual(fwd[9], { 'x-request-id': 'r-9' });
    assert.equal(Buffer.from(fwd[11]).toString(), '{"q":1}');
    assert.equal(fwd[12], 1);
    p.send([PeerOp.ForwardReply, fwd[1], 201, 'application/json', { 'x-extra': 'yes' }, Buffer.from('{"far":true}'), 'raw-4/far-w']);
    const r = await call;
    assert.equal(r.status, 201);
    assert.equal(r.text, '{"far":true}');
    assert.equal(r.headers.get('x-served-by'), 'raw-4/far-w');
    assert.equal(r.headers.get('x-extra'), 'yes');
    // The peer vanishes with a job in flight: its member leaves the ring, and the job, with no
    // key owner left, waits for one as on a single hub, and is answered at its deadline.
    const lost = post(`${hub.url}/api/far/other-key`, '{}', { 'x-timeout-ms': '800' });
    await p.next((f) => f[0] === PeerOp.Forward && f[4] === 'other-key');
    p.close();
    const l = await lost;
    assert.equal(l.status, 504, l.text);
    assert.equal((await stats(hub)).services.find((s: { name: string }) => s.name === 'far').ring.members.length, 0);
  });

  it('drops the members of a Leaving peer that does not withdraw them within the peer timeout, and their keys go to the next owner', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-stuck');
    await p.next((f) => f[0] === PeerOp.Members);
    await startWorker({ url: hub.url, instanceId: 'stuck-next', services: [{ name: 'stuck' }] });
    p.send([PeerOp.Members, 0, [['stuck', 'stuck-gone', 1]]]);
    const ring = [
      { instanceId: 'stuck-gone', weight: 1, seed: memberSeed('stuck-gone') },
      { instanceId: 'stuck-next', weight: 1, seed: memberSeed('stuck-next') },
    ];
    let key = 'k0';
    for (let i = 0; ownerOf(key, ring)!.instanceId !== 'stuck-gone'; i++) key = `k${i}`;
    await waitUntil(async () => (await stats(hub)).services.find((x: { name: string }) => x.name === 'stuck')?.ring.members.length === 2, 3000, 'two members');
    p.send([PeerOp.Leaving]);
    const started = Date.now();
    const r = await post(`${hub.url}/api/stuck/${key}`, '{"k":1}', { 'x-timeout-ms': '10000' });
    assert.deepEqual([r.status, r.headers.get('x-served-by')], [200, 'proto-hub/stuck-next']);
    // The peer timeout here is 1 s (checked on the keep-alive sweep).
    assert.ok(Date.now() - started < 3000, `waited ${Date.now() - started} ms`);
    assert.ok(
      (await stats(hub)).mesh.peers.some((x: { hubId: string; state: string }) => x.hubId === 'raw-stuck' && x.state === 'open'),
      'the link stays',
    );
    p.close();
  });

  it("keeps a Leaving peer's member in the ring, holds its keyed work, and gives it to the same instance once it registers here", async () => {
    const p = await RawPeer.linked(hub.url, 'raw-leave');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Members, 0, [['lame', 'lame-w', 1]]]);
    p.send([PeerOp.Grants, [['lame', 4]]]);
    const lame = async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'lame');
    await waitUntil(async () => (await lame())?.ring.members.length === 1, 3000, 'the peer member in the ring');
    p.send([PeerOp.Leaving]);
    const keyed = post(`${hub.url}/api/lame/k1`, '{"n":1}', { 'x-timeout-ms': '3000' });
    await waitUntil(async () => (await lame())?.queued === 1, 3000, 'the keyed job waiting');
    assert.deepEqual((await lame()).ring.members, [{ instanceId: 'lame-w', hubId: 'raw-leave', weight: 1 }], 'its member keeps its keys');
    // The same instance opens a session here: that copy is the member now, and takes the job.
    await startWorker({ url: hub.url, instanceId: 'lame-w', services: [{ name: 'lame' }] });
    const r = await keyed;
    assert.deepEqual([r.status, r.headers.get('x-served-by')], [200, 'proto-hub/lame-w']);
    assert.deepEqual((await lame()).ring.members, [{ instanceId: 'lame-w', hubId: 'proto-hub', weight: 1 }]);
    assert.ok(!p.frames.some((f) => f[0] === PeerOp.Forward), 'nothing was forwarded to the leaving peer');
    // Its withdrawal (an empty Members) changes no ring where the instance moved.
    p.send([PeerOp.Members, 1, []]);
    p.send([PeerOp.Leaving]);
    const again = await post(`${hub.url}/api/lame/k1`, '{}');
    assert.deepEqual([again.status, again.headers.get('x-served-by')], [200, 'proto-hub/lame-w']);
    p.close();
  });

  it('hands a job back to the origin when asked, and the origin routes it again without counting an attempt', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-5');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Members, 0, [['bounce', 'bounce-w', 1]]]);
    await waitUntil(async () => (await stats(hub)).services.some((s: { name: string }) => s.name === 'bounce'), 3000, 'bounce service');
    const call = post(`${hub.url}/api/bounce/k`, '{}');
    const first = (await p.next((f) => f[0] === PeerOp.Forward)) as Of<37>;
    p.send([PeerOp.HandBack, first[1], false]);
    const second = (await p.next((f) => f[0] === PeerOp.Forward && f[1] !== first[1])) as Of<37>;
    assert.equal(second[7], 1, 'a hand-back that never ran is not an attempt');
    p.send([PeerOp.HandBack, second[1], true]);
    const third = (await p.next((f) => f[0] === PeerOp.Forward && f[1] !== first[1] && f[1] !== second[1])) as Of<37>;
    assert.equal(third[7], 2, 'a hand-back that ran counts');
    p.send([PeerOp.ForwardError, third[1], 500, 'E_FAR', 'far failure', 'raw-5/bounce-w']);
    const r = await call;
    assert.equal(r.status, 500);
    assert.equal(r.json().error.code, 'E_FAR');
    p.close();
  });
});

describe('peer protocol: what a peer may not do', { timeout: 60_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ ...FLAGS, 'hub-id': 'strict-hub' });
    await startWorker({ url: hub.url, instanceId: 'strict-w', services: [{ name: 'one', mode: 'hang', concurrency: 1 }] });
  });
  after(stopAll);

  it('frees a grant when the origin cancels an unkeyed job, so the next one runs instead of bouncing', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-grant');
    const grants = (await p.next((f) => f[0] === PeerOp.Grants)) as Of<45>;
    assert.deepEqual(grants[1], [['one', 1]]);
    p.send([PeerOp.Forward, 1, RequestMode.Any, 'one', null, '', 2000, 1, null, null, null, Buffer.from('{}'), 1]);
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'one')?.inflight === 1, 3000, 'the job at the worker');
    p.send([PeerOp.ForwardCancel, 1, 'E_CANCELLED']);
    await waitUntil(async () => (await stats(hub)).services.find((s: { name: string }) => s.name === 'one')?.inflight === 0, 3000, 'the job cancelled');
    // Within the grant again: it runs (and times out there), it is not handed back.
    p.send([PeerOp.Forward, 2, RequestMode.Any, 'one', null, '', 300, 1, null, null, null, Buffer.from('{}'), 1]);
    const answer = await p.next((f) => (f[0] === PeerOp.ForwardError || f[0] === PeerOp.HandBack) && f[1] === 2);
    assert.equal(answer[0], PeerOp.ForwardError, JSON.stringify(answer));
    assert.equal((answer as Of<39>)[3], 'E_DEADLINE');
    p.close();
  });

  it('refuses keyed work that names no worker', async () => {
    const p = await RawPeer.linked(hub.url, 'raw-keyless');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Forward, 1, RequestMode.Keyed, 'one', 'k', '', 2000, 1, null, null, null, Buffer.from('{}'), 1]);
    const e = (await p.next((f) => f[0] === PeerOp.ForwardError)) as Of<39>;
    assert.equal(e[3], 'E_PROTOCOL');
    p.close();
  });

  it('closes a link that gives an address it could not dial, and stays up', async () => {
    const bad = await RawPeer.open(hub.url);
    const c = (await bad.next((f) => f[0] === PeerOp.Challenge)) as Of<32>;
    assert.equal(c[1].hubId, 'strict-hub');
    bad.send([
      PeerOp.PeerHello,
      { hubId: 'raw-bad', bootNonce: 'x', versions: [1], ring: RING_ALGORITHM, challenge: bad.challenge, advertise: 'a b:1', proof: null },
    ]);
    assert.equal(await bad.closed, CloseCode.Protocol);
    const p = await RawPeer.linked(hub.url, 'raw-gossip');
    await p.next((f) => f[0] === PeerOp.Members);
    p.send([PeerOp.Peers, [['evil', 'wss://[']]]);
    assert.equal(await p.closed, CloseCode.Protocol);
    assert.equal((await fetch(`${hub.url}/healthz`)).status, 200);
  });
});

describe('peer protocol with a cluster secret', { timeout: 30_000 }, () => {
  after(stopAll);

  it('refuses a dialer whose proof is wrong or missing with 4011 before sending it anything about the mesh', async () => {
    const hub = await startHub({ ...FLAGS, 'hub-id': 'secret-hub', 'cluster-secret': 's3cret' });
    await startWorker({ url: hub.url, instanceId: 'private-w', services: [{ name: 'echo' }] });
    for (const secret of ['wrong', undefined]) {
      const p = await RawPeer.linked(hub.url, 'intruder', secret);
      assert.equal(await p.closed, CloseCode.PeerUnauthorized);
      assert.deepEqual(
        p.frames.map((f) => f[0]),
        [PeerOp.Challenge],
        'nothing but the challenge reached it',
      );
    }
    const good = await RawPeer.linked(hub.url, 'friend', 's3cret');
    const w = (await good.next((f) => f[0] === PeerOp.PeerWelcome)) as Of<34>;
    // The hub proves the secret back, bound to our challenge and both ids.
    assert.deepEqual(Buffer.from(w[1].proof!), proofOf('s3cret', 'acceptor', good.challenge, 'secret-hub', 'friend'));
    const members = (await good.next((f) => f[0] === PeerOp.Members)) as Of<35>;
    assert.deepEqual(members[2], [['echo', 'private-w', 1]]);
    good.close();
  });

  it('refuses a peer that speaks another ring algorithm with 4012', async () => {
    const hub = await startHub({ ...FLAGS, 'hub-id': 'ring-hub' });
    const p = await RawPeer.open(hub.url);
    await p.next((f) => f[0] === PeerOp.Challenge);
    p.send([PeerOp.PeerHello, { hubId: 'odd', bootNonce: 'x', versions: [1], ring: 'ketama', challenge: p.challenge, advertise: '127.0.0.1:1', proof: null }]);
    assert.equal(await p.closed, CloseCode.PeerRefused);
    assert.notEqual(RING_ALGORITHM, 'ketama');
  });
});
