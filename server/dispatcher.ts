/**
 * The dispatcher knows services, queues, credit, deadlines and attempts, and hands each job to
 * a consumer without knowing which kind it is. Every job settles here exactly once.
 */
import { ERRORS, type ErrorCode } from '../client/errors.js';
import { type Headers, RequestMode, type RequestModeCode } from '../client/protocol.js';
import { BroadcastGather } from './broadcast.js';
import { Counters, type JobCounters } from './counters.js';
import { type Consumer, HandBack, isLocalTakes, Job, type JobList, JobState, type Membership, Registration, Takes } from './job.js';
import type { HubOptions } from './options.js';
import { RequestTally } from './request-tally.js';
import { ServiceOrigin, type ServiceOriginCode, ServiceState } from './service-queue.js';
import { now, TimerWheel } from './timer-wheel.js';

/** The message of a broadcast part whose worker instance went away before it answered. */
export const PART_GONE = 'the worker of this broadcast part went away before it answered (a part runs on its own worker only)';

export class Dispatcher {
  readonly services = new Map<string, ServiceState>();
  /** Every accepted job's deadline, and the lease of a job at a consumer that leases. */
  readonly wheel = new TimerWheel<Job>((job) => this.due(job));
  readonly counters: JobCounters;
  /** Services in `services` that only peers' registrations created (budgeted apart). */
  peerServices = 0;
  /** Services only long-polls asked for, least recently polled first (budgeted apart). */
  readonly pollServices = new Set<ServiceState>();
  /** Bytes of bodies sitting in queues. */
  queuedBytes = 0;
  /** Accepted jobs not yet settled (broadcast parts count, their parent does not). */
  open = 0;
  draining = false;
  /** Per-service request counts and latencies for /metrics; null when metrics are off. */
  readonly tally: RequestTally | null;
  /** Told when the credit of this hub's own unkeyed consumers of a service changes (the mesh grants it). */
  creditListener: ((service: string) => void) | null = null;
  /** Told of every change to this hub's own ring members (the mesh announces them to peers). */
  memberListener: ((service: string, instanceId: string, weight: number) => void) | null = null;

  constructor(
    private readonly o: HubOptions,
    counters: Counters = new Counters(),
  ) {
    this.counters = counters.jobs;
    this.tally = o.metrics === 'on' ? new RequestTally(o.metricsMaxServices) : null;
  }

  /**
   * Answers at once whether a request for `service` can be accepted, before its body is read:
   * null when it can, else the error to answer with. Creates no state.
   */
  precheck(service: string, mode: RequestModeCode): ErrorCode | null {
    const svc = this.services.get(service);
    const err = this.refusal(svc, mode);
    if (err !== null) this.tally?.refused(service, svc, err);
    return err;
  }

  private refusal(svc: ServiceState | undefined, mode: RequestModeCode): ErrorCode | null {
    if (this.draining) return 'E_SHUTTING_DOWN';
    // A broadcast asks every handler the stream has: with none, the empty array is its answer
    // (meshage answered so), not a refusal.
    if (mode === RequestMode.Broadcast) return null;
    if (!svc?.isServed(this.o.serviceLingerMs, mode !== RequestMode.Any)) {
      this.counters.rejectedNoWorkers++;
      return 'E_NO_WORKERS';
    }
    return null;
  }

  /**
   * Accepts a job: routes it to a consumer or queues it. A job that cannot be accepted is
   * settled at once with the error (through its waiter, like every other outcome).
   */
  submit(job: Job): boolean {
    let svc = this.services.get(job.service);
    if (this.tally !== null) this.tally.begin(job, svc);
    const err = this.refusal(svc, job.mode);
    if (err !== null) return this.reject(job, err);
    if (job.mode === RequestMode.Broadcast) return this.broadcast(svc, job);
    // refusal() answers E_NO_WORKERS for other jobs of a service that does not exist.
    svc = svc!;
    return this.routeAndAccept(svc, job);
  }

