/**
 * A job is one request on its way through the hub: it is queued, handed to a consumer, and
 * settled exactly once. Jobs carry their own list links (queue and deadline wheel), so moving,
 * removing and expiring them allocates nothing.
 */
import type { ErrorCode } from '../client/errors.js';
import type { Headers, RequestModeCode } from '../client/protocol.js';
import type { ServiceTally } from './request-tally.js';
import type { Timed } from './timer-wheel.js';

export const JobState = { New: 0, Queued: 1, Assigned: 2, Settled: 3 } as const;
/** How a job that came from a peer goes back to its origin instead of being answered here. */
export const HandBack = { None: 0, NotRun: 1, Ran: 2 } as const;
export type HandBackCode = (typeof HandBack)[keyof typeof HandBack];
export type JobStateCode = (typeof JobState)[keyof typeof JobState];

/** Whoever waits for a job's one answer: an HTTP response, a WebSocket requester, a broadcast. */
export interface JobWaiter {
  /** Called once, when the job settles; the outcome is on the job. */
  settled(job: Job): void;
}

/** Somewhere a job can run: a WebSocket worker session, a long-poll waiter, a peer hub. */
export interface Consumer {
  /**
   * How long an attempt may stay here without a reply before it runs again elsewhere; 0 for
   * none (a WebSocket worker is watched by its keep-alive instead).
   */
  readonly leaseMs: number;
  /** False while the consumer's socket is backed up or it is draining. */
  canSend(): boolean;
  /** Hand the job over; `job.reg` is already set. */
  deliver(job: Job): void;
  /** The job settled without this consumer's reply (deadline, caller gone): tell the worker. */
  cancel(job: Job, code: ErrorCode): void;
  /**
   * True when a job it cannot take now should be refused (503 E_OVERLOADED) rather than wait
   * for it: a peer link that holds all the forwarded bytes it may, or is backed up.
   */
  refusesWaiting?(): boolean;
  /**
   * Its hub is leaving the mesh (a lame duck): its members keep their keys but take no new
   * work, and another hub's registration of the same instance is the ring member instead.
   */
  readonly lameDuck?: boolean;
}

/** What a registration may take. */
export const Takes = {
  /** Keyed, broadcast and unkeyed jobs: a ring member on this hub (a WebSocket worker). */
  Ring: 1,
  /** Unkeyed jobs only, owning no keys: capacity (a legacy long-poller). */
  Capacity: 2,
  /** Keyed and broadcast jobs for a ring member on another hub, reached through a peer link. */
  Remote: 3,
  /** Unkeyed jobs for a peer hub, within the credit it granted (its workers' concurrency). */
  Peer: 4,
} as const;
export type TakesCode = (typeof Takes)[keyof typeof Takes];

/** A consumer on this hub (a worker or a long-poll), not a peer's member or grant. */
export function isLocalTakes(takes: TakesCode): boolean {
  return takes === Takes.Ring || takes === Takes.Capacity;
}

/** Instance ids the hub gives workers that name none: new at every session, so never moved. */
export const ANONYMOUS_PREFIX = 'anon-';

export function isAnonymous(instanceId: string): boolean {
  return instanceId.startsWith(ANONYMOUS_PREFIX);
}

/** The instance id of a hub's in-process handlers: one ring member per hub, stable as its hub id is. */
export function inProcessInstanceId(hubId: string): string {
  return `${hubId}.local`;
}

/** Who serves: the identity a registration is known by in rings, /stats and X-Served-By. */
export interface Membership {
  /** Stable worker identity; partition keys hash over it. */
  readonly instanceId: string;
  /** The hub that holds the worker's session. */
  readonly hubId: string;
  /** Share of the keys relative to the other ring members. */
  weight: number;
  readonly takes: TakesCode;
}

