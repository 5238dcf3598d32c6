/**
 * Every default of the client library in one place, with its unit: durations in milliseconds,
 * sizes in bytes. Options left out of a Worker, Client or Connection take these.
 */
export const CLIENT_DEFAULTS = Object.freeze({
  /** First reconnect delay, doubled after each failed attempt. */
  reconnectMinMs: 100,
  /** Longest reconnect delay. */
  reconnectMaxMs: 5_000,
  /** Largest frame accepted from the hub: a hub's default frame limit (1 MiB body + 64 KiB) with room. */
  maxFrameBytes: 2 * 1024 * 1024,
  /** Frames a caller queues in one turn before writing them without waiting for the turn's end. */
  callerBatchFrames: 16,
  /** Bytes queued in one turn that are written at once, whatever the frame count. */
  maxBatchBytes: 64 * 1024,
  /** Jobs of one service a worker runs at once (its credit). */
  concurrency: 16,
  /** A worker's share of partition keys relative to the others. */
  weight: 1,
  /** How long `Worker.drain()` waits for running jobs. */
  drainTimeoutMs: 30_000,
  /** HTTP connections a Client keeps open to each hub. */
  httpConnections: 16,
  /** How long a ping sent by `Connection.roundTrip()` may wait for its pong. */
  roundTripTimeoutMs: 5_000,
});
