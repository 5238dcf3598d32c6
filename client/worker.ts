/**
 * A worker: serves services over one WebSocket to a hub. Handlers run with the concurrency
 * granted at registration, get an AbortSignal that fires on cancel, and their throws become
 * error replies. Reconnects with backoff and registers again; `drain()` finishes in-flight jobs.
 */
import { nanoid } from 'nanoid';
import { Connection, type ConnectionOptions } from './connection.js';
import { BusError } from './errors.js';
import { DEFAULT_CONTENT_TYPE, type Frame, type Headers, type JobFrame, Op } from './protocol.js';
import { type BusResponse, Requester, type RequestOptions } from './requester.js';

/** What a handler gets. */
export interface IncomingJob {
  /** Id of this job on this connection. */
  readonly id: number;
  readonly service: string;
  /** Partition key of a keyed or broadcast job, else null. */
  readonly key: string | null;
  /** 1 on first delivery; higher means an earlier attempt's worker vanished. */
  readonly attempt: number;
  /** Milliseconds left until the caller's deadline when the job was received. */
  readonly remainingMs: number;
  readonly contentType: string | null;
  readonly headers: Headers;
  readonly query: string | null;
  readonly body: Buffer;
  /** Fires when the hub cancels the job (deadline passed, caller gone). */
  readonly signal: AbortSignal;
  text(): string;
  json<T = unknown>(): T;
}

/** A handler's answer. */
export interface WorkerReply {
  status?: number;
  contentType?: string;
  headers?: Headers;
  body?: Uint8Array | string;
}

export type Handler = (
  job: IncomingJob,
) => WorkerReply | Uint8Array | string | null | undefined | Promise<WorkerReply | Uint8Array | string | null | undefined>;

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

/** A handler error that sets the HTTP status and error code the caller sees. */
export class HandlerError extends Error {
  constructor(
    message: string,
    readonly status = 500,
    readonly code = 'E_HANDLER',
  ) {
    super(message);
    this.name = 'HandlerError';
  }
}

/**
 * A running job. The AbortController is made only when the handler reads `signal`: most
 * handlers never do, and creating one costs more than the rest of a job's bookkeeping.
 */
class Running implements IncomingJob {
  cancelled = false;
  private controller: AbortController | null = null;
  private reason: unknown = undefined;
  constructor(
    readonly id: number,
    readonly service: string,
    readonly key: string | null,
    readonly attempt: number,
    readonly remainingMs: number,
    readonly contentType: string | null,
    readonly headers: Headers,
    readonly query: string | null,
    readonly body: Buffer,
  ) {}
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
  abort(reason: unknown): void {
    this.cancelled = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
  text(): string {
    return this.body.toString('utf8');
  }
  json<T = unknown>(): T {
    return JSON.parse(this.body.toString('utf8')) as T;
  }
}

export class Worker {
  readonly instanceId: string;
  readonly connection: Connection;
  private readonly handlers = new Map<string, { handler: Handler; concurrency: number; weight: number }>();
  private readonly running = new Map<number, Running>();
  /**
   * Handlers of a dropped session that have not returned yet. The hub has redelivered their
   * jobs, but they still hold a slot here: the new session registers only what is free.
   */
  private readonly orphans = new Set<Running>();
  /** Concurrency this session registered per service (less than asked while orphans run). */
  private readonly registered = new Map<string, number>();
  private readonly requester: Requester;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(opts: WorkerOptions) {
    this.instanceId = opts.instanceId ?? `w-${nanoid(12)}`;
    this.connection = new Connection({ ...opts, role: 'worker', instanceId: this.instanceId });
    this.requester = new Requester(this.connection);
    this.connection.onOpen = () => {
      this.registered.clear();
      for (const service of this.handlers.keys()) this.register(service);
    };
    this.connection.onFrame = (f) => this.onFrame(f);
    this.connection.onDrop = (err) => {
      // The hub redelivers our in-flight jobs elsewhere; stop them here. A handler that does
      // not stop keeps its slot until it returns.
      for (const r of this.running.values()) {
        r.abort(err);
        this.orphans.add(r);
      }
      this.running.clear();
      this.registered.clear();
      this.requester.failAll(err);
      this.checkIdle();
    };
  }

  /** Serves `service` with `handler`. Call before or after `start()`. */
  handle(service: string, handler: Handler, opts: HandleOptions = {}): this {
    const h = { handler, concurrency: opts.concurrency ?? 16, weight: opts.weight ?? 1 };
    this.handlers.set(service, h);
    this.registered.delete(service);
    this.register(service);
    return this;
  }

  /** Registers `service` with the slots its orphans leave free, if any and if it changed. */
  private register(service: string): void {
    const h = this.handlers.get(service);
    if (!h || this.connection.state !== 'open' || this.draining) return;
    let busy = 0;
    for (const r of this.orphans) if (r.service === service) busy++;
    const free = h.concurrency - busy;
    if (free < 1 || this.registered.get(service) === free) return;
    this.registered.set(service, free);
    this.connection.send([Op.Register, service, free, h.weight]);
  }

