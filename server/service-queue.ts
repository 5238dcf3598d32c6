/**
 * Per-service state: the registrations serving it, the ones with free credit (ready, in
 * round-robin order), the FIFO of jobs no worker could take yet, and the stream's ring of key
 * owners. Credit (the ready list) and membership (the ring) are kept apart: a long-poller adds
 * capacity without owning keys, and a worker on another hub owns keys without local credit.
 */
import { inProcessInstanceId, JobList, type Registration } from './job.js';
import type { ServiceTally } from './request-tally.js';
import { RingEntry, StreamRing } from './stream-ring.js';
import { now } from './timer-wheel.js';

export const ServiceOrigin = { Own: 0, Peer: 1, Poll: 2 } as const;
export type ServiceOriginCode = (typeof ServiceOrigin)[keyof typeof ServiceOrigin];

export class ServiceState {
  /** Open registrations on this hub; closed ones are removed at once. */
  readonly regs: Registration[] = [];
  /** Local registrations that may have free credit, oldest first; stale entries are skipped. */
  private readonly ready = new ReadyList();
  /** Peer hubs with credit left, tried only when no local consumer is free. */
  private readonly readyPeers = new ReadyList();
  /** Unkeyed jobs that entered this hub, waiting for any consumer. */
  readonly queue = new JobList();
  /**
   * Unkeyed jobs peer hubs sent within their grant, waiting for a consumer here, one queue per
   * peer. Consumers here take from this hub's queue and each peer's in turn, so a peer whose
   * callers have no workers of their own gets a fair share of these, not what is left over.
   */
  readonly peerQueues = new Map<string, JobList>();
  /** The same queues in an array, so taking turns allocates nothing. */
  private peerQueueList: JobList[] = [];
  private turn = 0;
  /** Keyed jobs waiting for the first worker that can own keys. */
  readonly keyedQueue = new JobList();
  /** Queued jobs in `queue` and in every registration's owner queue. */
  queued = 0;
  /** When the service last lost its last consumer of unkeyed work here (or was created). */
  lastConsumerAt = now();
  /** Open registrations that take unkeyed work (workers and long-pollers here, peers' grants). */
  unkeyedConsumers = 0;
  /** Of those, the ones on this hub, and the credit they have in all (what peers are granted). */
  localUnkeyed = 0;
  localCredit = 0;
  /**
   * Who made the service known here, for the service table's budgets: this hub's workers, a
   * peer's members or grants, or only long-polls (a bounded LRU of names of its own, so polls
   * on made-up names cannot lock real workers out). A worker registering here makes it Own.
   */
  origin: ServiceOriginCode = ServiceOrigin.Own;
  /** Its series in /metrics, once it has some (see RequestTally.bind). */
  tally: ServiceTally | null = null;
  /** Every key owner of the stream. */
  readonly ring = new StreamRing();
  /** When the ring last became empty; never, for a service only long-pollers ever served. */
  lastKeyOwnerAt = -Infinity;
  private readonly entries = new Map<Registration, RingEntry>();
  /**
   * Every registration per instanceId that could be its ring member: the same worker may be
   * registered on two hubs for a moment (it moved before its old session timed out, or its hub
   * is leaving the mesh). The ring holds one not on a leaving hub, on the smaller hubId, so
   * every hub derives the same ring.
   */
  private readonly candidates = new Map<string, RingEntry[]>();

  constructor(readonly name: string) {}

  /** True while the service has a consumer or lost its last one less than `lingerMs` ago. */
  isServed(lingerMs: number, keyed = false, at = now()): boolean {
    // Keyed and broadcast jobs need a key owner: long-pollers serve unkeyed jobs only.
    if (keyed) return this.ring.size > 0 || at - this.lastKeyOwnerAt < lingerMs;
    return this.unkeyedConsumers > 0 || at - this.lastConsumerAt < lingerMs;
  }

  /** Next consumer with free credit: one here in round-robin order, else a peer hub with credit left. */
  pick(): Registration | null {
    return this.ready.pick() ?? this.readyPeers.pick();
  }

  /** Next consumer here with free credit (for jobs a peer sent: they travel one hop only). */
  pickLocal(): Registration | null {
    return this.ready.pick();
  }

  /** Puts `r` at the back of its ready order, once; only registrations that take unkeyed work. */
  markReady(r: Registration): void {
    if (r.inReady || !r.takesUnkeyed()) return;
    r.inReady = true;
    (r.isLocal() ? this.ready : this.readyPeers).push(r);
  }

  /** The queue of unkeyed jobs from peer `hubId`, made on first use. */
  peerQueue(hubId: string): JobList {
    let q = this.peerQueues.get(hubId);
    if (!q) {
      q = new JobList();
      this.peerQueues.set(hubId, q);
      this.peerQueueList.push(q);
    }
    return q;
  }

  /**
   * The queue a consumer here takes its next unkeyed job from: this hub's own and each peer's
   * in turn. A peer's grant takes only from this hub's own (one hop).
   */
  nextQueue(r: Registration): JobList | null {
    const peers = this.peerQueueList;
    if (!r.isLocal() || peers.length === 0) return this.queue.head ? this.queue : null;
    const n = peers.length + 1;
    for (let i = 0; i < n; i++) {
      const t = (this.turn + i) % n;
      const q = t === 0 ? this.queue : peers[t - 1]!;
      if (q.head) {
        this.turn = (t + 1) % n;
        return q;
      }
    }
    this.clearPeerQueues();
    return null;
  }

