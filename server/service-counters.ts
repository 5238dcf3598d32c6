/**
 * Per-service request counts and a fixed-bucket latency histogram, updated where a job settles.
 * Plain fields and one typed array per service: counting a job allocates nothing and costs a
 * log2 and three increments. Readers (the dashboard) take the cumulative values and work out
 * rates and percentiles from the difference between two reads, so the hub keeps no history.
 */

/** Upper bound of the first bucket, in milliseconds. */
export const LATENCY_BASE_MS = 0.05;
/** Each bucket's upper bound is this factor times the one before (half a power of two). */
export const LATENCY_FACTOR = Math.SQRT2;
/**
 * Buckets 0..N-2 end at LATENCY_BASE_MS × LATENCY_FACTOR^i (50 µs up to about 105 s); the last
 * one takes everything longer. Percentiles read from it are within a factor of √2.
 */
export const LATENCY_BUCKETS = 44;

/** The bucket of a latency of `ms` milliseconds. */
export function latencyBucket(ms: number): number {
  if (!(ms > LATENCY_BASE_MS)) return 0;
  // ceil(log_√2(ms / base)) = ceil(2 × log2(ms / base)); the small slack keeps exact bounds in their own bucket.
  const i = Math.ceil(2 * Math.log2(ms / LATENCY_BASE_MS) - 1e-9);
  return Math.min(i, LATENCY_BUCKETS - 1);
}

/** The upper bound of bucket `i` in milliseconds (Infinity for the last). */
export function latencyBound(i: number): number {
  return i >= LATENCY_BUCKETS - 1 ? Number.POSITIVE_INFINITY : LATENCY_BASE_MS * LATENCY_FACTOR ** i;
}

/** One service's counts since the service became known to this hub. */
export class ServiceCounters {
  /** Jobs this hub received for the service (HTTP and WebSocket callers) that have settled. */
  requests = 0;
  /** Of those, the ones answered with an error: the hub's (503, 504, 502…) or the handler's. */
  errors = 0;
  /** Settled jobs by time from submit to settle. */
  readonly latency = new Uint32Array(LATENCY_BUCKETS);

  settled(ms: number, error: boolean): void {
    this.requests++;
    if (error) this.errors++;
    this.latency[latencyBucket(ms)]!++;
  }
}
