/**
 * A worker: serves services over one WebSocket to a hub. Handlers run with the concurrency
 * granted at registration, get an AbortSignal that fires on cancel, and their throws become
 * error replies. Reconnects with backoff and registers again; `drain()` finishes in-flight jobs.
 * When its hub shuts down (Drain) and it has other hub URLs, it opens its next session with the
 * next hub at once and finishes what it has on the old one. Events: `welcome` (each session), `protocolError`,
 * `moving` (its hub is shutting down; the next session is opening), `moveFailed` (a hub
 * refused that next session's Hello), `disconnected` (the session dropped; it
 * reconnects).
 */
import { EventEmitter } from 'node:events';
import { nanoid } from 'nanoid';
import { Connection, type ConnectionOptions } from './connection.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { BusError } from './errors.js';
import { Answer, type Handler, HandlerError, type HandlerValue, JobView, NO_HEADERS, runHandler, type WorkerReply } from './handler.js';
import { asBuffer, type Frame, type Headers, type JobFrame, Op, type WelcomeInfo } from './protocol.js';
import { type BusResponse, Requester, type RequestOptions } from './requester.js';

export type { Handler, IncomingJob, WorkerReply } from './handler.js';
export { HandlerError };

export interface HandleOptions {
  /** Jobs of this service run at once. Default 16. */
  concurrency?: number;
  /** Share of partition keys relative to other workers. Default 1. */
  weight?: number;
}

export interface WorkerOptions extends Omit<ConnectionOptions, 'role'> {}

/** A JSON reply: `json({ok: true})`. */
export function json(value: unknown, status = 200): WorkerReply {
  return { status, contentType: 'application/json', body: JSON.stringify(value ?? null) };
}

/** A running job: what its handler sees, and the session it came on (its answer goes back there). */
class Running extends JobView {
  constructor(
    readonly link: WorkerLink,
    id: number,
    service: string,
    key: string | null,
    attempt: number,
    remainingMs: number,
    contentType: string | null,
    headers: Headers,
    query: string | null,
    body: Buffer,
  ) {
    super(id, service, key, attempt, remainingMs, contentType, headers, query, body);
  }
}

/**
 * One session with a hub: its connection, the jobs the hub gave this worker over it and the
 * requests this worker sent on it. Replies go back on the session their job came from.
 */
class WorkerLink {
  readonly running = new Map<number, Running>();
  readonly requester: Requester;
  constructor(readonly conn: Connection) {
    this.requester = new Requester(conn);
  }
}

export class Worker extends EventEmitter {
  readonly instanceId: string;
  private readonly opts: WorkerOptions;
  private readonly handlers = new Map<string, { handler: Handler; concurrency: number; weight: number }>();
  /** The session new work and requests go to. */
  private current: WorkerLink;
  /**
   * Sessions with a hub that is shutting down: this worker opened its next session elsewhere at
   * once, and finishes the jobs it has on these before it says goodbye.
   */
  private readonly retiring = new Set<WorkerLink>();
  /**
   * Handlers of a dropped session that have not returned yet. The hub has redelivered their
   * jobs, but they still hold a slot here: the new session registers only what is free.
   */
  private readonly orphans = new Set<Running>();
  /** Concurrency the current session registered per service (less than asked while others run). */
  private readonly registered = new Map<string, number>();
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  private readonly finishBound = (job: Running, value: HandlerValue, err: unknown): void => this.finish(job, value, err);
  /** Filled by each handler's outcome and sent at once. */
  private readonly answer = new Answer();

  constructor(opts: WorkerOptions) {
    super();
    this.instanceId = opts.instanceId ?? `w-${nanoid(12)}`;
    this.opts = opts;
    this.current = this.session(opts.url);
  }

  /** The connection of the current session. */
  get connection(): Connection {
    return this.current.conn;
  }

  private session(url: string | readonly string[]): WorkerLink {
    const conn = new Connection({ ...this.opts, url, role: 'worker', instanceId: this.instanceId });
    const link = new WorkerLink(conn);
    conn.on('welcome', (w: WelcomeInfo) => this.emit('welcome', w));
    conn.onOpen = () => {
      if (link !== this.current) return;
      this.registered.clear();
      for (const service of this.handlers.keys()) this.register(service);
    };
    conn.onFrame = (f) => this.onFrame(link, f);
    conn.onDrop = (err) => {
      // The hub redelivers our in-flight jobs elsewhere; stop them here. A handler that does
      // not stop keeps its slot until it returns.
      for (const r of link.running.values()) {
        r.abort(err);
        this.orphans.add(r);
      }
      link.running.clear();
      link.requester.failAll(err);
      if (link === this.current) {
        this.registered.clear();
        this.emit('disconnected', err);
      } else this.retiring.delete(link);
      this.checkIdle();
    };
    return link;
  }

  /** Serves `service` with `handler`. Call before or after `start()`. */
  handle(service: string, handler: Handler, opts: HandleOptions = {}): this {
    const h = { handler, concurrency: opts.concurrency ?? CLIENT_DEFAULTS.concurrency, weight: opts.weight ?? CLIENT_DEFAULTS.weight };
    this.handlers.set(service, h);
    this.registered.delete(service);
    this.register(service);
    return this;
  }

  /**
   * Registers `service` on the current session with the slots free, if any and if it changed:
   * jobs still running for a dropped or retiring session hold theirs.
   */
  private register(service: string): void {
    const h = this.handlers.get(service);
    const conn = this.current.conn;
    if (!h || conn.state !== 'open' || this.draining) return;
    let busy = 0;
    for (const r of this.orphans) if (r.service === service) busy++;
    for (const link of this.retiring) for (const r of link.running.values()) if (r.service === service) busy++;
    const free = h.concurrency - busy;
    if (free < 1 || this.registered.get(service) === free) return;
    this.registered.set(service, free);
    conn.send([Op.Register, service, free, h.weight]);
  }

