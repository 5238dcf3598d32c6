/**
 * Per-service state: the registrations serving it, the ones with free credit (ready, in
 * round-robin order), and the FIFO of jobs no worker could take yet.
 */
import { JobList, type Registration } from './job.js';
import { ownerOf } from './ring.js';
import { now } from './timer-wheel.js';

export class ServiceState {
  /** Open registrations; closed ones are removed at once. */
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
  /** Open registrations that own partition keys (WebSocket workers, not long-pollers). */
  keyOwners = 0;
  /** When the last key owner left; never, for a service only long-pollers ever served. */
  lastKeyOwnerAt = -Infinity;

  constructor(readonly name: string) {}

  /** True while the service has a consumer or lost its last one less than `lingerMs` ago. */
  isServed(lingerMs: number, keyed = false, at = now()): boolean {
    // Keyed and broadcast jobs need a key owner: long-pollers serve unkeyed jobs only.
    if (keyed) return this.keyOwners > 0 || at - this.lastKeyOwnerAt < lingerMs;
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

  /** Puts `r` at the back of the ready order, once. */
  markReady(r: Registration): void {
    if (r.inReady) return;
    r.inReady = true;
    this.ready.push(r);
  }

  /** The owner of `key` among the open registrations that take keys. */
  owner(key: string): Registration | null {
    return ownerOf(key, this.regs, ownsKeys);
  }

  /** Registrations that take keyed and broadcast jobs (not long-pollers). */
  keyed(): Registration[] {
    return this.regs.filter(ownsKeys);
  }

  add(r: Registration): void {
    this.regs.push(r);
    if (!r.unkeyedOnly) this.keyOwners++;
  }

  remove(r: Registration): void {
    const i = this.regs.indexOf(r);
    if (i !== -1) {
      this.regs.splice(i, 1);
      if (!r.unkeyedOnly && --this.keyOwners === 0) this.lastKeyOwnerAt = now();
    }
    if (this.regs.length === 0) this.lastConsumerAt = now();
  }

  private compact(): void {
    if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.readyHead);
      this.readyHead = 0;
    }
  }
}

function ownsKeys(r: Registration): boolean {
  return !r.unkeyedOnly;
}
