/**
 * The ring of one stream: every worker instance that owns partition keys, on this hub or
 * another, with an epoch that moves on every change. Owners are memoised per epoch in a
 * bounded LRU, since keys repeat; keyed routing, broadcast and admission all read this.
 */
import type { Registration } from './job.js';
import { memberSeed, ownerOf, type RingMember, rank, ringDigest } from './ring.js';

/** Owners remembered per stream; a change of membership forgets them all. */
export const OWNER_MEMO_SIZE = 4096;

/** One worker instance in a ring. */
export class RingEntry implements RingMember {
  readonly seed: number;
  constructor(
    readonly instanceId: string,
    /** The hub that holds the worker's session. */
    readonly hubId: string,
    readonly weight: number,
    /** The registration on this hub; null for a worker on another hub. */
    readonly reg: Registration | null,
  ) {
    this.seed = memberSeed(instanceId);
  }
}

export class StreamRing {
  /** Moves on every join, leave and weight change. */
  epoch = 0;
  private readonly byInstance = new Map<string, RingEntry>();
  /** Members sorted by instanceId: the ring order every hub shares. */
  private ordered: RingEntry[] = [];
  private readonly memo = new Map<string, RingEntry>();
  private digestValue = ringDigest([]);

  get size(): number {
    return this.ordered.length;
  }

  /** Owners remembered for the current epoch. */
  get memoSize(): number {
    return this.memo.size;
  }

  /** Members in ring order (by instanceId). */
  members(): readonly RingEntry[] {
    return this.ordered;
  }

  get(instanceId: string): RingEntry | undefined {
    return this.byInstance.get(instanceId);
  }

  /** Adds or replaces the member with `entry.instanceId`. */
  set(entry: RingEntry): void {
    this.byInstance.set(entry.instanceId, entry);
    this.changed();
  }

  /** Removes `entry` if it is still the member for its instanceId. */
  delete(entry: RingEntry): boolean {
    if (this.byInstance.get(entry.instanceId) !== entry) return false;
    this.byInstance.delete(entry.instanceId);
    this.changed();
    return true;
  }

  /** The member that owns `key`, or null for an empty ring. */
  owner(key: string): RingEntry | null {
    const hit = this.memo.get(key);
    if (hit !== undefined) {
      // Refresh its place: the least recently used key is the one forgotten first.
      this.memo.delete(key);
      this.memo.set(key, hit);
      return hit;
    }
    const owner = ownerOf(key, this.ordered);
    if (owner === null) return null;
    if (this.memo.size >= OWNER_MEMO_SIZE) this.memo.delete(this.memo.keys().next().value!);
    this.memo.set(key, owner);
    return owner;
  }

  /** Every member ranked for `key`, owner first: the failover order. */
  rank(key: string): RingEntry[] {
    return rank(key, this.ordered);
  }

  /** The membership digest (PROTOCOL.md, "Ring digest"); equal on every hub once converged. */
  digest(): number {
    return this.digestValue;
  }

  private changed(): void {
    this.epoch++;
    this.memo.clear();
    this.ordered = [...this.byInstance.values()].sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
    this.digestValue = ringDigest(this.ordered);
  }
}
