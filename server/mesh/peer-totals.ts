/**
 * Jobs forwarded each way per peer, across that peer's links: a link counts from zero, and a
 * peer that drops and comes back gets a new one, while /metrics counters must never go back.
 * What closed links counted is kept here per peer hub id until the peer is forgotten.
 */
export class PeerTotals {
  private readonly closed = new Map<string, { in: number; out: number; downAt: number }>();

  /** A link to `hubId` closed having forwarded these. */
  retire(hubId: string, forwardedIn: number, forwardedOut: number, at: number): void {
    const t = this.closed.get(hubId);
    if (t) {
      t.in += forwardedIn;
      t.out += forwardedOut;
      t.downAt = at;
    } else {
      this.closed.set(hubId, { in: forwardedIn, out: forwardedOut, downAt: at });
    }
  }

  /** What closed links to `hubId` forwarded. */
  get(hubId: string): { in: number; out: number } {
    return this.closed.get(hubId) ?? NONE;
  }

  forget(hubId: string): void {
    this.closed.delete(hubId);
  }

  /** Peers closed links were counted for, with when the last one closed. */
  entries(): IterableIterator<[string, { downAt: number }]> {
    return this.closed.entries();
  }
}

const NONE = Object.freeze({ in: 0, out: 0 });