  /** Routes a new job and accepts it, or settles it with the reason it was refused. */
  private routeAndAccept(svc: ServiceState, job: Job): boolean {
    const refused = this.route(svc, job, false);
    if (refused) {
      if (refused === 'E_QUEUE_FULL') this.counters.rejectedQueueFull++;
      return this.reject(job, refused);
    }
    this.accept(job);
    return true;
  }

  /**
   * Accepts a job a peer hub forwarded for the local worker `job.pinned`: it runs there or goes
   * back to its origin, never anywhere else. The origin already applied admission.
   */
  submitForwarded(job: Job): void {
    const svc = this.services.get(job.service);
    const unkeyed = job.mode === RequestMode.Any && job.pinned === null;
    if (!svc || this.draining || (unkeyed ? svc.localUnkeyed === 0 : !job.pinned || job.pinned.closed)) {
      job.handBack = HandBack.NotRun;
      this.reject(job, 'E_WORKER_GONE');
      return;
    }
    this.routeAndAccept(svc, job);
  }

  /** Settles a job that was never accepted (refused by the ingress, a session or the dispatcher). */
  reject(job: Job, code: ErrorCode, message?: string): false {
    if (job.state === JobState.Settled) return false;
    this.counters.rejected++;
    this.setError(job, code, message);
    this.settle(job);
    return false;
  }

  /** A consumer's reply to `job`. False when the job had already settled (late or duplicate). */
  resolve(job: Job, status: number, contentType: string | null, headers: Headers | null, body: Uint8Array, servedBy: string): boolean {
    if (job.state === JobState.Settled) {
      this.counters.lateReplies++;
      return false;
    }
    job.status = status;
    job.replyContentType = contentType;
    job.replyHeaders = headers;
    job.replyBody = body;
    job.servedBy = servedBy;
    this.counters.replied++;
    this.settle(job);
    return true;
  }

  /** A broadcast's parts are all settled: its parent settles with the gathered answer. */
  resolveGathered(parent: Job, headers: Headers, body: Uint8Array): void {
    if (parent.state === JobState.Settled) return;
    parent.status = 200;
    parent.replyContentType = 'application/json';
    parent.replyHeaders = headers;
    parent.replyBody = body;
    this.settle(parent);
  }

  /** A handler's error reply: final, never redelivered. */
  resolveError(job: Job, status: number | null, code: string | null, message: string | null, servedBy: string): boolean {
    if (job.state === JobState.Settled) {
      this.counters.lateReplies++;
      return false;
    }
    job.status = status ?? ERRORS.E_HANDLER.status;
    job.errorCode = code && WORKER_CODE_RE.test(code) ? code : 'E_HANDLER';
    job.errorMessage = message ?? ERRORS.E_HANDLER.message;
    job.servedBy = servedBy;
    this.counters.errorReplies++;
    this.settle(job);
    return true;
  }

  /**
   * A consumer's answer to `job` was refused as malformed. Final, like an error reply: the
   * handler ran, and running it again would most likely draw the same answer.
   */
  badAnswer(job: Job, servedBy: string): void {
    if (job.state === JobState.Settled) {
      this.counters.lateReplies++;
      return;
    }
    job.servedBy = servedBy;
    this.counters.badAnswers++;
    this.fail(job, 'E_BAD_REPLY');
  }

  /**
   * The consumer is done with attempt `attempt` of `job` (reply, error or cancel ack): its credit
   * comes back. A release for an attempt the dispatcher has withdrawn (its lease ran out, it was
   * reported lost) is ignored: that credit came back then, and the job may run elsewhere now. A
   * consumer that does not lease may leave `attempt` out, since only its own `lost` withdraws one.
   */
  release(job: Job, attempt = job.attempt): void {
    const r = job.reg;
    if (!r || attempt !== job.attempt) return;
    job.reg = null;
    r.inflight--;
    if (!r.closed) this.offer(r);
  }

  /**
   * Settles `job` without a consumer's reply (deadline, caller gone, shutdown) and tells the
   * consumer that holds it, which keeps the credit until it acknowledges.
   */
  abandon(job: Job, code: ErrorCode): void {
    if (job.parts) {
      for (const part of job.parts) this.abandon(part, code);
      return;
    }
    if (job.state === JobState.Settled) return;
    const held = job.state === JobState.Assigned ? job.reg : null;
    if (code === 'E_DEADLINE') this.counters.expired++;
    else if (code === 'E_CANCELLED') this.counters.cancelled++;
    // A job never accepted (its body was still arriving) is cancelled, not a failure to serve it.
    if (!job.accepted) {
      this.setError(job, code);
      this.settle(job);
      return;
    }
    this.fail(job, code);
    if (held) held.consumer.cancel(job, code);
  }

