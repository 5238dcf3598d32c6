/**
 * The session socket over `ws`, for links the hub dials. `ws` has no drain event: every send
 * carries one shared callback, and when the last write outstanding completes, the session hears
 * `onDrain`.
 */
import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import type { SessionSocket, SessionSocketEvents } from './session-socket.js';

const BINARY = { binary: true } as const;

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
    // Frames written before the socket opened waited in the session's outbox.
    ws.on('open', () => events.onDrain());
    ws.on('close', () => this.gone());
    // An error is always followed by 'close'; the session hears why, if it wants to.
    ws.on('error', (err: Error) => events.onError?.(err));
  }

  writeFrames(frames: readonly Uint8Array[], from: number, limit: number): number {
    if (this.closed) return frames.length;
    const state = this.ws.readyState;
    // Still connecting: nothing is written, the frames wait for 'open'.
    if (state === this.ws.CONNECTING) return from;
    if (state !== this.ws.OPEN) {
      // Closing: what is not sent now never will be. The session is torn down now rather than
      // when 'close' comes (up to ws's close timeout later), so its jobs run elsewhere at once.
      setImmediate(() => this.gone());
      return frames.length;
    }
    let level = this.ws.bufferedAmount;
    let i = from;
    // One write for the batch: ws hands every frame to the TCP socket at once, a syscall each,
    // unless the socket is corked (the client library does the same).
    const tcp = (this.ws as unknown as { _socket?: Socket })._socket;
    tcp?.cork();
    while (i < frames.length && level < limit) {
      const f = frames[i++]!;
      this.pendingWrites++;
      this.ws.send(f, BINARY, this.written);
      level += f.byteLength;
    }
    tcp?.uncork();
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

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.events.onClose();
  }
}
