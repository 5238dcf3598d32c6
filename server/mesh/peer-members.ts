/**
 * What one peer hub told this one about itself: its ring members (from Members snapshots and
 * in-order MembersDelta frames) and the unkeyed credit it grants (Grants), each turned into a
 * registration here whose consumer is the link to that peer.
 */
import type { Dispatcher } from '../dispatcher.js';
import { type Consumer, type Registration, Takes } from '../job.js';
import type { Logger } from '../log.js';
import type { MemberTuple } from './peer-protocol.js';

/** Credit a remote member's registration has here: its own hub holds the worker's real credit. */
const REMOTE_CREDIT = 1_000_000;
/** Members one peer may announce: past it, new ones are ignored (and logged once). */
export const MAX_MEMBERS_PER_PEER = 100_000;

export class PeerMembers {
  /** The peer's ring members: `service \0 instanceId`. */
  private readonly members = new Map<string, Registration>();
  /** What the peer granted: one registration per service, its credit the grant. */
  private readonly grants = new Map<string, Registration>();
  private lastSeq = -1;
  private awaitingSnapshot = false;
  private warnedFull = false;

  constructor(
    private readonly dispatcher: Dispatcher,
    /** The link to the peer: the consumer of every registration here. */
    private readonly link: Consumer,
    private readonly hubId: string,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.members.size;
  }

  /**
   * Applies a Members snapshot or a MembersDelta. Returns false for a delta out of order (it is
   * dropped, and the caller asks once for a snapshot; later deltas wait for it).
   */
  apply(seq: number, list: MemberTuple[], snapshot: boolean): boolean | 'asked' {
    if (!snapshot && (this.awaitingSnapshot || seq !== this.lastSeq + 1)) {
      if (this.awaitingSnapshot) return 'asked';
      this.awaitingSnapshot = true;
      return false;
    }
    this.lastSeq = seq;
    const d = this.dispatcher;
    if (snapshot) {
      this.awaitingSnapshot = false;
      const keep = new Set(list.filter((m) => m[2] > 0).map((m) => `${m[0]}\0${m[1]}`));
      for (const k of this.members.keys()) if (!keep.has(k)) this.drop(this.members, k);
    }
    for (const [service, instanceId, weight] of list) {
      const k = `${service}\0${instanceId}`;
      if (weight === 0) {
        this.drop(this.members, k);
        continue;
      }
      const existing = this.members.get(k);
      if (!existing && this.members.size >= MAX_MEMBERS_PER_PEER) {
        if (!this.warnedFull)
          this.log.warn({ peer: this.hubId, max: MAX_MEMBERS_PER_PEER }, 'a peer announced more members than a hub takes from one peer; ignoring the rest');
        this.warnedFull = true;
        continue;
      }
      const r = d.register(this.link, service, REMOTE_CREDIT, { instanceId, hubId: this.hubId, weight, takes: Takes.Remote }, existing);
      if (typeof r === 'string') {
        this.log.warn({ peer: this.hubId, service, code: r }, 'cannot add a peer member: the hub serves too many services');
        continue;
      }
      this.members.set(k, r);
    }
    return true;
  }

  /** Applies Grants: absolute credit per service, 0 withdrawing it. */
  applyGrants(grants: [string, number][]): void {
    const d = this.dispatcher;
    for (const [service, credit] of grants) {
      if (credit === 0) {
        this.drop(this.grants, service);
        continue;
      }
      const existing = this.grants.get(service);
      const r = d.register(this.link, service, credit, { instanceId: `peer:${this.hubId}`, hubId: this.hubId, weight: 1, takes: Takes.Peer }, existing);
      if (typeof r !== 'string') this.grants.set(service, r);
    }
  }

  /** What the peer granted, per service. */
  granted(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [s, r] of this.grants) out[s] = r.concurrency;
    return out;
  }

  /**
   * The peer is leaving the mesh: its grants end, and each of its members gives way to another
   * hub's copy of the same instance where there is one (they keep their keys otherwise).
   */
  leaving(): void {
    this.dropAll(this.grants);
    for (const r of this.members.values()) this.dispatcher.demote(r);
  }

  /** The link can take work again: every registration of the peer may. */
  offerAll(): void {
    for (const r of this.members.values()) this.dispatcher.offer(r);
    for (const r of this.grants.values()) this.dispatcher.offer(r);
  }

  /** The peer's members leave every ring (a leaving peer that did not withdraw them in time). */
  withdrawn(): void {
    this.dropAll(this.members);
  }

  /** The link is gone: the peer's members leave every ring and its grants end. */
  clear(): void {
    this.dropAll(this.members);
    this.dropAll(this.grants);
  }

  /** Unregisters the registration at `key` of `from`, if any. */
  private drop(from: Map<string, Registration>, key: string): void {
    const r = from.get(key);
    if (!r) return;
    from.delete(key);
    this.dispatcher.unregister(r);
  }

  private dropAll(from: Map<string, Registration>): void {
    for (const r of from.values()) this.dispatcher.unregister(r);
    from.clear();
  }
}
