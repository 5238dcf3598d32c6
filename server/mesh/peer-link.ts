/**
 * One link to a peer hub, over either socket adapter (uWS for links it accepted at /peer, `ws`
 * for links it dialled). After the handshake it is, at once:
 * - a consumer: the ring members the peer announced are registrations whose consumer is this
 *   link, so the dispatcher forwards their jobs here without knowing it is a hub;
 * - a waiter: jobs the peer forwarded for this hub's workers settle back through here;
 * - the peer's membership: snapshots and deltas become those registrations.
 */
import { ERRORS, type ErrorCode } from '../../client/errors.js';
import { CloseCode, type Headers, ProtocolError, RequestMode } from '../../client/protocol.js';
import type { Counters } from '../counters.js';
import type { Dispatcher } from '../dispatcher.js';
import { FrameOutbox } from '../frame-outbox.js';
import { IdTable } from '../id-table.js';
import { type Consumer, HandBack, Job, JobState, type JobWaiter, Takes } from '../job.js';
import type { Logger } from '../log.js';
import type { LeaseOutcome } from '../longpoll.js';
import type { HubOptions } from '../options.js';
import type { SessionSocket, SessionSocketEvents } from '../session-socket.js';
import { now } from '../timer-wheel.js';
import type { PeerRole } from './peer-auth.js';
import { PeerHandshake } from './peer-handshake.js';
import { PeerMembers } from './peer-members.js';
import {
  batchPeerFrames,
  decodePeerFrame,
  encodePeerFrame,
  type ForwardFrame,
  MAX_BATCH_BYTES,
  MAX_HOPS,
  type MemberTuple,
  type PeerFrame,
  PeerOp,
} from './peer-protocol.js';

/** A job handed back unrun more often than this fails rather than travel again. */
const MAX_HAND_BACKS = 5;

/** What a link needs from the mesh it belongs to. */
export interface LinkHost {
  readonly options: HubOptions;
  readonly hubId: string;
  readonly bootNonce: string;
  readonly dispatcher: Dispatcher;
  readonly counters: Counters;
  readonly secrets: readonly string[];
  readonly log: Logger;
  advertise(): string;
  /** The handshake is done; false when the mesh keeps another link to that hub instead. */
  linkUp(link: PeerLink): boolean;
  /** The link closed; `wasOpen` says whether it had finished its handshake. */
  linkDown(link: PeerLink, wasOpen: boolean): void;
  /** A legacy worker's reply for a job this hub leased, passed on by the peer it reached. */
  answerLease(leaseId: string, contentType: string | null, body: Uint8Array, poster: string | null): LeaseOutcome;
  /** What this hub grants every peer now, for every service it has consumers of. */
  allGrants(): [string, number][];
  /** Grant `service` again to every peer soon (a peer used a grant that is gone). */
  regrant(service: string): void;
  /** A peer opened a session for `instanceId`: close an older one here. */
  claimed(instanceId: string, byHub: string, token: string | null): void;
  /** A link opened: every peer hears of every other (the mesh becomes full). */
  announcePeers(): void;
  /** Hubs a peer is linked to: dial those this hub does not know yet. */
  learnPeers(peers: [string, string][]): void;
  /** This hub's ring members, and the sequence number of that state. */
  membersSnapshot(): { seq: number; members: MemberTuple[] };
  /** This hub is leaving the mesh (a lame duck). */
  readonly isLeaving: boolean;
}

export type LinkState = 'handshake' | 'open' | 'closed';