/** One consumer serving one service, with its credit. */
export class Registration implements Membership {
  inflight = 0;
  /** In the service's ready queue. */
  inReady = false;
  closed = false;
  /** Keyed or broadcast jobs waiting for this owner's credit. */
  readonly ownerQueue = new JobList();
  readonly instanceId: string;
  readonly hubId: string;
  weight: number;
  readonly takes: TakesCode;
  constructor(
    readonly consumer: Consumer,
    readonly service: string,
    public concurrency: number,
    membership: Membership,
  ) {
    this.instanceId = membership.instanceId;
    this.hubId = membership.hubId;
    this.weight = membership.weight;
    this.takes = membership.takes;
  }
  /** Free credit and a writable consumer. */
  canTake(): boolean {
    return !this.closed && this.inflight < this.concurrency && this.consumer.canSend();
  }
  /** Owns partition keys: a member of the stream's ring. */
  ownsKeys(): boolean {
    return this.takes === Takes.Ring || this.takes === Takes.Remote;
  }
  /** Takes unkeyed work: workers and long-pollers here, and peer hubs within their grant. */
  takesUnkeyed(): boolean {
    return this.takes !== Takes.Remote;
  }
  /** A consumer on this hub (not a peer link). */
  isLocal(): boolean {
    return isLocalTakes(this.takes);
  }
}

export class Job implements Timed {
  state: JobStateCode = JobState.New;
  /** Counted in the dispatcher's open jobs. */
  accepted = false;
  /** Deliveries so far; the worker sees it as the attempt number. */
  attempt = 0;
  /** A broadcast's parts, one per worker instance. */
  parts: Job[] | null = null;
  // Queue links.
  qPrev: Job | null = null;
  qNext: Job | null = null;
  queue: JobList | null = null;
  // Deadline wheel links.
  due = 0;
  tPrev: Timed | null = null;
  tNext: Timed | null = null;
  tSlot = -1;
  /** The registration the job is assigned to (or pinned to, for a broadcast part). */
  reg: Registration | null = null;
  /** Id of this job on the consumer's wire (WebSocket session scope). */
  wireId = 0;
  /** What the consumer running the job keeps on it while it runs (an in-process handler's view). */
  consumerRef: unknown = null;
  /** Broadcast parts: the registration the part must run on. */
  pinned: Registration | null = null;
  /** Came from a peer hub (its origin): never routed again here, handed back instead. */
  fromPeer = false;
  /** The hub id of the origin of a job that came from a peer. */
  origin = '';
  /** Set when it settles by going back to its origin: HandBack.NotRun or HandBack.Ran. */
  handBack: HandBackCode = HandBack.None;
  /** Times the owner's hub handed it back without running it (a guard against ping-pong). */
  handBacks = 0;
  /** Body bytes a peer link holds for it while it is forwarded. */
  forwardedBytes = 0;
  /** An unkeyed job from a peer, counted against the credit this hub granted it. */
  countedGrant = false;
  /** Where a caller's job is counted for /metrics; null for parts, forwarded jobs, or metrics off. */
  tally: ServiceTally | null = null;
  /** When it entered the dispatcher (monotonic ms), for the latency histogram. */
  startedAt = 0;
  /** Caller-side reference (an HTTP response, a request id, a part index). */
  callerRef: unknown = null;
  callerId = 0;
  // Outcome.
  status = 0;
  replyContentType: string | null = null;
  replyHeaders: Headers | null = null;
  replyBody: Uint8Array | null = null;
  servedBy: string | null = null;
  errorCode: ErrorCode | string | null = null;
  errorMessage: string | null = null;

  constructor(
    readonly service: string,
    readonly mode: RequestModeCode,
    readonly key: string | null,
    public body: Uint8Array,
    readonly contentType: string | null,
    readonly headers: Headers | null,
    readonly query: string | null,
    /** Absolute deadline on the hub's monotonic clock. */
    readonly deadline: number,
    public waiter: JobWaiter,
  ) {}
}

/** An intrusive FIFO of jobs with O(1) removal from anywhere. */
export class JobList {
  head: Job | null = null;
  tail: Job | null = null;
  length = 0;

  push(job: Job): void {
    job.queue = this;
    job.qNext = null;
    job.qPrev = this.tail;
    if (this.tail) this.tail.qNext = job;
    else this.head = job;
    this.tail = job;
    this.length++;
  }

  shift(): Job | null {
    const job = this.head;
    if (job) this.remove(job);
    return job;
  }

  remove(job: Job): void {
    if (job.queue !== this) return;
    if (job.qPrev) job.qPrev.qNext = job.qNext;
    else this.head = job.qNext;
    if (job.qNext) job.qNext.qPrev = job.qPrev;
    else this.tail = job.qPrev;
    job.qPrev = job.qNext = null;
    job.queue = null;
    this.length--;
  }
}
