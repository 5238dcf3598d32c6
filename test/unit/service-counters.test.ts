/** The latency histogram's buckets: each latency lands in the one bucket whose bounds hold it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LATENCY_BUCKETS, latencyBound, latencyBucket, ServiceCounters } from '../../server/service-counters.js';

describe('service counters', () => {
  it('puts a latency in the bucket whose upper bound is the first at or above it', () => {
    for (const ms of [0, 0.01, 0.05, 0.0500001, 0.07, 0.1, 0.5, 1, 1.3, 7.5, 42, 999, 30_000, 100_000]) {
      const i = latencyBucket(ms);
      assert.ok(ms <= latencyBound(i), `${ms} ms in bucket ${i} ending at ${latencyBound(i)}`);
      if (i > 0) assert.ok(ms > latencyBound(i - 1), `${ms} ms above the bucket before ${i}`);
    }
  });

  it('keeps an exact bound in its own bucket and everything past the last bound in the last bucket', () => {
    for (let i = 0; i < LATENCY_BUCKETS - 1; i++) assert.equal(latencyBucket(latencyBound(i)), i);
    assert.equal(latencyBucket(1e9), LATENCY_BUCKETS - 1);
    assert.equal(latencyBucket(Number.NaN), 0);
    assert.equal(latencyBound(LATENCY_BUCKETS - 1), Number.POSITIVE_INFINITY);
  });

  it('counts requests, errors and latencies', () => {
    const c = new ServiceCounters();
    c.settled(1, false);
    c.settled(2, true);
    c.settled(1, false);
    assert.deepEqual([c.requests, c.errors], [3, 1]);
    assert.equal(c.latency[latencyBucket(1)], 2);
    assert.equal(
      c.latency.reduce((a, b) => a + b, 0),
      3,
    );
  });
});