export class PeerLink implements Consumer, JobWaiter, SessionSocketEvents {
  readonly leaseMs = 0;
  state: LinkState = 'handshake';
  remoteHubId = '';
  remoteBoot = '';
  remoteAdvertise = '';
  /** Set by the handshake: the peer's membership arrived at least once. */
  synced = false;
  lastSeen = now();
  nextPingAt: number;
  rttMs: number | null = null;
  readonly openedAt = Date.now();
  private readonly createdAt = now();
  /** Why the link closed, for logs and the dialer. */
  closeCode = 0;
  forwardedOut = 0;
  forwardedIn = 0;
  /** Bytes of frames each way (membership traffic is what the scale bench measures). */
  bytesIn = 0;
  bytesOut = 0;
  /** Body bytes held for jobs forwarded over this link and not settled. */
  heldBytes = 0;
  /** The peer said it is leaving the mesh: no new work goes to it; its members keep their keys. */
  lameDuck = false;
  /** When it said so: its members keep their keys for the peer timeout at most. */
  private lameDuckAt = 0;
  private pingSentAt = 0;
  private socket: SessionSocket | null = null;
  private readonly outbox: FrameOutbox;
  private readonly hs: PeerHandshake;
  /** Jobs this hub forwarded over the link, by forward id. */
  private readonly outgoing = new IdTable<Job>();
  private nextForwardId = 1;
  /** Jobs the peer forwarded to this hub, by the peer's forward id. */
  private readonly incoming = new IdTable<Job>();
  /** The peer's members and grants, once its hub id is known. */
  private peer: PeerMembers | null = null;
  /** Unkeyed jobs the peer has here now, per service (within what this hub granted it). */
  private readonly unkeyedIn = new Map<string, number>();
  /** Legacy replies passed on to the peer, waiting for its answer. */
  private readonly leaseReplies = new Map<number, (outcome: LeaseOutcome | null) => void>();
  private nextLeaseReply = 1;
  private lastSnapshotAt = -Infinity;
  /** When the peer last answered a ping: what it read up to then, it read. */
  private lastPongAt = now();
  /** Forwards from the peer refused because it had maxForwardsPerPeer in flight here. */
  forwardsRefused = 0;
  private readonly joinFrames = (frames: readonly Uint8Array[], from: number): Uint8Array[] =>
    batchPeerFrames(frames, from, Math.min(MAX_BATCH_BYTES, this.host.options.maxFrameBytes));

  constructor(
    private readonly host: LinkHost,
    /** This hub dialled the link (else it accepted it). */
    readonly dialed: boolean,
    /** The address dialled, or the remote address of an accepted link. */
    readonly address: string,
  ) {
    this.nextPingAt = now() + Math.random() * pingInterval(host.options);
    this.outbox = new FrameOutbox(host.options.maxBackpressureBytes, host.options.maxSessionQueuedBytes, host.counters.sockets, () => this.reoffer());
    this.hs = new PeerHandshake(host, dialed, address);
  }

  get role(): PeerRole {
    return this.dialed ? 'dialer' : 'acceptor';
  }

  /** Jobs forwarded each way and not settled yet. */
  get inflightOut(): number {
    return this.outgoing.size;
  }
  get inflightIn(): number {
    return this.incoming.size;
  }
  /** The peer's ring members known here. */
  get memberCount(): number {
    return this.peer?.size ?? 0;
  }
  /** Bytes of frames the socket has not taken yet. */
  get queuedBytes(): number {
    return this.outbox.pendingBytes;
  }
  /** What the peer granted this hub, per service. */
  grantedCredit(): Record<string, number> {
    return this.peer?.granted() ?? {};
  }

  attach(socket: SessionSocket): void {
    this.socket = socket;
    this.outbox.socket = socket;
    const opening = this.hs.opening();
    if (opening) this.send(opening);
  }

  // ---- Consumer: jobs for the peer's workers ----

  canSend(): boolean {
    return this.state === 'open' && !this.lameDuck && !this.outbox.blocked && !this.full();
  }

  /** A full or backed-up link refuses new work; a leaving peer's work waits for its instance to move. */
  refusesWaiting(): boolean {
    return this.state === 'open' && !this.lameDuck && (this.outbox.blocked || this.full());
  }

  /** As many bytes or forwards in flight as the peer takes: more waits or is refused here, not there. */
  private full(): boolean {
    const o = this.host.options;
    return this.heldBytes >= o.maxForwardBytesPerPeer || this.outgoing.size >= o.maxForwardsPerPeer;
  }

  deliver(job: Job): void {
    const id = this.nextForwardId++;
    job.wireId = id;
    job.forwardedBytes = job.body.length;
    this.heldBytes += job.forwardedBytes;
    this.outgoing.add(id, job);
    this.forwardedOut++;
    const remaining = Math.max(1, Math.round(job.deadline - now()));
    // Unkeyed work against a grant names no worker: any consumer there takes it.
    const instanceId = job.reg!.takes === Takes.Peer ? '' : job.reg!.instanceId;
    this.send([
      PeerOp.Forward,
      id,
      job.mode,
      job.service,
      job.key,
      instanceId,
      remaining,
      job.attempt,
      job.contentType,
      job.headers,
      job.query,
      job.body,
      MAX_HOPS,
    ]);
  }

