/**
 * The session socket over uWebSockets.js, for `/ws` connections the hub accepted. Writes go
 * out inside one `cork`, so a burst of frames costs one syscall.
 */
import type { WebSocket } from 'uWebSockets.js';
import type { SessionSocket } from './session-socket.js';

export class UwsSessionSocket<D> implements SessionSocket {
  private frames: readonly Uint8Array[] = [];
  private next = 0;
  private limit = 0;
  level = 0;
  private readonly sendSome = (): void => {
    const ws = this.ws;
    const out = this.frames;
    while (this.next < out.length && this.level < this.limit) {
      const f = out[this.next++]!;
      ws.send(f, true, false);
      this.level += f.byteLength;
    }
  };

  constructor(private readonly ws: WebSocket<D>) {}

  writeFrames(frames: readonly Uint8Array[], from: number, limit: number): number {
    const ws = this.ws;
    this.frames = frames;
    this.next = from;
    this.limit = limit;
    // One native call for the buffer level, then count what we add: uWS buffers only what
    // the socket refuses, so this estimate never undercounts.
    this.level = ws.getBufferedAmount();
    ws.cork(this.sendSome);
    // The estimate overcounts what the socket took at once when the cork ended. Frames left
    // over with the socket not really backed up would wait for a drain event that never comes.
    while (this.next < frames.length && (this.level = ws.getBufferedAmount()) < limit) ws.cork(this.sendSome);
    const written = this.next;
    this.frames = EMPTY;
    return written;
  }

  bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }

  ping(): void {
    this.ws.ping();
  }

  end(code: number, reason: string): void {
    try {
      this.ws.end(code, reason);
    } catch {
      // Already closed by the peer: nothing to end.
    }
  }
}

const EMPTY: readonly Uint8Array[] = [];