  /**
   * Attempt `attempt` of `job` is withdrawn: its consumer vanished or gave it back, or its lease
   * ran out. The job runs again elsewhere while attempts remain. The attempt's credit comes back
   * now unless the consumer released it already: it cannot release a withdrawn attempt later. A
   * report for an attempt already withdrawn is ignored (the job may run elsewhere by then).
   */
  lost(job: Job, attempt = job.attempt): void {
    if (attempt !== job.attempt) return;
    // Settled meanwhile (cancelled, expired): nothing runs again, but the consumer holds it no more.
    if (job.state === JobState.Settled) return this.release(job, attempt);
    if (job.state !== JobState.Assigned) return;
    const held = job.reg;
    job.reg = null;
    if (held) held.inflight--;
    // A lease was armed in the deadline's place: the deadline is what is left to watch.
    if (job.due !== job.deadline) this.wheel.add(job, job.deadline);
    const svc = this.services.get(job.service);
    // A broadcast part runs on its instance wherever that is now (it may have moved hubs).
    const instance = svc && job.pinned ? this.memberFor(svc, job.pinned.instanceId) : null;
    // A job from a peer goes back to its origin, which owns its attempts.
    if (!svc || (job.pinned && !instance) || job.fromPeer || job.attempt >= this.o.maxAttempts) {
      this.workerGone(job, true);
    } else {
      if (instance) job.pinned = instance;
      this.counters.redelivered++;
      job.state = JobState.New;
      this.route(svc, job, true);
    }
    if (held && !held.closed) this.offer(held);
  }

  /**
   * Adds `consumer` as a server of `name` with `concurrency` credit, known by `membership`;
   * with an open `existing` registration, updates its credit and weight instead.
   */
  register(consumer: Consumer, name: string, concurrency: number, membership: Membership, existing?: Registration): Registration | ErrorCode {
    if (existing && !existing.closed) {
      const svc = this.services.get(name);
      if (svc) svc.recredit(existing, concurrency);
      else existing.concurrency = concurrency;
      if (existing.isLocal() && existing.takesUnkeyed()) this.creditListener?.(name);
      if (existing.weight !== membership.weight && existing.takes === Takes.Ring) this.memberListener?.(name, existing.instanceId, membership.weight);
      this.services.get(name)?.reweigh(existing, membership.weight);
      this.offer(existing);
      return existing;
    }
    // Services only peers serve, and names only long-polls ask for, have budgets of their own:
    // neither a peer announcing many services nor polls on made-up names may lock this hub's
    // own workers out of the service table.
    const origin = !isLocalTakes(membership.takes) ? ServiceOrigin.Peer : membership.takes === Takes.Capacity ? ServiceOrigin.Poll : ServiceOrigin.Own;
    let svc = this.services.get(name);
    if (!svc) {
      if (!this.roomFor(origin)) return 'E_OVERLOADED';
      svc = new ServiceState(name);
      svc.origin = origin;
      if (origin === ServiceOrigin.Peer) this.peerServices++;
      if (origin === ServiceOrigin.Poll) this.pollServices.add(svc);
      this.services.set(name, svc);
    } else if (svc.origin !== ServiceOrigin.Own && origin === ServiceOrigin.Own) {
      // A worker here serves it too: it counts as this hub's own from now on.
      if (!this.roomFor(origin)) return 'E_OVERLOADED';
      this.forgetOrigin(svc);
      svc.origin = ServiceOrigin.Own;
    } else if (svc.origin === ServiceOrigin.Poll) {
      // Polled again: the most recently used name of the LRU.
      this.pollServices.delete(svc);
      this.pollServices.add(svc);
    }
    const r = new Registration(consumer, name, concurrency, membership);
    const displaced = svc.add(r);
    if (displaced) this.rehome(svc, displaced);
    if (r.takes === Takes.Ring) this.memberListener?.(name, r.instanceId, r.weight);
    if (r.isLocal() && r.takesUnkeyed()) this.creditListener?.(name);
    this.offer(r);
    return r;
  }