  /** The caller is gone or the deadline passed: the peer stops the job; the credit comes back now. */
  cancel(job: Job, code: ErrorCode): void {
    if (this.outgoing.get(job.wireId) !== job) return;
    this.takeOutgoing(job.wireId);
    if (this.state === 'open') this.send([PeerOp.ForwardCancel, job.wireId, code === 'E_DEADLINE' ? 'E_DEADLINE' : 'E_CANCELLED']);
    this.host.dispatcher.release(job);
  }

  // ---- JobWaiter: jobs the peer forwarded here ----

  settled(job: Job): void {
    this.uncount(job);
    if (this.incoming.get(job.callerId) !== job) return;
    this.incoming.take(job.callerId);
    if (this.state !== 'open') return;
    const id = job.callerId;
    // Shutting down, or the worker gone: the origin owns the job's routing and attempts.
    if (job.handBack !== HandBack.None || job.errorCode === 'E_SHUTTING_DOWN') {
      this.send([PeerOp.HandBack, id, job.handBack !== HandBack.NotRun]);
    } else if (job.errorCode !== null) {
      this.send([PeerOp.ForwardError, id, job.status, String(job.errorCode), job.errorMessage ?? '', job.servedBy]);
    } else {
      const servedBy = job.servedBy ?? this.host.hubId;
      const reply = encodePeerFrame([PeerOp.ForwardReply, id, job.status, job.replyContentType, job.replyHeaders, job.replyBody ?? EMPTY, servedBy]);
      // A reply that fit its worker's frame can outgrow a peer frame by the fields a ForwardReply
      // adds: the peer would close the link on it (and every job on the link would run again).
      if (reply.byteLength <= this.host.options.maxFrameBytes) this.sendBytes(reply);
      else this.send([PeerOp.ForwardError, id, ERRORS.E_BAD_REPLY.status, 'E_BAD_REPLY', 'the reply is larger than a peer frame', servedBy]);
    }
  }

  // ---- frames in ----

  onMessage(data: Uint8Array, isBinary: boolean, borrowed: boolean): void {
    this.lastSeen = now();
    this.host.counters.sockets.framesIn++;
    this.bytesIn += data.byteLength;
    if (this.state === 'closed') return;
    let f: PeerFrame;
    try {
      if (!isBinary) throw new ProtocolError('peer frames are binary');
      f = decodePeerFrame(data, borrowed, this.state === 'handshake');
    } catch (err) {
      return this.refuse(CloseCode.Protocol, `bad peer frame: ${(err as Error).message}`);
    }
    if (this.state === 'handshake') return this.handshake(f);
    if (f[0] !== PeerOp.Batch) return this.apply(f);
    // A frame may close the link: the ones after it are for a link that is gone.
    for (let i = 1; i < f.length && this.state === 'open'; i++) this.apply(f[i] as PeerFrame);
  }

