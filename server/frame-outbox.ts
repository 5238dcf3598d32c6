/**
 * The frames a connection has yet to write: collected during a loop turn, written in one batch
 * at its end, and held back while the socket is over its backpressure limit. A worker session
 * and a peer link each have one, over whichever socket adapter they run on.
 */
import type { SocketCounters } from './counters.js';
import { type Flushable, scheduleFlush } from './frame-flusher.js';
import type { SessionSocket } from './session-socket.js';

export class FrameOutbox implements Flushable {
  flushQueued = false;
  /** Socket buffer above the limit: the owner takes no new work until it drains. */
  blocked = false;
  socket: SessionSocket | null = null;
  /** Bytes of the frames not written yet. */
  pendingBytes = 0;
  /** Joins frames into fewer messages, or null: see joinWith. */
  private join: ((frames: readonly Uint8Array[], from: number) => Uint8Array[]) | null = null;
  private frames: Uint8Array[] = [];
  /** Frames at the head already joined: held back by a full socket, they go out as they are. */
  private joined = 0;

  constructor(
    private readonly limitBytes: number,
    /**
     * Bytes that may wait behind a full socket before the owner refuses work that would queue
     * more (see overCap); a reader that lets them reach twice this is not reading (see push).
     */
    private readonly capBytes: number,
    private readonly counters: SocketCounters,
    /** Called when a blocked outbox can take frames again. */
    private readonly unblocked: () => void,
  ) {}

  /**
   * From the next frame queued on, the frames of a flush go out joined by `join` (which gets
   * them from index `from` on) instead of each as a message of its own: every message costs the
   * sockets on both ends more than its bytes do. Frames already queued go out as they are.
   */
  joinWith(join: (frames: readonly Uint8Array[], from: number) => Uint8Array[]): void {
    this.join = join;
    this.joined = this.frames.length;
  }

  /**
   * Queues `frame` for the end of this loop turn. True when it took frames already held back
   * past the cap to twice the cap: the other end is not reading, and its connection should end
   * (a frame queued within the cap is always taken, since one answer may be large).
   */
  push(frame: Uint8Array): boolean {
    const before = this.pendingBytes;
    this.frames.push(frame);
    this.pendingBytes += frame.byteLength;
    scheduleFlush(this);
    return this.blocked && before > this.capBytes && this.pendingBytes > 2 * this.capBytes;
  }

  /** Frames held back behind a full socket past the cap: the owner takes no work that answers. */
  get overCap(): boolean {
    return this.blocked && this.pendingBytes > this.capBytes;
  }

  flush(): void {
    const socket = this.socket;
    if (!socket || this.frames.length === 0) return;
    const limit = this.limitBytes;
    let out = this.frames;
    if (this.join !== null && out.length - this.joined > 1) out = this.joinNew(out);
    const i = socket.writeFrames(out, 0, limit);
    this.counters.framesOut += i;
    for (let k = 0; k < i; k++) this.pendingBytes -= out[k]!.byteLength;
    this.frames = i === out.length ? [] : out.slice(i);
    this.joined = this.frames.length;
    const wasBlocked = this.blocked;
    // Only an estimate at the limit costs a second native call to confirm it.
    this.blocked = this.frames.length > 0 || (socket.level >= limit && socket.bufferedAmount() >= limit);
    if (wasBlocked && !this.blocked) this.unblocked();
  }

  private joinNew(out: Uint8Array[]): Uint8Array[] {
    const joined = this.join!(out, this.joined);
    const all = this.joined === 0 ? joined : out.slice(0, this.joined).concat(joined);
    let bytes = 0;
    for (const f of all) bytes += f.byteLength;
    this.pendingBytes = bytes;
    return all;
  }

  /** The socket drained: send what waited, and say so once nothing is held back. */
  onDrain(): void {
    if (this.frames.length > 0) this.flush();
    else if (this.blocked && this.socket && this.socket.bufferedAmount() < this.limitBytes) {
      this.blocked = false;
      this.unblocked();
    }
  }

  /** Drops everything unsent and forgets the socket (it closed). */
  clear(): void {
    this.frames = [];
    this.joined = 0;
    this.pendingBytes = 0;
    this.socket = null;
  }
}
