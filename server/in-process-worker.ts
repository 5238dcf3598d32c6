/**
 * Handlers that run in the hub's own process: the fourth kind of consumer, beside WebSocket
 * sessions, long-polls and peer links. A job reaches its handler without a socket or msgpack (the
 * handler reads the job's body in place), and the dispatcher's rules hold as for the others: a
 * registration's credit bounds what runs at once, the deadline cancels through the handler's
 * AbortSignal, and a job settles once. It is one ring member (one instance id) per hub.
 */
import { BusError, type ErrorCode } from '../client/errors.js';
import { Answer, type Handler, type HandlerValue, JobView, NO_HEADERS, runHandler } from '../client/handler.js';
import { asBuffer, isValidName, MAX_CONCURRENCY, MAX_WEIGHT } from '../client/protocol.js';
import type { BusResponse, RequestOptions } from '../client/requester.js';
import type { Dispatcher } from './dispatcher.js';
import { requestInProcess } from './in-process-request.js';
import { type Consumer, type Job, JobState, type Registration, Takes } from './job.js';
import type { HubOptions } from './options.js';
import { now } from './timer-wheel.js';

export interface InProcessOptions {
  /** Jobs of the service its handler runs at once (its credit). */
  concurrency: number;
  /** Share of partition keys relative to the other ring members. */
  weight: number;
}

/** A job running in-process: what its handler sees (its `attempt` is the one its answer is for). */
class InProcessJob extends JobView {
  constructor(
    readonly job: Job,
    id: number,
    body: Buffer,
  ) {
    super(id, job.service, job.key, job.attempt, Math.max(0, Math.round(job.deadline - now())), job.contentType, job.headers ?? NO_HEADERS, job.query, body);
  }
}