  private apply(f: PeerFrame): void {
    switch (f[0]) {
      case PeerOp.Members:
        return this.members(f[1], f[2], true);
      case PeerOp.MembersDelta:
        return this.members(f[1], f[2], false);
      case PeerOp.SnapshotRequest: {
        // A few bytes in, the whole membership out: at most one answer a second.
        const at = now();
        if (at - this.lastSnapshotAt < 1000) return;
        this.lastSnapshotAt = at;
        return this.sendSnapshot();
      }
      case PeerOp.Peers:
        return this.host.learnPeers(f[1]);
      case PeerOp.Claim:
        return this.host.claimed(f[1], this.remoteHubId, f[2]);
      case PeerOp.Grants:
        return this.peer!.applyGrants(f[1]);
      case PeerOp.LeaseReply: {
        const outcome = this.host.answerLease(f[2], f[3], f[4], f[5]);
        return this.send([PeerOp.LeaseAnswer, f[1], outcome === true, outcome === 'E_FORBIDDEN' ? outcome : null]);
      }
      case PeerOp.LeaseAnswer: {
        const done = this.leaseReplies.get(f[1]);
        this.leaseReplies.delete(f[1]);
        done?.(f[3] === 'E_FORBIDDEN' ? 'E_FORBIDDEN' : f[2]);
        return;
      }
      case PeerOp.Forward:
        return this.forwarded(f);
      case PeerOp.Leaving:
        if (this.lameDuck) return;
        this.lameDuck = true;
        this.lameDuckAt = now();
        this.host.log.info({ peer: this.remoteHubId, members: this.peer!.size }, 'peer is leaving the mesh: its members keep their keys until they move');
        return this.peer!.leaving();
      case PeerOp.ForwardReply: {
        const job = this.takeOutgoing(f[1]);
        if (!job) return;
        this.host.dispatcher.resolve(job, f[2], f[3], f[4] as Headers | null, f[5], f[6]);
        this.host.dispatcher.release(job);
        return;
      }
      case PeerOp.ForwardError: {
        const job = this.takeOutgoing(f[1]);
        if (!job) return;
        this.host.dispatcher.resolveError(job, f[2], f[3], f[4], f[5] ?? this.remoteHubId);
        this.host.dispatcher.release(job);
        return;
      }
      case PeerOp.ForwardCancel: {
        const job = this.incoming.take(f[1]);
        if (!job) return;
        // The origin has answered: the job's share of the grant is free now, whatever it does.
        this.uncount(job);
        this.host.dispatcher.abandon(job, f[2] === 'E_DEADLINE' ? 'E_DEADLINE' : 'E_CANCELLED');
        return;
      }
      case PeerOp.HandBack: {
        const job = this.takeOutgoing(f[1]);
        if (!job) return;
        const reg = job.reg;
        // Refused within a grant: send that peer no more of these until it grants again (before
        // the release below offers that registration more work).
        if (!f[2] && reg && reg.takes === Takes.Peer && !reg.closed) reg.concurrency = Math.max(0, reg.inflight - 1);
        this.host.dispatcher.release(job);
        if (!f[2]) {
          // It never ran there: not an attempt. Bounded, in case two hubs disagree for long.
          job.attempt--;
          if (++job.handBacks >= MAX_HAND_BACKS) job.attempt = this.host.options.maxAttempts;
        }
        this.host.dispatcher.lost(job);
        return;
      }
      default:
        return this.refuse(CloseCode.Protocol, `peer op ${f[0]} is not expected after the handshake`);
    }
  }

  private handshake(f: PeerFrame): void {
    const step = this.hs.step(f);
    if (step.kind === 'refuse') {
      if (step.hubId) this.remoteHubId = step.hubId;
      if (step.unauthorized) this.host.counters.sockets.protocolErrors++;
      return this.refuse(step.code, step.why);
    }
    this.remoteHubId = step.peer.hubId;
    this.remoteBoot = step.peer.bootNonce;
    this.remoteAdvertise = step.peer.advertise;
    if (step.frame) this.send(step.frame);
    // After the handshake's own frames, which go alone.
    if (step.kind === 'open') this.outbox.joinWith(this.joinFrames);
    if (step.kind === 'open') this.opened();
  }

  private opened(): void {
    if (!this.host.linkUp(this)) return;
    this.state = 'open';
    this.peer = new PeerMembers(this.host.dispatcher, this, this.remoteHubId, this.host.log);
    // Leaving first: the members that follow arrive already ranked below copies elsewhere.
    if (this.host.isLeaving) this.sendLeaving();
    this.sendSnapshot();
    this.sendGrants(this.host.allGrants());
    this.host.announcePeers();
  }

  sendSnapshot(): void {
    const { seq, members } = this.host.membersSnapshot();
    this.send([PeerOp.Members, seq, members]);
  }

  /** Passes a legacy worker's reply on to the peer that leased the job. */
  sendLeaseReply(leaseId: string, contentType: string | null, body: Uint8Array, poster: string | null, done: (outcome: LeaseOutcome | null) => void): void {
    const id = this.nextLeaseReply++;
    // A peer that never answers must not hold the legacy worker's request: give up after the peer timeout.
    const timer = setTimeout(() => {
      if (this.leaseReplies.delete(id)) done(null);
    }, this.host.options.peerTimeoutMs);
    this.leaseReplies.set(id, (outcome) => {
      clearTimeout(timer);
      done(outcome);
    });
    this.send([PeerOp.LeaseReply, id, leaseId, contentType, body, poster]);
  }

  /** Tells the peer how many unkeyed jobs per service it may have here. */
  sendGrants(grants: [string, number][]): void {
    if (this.state === 'open' && grants.length > 0) this.send([PeerOp.Grants, grants]);
  }

  /** Tells the peer this hub is leaving the mesh. */
  sendLeaving(): void {
    if (this.state === 'open') this.send([PeerOp.Leaving]);
  }

