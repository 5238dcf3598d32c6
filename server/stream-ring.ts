/**
 * The ring of one stream: every worker instance that owns partition keys, on this hub or
 * another, with an epoch that moves on every change. Owners are memoised per epoch in a
 * bounded two-generation LRU, since keys repeat; keyed routing, broadcast and admission all
 * read this.
 */
import type { Registration } from './job.js';
import { memberSeed, ownerOf, type RingMember, rank, ringDigest } from './ring.js';

/**
 * Owners remembered per stream, in two generations of this many keys: when the young one is
 * full it becomes the old one and the old one is dropped whole, which costs far less than
 * evicting one key at a time (a Map's oldest-key lookup slows down as deletes pile up).
 */
export const OWNER_MEMO_GENERATION = 2048;
/** Owners remembered across every stream of the process: past it no memo takes new keys. */
export const OWNER_MEMO_BUDGET = 65_536;
let memoEntries = 0;
/**
 * Lookups per review of the memo's hit rate. Keys that rarely repeat (random ids) make a memo
 * pure cost (inserts, rotations, garbage): below MEMO_MIN_HIT_RATE it is switched off, and tried
 * again after MEMO_OFF_WINDOWS windows in case the keys changed.
 */
const MEMO_WINDOW = 4096;
const MEMO_MIN_HIT_RATE = 0.25;
const MEMO_OFF_WINDOWS = 16;

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
  private young = new Map<string, RingEntry>();
  private old = new Map<string, RingEntry>();
  private lookups = 0;
  private hits = 0;
  /** Windows left with the memo off; 0 while it is on. */
  private memoOff = 0;
  private digestValue = ringDigest([]);

  get size(): number {
    return this.ordered.length;
  }

  /** Owners remembered for the current epoch. */
  get memoSize(): number {
    return this.young.size + this.old.size;
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
    // With one member or none there is nothing to rank.
    if (this.ordered.length < 2) return this.ordered[0] ?? null;
    if (++this.lookups === MEMO_WINDOW) this.review();
    if (this.memoOff > 0) return ownerOf(key, this.ordered)!;
    const hit = this.young.get(key);
    if (hit !== undefined) {
      this.hits++;
      return hit;
    }
    const old = this.old.get(key);
    if (old !== undefined) {
      this.hits++;
      // Used again: it moves to the young generation, so it outlives the next rotation.
      this.remember(key, old);
      return old;
    }
    const owner = ownerOf(key, this.ordered)!;
    this.remember(key, owner);
    return owner;
  }

  /** Whether owners are remembered now (false while keys rarely repeat). */
  get memoOn(): boolean {
    return this.memoOff === 0;
  }

  /** End of a window: keep the memo if keys repeat enough, else switch it off for a while. */
  private review(): void {
    if (this.memoOff > 0) this.memoOff--;
    else if (this.hits < MEMO_WINDOW * MEMO_MIN_HIT_RATE) {
      this.memoOff = MEMO_OFF_WINDOWS;
      this.forget();
    }
    this.lookups = 0;
    this.hits = 0;
  }

  /** Forgets every remembered owner (the stream is gone, or its membership changed). */
  forget(): void {
    memoEntries -= this.young.size + this.old.size;
    if (this.young.size > 0) this.young = new Map();
    if (this.old.size > 0) this.old = new Map();
  }

  private remember(key: string, owner: RingEntry): void {
    if (this.young.size >= OWNER_MEMO_GENERATION) {
      memoEntries -= this.old.size;
      this.old = this.young;
      this.young = new Map();
    }
    if (memoEntries >= OWNER_MEMO_BUDGET) return;
    this.young.set(key, owner);
    memoEntries++;
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
    this.forget();
    this.ordered = [...this.byInstance.values()].sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
    this.digestValue = ringDigest(this.ordered);
  }
}