export class InProcessWorker implements Consumer {
  /** No lease: a handler in this process cannot vanish without the hub. */
  readonly leaseMs = 0;
  /** `<hubId>/<instanceId>`, as in X-Served-By. */
  readonly servedBy: string;
  private readonly served = new Map<string, Registration>();
  /** Each registration's handler: a job handed over before its service was unregistered still runs on it. */
  private readonly handlers = new WeakMap<Registration, Handler>();
  /** Jobs handed over in this turn: handlers run after the dispatcher's call returns. */
  private pending: Job[] = [];
  private scheduled = false;
  /**
   * Handlers running now. Each job holds its own run (`job.consumerRef`) rather than a Map here:
   * a Map that empties and refills at every job allocates a new table each time, and V8 links
   * each replaced table to the next, so once one of them is promoted every later one (and the
   * jobs they held) survives the scavenges too, until a Mark-Compact.
   */
  private running = 0;
  private nextId = 1;
  private closed = false;
  private readonly answer = new Answer();
  private readonly runPendingBound = (): void => this.runPending();
  private readonly finishBound = (run: InProcessJob, value: HandlerValue, err: unknown): void => this.finish(run, value, err);

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly options: HubOptions,
    readonly hubId: string,
    readonly instanceId: string,
  ) {
    this.servedBy = `${hubId}/${instanceId}`;
  }

  /**
   * Serves `service` with `handler` (again: with the new handler, credit and weight). Throws a
   * BusError for a name or option the hub would refuse from a worker.
   */
  handle(service: string, handler: Handler, opts: InProcessOptions): void {
    if (this.closed) throw new BusError('E_SHUTTING_DOWN', 'the hub is shutting down');
    if (!isValidName(service)) throw new BusError('E_BAD_NAME');
    if (!(Number.isInteger(opts.concurrency) && opts.concurrency >= 1 && opts.concurrency <= MAX_CONCURRENCY)) {
      throw new RangeError(`concurrency must be an integer from 1 to ${MAX_CONCURRENCY}`);
    }
    if (!(opts.weight > 0 && opts.weight <= MAX_WEIGHT)) throw new RangeError(`weight must be more than 0 and at most ${MAX_WEIGHT}`);
    const membership = { instanceId: this.instanceId, hubId: this.hubId, weight: opts.weight, takes: Takes.Ring };
    const r = this.dispatcher.register(this, service, opts.concurrency, membership, this.served.get(service));
    if (typeof r === 'string') throw new BusError(r);
    this.served.set(service, r);
    this.handlers.set(r, handler);
  }

  /**
   * A request from this process, routed like any caller's (to a handler here, a worker, or
   * through a peer): resolves with the answer, rejects with a BusError on an error answer.
   */
  request(service: string, body: Uint8Array | string, opts?: RequestOptions): Promise<BusResponse> {
    return requestInProcess(this.dispatcher, this.options, service, body, opts);
  }

  /** Stops serving `service`: jobs waiting for it go to the next owner; running ones finish. */
  unhandle(service: string): boolean {
    const r = this.served.get(service);
    if (!r) return false;
    this.served.delete(service);
    this.dispatcher.unregister(r);
    return true;
  }

  /** The services served, for /stats. */
  services(): { name: string; credit: number; inflight: number; weight: number }[] {
    return [...this.served.values()].map((reg) => ({ name: reg.service, credit: reg.concurrency, inflight: reg.inflight, weight: reg.weight }));
  }

  /** Handlers running now. */
  get inflight(): number {
    return this.running;
  }

  /**
   * The hub is shutting down, and handlers here cannot move to another hub. A service that
   * another ring member serves leaves at once: its keys, and the jobs waiting here for them, go
   * to that member. The last member of a service stays to answer what is queued for it, which
   * would otherwise wait for the end of the grace period. Running jobs finish either way.
   */
  close(): void {
    this.closed = true;
    for (const service of [...this.served.keys()]) if (this.othersServe(service)) this.unhandle(service);
  }

  private othersServe(service: string): boolean {
    const ring = this.dispatcher.services.get(service)?.ring;
    return ring?.members().some((m) => m.instanceId !== this.instanceId) ?? false;
  }

  canSend(): boolean {
    return true;
  }

  deliver(job: Job): void {
    // Not from inside the dispatcher's call: a handler that answers at once would settle the job
    // while the dispatcher is still assigning it.
    this.pending.push(job);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.runPendingBound);
    }
  }

  cancel(job: Job, code: ErrorCode): void {
    // A job still pending is released when its turn comes; a running one when its handler returns.
    if (job.consumerRef instanceof InProcessJob) job.consumerRef.abort(new BusError(code));
  }

  private runPending(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    for (const job of batch) {
      const handler = job.reg ? this.handlers.get(job.reg) : undefined;
      if (job.state === JobState.Settled || !handler) {
        // Cancelled before its handler ran: its credit comes back, nothing runs.
        this.dispatcher.release(job);
        continue;
      }
      const run = new InProcessJob(job, this.nextId++, asBuffer(job.body));
      job.consumerRef = run;
      this.running++;
      runHandler(handler, run, this.finishBound);
    }
  }

  private finish(run: InProcessJob, value: HandlerValue, err: unknown): void {
    const job = run.job;
    if (job.consumerRef === run) job.consumerRef = null;
    this.running--;
    if (!run.cancelled && job.state !== JobState.Settled) {
      const a = this.answer.of(value, err);
      if (a.error) this.dispatcher.resolveError(job, a.status, a.code, a.message, this.servedBy);
      // A body peers could not take would close the link it is forwarded on: refused as a worker's
      // malformed Reply is (502 E_BAD_REPLY, final). Answer.of has checked the rest.
      else if (a.body.byteLength > this.options.maxBodyBytes) this.dispatcher.badAnswer(job, this.servedBy);
      else this.dispatcher.resolve(job, a.status, a.contentType, a.headers, a.body, this.servedBy);
    }
    // Credit comes back only now that the handler is really done, as a worker's CancelAck does.
    this.dispatcher.release(job, run.attempt);
  }
}