  /** Tells the peer that a worker instance opened a session here. */
  sendClaim(instanceId: string, token: string | null): void {
    if (this.state === 'open') this.send([PeerOp.Claim, instanceId, token]);
  }

  /** Tells the peer every hub this one is linked to. */
  sendPeers(peers: [string, string][]): void {
    if (this.state === 'open') this.send([PeerOp.Peers, peers]);
  }

  /** Sends a delta the mesh built once for every link. */
  sendDelta(seq: number, changes: MemberTuple[]): void {
    if (this.state === 'open') this.send([PeerOp.MembersDelta, seq, changes]);
  }

  private members(seq: number, list: MemberTuple[], snapshot: boolean): void {
    const applied = this.peer!.apply(seq, list, snapshot);
    // A gap: deltas mean nothing without what came between. Ask once for a fresh snapshot.
    if (applied === false) this.send([PeerOp.SnapshotRequest]);
    if (applied === true && snapshot && !this.synced) {
      this.synced = true;
      this.host.log.info({ peer: this.remoteHubId, members: this.peer!.size }, 'peer synced');
    }
  }

  private forwarded(f: ForwardFrame): void {
    const [, id, mode, service, key, instanceId, remainingMs, attempt, contentType, headers, query, body, hops] = f;
    const d = this.host.dispatcher;
    this.forwardedIn++;
    if (this.incoming.get(id) !== undefined) return this.refuse(CloseCode.Protocol, `forward id ${id} is already in flight`);
    // Final, like the origin's own refusal when a link is full: its caller may try again. A
    // peer that does not read its answers gets no more work whose answers would wait too.
    const full = this.incoming.size >= this.host.options.maxForwardsPerPeer ? FORWARDS_FULL : this.outbox.overCap ? NOT_READING : null;
    if (full !== null) {
      this.forwardsRefused++;
      this.send([PeerOp.ForwardError, id, ERRORS.E_OVERLOADED.status, 'E_OVERLOADED', full, null]);
      return;
    }
    const job = new Job(service, mode, key, body, contentType, headers, query, now() + Math.max(1, remainingMs), this);
    job.callerId = id;
    job.fromPeer = true;
    job.attempt = Math.max(0, attempt - 1);
    this.incoming.add(id, job);
    if (hops > MAX_HOPS) {
      d.reject(job, 'E_PROTOCOL');
      return;
    }
    job.origin = this.remoteHubId;
    if (instanceId === '' && mode !== RequestMode.Any) {
      // Keyed and broadcast work names the worker it is for.
      d.reject(job, 'E_PROTOCOL');
      return;
    }
    if (instanceId === '') {
      const svc = d.services.get(service);
      // Counted from here on: settled() counts it off whatever becomes of it.
      const n = (this.unkeyedIn.get(service) ?? 0) + 1;
      this.unkeyedIn.set(service, n);
      job.countedGrant = true;
      // Sent beyond what this hub grants (the grant shrank on the way): back, not an attempt.
      if (!svc || n > svc.localCredit) {
        job.handBack = HandBack.NotRun;
        d.reject(job, 'E_WORKER_GONE');
        this.host.regrant(service);
        return;
      }
    } else {
      job.pinned = d.services.get(service)?.localMember(instanceId) ?? null;
    }
    d.submitForwarded(job);
  }

  private takeOutgoing(id: number): Job | null {
    const wasFull = this.full();
    const job = this.outgoing.take(id);
    if (!job) {
      this.host.counters.jobs.unknownReplies++;
      return null;
    }
    this.unhold(job, wasFull);
    return job;
  }

  /** The origin no longer holds `job` (taken off `outgoing`) for this link; under the caps again, work may flow. */
  private unhold(job: Job, wasFull: boolean): void {
    this.heldBytes -= job.forwardedBytes;
    job.forwardedBytes = 0;
    if (wasFull && !this.full() && this.state === 'open') this.reoffer();
  }

  /** An unkeyed job from the peer no longer uses the credit this hub granted it. */
  private uncount(job: Job): void {
    if (!job.countedGrant) return;
    job.countedGrant = false;
    const n = (this.unkeyedIn.get(job.service) ?? 1) - 1;
    if (n > 0) this.unkeyedIn.set(job.service, n);
    else this.unkeyedIn.delete(job.service);
  }

  // ---- frames out, keep-alive, close ----

  private send(frame: PeerFrame): void {
    if (this.state !== 'closed') this.sendBytes(encodePeerFrame(frame));
  }

