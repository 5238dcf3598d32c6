/**
 * This hub's place in the mesh: links to peer hubs (exactly one per pair), dialers that keep
 * seeds linked, and the announcements of this hub's own ring members to every peer.
 */
import { readFileSync } from 'node:fs';
import { nanoid } from 'nanoid';
import WebSocket from 'ws';
import { CloseCode } from '../../client/protocol.js';
import { InvalidOptionError, parseList } from '../args.js';
import type { Counters } from '../counters.js';
import type { Dispatcher } from '../dispatcher.js';
import { inProcessInstanceId, isAnonymous, Takes } from '../job.js';
import type { Logger } from '../log.js';
import type { LeaseOutcome, LeaseReplyForwarder } from '../longpoll.js';
import type { HubOptions } from '../options.js';
import { now } from '../timer-wheel.js';
import { WsSessionSocket } from '../ws-session-socket.js';
import { DnsSeed, dnsSeed } from './dns-seed.js';
import { type LinkHost, PeerLink } from './peer-link.js';
import type { MemberTuple } from './peer-protocol.js';
import { PeerTotals } from './peer-totals.js';

/** Changes to what this hub grants its peers go out at most this often. */
const GRANT_BATCH_MS = 20;

/** First wait before dialling an unreachable peer again; it doubles up to peerReconnectMaxMs. */
const FIRST_BACKOFF_MS = 50;

export class Mesh implements LinkHost {
  /** Tells a restarted hub from the same one: a new nonce under the same hubId is a restart. */
  readonly bootNonce = nanoid(12);
  readonly secrets: readonly string[];
  /** Open links by the peer's hubId: exactly one per pair. */
  readonly links = new Map<string, PeerLink>();
  /** Every link, open or still in its handshake. */
  private readonly all = new Set<PeerLink>();
  /** Jobs forwarded per peer over links that closed, for /metrics. */
  private readonly peerTotals = new PeerTotals();
  private readonly dialers: Dialer[] = [];
  private readonly dnsSeeds: DnsSeed[] = [];
  private seq = 0;
  /** Services whose grant to peers is to be sent again. */
  private readonly regrants = new Set<string>();
  private grantTimer: NodeJS.Timeout | null = null;
  private changes: MemberTuple[] = [];
  private changesScheduled = false;
  private startedAt = 0;
  private advertised = '';
  private stopped = false;
  /** Shutting down: peers send no new work here; this hub's members keep their keys (lame duck). */
  private leaving = false;
  private leftAt = 0;
  /** The members this hub had when it began to leave: what peers keep until it withdraws them. */
  private frozen: MemberTuple[] = [];
  /** The lame duck is over: this hub's members are withdrawn from every peer's rings. */
  private withdrawn = false;

  constructor(
    readonly options: HubOptions,
    readonly hubId: string,
    readonly dispatcher: Dispatcher,
    readonly counters: Counters,
    readonly log: Logger,
  ) {
    this.secrets = readSecrets(options);
    dispatcher.memberListener = (service, instanceId, weight) => this.memberChanged(service, instanceId, weight);
    dispatcher.creditListener = (service) => this.regrant(service);
  }

