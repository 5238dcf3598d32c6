/** Batch frames on peer links: how frames are joined, and what a Batch may hold. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../client/protocol.js';
import { batchPeerFrames, decodePeerFrame, encodePeerFrame, MAX_BATCH_BYTES, type PeerFrame, PeerOp } from '../../server/mesh/peer-protocol.js';
import { exampleBytes, PEER_EXAMPLE_FRAMES } from '../helpers/example-frames.js';

const reply = (id: number, body = 'ok'): PeerFrame => [PeerOp.ForwardReply, id, 200, null, null, Buffer.from(body), 'h/w'];

describe('peer Batch frames', () => {
  it('joins encoded frames into the Batch PROTOCOL.md shows, byte for byte', () => {
    const inner = PEER_EXAMPLE_FRAMES.batch!.slice(1) as PeerFrame[];
    const joined = batchPeerFrames(inner.map(encodePeerFrame), 0, MAX_BATCH_BYTES);
    assert.equal(joined.length, 1);
    assert.deepEqual(Buffer.from(joined[0]!), Buffer.from(exampleBytes('batch')));
  });

  it('decodes a Batch into the frames it holds, in order, each checked as it would be alone', () => {
    const frames = [reply(1, 'a'), [PeerOp.SnapshotRequest] as PeerFrame, reply(2, 'b')];
    const [batch] = batchPeerFrames(frames.map(encodePeerFrame), 0, MAX_BATCH_BYTES);
    const f = decodePeerFrame(batch!, true);
    assert.equal(f[0], PeerOp.Batch);
    assert.deepEqual(
      f.slice(1).map((x) => (x as unknown[])[0]),
      [PeerOp.ForwardReply, PeerOp.SnapshotRequest, PeerOp.ForwardReply],
    );
    assert.equal(Buffer.from((f[3] as Extract<PeerFrame, { 0: 38 }>)[5]).toString(), 'b');
  });

  it('keeps every Batch within the byte limit, sends a frame that fills one alone, and starts after `from`', () => {
    const small = Array.from({ length: 40 }, (_, i) => encodePeerFrame(reply(i)));
    const big = encodePeerFrame(reply(99, 'x'.repeat(300)));
    const frames = [encodePeerFrame(reply(1000)), ...small.slice(0, 20), big, ...small.slice(20)];
    const out = batchPeerFrames(frames, 1, 200);
    let seen: number[] = [];
    for (const m of out) {
      if (m === big) {
        seen.push(99);
        continue;
      }
      assert.ok(m.byteLength <= 200, `a message of ${m.byteLength} bytes`);
      const f = decodePeerFrame(m, false);
      seen = seen.concat(f[0] === PeerOp.Batch ? f.slice(1).map((x) => (x as unknown[])[1] as number) : [f[1] as number]);
    }
    assert.deepEqual(seen, [...Array.from({ length: 20 }, (_, i) => i), 99, ...Array.from({ length: 20 }, (_, i) => i + 20)]);
    // One frame is never wrapped.
    assert.deepEqual(batchPeerFrames([big], 0, MAX_BATCH_BYTES), [big]);
  });

  it('counts more than 15 frames with an array 16 header', () => {
    const frames = Array.from({ length: 20 }, (_, i) => encodePeerFrame(reply(i)));
    const [batch] = batchPeerFrames(frames, 0, MAX_BATCH_BYTES);
    assert.equal(batch![0], 0xdc);
    assert.equal((decodePeerFrame(batch!, false) as unknown[]).length, 21);
  });

  it('refuses an empty Batch, one holding a handshake frame or a Batch, and one holding a bad frame', () => {
    const bad: unknown[][] = [
      [PeerOp.Batch],
      [PeerOp.Batch, 'not a frame'],
      [PeerOp.Batch, []],
      [PeerOp.Batch, [PeerOp.PeerWelcome, { advertise: '127.0.0.1:1', proof: null }]],
      [PeerOp.Batch, [PeerOp.Batch, [PeerOp.SnapshotRequest]]],
      [PeerOp.Batch, [PeerOp.SnapshotRequest], [PeerOp.ForwardReply, 1, 99]],
    ];
    for (const f of bad) assert.throws(() => decodePeerFrame(encodePeerFrame(f as PeerFrame), false), ProtocolError, JSON.stringify(f));
  });
});
