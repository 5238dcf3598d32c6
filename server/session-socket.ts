/**
 * What a session needs from its socket. The session decides what to send, when to batch and
 * when to stop for backpressure; an adapter only writes, reports buffered bytes, pings and
 * closes: one over uWebSockets.js for connections the hub accepted, one over `ws` for links
 * the hub dials.
 */

/** Events an adapter reports to its session. */
export interface SessionSocketEvents {
  /** One whole binary or text message; `borrowed` bytes are valid only during the call. */
  onMessage(data: Uint8Array, isBinary: boolean, borrowed: boolean): void;
  /** The socket took what was buffered: sending may resume. */
  onDrain(): void;
  /** A pong (or any sign of life below the message level). */
  onPong(): void;
  /** The socket is gone; it must not be used from here on. */
  onClose(): void;
  /** Why the socket failed (a refused dial, a reset); `onClose` follows. */
  onError?(err: Error): void;
}

export interface SessionSocket {
  /**
   * Writes `frames` from index `from` in one batch, stopping once the buffered level reaches
   * `limit`; returns the index of the first frame not written. At least one frame is written
   * when the level starts below the limit, so one frame may overshoot it.
   */
  writeFrames(frames: readonly Uint8Array[], from: number, limit: number): number;
  /** The buffered level after the last `writeFrames`, estimated: it may overcount, never under. */
  readonly level: number;
  /** Bytes accepted for sending that the kernel has not taken yet. */
  bufferedAmount(): number;
  ping(): void;
  /** Closes with a WebSocket close code; harmless on a closed socket. */
  end(code: number, reason: string): void;
}