  /** Forgets the per-peer queues (all empty, or emptied by the caller). */
  clearPeerQueues(): void {
    this.peerQueues.clear();
    this.peerQueueList = [];
    this.turn = 0;
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

  /** The open registration of `instanceId` on this hub that is a ring member, if any. */
  localMember(instanceId: string): Registration | null {
    for (const e of this.candidates.get(instanceId) ?? []) if (e.reg && !e.reg.closed && e.reg.takesUnkeyed()) return e.reg;
    return null;
  }

  /** Adds `r`; returns the ring member it displaced (whose waiting jobs must move), or null. */
  add(r: Registration): Registration | null {
    this.regs.push(r);
    if (r.takesUnkeyed()) this.unkeyedConsumers++;
    if (r.takesUnkeyed() && r.isLocal()) {
      this.localUnkeyed++;
      this.localCredit += r.concurrency;
    }
    return r.ownsKeys() ? this.join(r) : null;
  }

  /** A registration's credit changed. */
  recredit(r: Registration, concurrency: number): void {
    if (r.takesUnkeyed() && r.isLocal() && !r.closed) this.localCredit += concurrency - r.concurrency;
    r.concurrency = concurrency;
  }

  /** A registration's weight changed: its ring entry is replaced, moving only its keys. */
  reweigh(r: Registration, weight: number): void {
    if (r.weight === weight) return;
    r.weight = weight;
    if (this.entries.has(r)) this.join(r);
  }

  remove(r: Registration): void {
    const i = this.regs.indexOf(r);
    if (i === -1) return;
    this.regs.splice(i, 1);
    const entry = this.entries.get(r);
    if (entry) {
      this.entries.delete(r);
      this.leave(entry);
      if (this.ring.size === 0) this.lastKeyOwnerAt = now();
    }
    if (r.takesUnkeyed() && r.isLocal()) {
      this.localUnkeyed--;
      this.localCredit -= r.concurrency;
    }
    if (r.takesUnkeyed() && --this.unkeyedConsumers === 0) this.lastConsumerAt = now();
  }

  /**
   * Makes `r` a candidate for its instance's ring entry. Returns the registration that was the
   * member until now and no longer is (its waiting jobs must move), or null.
   */
  private join(r: Registration): Registration | null {
    const old = this.entries.get(r);
    const entry = new RingEntry(r.instanceId, r.hubId, r.weight, r);
    this.entries.set(r, entry);
    const list = (this.candidates.get(r.instanceId) ?? []).filter((e) => e !== old);
    list.push(entry);
    this.candidates.set(r.instanceId, list);
    return this.choose(r.instanceId, list, old ?? null);
  }

  private leave(entry: RingEntry): void {
    const list = (this.candidates.get(entry.instanceId) ?? []).filter((e) => e !== entry);
    if (list.length === 0) {
      this.candidates.delete(entry.instanceId);
      this.ring.delete(entry);
    } else {
      this.candidates.set(entry.instanceId, list);
      this.choose(entry.instanceId, list, entry);
    }
  }

  /**
   * The candidate of `instanceId` that is the ring member: not on a leaving hub if one is not,
   * then the one on the smaller hub id, so every hub picks the same (but a leaving hub itself,
   * which takes no new work: it does not rank its own sessions last). The ring's instances and
   * weights, and so its digest, are the same whichever copy is chosen. Returns the member it
   * displaced (other than `gone`, which is leaving anyway), or null.
   */
  private choose(instanceId: string, list: RingEntry[], gone: RingEntry | null): Registration | null {
    list.sort(byPreference);
    const was = this.ring.get(instanceId);
    if (was === list[0]) return null;
    this.ring.set(list[0]!);
    return was && was !== gone ? was.reg : null;
  }

  /**
   * A candidate's hub began to leave the mesh: the instance's copy on another hub becomes the
   * member. Returns the registration it displaced, or null.
   */
  rechoose(instanceId: string): Registration | null {
    const list = this.candidates.get(instanceId);
    return list ? this.choose(instanceId, list, null) : null;
  }

  /** Whether `instanceId` has a candidate on a hub other than `hubId` (it moved there). */
  hasCopyElsewhere(instanceId: string, hubId: string): boolean {
    return this.candidates.get(instanceId)?.some((e) => e.hubId !== hubId) ?? false;
  }
}

function byPreference(a: RingEntry, b: RingEntry): number {
  // A hub's in-process handlers are `<hubId>.local` there only: a worker elsewhere that names
  // itself so never takes their keys.
  const own = Number(isOwnLocal(b)) - Number(isOwnLocal(a));
  if (own !== 0) return own;
  const lame = Number(a.reg?.consumer.lameDuck === true) - Number(b.reg?.consumer.lameDuck === true);
  if (lame !== 0) return lame;
  return a.hubId < b.hubId ? -1 : a.hubId > b.hubId ? 1 : 0;
}

function isOwnLocal(e: RingEntry): boolean {
  return e.instanceId === inProcessInstanceId(e.hubId);
}

/** Registrations that may have free credit, oldest first; stale entries are skipped. */
class ReadyList {
  private list: Registration[] = [];
  private head = 0;

  push(r: Registration): void {
    this.list.push(r);
  }

  pick(): Registration | null {
    while (this.head < this.list.length) {
      const r = this.list[this.head++]!;
      r.inReady = false;
      if (r.canTake()) {
        if (this.head > 1024 && this.head * 2 > this.list.length) {
          this.list = this.list.slice(this.head);
          this.head = 0;
        }
        return r;
      }
    }
    this.list.length = 0;
    this.head = 0;
    return null;
  }
}