  /**
   * `r`'s consumer became a lame duck (its hub is leaving the mesh): where another hub has the
   * same instance, that copy becomes the ring member and takes the jobs waiting for `r`.
   */
  demote(r: Registration): void {
    const svc = this.services.get(r.service);
    const displaced = svc?.rechoose(r.instanceId);
    if (svc && displaced) this.rehome(svc, displaced);
  }

  /**
   * `r` is no longer its instance's ring member: the jobs waiting for it go to the member now,
   * except jobs a peer sent for `r` itself (they travel one hop and still run on it).
   */
  private rehome(svc: ServiceState, r: Registration): void {
    const member = this.memberFor(svc, r.instanceId);
    for (let job = r.ownerQueue.head; job; ) {
      const next = job.qNext;
      if (!job.fromPeer) {
        this.take(svc, r.ownerQueue, job);
        if (job.pinned && member) job.pinned = member;
        this.route(svc, job, true);
      }
      job = next;
    }
  }

  /** The open registration that is `instanceId`'s ring member now, on this hub or another. */
  private memberFor(svc: ServiceState, instanceId: string): Registration | null {
    const r = svc.ring.get(instanceId)?.reg ?? null;
    return r !== null && !r.closed ? r : null;
  }

  /** Closes `r` for new work; jobs waiting for it as their owner go to the next owner. */
  unregister(r: Registration): void {
    if (r.closed) return;
    r.closed = true;
    if (r.takes === Takes.Ring) this.memberListener?.(r.service, r.instanceId, 0);
    const svc = this.services.get(r.service);
    if (!svc) return;
    svc.remove(r);
    if (r.isLocal() && r.takesUnkeyed()) this.creditListener?.(r.service);
    let job: Job | null;
    while ((job = r.ownerQueue.shift())) {
      this.dequeued(svc, job);
      if (job.pinned) this.workerGone(job, false);
      else this.route(svc, job, true);
    }
    // The last consumer here is gone: unkeyed jobs peers sent would only wait for their
    // deadline. Back to their origins (not run), which may have other hubs' workers for them.
    if (svc.localUnkeyed === 0 && svc.peerQueues.size > 0) {
      for (const q of [...svc.peerQueues.values()]) {
        while ((job = q.shift())) {
          this.dequeued(svc, job);
          this.workerGone(job, false);
        }
      }
      svc.clearPeerQueues();
    }
  }

  /** The consumer behind `r` can take work again (credit back, socket drained). */
  offer(r: Registration): void {
    if (r.closed) return;
    const svc = this.services.get(r.service);
    if (!svc) return;
    let job: Job | null;
    while (r.canTake() && (job = r.ownerQueue.head)) {
      this.take(svc, r.ownerQueue, job);
      this.assign(r, job);
    }
    if (r.ownsKeys()) {
      // Keyed jobs that waited for any key owner now have one: each goes to its owner.
      for (let waiting = svc.keyedQueue.head; waiting; ) {
        const next = waiting.qNext;
        const owner = svc.owner(waiting.key!);
        // A key without an owner registered here keeps waiting; the ones behind it need not.
        if (owner) {
          this.take(svc, svc.keyedQueue, waiting);
          if (owner.canTake()) this.assign(owner, waiting);
          else this.enqueue(svc, owner.ownerQueue, waiting);
        }
        waiting = next;
      }
    }
    let q: JobList | null;
    while (r.takesUnkeyed() && r.canTake() && (q = svc.nextQueue(r)) && (job = q.head)) {
      this.take(svc, q, job);
      this.assign(r, job);
    }
    if (r.canTake()) svc.markReady(r);
  }

  /** Settles every open job with `code` (shutdown after the grace period). */
  failAll(code: ErrorCode): void {
    const jobs: Job[] = [];
    this.wheel.forEach((job) => {
      jobs.push(job);
    });
    for (const job of jobs) this.abandon(job, code);
  }