  /** Starts dialling the seeds; `port` is the one the hub listens on. */
  start(port: number): void {
    const o = this.options;
    this.advertised = o.advertise || `${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
    this.startedAt = now();
    if (o.peers.length > 0 && this.secrets.length === 0) {
      this.log.warn('no cluster secret: any process that can reach /peer can join this mesh (set --cluster-secret)');
    }
    for (const seed of o.peers) {
      const name = dnsSeed(seed);
      if (name) {
        this.dnsSeeds.push(new DnsSeed(seed, name.host, name.port, o.dnsServers, o.dnsRefreshMs, this.log, (addresses) => this.seedAddresses(seed, addresses)));
      } else {
        this.dialers.push(new Dialer(this, seed, true));
      }
    }
    for (const d of this.dialers) d.dial();
    for (const d of this.dnsSeeds) d.start();
  }

  advertise(): string {
    return this.advertised;
  }

  /** Peer links open or in their handshake (they count toward the hub's connection limit). */
  get linkCount(): number {
    return this.all.size;
  }

  /** A link accepted at /peer; the caller attaches its socket. */
  accepted(address: string): PeerLink {
    const link = new PeerLink(this, false, address);
    this.all.add(link);
    return link;
  }

  /** A link this hub dials (a Dialer's). */
  dialed(address: string): PeerLink {
    const link = new PeerLink(this, true, address);
    this.all.add(link);
    return link;
  }

  linkUp(link: PeerLink): boolean {
    const id = link.remoteHubId;
    if (id === this.hubId) {
      this.log.error({ address: link.address }, 'another hub uses this hub id: refusing its link (give every hub its own --hub-id)');
      link.close(CloseCode.PeerRefused, 'hub id in use');
      return false;
    }
    const existing = this.links.get(id);
    if (existing && existing !== link) {
      // A new boot nonce while the old link still answers pings: not a restart, a second live
      // hub with the same id. Its links would replace each other for ever: refuse the newer one.
      if (existing.remoteBoot !== link.remoteBoot && existing.state === 'open' && now() - existing.lastSeen < (this.options.peerTimeoutMs * 2) / 3) {
        this.log.error(
          { peer: id, address: link.address, advertise: link.remoteAdvertise },
          'two live hubs use one hub id: refusing the newer link (give every hub its own --hub-id)',
        );
        link.close(CloseCode.PeerRefused, 'hub id in use by a live hub');
        return false;
      }
      if (existing.remoteBoot !== link.remoteBoot) {
        // The same hub id with a new boot nonce: that hub restarted. What went over the old link
        // is lost (forwarded jobs are routed again); the new link replaces it.
        this.log.info({ peer: id }, 'peer restarted: replacing its link');
        existing.close(CloseCode.Replaced, 'peer restarted');
      } else if (dialerOf(existing, this.hubId) !== dialerOf(link, this.hubId)) {
        // Both hubs dialled at once: the link dialled by the smaller hub id survives.
        const keep = dialerOf(link, this.hubId) < dialerOf(existing, this.hubId) ? link : existing;
        const drop = keep === link ? existing : link;
        drop.close(CloseCode.DuplicateLink, 'duplicate link');
        if (drop === link) return false;
      } else {
        // The same side dialled again (it saw its old link die first): the new one is current.
        existing.close(CloseCode.DuplicateLink, 'superseded by a newer link');
      }
    }
    this.links.set(id, link);
    this.log.info({ peer: id, address: link.address, advertise: link.remoteAdvertise, dialed: link.dialed }, 'peer linked');
    return true;
  }

  linkDown(link: PeerLink, wasOpen: boolean): void {
    this.all.delete(link);
    // Only an open link forwards.
    if (wasOpen && link.remoteHubId) {
      this.peerTotals.retire(link.remoteHubId, link.forwardedIn, link.forwardedOut, now());
    }
    if (wasOpen && this.links.get(link.remoteHubId) === link) {
      this.links.delete(link.remoteHubId);
      this.log.info({ peer: link.remoteHubId, code: link.closeCode }, 'peer link closed');
    }
    for (const d of this.dialers) d.linkDown(link);
  }

  /**
   * A seed name's latest answer: each address (this hub's own excluded) is dialled as a seed;
   * addresses that left the answer are seeds no more, and are forgotten once unreachable.
   */
  private seedAddresses(name: string, addresses: string[]): void {
    if (this.stopped) return;
    const now = new Set(addresses.filter((a) => a !== this.advertised));
    for (const d of this.dialers) {
      if (d.fromName !== name) continue;
      d.seed = now.has(d.target);
      now.delete(d.target);
    }
    for (const address of now) {
      const existing = this.dialers.find((d) => d.target === address);
      if (existing) {
        existing.seed = true;
        existing.fromName = name;
        continue;
      }
      const d = new Dialer(this, address, true);
      d.fromName = name;
      this.dialers.push(d);
      d.dial();
    }
  }

  /** Set by the hub: a legacy worker's reply to a job this hub leased, passed on by a peer. */
  answerLease: (leaseId: string, contentType: string | null, body: Uint8Array, poster: string | null) => LeaseOutcome = () => false;

  /** Passes legacy replies for jobs other hubs leased on to them. */
  readonly leaseForwarder: LeaseReplyForwarder = {
    reaches: (hubId) => this.links.get(hubId)?.state === 'open',
    send: (hubId, leaseId, contentType, body, poster, done) => {
      const link = this.links.get(hubId);
      if (link?.state !== 'open') return false;
      link.sendLeaseReply(leaseId, contentType, body, poster, done);
      return true;
    },
  };

  /** What this hub grants each peer: the credit of its own unkeyed consumers, per service. */
  allGrants(evenWhenLeaving = false): [string, number][] {
    const out: [string, number][] = [];
    if (this.leaving && !evenWhenLeaving) return out;
    for (const svc of this.dispatcher.services.values()) if (svc.localUnkeyed > 0) out.push([svc.name, svc.localCredit]);
    return out;
  }

  /**
   * The credit of `service` here changed (consumers came, went, or changed their concurrency):
   * peers hear of it within GRANT_BATCH_MS, in one frame for every service that changed.
   * Long-pollers come and go with every poll: that is why grants are batched.
   */
  regrant(service: string): void {
    if (this.links.size === 0 || this.leaving) return;
    this.regrants.add(service);
    if (this.grantTimer) return;
    this.grantTimer = setTimeout(() => {
      this.grantTimer = null;
      if (this.leaving) return;
      const grants: [string, number][] = [];
      for (const name of this.regrants) {
        const svc = this.dispatcher.services.get(name);
        grants.push([name, svc && svc.localUnkeyed > 0 ? svc.localCredit : 0]);
      }
      this.regrants.clear();
      for (const link of this.links.values()) link.sendGrants(grants);
    }, GRANT_BATCH_MS);
  }

  /** Set by the hub: closes its own older session of `instanceId` when a peer claims it. */
  onClaim: (instanceId: string, byHub: string, token: string | null) => void = () => {};

  claimed(instanceId: string, byHub: string, token: string | null): void {
    this.onClaim(instanceId, byHub, token);
  }

  /** A worker instance opened a session here: every peer closes an older session of it. */
  claim(instanceId: string, token: string | null): void {
    for (const link of this.links.values()) link.sendClaim(instanceId, token);
  }

  announcePeers(): void {
    const open = [...this.links.values()].filter((l) => l.state === 'open' && l.remoteAdvertise);
    for (const to of open) to.sendPeers(open.filter((l) => l !== to).map((l) => [l.remoteHubId, l.remoteAdvertise]));
  }

  learnPeers(peers: [string, string][]): void {
    for (const [hubId, advertise] of peers) {
      if (this.stopped || hubId === this.hubId || this.links.has(hubId)) continue;
      if (this.dialers.some((d) => d.target === advertise || d.linkedHubId() === hubId)) continue;
      const d = new Dialer(this, advertise, false);
      this.dialers.push(d);
      this.log.info({ peer: hubId, advertise }, 'learned a peer');
      d.dial();
    }
  }

  /** A gossiped peer unreachable for too long is forgotten (seeds never are). */
  forget(d: Dialer): void {
    const i = this.dialers.indexOf(d);
    if (i !== -1) this.dialers.splice(i, 1);
    const hubId = d.linkedHubId();
    if (hubId && !this.links.has(hubId)) this.peerTotals.forget(hubId);
    this.log.info({ address: d.target }, 'forgot an unreachable peer');
  }

  membersSnapshot(): { seq: number; members: MemberTuple[] } {
    if (this.withdrawn) return { seq: this.seq, members: [] };
    return { seq: this.seq, members: this.leaving ? this.frozen : this.ownMembers() };
  }

  private ownMembers(): MemberTuple[] {
    const members: MemberTuple[] = [];
    for (const svc of this.dispatcher.services.values()) {
      for (const r of svc.regs) if (r.takes === Takes.Ring && !r.closed) members.push([svc.name, r.instanceId, r.weight]);
    }
    return members;
  }

  /** Every seed has linked and synced, or the sync timeout passed: the hub may report ready. */
  ready(): boolean {
    if (now() - this.startedAt >= this.options.peerSyncTimeoutMs) return true;
    if (!this.dnsSeeds.every((d) => d.resolvedOnce)) return false;
    return this.dialers.every((d) => !d.seed || d.synced());
  }

  /** Pings every link on its own phase; drops the silent ones. Called by the hub's sweep. */
  keepAlive(at: number): void {
    for (const link of this.all) if (at >= link.nextPingAt) link.keepAlive(at);
    if (at - this.lastTotalsSweep > 1000) {
      this.lastTotalsSweep = at;
      this.knownPeers(at);
    }
  }

  private lastTotalsSweep = 0;

  /**
   * The hub ids this hub has a link or a dialer for. What closed links forwarded is kept for
   * those, and for others until they have been gone `peerForgetMs` (as a learned peer's
   * dialer is forgotten): past that, it is dropped here.
   */
  private knownPeers(at: number): Set<string> {
    const ids = new Set<string>(this.links.keys());
    for (const d of this.dialers) {
      const id = d.linkedHubId();
      if (id && id !== this.hubId) ids.add(id);
    }
    for (const [id, t] of this.peerTotals.entries()) if (!ids.has(id) && at - t.downAt > this.options.peerForgetMs) this.peerTotals.forget(id);
    return ids;
  }

  /**
   * The hub is shutting down, as a lame duck: peers send no new work here and its grants end,
   * but its members keep their keys (peers hold keyed work for them) until their workers open
   * sessions on other hubs, or the peer timeout passes; then `withdraw`.
   */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.leftAt = now();
    // Changes and grants scheduled before the leave must not follow it: the membership peers
    // keep from now on is this one.
    this.changes = [];
    this.regrants.clear();
    if (this.grantTimer) clearTimeout(this.grantTimer);
    this.grantTimer = null;
    // An anonymous worker comes back under another id: its keys move anyway, so at once. In-process
    // handlers never move: waiting for them would only hold their keys back.
    const local = inProcessInstanceId(this.hubId);
    this.frozen = this.ownMembers().filter(([, instanceId]) => !isAnonymous(instanceId) && instanceId !== local);
    this.seq++;
    const withdrawn = this.allGrants(true).map(([service]): [string, number] => [service, 0]);
    for (const link of this.links.values()) {
      // Leaving first, so the members that follow are ranked below copies elsewhere; then a
      // snapshot, since changes of this turn were not sent: peers keep exactly this.
      link.sendLeaving();
      link.sendSnapshot();
      link.sendGrants(withdrawn);
    }
    if (this.meshed()) {
      this.log.info(
        { peers: this.links.size, members: this.frozen.length },
        'leaving the mesh: peers send no new work here; members keep their keys until they move',
      );
    }
  }

  /** In a mesh, or meant to be: a hub alone has no leave to tell of. */
  private meshed(): boolean {
    return this.links.size > 0 || this.dialers.length > 0 || this.dnsSeeds.length > 0;
  }

  get isLeaving(): boolean {
    return this.leaving;
  }

  /**
   * Whether the lame duck is over: every member this hub had when it began to leave has a
   * session on another hub now, or the peer timeout has passed, or no peer is linked.
   */
  lameDuckOver(): boolean {
    if (!this.leaving || this.withdrawn || this.links.size === 0) return true;
    if (now() - this.leftAt >= this.options.peerTimeoutMs) return true;
    return this.moved() === this.frozen.length;
  }

  /** Members this hub had when it began to leave that have a session on another hub now. */
  private moved(): number {
    let n = 0;
    for (const [service, instanceId] of this.frozen) if (this.dispatcher.services.get(service)?.hasCopyElsewhere(instanceId, this.hubId)) n++;
    return n;
  }

  /** Ends the lame duck: this hub's members leave every peer's rings (an empty Members). */
  withdraw(): void {
    if (!this.leaving || this.withdrawn) return;
    this.withdrawn = true;
    this.seq++;
    for (const link of this.links.values()) link.sendSnapshot();
    if (this.meshed())
      this.log.info({ members: this.frozen.length, moved: this.moved(), afterMs: Math.round(now() - this.leftAt) }, 'members withdrawn from the mesh');
  }

  /** Closes every link and stops dialling. */
  stop(): void {
    this.stopped = true;
    if (this.grantTimer) clearTimeout(this.grantTimer);
    this.grantTimer = null;
    for (const d of this.dnsSeeds) d.stop();
    for (const d of this.dialers) d.stop();
    for (const link of [...this.all]) link.close(CloseCode.GoingAway, 'hub shutting down');
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** What /stats shows of the mesh. */
  stats() {
    return {
      hubId: this.hubId,
      bootNonce: this.bootNonce,
      advertise: this.advertised,
      secret: this.secrets.length > 0,
      dialing: this.dialers.map((d) => ({ address: d.target, seed: d.seed, ...(d.fromName ? { fromName: d.fromName } : {}), linkedTo: d.linkedHubId() })),
      seedNames: this.dnsSeeds.map((d) => ({ name: d.name, addresses: d.current })),
      peers: [...this.all].map((l) => ({
        hubId: l.remoteHubId || null,
        state: l.state,
        dialed: l.dialed,
        address: l.address,
        advertise: l.remoteAdvertise || null,
        connectedAt: new Date(l.openedAt).toISOString(),
        rttMs: l.rttMs,
        synced: l.synced,
        members: l.memberCount,
        granted: l.grantedCredit(),
        forwardedOut: l.forwardedOut,
        forwardedIn: l.forwardedIn,
        inflightOut: l.inflightOut,
        inflightIn: l.inflightIn,
        forwardsRefused: l.forwardsRefused,
        heldBytes: l.heldBytes,
        queuedBytes: l.queuedBytes,
        bytesIn: l.bytesIn,
        bytesOut: l.bytesOut,
      })),
    };
  }

  /**
   * Every peer this hub knows, for /metrics: linked, dialled, or linked before. A peer that
   * only ever dialled this hub and has been gone for the forget time is dropped, as a learned
   * peer's dialer is.
   */
  peerMetrics(): { hubId: string; up: boolean; rttMs: number | null; forwardedIn: number; forwardedOut: number }[] {
    const ids = this.knownPeers(now());
    for (const [id] of this.peerTotals.entries()) ids.add(id);
    return [...ids].map((hubId) => {
      const link = this.links.get(hubId);
      const past = this.peerTotals.get(hubId);
      return {
        hubId,
        up: link?.state === 'open',
        rttMs: link?.rttMs ?? null,
        forwardedIn: past.in + (link?.forwardedIn ?? 0),
        forwardedOut: past.out + (link?.forwardedOut ?? 0),
      };
    });
  }

  private memberChanged(service: string, instanceId: string, weight: number): void {
    if (this.leaving) return;
    this.changes.push([service, instanceId, weight]);
    if (this.changesScheduled) return;
    this.changesScheduled = true;
    // Changes of one loop turn go out as one delta (a worker registering many services).
    setImmediate(() => {
      this.changesScheduled = false;
      // A leave between the change and now froze the membership peers keep.
      if (this.leaving) return;
      const changes = this.changes;
      this.changes = [];
      this.seq++;
      for (const link of this.links.values()) link.sendDelta(this.seq, changes);
    });
  }
}

/** Keeps one address linked: dials, and dials again with jittered backoff when the link drops. */
export class Dialer {
  private link: PeerLink | null = null;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The hub id last found at this address. */
  private hubId = '';
  private self = false;
  /** When this address last had an open link (or the dialer began). */
  private lastUp = now();

  /** The seed name whose answer gave this address, if any. */
  fromName = '';

  constructor(
    private readonly mesh: Mesh,
    readonly target: string,
    /** Dialled for ever (a seed, or an address a seed name yields now); else forgotten when unreachable. */
    public seed: boolean,
  ) {}

  dial(): void {
    if (this.stopped || this.self || this.link) return;
    // Linked to that hub already (its own dial won): check again later.
    const current = this.hubId ? this.mesh.links.get(this.hubId) : undefined;
    if (current && current.state === 'open') {
      // Linked through the link that hub dialled: look again later, without backoff.
      this.lastUp = now();
      this.attempt = 0;
      return this.later(this.mesh.options.peerReconnectMaxMs);
    }
    const o = this.mesh.options;
    let ws: WebSocket;
    try {
      ws = new WebSocket(peerUrl(this.target), { maxPayload: o.maxFrameBytes, handshakeTimeout: o.peerTimeoutMs, perMessageDeflate: false });
    } catch (err) {
      // An address that cannot even be dialled: not worth trying again.
      this.mesh.log.warn({ address: this.target, err: (err as Error).message }, 'cannot dial this peer address; dropping it');
      this.stop();
      this.mesh.forget(this);
      return;
    }
    const link = this.mesh.dialed(this.target);
    this.link = link;
    const socket = new WsSessionSocket(ws, link);
    ws.once('open', () => link.attach(socket));
  }

  synced(): boolean {
    if (this.self) return true;
    // Its own link, or the one that hub dialled to this one (which won the pair).
    if (this.link?.synced) return true;
    const l = this.hubId ? this.mesh.links.get(this.hubId) : undefined;
    return l?.synced === true;
  }

  linkedHubId(): string | null {
    return this.link?.remoteHubId || this.hubId || null;
  }

  linkDown(link: PeerLink): void {
    if (link !== this.link) return;
    this.link = null;
    if (link.remoteHubId) this.hubId = link.remoteHubId;
    if (link.closeCode === CloseCode.PeerRefused && link.remoteHubId === this.mesh.hubId) {
      // A seed list that names this hub itself (as every member of a StatefulSet's list does).
      this.self = true;
      return;
    }
    if (link.synced) {
      this.attempt = 0;
      this.lastUp = now();
    }
    if (!this.seed && now() - this.lastUp > this.mesh.options.peerForgetMs) {
      this.stop();
      this.mesh.forget(this);
      return;
    }
    this.later();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private later(fixedMs?: number): void {
    if (this.stopped || this.mesh.isStopped || this.timer) return;
    const cap = this.mesh.options.peerReconnectMaxMs;
    const base = Math.min(cap, FIRST_BACKOFF_MS * 2 ** Math.min(this.attempt++, 20));
    // Jitter: hubs that lost a peer together do not all dial it in the same millisecond.
    const delay = fixedMs ?? base / 2 + Math.random() * (base / 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dial();
    }, delay);
  }
}

/** The side that dialled `link`. */
function dialerOf(link: PeerLink, self: string): string {
  return link.dialed ? self : link.remoteHubId;
}

/** `host:port` → ws://host:port/peer; a ws:// or wss:// URL is used as given (its path, or /peer). */
export function peerUrl(target: string): string {
  if (/^wss?:\/\//.test(target)) {
    const u = new URL(target);
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/peer';
    return u.toString();
  }
  return `ws://${target}/peer`;
}

function readSecrets(o: HubOptions): string[] {
  let raw = o.clusterSecret;
  if (!raw && o.clusterSecretFile) {
    try {
      raw = readFileSync(o.clusterSecretFile, 'utf8');
    } catch (err) {
      throw new InvalidOptionError(
        `cannot read the cluster secret file ${o.clusterSecretFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  return parseList(raw);
}
