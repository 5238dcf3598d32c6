/** Latency samples in microseconds and their percentiles, for the Node load drivers. */
export class Latencies {
  private samples = new Float64Array(1 << 16);
  count = 0;

  add(us: number): void {
    if (this.count === this.samples.length) {
      const bigger = new Float64Array(this.samples.length * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.count++] = us;
  }

  /** Percentiles (0-100) in microseconds. */
  percentiles(ps: number[]): number[] {
    const sorted = this.samples.subarray(0, this.count).slice().sort();
    return ps.map((p) => (this.count === 0 ? 0 : sorted[Math.min(this.count - 1, Math.floor((p / 100) * this.count))]!));
  }
}

/** User + system microseconds of a `process.cpuUsage()` reading. */
export function cpuOf(u: NodeJS.CpuUsage): number {
  return u.user + u.system;
}