  /** Drops services with no consumer, no queue and no linger left. */
  sweepServices(): void {
    const at = now();
    for (const svc of this.services.values()) {
      if (svc.regs.length === 0 && svc.queued === 0 && !svc.isServed(this.o.serviceLingerMs, false, at)) this.dropService(svc);
    }
  }

  /**
   * Whether a service of `origin` may be added. Own and peer services each have maxServices;
   * long-poll names too, and when they are full the least recently polled name that nothing
   * waits on gives way (its linger ends early: a poller on it would create it again).
   */
  private roomFor(origin: ServiceOriginCode): boolean {
    if (origin === ServiceOrigin.Peer) return this.peerServices < this.o.maxServices;
    if (origin === ServiceOrigin.Own) return this.services.size - this.peerServices - this.pollServices.size < this.o.maxServices;
    if (this.pollServices.size < this.o.maxServices) return true;
    for (const svc of this.pollServices) {
      if (svc.regs.length === 0 && svc.queued === 0) {
        this.dropService(svc);
        return true;
      }
    }
    return false;
  }

  private dropService(svc: ServiceState): void {
    svc.ring.forget();
    this.tally?.unbind(svc);
    this.forgetOrigin(svc);
    this.services.delete(svc.name);
  }

  private forgetOrigin(svc: ServiceState): void {
    if (svc.origin === ServiceOrigin.Peer) this.peerServices--;
    if (svc.origin === ServiceOrigin.Poll) this.pollServices.delete(svc);
  }

  /** A job's time on the wheel came: its deadline, or the lease of the attempt it is on. */
  private due(job: Job): void {
    if (job.due < job.deadline && job.state === JobState.Assigned && now() < job.deadline) {
      this.counters.leasesExpired++;
      // lost() withdraws the attempt and gives the consumer its credit back.
      this.lost(job);
    } else {
      this.abandon(job, 'E_DEADLINE');
    }
  }

  /** Sends one part to every member of the stream's ring; a stream without any answers `[]` at once. */
  private broadcast(svc: ServiceState | undefined, parent: Job): boolean {
    const members = svc?.keyed() ?? [];
    const gather = new BroadcastGather(this, parent, members.length);
    parent.parts = [];
    this.counters.accepted++;
    if (svc === undefined || members.length === 0) {
      gather.answer();
      return true;
    }
    for (const r of members) {
      const part = new Job(
        parent.service,
        RequestMode.Broadcast,
        parent.key,
        parent.body,
        parent.contentType,
        parent.headers,
        parent.query,
        parent.deadline,
        gather,
      );
      part.pinned = r;
      part.callerId = parent.parts.length;
      parent.parts.push(part);
    }
    for (const part of parent.parts) {
      part.accepted = true;
      this.open++;
      this.wheel.add(part, part.deadline);
      const refused = this.route(svc, part, false);
      if (refused) this.fail(part, refused);
    }
    return true;
  }

  private accept(job: Job): void {
    this.counters.accepted++;
    // A consumer may answer or lose the job inside deliver, before this runs: settled uncounted,
    // it stays out of the open jobs and off the wheel.
    if (job.state === JobState.Settled) return;
    job.accepted = true;
    this.open++;
    // Routed straight to a consumer that leases, the job already waits for its lease.
    if (job.tSlot === -1) this.wheel.add(job, job.deadline);
  }

