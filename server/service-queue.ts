/**
 * Per-service state: the registrations serving it, the ones with free credit (ready, in
 * round-robin order), the FIFO of jobs no worker could take yet, and the stream's ring of key
 * owners. Credit (the ready list) and membership (the ring) are kept apart: a long-poller adds
 * capacity without owning keys, and a worker on another hub owns keys without local credit.
 */
import { JobList, type Registration } from './job.js';
import { RingEntry, StreamRing } from './stream-ring.js';
import { now } from './timer-wheel.js';

export class ServiceState {
  /** Open registrations on this hub; closed ones are removed at once. */
  readonly regs: Registration[] = [];
  /** Registrations that may have free credit, oldest first; stale entries are skipped. */
  private ready: Registration[] = [];
  private readyHead = 0;
  /** Unkeyed jobs waiting for any consumer. */
  readonly queue = new JobList();
  /** Keyed jobs waiting for the first worker that can own keys. */
  readonly keyedQueue = new JobList();
  /** Queued jobs in `queue` and in every registration's owner queue. */
  queued = 0;
  /** When the service last lost its last consumer (or was created). */
  lastConsumerAt = now();
  /** Every key owner of the stream. */
  readonly ring = new StreamRing();
  /** When the ring last became empty; never, for a service only long-pollers ever served. */
  lastKeyOwnerAt = -Infinity;
  private readonly entries = new Map<Registration, RingEntry>();

  constructor(readonly name: string) {}

  /** True while the service has a consumer or lost its last one less than `lingerMs` ago. */
  isServed(lingerMs: number, keyed = false, at = now()): boolean {
    // Keyed and broadcast jobs need a key owner: long-pollers serve unkeyed jobs only.
    if (keyed) return this.ring.size > 0 || at - this.lastKeyOwnerAt < lingerMs;
    return this.regs.length > 0 || at - this.lastConsumerAt < lingerMs;
  }

  /** Next registration with free credit, in round-robin order. */
  pick(): Registration | null {
    while (this.readyHead < this.ready.length) {
      const r = this.ready[this.readyHead++]!;
      r.inReady = false;
      if (r.canTake()) {
        this.compact();
        return r;
      }
    }
    this.ready.length = 0;
    this.readyHead = 0;
    return null;
  }

  /** Puts `r` at the back of the ready order, once; only registrations that take unkeyed work. */
  markReady(r: Registration): void {
    if (r.inReady || !r.takesUnkeyed()) return;
    r.inReady = true;
    this.ready.push(r);
  }

  /** The registration that owns `key`, or null while the ring is empty. */
  owner(key: string): Registration | null {
    return this.ring.owner(key)?.reg ?? null;
  }

  /** Key owners with a registration here, in ring order: the parts of a broadcast. */
  keyed(): Registration[] {
    const out: Registration[] = [];
    for (const e of this.ring.members()) if (e.reg) out.push(e.reg);
    return out;
  }

  add(r: Registration): void {
    this.regs.push(r);
    if (r.ownsKeys()) this.join(r);
  }

  /** A registration's weight changed: its ring entry is replaced, moving only its keys. */
  reweigh(r: Registration, weight: number): void {
    if (r.weight === weight) return;
    r.weight = weight;
    if (this.entries.has(r)) this.join(r);
  }

  remove(r: Registration): void {
    const i = this.regs.indexOf(r);
    if (i !== -1) this.regs.splice(i, 1);
    const entry = this.entries.get(r);
    if (entry) {
      this.entries.delete(r);
      this.ring.delete(entry);
      if (this.ring.size === 0) this.lastKeyOwnerAt = now();
    }
    if (this.regs.length === 0) this.lastConsumerAt = now();
  }

  private join(r: Registration): void {
    const entry = new RingEntry(r.instanceId, r.hubId, r.weight, r);
    this.entries.set(r, entry);
    this.ring.set(entry);
  }

  private compact(): void {
    if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.readyHead);
      this.readyHead = 0;
    }
  }
}