  private sendBytes(bytes: Uint8Array): void {
    if (this.state === 'closed') return;
    this.bytesOut += bytes.byteLength;
    // A slow peer is not cut: past the cap it gets no new forwards (see forwarded), so what
    // waits for it is the answers to forwards taken before, and refusals of a few bytes.
    this.outbox.push(bytes);
  }

  onDrain(): void {
    this.outbox.onDrain();
  }

  onPong(): void {
    this.lastSeen = now();
    this.lastPongAt = this.lastSeen;
    if (this.pingSentAt) this.rttMs = Math.round((now() - this.pingSentAt) * 100) / 100;
    this.pingSentAt = 0;
  }

  onClose(): void {
    this.teardown();
  }

  private reoffer(): void {
    this.peer?.offerAll();
  }

  /** Pings, or drops a peer silent for longer than the peer timeout. Called by the mesh's sweep. */
  keepAlive(at: number): void {
    if (this.state === 'closed' || !this.socket) return;
    this.nextPingAt = at + pingInterval(this.host.options);
    if (this.state === 'handshake' && at - this.createdAt > this.host.options.peerTimeoutMs) {
      this.refuse(CloseCode.Protocol, 'no peer handshake within the peer timeout');
      return;
    }
    if (at - this.lastSeen > this.host.options.peerTimeoutMs) {
      this.host.log.warn({ peer: this.remoteHubId || this.address, silentMs: Math.round(at - this.lastSeen) }, 'peer unresponsive: dropping the link');
      this.close(CloseCode.Unresponsive, 'no pong');
      return;
    }
    // Slow is not cut (a backed-up link only stops getting forwards), but a peer that sends and
    // never reads looks alive by its frames alone: no pong while frames wait means it reads nothing.
    if (this.outbox.blocked && at - this.lastPongAt > this.host.options.peerTimeoutMs) {
      this.host.log.warn({ peer: this.remoteHubId, pendingBytes: this.outbox.pendingBytes }, 'peer does not read: dropping the link');
      this.close(CloseCode.Unresponsive, 'peer not reading');
      return;
    }
    // A leaving peer withdraws its members once they moved, or after the peer timeout: one that
    // does not is not trusted to, and keys held for it go to their next owners.
    if (this.lameDuckAt !== 0 && at - this.lameDuckAt > this.host.options.peerTimeoutMs) {
      this.lameDuckAt = 0;
      if ((this.peer?.size ?? 0) > 0)
        this.host.log.warn({ peer: this.remoteHubId }, 'leaving peer did not withdraw its members within the peer timeout: dropping them');
      this.peer?.withdrawn();
    }
    if (this.outbox.blocked) this.onDrain();
    if (!this.pingSentAt) this.pingSentAt = at;
    this.socket.ping();
  }

  /** Refuses the peer: logs why, then closes. */
  private refuse(code: number, why: string): void {
    this.host.log.warn({ peer: this.remoteHubId || undefined, address: this.address, code }, why);
    this.outbox.flush();
    this.close(code, why.slice(0, 100));
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.closeCode = code;
    const socket = this.socket;
    this.outbox.flush();
    this.teardown();
    socket?.end(code, reason);
  }

  /**
   * The link is gone. The peer's members leave every ring first, so that the jobs this hub had
   * forwarded over it are routed again by the rings without them (attempt + 1, or 502 when
   * attempts or the deadline run out); jobs the peer had forwarded here are cancelled at their
   * workers. Idempotent.
   */
  teardown(): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.outbox.clear();
    this.socket = null;
    const d = this.host.dispatcher;
    this.peer?.clear();
    this.unkeyedIn.clear();
    for (const done of this.leaseReplies.values()) done(null);
    this.leaseReplies.clear();
    for (const job of this.outgoing.drain()) {
      this.heldBytes -= job.forwardedBytes;
      job.forwardedBytes = 0;
      d.release(job);
      d.lost(job);
    }
    for (const job of this.incoming.drain()) if (job.state !== JobState.Settled) d.abandon(job, 'E_CANCELLED');
    this.host.linkDown(this, wasOpen);
  }
}

function pingInterval(o: HubOptions): number {
  return Math.max(10, Math.floor(o.peerTimeoutMs / 3));
}

const EMPTY = new Uint8Array(0);
const FORWARDS_FULL = 'this hub has as many forwarded jobs of yours in flight as it takes';
const NOT_READING = 'this hub holds as many of your unread frames as it takes: read them first';
