/**
 * The outbox's join step (peer links that speak Batch frames): which frames it joins, and that
 * frames a full socket held back are not joined twice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SocketCounters } from '../../server/counters.js';
import { FrameOutbox } from '../../server/frame-outbox.js';
import type { SessionSocket } from '../../server/session-socket.js';

/** A socket that takes `room` messages per write, then reports itself full. */
class FakeSocket implements SessionSocket {
  readonly written: string[][] = [];
  level = 0;
  constructor(public room = Infinity) {}
  writeFrames(frames: readonly Uint8Array[], from: number, limit: number): number {
    let i = from;
    for (; i < frames.length && i - from < this.room; i++) this.written.push(parts(frames[i]!));
    this.level = i < frames.length ? limit : 0;
    return i;
  }
  bufferedAmount(): number {
    return this.level;
  }
  ping(): void {}
  end(): void {}
}

/** Test frames are the text of one letter each; a join is their letters with '+' between. */
const frame = (s: string): Uint8Array => Buffer.from(s);
const parts = (m: Uint8Array): string[] => Buffer.from(m).toString().split('+');
const join = (frames: readonly Uint8Array[], from: number): Uint8Array[] => [
  Buffer.from(
    frames
      .slice(from)
      .map((f) => Buffer.from(f).toString())
      .join('+'),
  ),
];

function outbox(socket: FakeSocket): FrameOutbox {
  const o = new FrameOutbox(100, 1_000_000, new SocketCounters(), () => {});
  o.socket = socket;
  return o;
}

describe('FrameOutbox join', () => {
  it('sends the frames queued before joinWith alone, and joins the ones after', () => {
    const s = new FakeSocket();
    const o = outbox(s);
    o.push(frame('w'));
    o.joinWith(join);
    o.push(frame('a'));
    o.push(frame('b'));
    o.flush();
    assert.deepEqual(s.written, [['w'], ['a', 'b']]);
    assert.equal(o.pendingBytes, 0);
  });

  it('does not join a lone frame, and joins nothing without joinWith', () => {
    const s = new FakeSocket();
    const plain = outbox(s);
    plain.push(frame('a'));
    plain.push(frame('b'));
    plain.flush();
    const joined = outbox(s);
    joined.joinWith(join);
    joined.push(frame('c'));
    joined.flush();
    assert.deepEqual(s.written, [['a'], ['b'], ['c']]);
  });

  it('keeps what a full socket held back as it was joined, and joins only what came after', () => {
    const s = new FakeSocket(1);
    const o = outbox(s);
    o.push(frame('w'));
    o.joinWith(join);
    o.push(frame('a'));
    o.push(frame('b'));
    o.flush();
    assert.deepEqual(s.written, [['w']]);
    assert.equal(o.blocked, true);
    o.push(frame('c'));
    o.push(frame('d'));
    s.room = Infinity;
    o.onDrain();
    assert.deepEqual(s.written, [['w'], ['a', 'b'], ['c', 'd']]);
    assert.equal(o.blocked, false);
    assert.equal(o.pendingBytes, 0);
  });
});