  /** Stops serving `service`; jobs already running finish. */
  unhandle(service: string): this {
    this.registered.delete(service);
    if (this.handlers.delete(service) && this.connection.state === 'open') this.connection.send([Op.Unregister, service]);
    return this;
  }

  /** Connects and registers every handler. */
  async start(): Promise<this> {
    await this.connection.connect();
    return this;
  }

  /** Sends a request over this worker's socket (unkeyed, keyed or broadcast). */
  request(service: string, body: Uint8Array | string, opts?: RequestOptions): Promise<BusResponse> {
    return this.requester.request(service, body, opts);
  }

  /** Handlers running now, including ones of a dropped session that have not returned. */
  get inflight(): number {
    return this.running.size + this.orphans.size;
  }

  /** Stops taking jobs, lets running ones finish (up to `timeoutMs`), says goodbye and closes. */
  async drain(timeoutMs = 30_000): Promise<void> {
    if (this.connection.state === 'closed') return;
    this.draining = true;
    this.connection.send([Op.Drain]);
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.connection.send([Op.Goodbye, null, 'worker draining']);
    await new Promise((r) => setImmediate(r));
    this.connection.close();
  }

  /** Closes at once; running jobs are redelivered by the hub. */
  close(): void {
    for (const r of this.running.values()) r.abort(new BusError('E_CONNECTION_LOST', 'worker closed'));
    this.running.clear();
    this.orphans.clear();
    this.requester.failAll(new BusError('E_CONNECTION_LOST', 'worker closed'));
    this.connection.close();
  }

  private onFrame(f: Frame): void {
    switch (f[0]) {
      case Op.Job:
        return this.run(f);
      case Op.Cancel: {
        const r = this.running.get(f[1]);
        if (r && !r.cancelled) r.abort(new BusError(f[2] === 'E_DEADLINE' ? 'E_DEADLINE' : 'E_CANCELLED'));
        return;
      }
      case Op.Response:
        return this.requester.onResponse(f);
      case Op.Drain:
        return; // the hub is going away; we reconnect when it closes
      case Op.ProtocolError:
        this.connection.emit('protocolError', new BusError(f[1], f[2]), f[3]);
        return;
      default:
        return;
    }
  }

  private run(f: JobFrame): void {
    const [, id, service, key, remainingMs, attempt, contentType, headers, query, body] = f;
    const h = this.handlers.get(service);
    const job = new Running(
      id,
      service,
      key,
      attempt,
      remainingMs,
      contentType,
      headers ?? NO_HEADERS,
      query,
      Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    );
    this.running.set(id, job);
    if (!h) {
      this.finish(id, job, undefined, new HandlerError(`no handler for ${service}`, 503, 'E_NO_WORKERS'));
      return;
    }
    let result: ReturnType<Handler>;
    try {
      result = h.handler(job);
    } catch (err) {
      this.finish(id, job, undefined, err);
      return;
    }
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<Awaited<ReturnType<Handler>>>).then(
        (v) => this.finish(id, job, v, undefined),
        (err: unknown) => this.finish(id, job, undefined, err ?? new Error('handler rejected')),
      );
    } else {
      this.finish(id, job, result as Awaited<ReturnType<Handler>>, undefined);
    }
  }

  private finish(id: number, running: Running, value: Awaited<ReturnType<Handler>>, err: unknown): void {
    if (this.running.get(id) !== running) {
      // Its session dropped: the hub has redelivered the job, so no answer; the slot is free.
      if (this.orphans.delete(running)) {
        this.register(running.service);
        this.checkIdle();
      }
      return;
    }
    this.running.delete(id);
    if (running.cancelled) {
      // Credit comes back only now that the handler is really done.
      this.connection.send([Op.CancelAck, id]);
    } else if (err !== undefined) {
      const he = err instanceof HandlerError ? err : null;
      const message = err instanceof Error ? err.message : String(err);
      this.connection.send([Op.Error, id, he?.status ?? 500, he?.code ?? 'E_HANDLER', message]);
    } else {
      const r = toReply(value);
      this.connection.send([Op.Reply, id, r.status ?? 200, r.contentType ?? DEFAULT_CONTENT_TYPE, r.headers ?? null, toBytes(r.body)]);
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

function toReply(v: Awaited<ReturnType<Handler>>): WorkerReply {
  if (v === null || v === undefined) return {};
  if (typeof v === 'string' || v instanceof Uint8Array) return { body: v };
  return v;
}

function toBytes(body: Uint8Array | string | undefined): Uint8Array {
  if (body === undefined) return EMPTY;
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
}

const EMPTY = new Uint8Array(0);
const NO_HEADERS: Headers = Object.freeze({}) as Headers;