  /** Stops serving `service`; jobs already running finish. */
  unhandle(service: string): this {
    this.registered.delete(service);
    if (this.handlers.delete(service) && this.current.conn.state === 'open') this.current.conn.send([Op.Unregister, service]);
    return this;
  }

  /** Connects and registers every handler. */
  async start(): Promise<this> {
    await this.current.conn.connect();
    return this;
  }

  /** Sends a request over this worker's socket (unkeyed, keyed or broadcast). */
  request(service: string, body: Uint8Array | string, opts?: RequestOptions): Promise<BusResponse> {
    return this.current.requester.request(service, body, opts);
  }

  /** Handlers running now, including ones of dropped or retiring sessions that have not returned. */
  get inflight(): number {
    let n = this.current.running.size + this.orphans.size;
    for (const link of this.retiring) n += link.running.size;
    return n;
  }

  /** Stops taking jobs, lets running ones finish (up to `timeoutMs`), says goodbye and closes. */
  async drain(timeoutMs: number = CLIENT_DEFAULTS.drainTimeoutMs): Promise<void> {
    const conn = this.current.conn;
    if (conn.state === 'closed') return;
    this.draining = true;
    conn.send([Op.Drain]);
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const link of [this.current, ...this.retiring]) link.conn.send([Op.Goodbye, null, 'worker draining']);
    await new Promise((r) => setImmediate(r));
    for (const link of [this.current, ...this.retiring]) link.conn.close();
    this.retiring.clear();
  }

  /** Closes at once; running jobs are redelivered by the hub. */
  close(): void {
    const err = new BusError('E_CONNECTION_LOST', 'worker closed');
    for (const link of [this.current, ...this.retiring]) {
      for (const r of link.running.values()) r.abort(err);
      link.running.clear();
      link.requester.failAll(err);
      link.conn.close();
    }
    this.retiring.clear();
    this.orphans.clear();
  }

  /**
   * The hub of `link` is shutting down: with other hubs to go to, the next session opens at once
   * with the next hub of the list, under the same instanceId (so this worker's keys stay with
   * it), and `link` takes no new work (its hub hands back what waited for it) and closes once
   * its jobs are answered. With one URL there is nowhere else: the session goes on serving
   * what its hub has queued until the hub closes it, and then reconnects.
   */
  private moveOn(link: WorkerLink): void {
    if (link !== this.current || this.draining || link.conn.state !== 'open' || link.conn.urlCount < 2) return;
    this.retiring.add(link);
    link.conn.stopReconnecting();
    link.conn.send([Op.Drain]);
    this.current = this.session(link.conn.nextUrls());
    this.registered.clear();
    this.current.conn.connect().catch((err: Error) => this.emit('moveFailed', err));
    this.emit('moving', { from: link.conn.url });
    this.retireIfDone(link);
  }

  /** A retiring session with nothing left running or waiting says goodbye and closes. */
  private retireIfDone(link: WorkerLink): void {
    if (!this.retiring.has(link) || link.running.size > 0 || link.requester.size > 0) return;
    this.retiring.delete(link);
    link.conn.send([Op.Goodbye, null, 'worker moved to another hub']);
    setImmediate(() => link.conn.close());
  }

  private onFrame(link: WorkerLink, f: Frame): void {
    switch (f[0]) {
      case Op.Job:
        return this.run(link, f);
      case Op.Cancel: {
        const r = link.running.get(f[1]);
        if (r && !r.cancelled) r.abort(new BusError(f[2] === 'E_DEADLINE' ? 'E_DEADLINE' : 'E_CANCELLED'));
        return;
      }
      case Op.Response:
        link.requester.onResponse(f);
        return this.retireIfDone(link);
      case Op.Drain:
        return this.moveOn(link);
      case Op.ProtocolError:
        this.emit('protocolError', new BusError(f[1], f[2]), f[3]);
        return;
      default:
        return;
    }
  }

  private run(link: WorkerLink, f: JobFrame): void {
    const [, id, service, key, remainingMs, attempt, contentType, headers, query, body] = f;
    const h = this.handlers.get(service);
    const job = new Running(link, id, service, key, attempt, remainingMs, contentType, headers ?? NO_HEADERS, query, asBuffer(body));
    link.running.set(id, job);
    if (!h) {
      this.finish(job, undefined, new HandlerError(`no handler for ${service}`, 503, 'E_NO_WORKERS'));
      return;
    }
    runHandler(h.handler, job, this.finishBound);
  }

  private finish(running: Running, value: HandlerValue, err: unknown): void {
    const link = running.link;
    const id = running.id;
    if (link.running.get(id) !== running) {
      // Its session dropped: the hub has redelivered the job, so no answer; the slot is free.
      if (this.orphans.delete(running)) {
        this.register(running.service);
        this.checkIdle();
      }
      return;
    }
    link.running.delete(id);
    const conn = link.conn;
    if (running.cancelled) {
      // Credit comes back only now that the handler is really done.
      conn.send([Op.CancelAck, id]);
    } else {
      const a = this.answer.of(value, err);
      if (a.error) conn.send([Op.Error, id, a.status, a.code, a.message]);
      else conn.send([Op.Reply, id, a.status, a.contentType, a.headers, a.body]);
    }
    if (link !== this.current) {
      // A slot of a retiring session is free: the current one may take one more job.
      this.register(running.service);
      this.retireIfDone(link);
    }
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.inflight > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