  /**
   * Assigns or queues `job`; null when it did. Unless `force` is on, refuses with E_QUEUE_FULL
   * when it would go over a queue limit, and with E_OVERLOADED when its consumer refuses to
   * have work wait for it (a peer link holding all it may).
   */
  private route(svc: ServiceState, job: Job, force: boolean): 'E_QUEUE_FULL' | 'E_OVERLOADED' | null {
    let target: Registration | null;
    let list: JobList;
    if (job.pinned) {
      target = job.pinned;
      if (target.closed) {
        this.workerGone(job, false);
        return null;
      }
      list = target.ownerQueue;
      if (target.canTake()) return this.assigned(target, job);
    } else if (job.mode === RequestMode.Keyed && job.key !== null) {
      target = svc.owner(job.key);
      if (target?.canTake()) return this.assigned(target, job);
      list = target ? target.ownerQueue : svc.keyedQueue;
    } else if (job.fromPeer) {
      // A peer sent it within the credit this hub granted: a consumer here, or a wait here.
      target = svc.pickLocal();
      if (target) return this.assigned(target, job);
      list = svc.peerQueue(job.origin);
    } else {
      target = svc.pick();
      if (target) return this.assigned(target, job);
      list = svc.queue;
    }
    if (!force && target !== null && target.consumer.refusesWaiting?.()) return 'E_OVERLOADED';
    if (!force && (svc.queued >= this.o.maxQueuePerService || this.queuedBytes + job.body.length > this.o.maxQueuedBytes)) return 'E_QUEUE_FULL';
    this.enqueue(svc, list, job);
    return null;
  }

  /** assign() for route(): nothing refused. */
  private assigned(r: Registration, job: Job): null {
    this.assign(r, job);
    return null;
  }

  private assign(r: Registration, job: Job): true {
    job.state = JobState.Assigned;
    job.reg = r;
    job.attempt++;
    r.inflight++;
    const lease = r.consumer.leaseMs;
    if (lease > 0) {
      // Without a reply within the lease, the attempt is lost and the job runs again (long-poll).
      const until = now() + lease;
      if (until < job.deadline) this.wheel.add(job, until);
    }
    r.consumer.deliver(job);
    const svc = this.services.get(r.service);
    if (svc && r.canTake()) svc.markReady(r);
    return true;
  }

  private enqueue(svc: ServiceState, list: JobList, job: Job): void {
    job.state = JobState.Queued;
    svc.queued++;
    this.queuedBytes += job.body.length;
    list.push(job);
  }

  private take(svc: ServiceState, list: JobList, job: Job): void {
    list.remove(job);
    this.dequeued(svc, job);
  }

  private dequeued(svc: ServiceState, job: Job): void {
    svc.queued--;
    this.queuedBytes -= job.body.length;
    job.state = JobState.New;
  }

  /**
   * The worker a job needs is gone. A job that came from a peer goes back to its origin, which
   * owns its attempts and routing; any other fails with E_WORKER_GONE (502).
   */
  private workerGone(job: Job, ran: boolean): void {
    if (job.fromPeer) job.handBack = ran ? HandBack.Ran : HandBack.NotRun;
    // A broadcast part is never tried elsewhere: "no attempts are left" would mislead.
    this.fail(job, 'E_WORKER_GONE', job.pinned !== null && job.mode === RequestMode.Broadcast ? PART_GONE : undefined);
  }

  private fail(job: Job, code: ErrorCode, message?: string): void {
    if (job.state === JobState.Settled) return;
    this.counters.failed++;
    this.setError(job, code, message);
    this.settle(job);
  }

  private setError(job: Job, code: ErrorCode, message: string = ERRORS[code].message): void {
    job.errorCode = code;
    job.errorMessage = message;
    job.status = ERRORS[code].status;
  }

  /** The one place a job settles: its waiter hears of it exactly once. */
  private settle(job: Job): void {
    if (job.state === JobState.Queued && job.queue) {
      const svc = this.services.get(job.service);
      job.queue.remove(job);
      if (svc) this.dequeued(svc, job);
    }
    job.state = JobState.Settled;
    this.wheel.remove(job);
    // Whatever still points at the job (a lease, a late reply's lookup) need not keep its body.
    job.body = EMPTY_BODY;
    if (job.accepted) this.open--;
    if (this.tally !== null) {
      // A caller's job refused before it reached submit has no series yet: it counts under its
      // service's if there are some, else `_other`. Parts and forwarded jobs are counted where
      // their caller is.
      const t = job.tally ?? (job.pinned === null && !job.fromPeer ? this.tally.seriesOf(job.service, this.services.get(job.service)) : null);
      if (t !== null) this.tally.settled(job, t);
    }
    job.waiter.settled(job);
  }
}

const EMPTY_BODY = new Uint8Array(0);

/** Error codes a worker may put in an error reply: upper-case words. */
const WORKER_CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/;
