/**
 * The session socket over `ws`, for links the hub dials. `ws` has no drain event: every send
 * carries one shared callback, and when the last write outstanding completes after the session
 * asked to be told, the session hears `onDrain`.
 */
import type WebSocket from 'ws';
import type { SessionSocket, SessionSocketEvents } from './session-socket.js';

export class WsSessionSocket implements SessionSocket {
  level = 0;
  private pendingWrites = 0;
  private closed = false;
  private readonly written = (): void => {
    if (--this.pendingWrites === 0 && !this.closed) this.events.onDrain();
  };

  constructor(
    private readonly ws: WebSocket,
    private readonly events: SessionSocketEvents,
  ) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => events.onMessage(data, isBinary, false));
    ws.on('pong', () => events.onPong());
    ws.on('close', () => {
      this.closed = true;
      events.onClose();
    });
    // A socket error is followed by 'close'; without a listener it would be thrown.
    ws.on('error', () => {});
  }

  writeFrames(frames: readonly Uint8Array[], from: number, limit: number): number {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return frames.length;
    let level = this.ws.bufferedAmount;
    let i = from;
    // Node batches writes queued while one is in progress (writev), so no cork is needed.
    while (i < frames.length && level < limit) {
      const f = frames[i++]!;
      this.pendingWrites++;
      this.ws.send(f, { binary: true }, this.written);
      level += f.byteLength;
    }
    this.level = level;
    return i;
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  ping(): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  end(code: number, reason: string): void {
    if (this.closed) return;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
  }
}
