/** The value limits of peer frames (PROTOCOL.md, "Peer frame reference"). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_FRAME_VALUES } from '../../client/protocol.js';
import { decodePeerFrame, encodePeerFrame, MAX_MEMBERS_PER_FRAME, type PeerFrame, PeerOp } from '../../server/mesh/peer-protocol.js';

const members = (n: number): PeerFrame => [PeerOp.Members, 1, Array.from({ length: n }, (_, i) => ['svc', `w${i}`, 1] as [string, string, number])];

describe('peer frame value limits', () => {
  it('takes a Members frame of the most members a peer may send, once the handshake is done', () => {
    const f = decodePeerFrame(encodePeerFrame(members(MAX_MEMBERS_PER_FRAME)), false) as unknown[];
    assert.equal((f[2] as unknown[]).length, MAX_MEMBERS_PER_FRAME);
    // One value more: a trailing field after the list.
    const over = [...members(MAX_MEMBERS_PER_FRAME), null] as unknown as PeerFrame;
    assert.throws(() => decodePeerFrame(encodePeerFrame(over), false), /at most 400004 msgpack values/);
  });

  it('allows only the worker limit in any frame during the handshake', () => {
    const bytes = encodePeerFrame(members(MAX_FRAME_VALUES / 4));
    assert.doesNotThrow(() => decodePeerFrame(bytes, false, false));
    assert.throws(() => decodePeerFrame(bytes, false, true), new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
  });

  it('allows only the worker limit in frames that carry no list', () => {
    const claim = Buffer.concat([Buffer.from([0xdc, 0x07, 0xd0, PeerOp.Claim, 0xa1, 0x77]), Buffer.alloc(2000, 0xc0)]);
    assert.throws(() => decodePeerFrame(claim, false), new RegExp(`at most ${MAX_FRAME_VALUES} msgpack values`));
  });
});
