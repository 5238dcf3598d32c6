/**
 * What a handler is, what it gets and how its value or throw becomes an answer. Shared by the
 * WebSocket `Worker` and the hub's in-process consumer, so a handler behaves the same in both.
 */
import { check, DEFAULT_CONTENT_TYPE, type Headers, isValidStatus, ProtocolError } from './protocol.js';

/** What a handler gets. */
export interface IncomingJob {
  /** Id of this job on this connection (in-process: on this hub). */
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

export type HandlerValue = WorkerReply | Uint8Array | string | null | undefined;

export type Handler = (job: IncomingJob) => HandlerValue | Promise<HandlerValue>;

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

export const NO_HEADERS: Headers = Object.freeze({}) as Headers;

/**
 * A job as its handler sees it. The AbortController is made only when the handler reads
 * `signal`: most handlers never do, and creating one costs more than the rest of a job's
 * bookkeeping.
 */
export class JobView implements IncomingJob {
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

/** Whether a handler's value is a promise (anything with a `then` method) rather than an answer. */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return !!v && typeof (v as PromiseLike<unknown>).then === 'function';
}

/** Runs `handler` on `job` and calls `done` once with its value, or with what it threw or rejected with. */
export function runHandler<J extends IncomingJob>(handler: Handler, job: J, done: (job: J, value: HandlerValue, err: unknown) => void): void {
  let result: ReturnType<Handler>;
  let promised: boolean;
  try {
    result = handler(job);
    // Reading `then` runs the value's code too (a getter, a Proxy): a throw there is the handler's.
    promised = isThenable(result);
  } catch (err) {
    // `undefined` is how `done` tells a value from a throw: a thrown undefined is still a throw.
    done(job, undefined, err === undefined ? new Error('handler threw undefined') : err);
    return;
  }
  if (promised) {
    (result as Promise<HandlerValue>).then(
      (v) => done(job, v, undefined),
      (err: unknown) => done(job, undefined, err ?? new Error('handler rejected')),
    );
  } else {
    done(job, result as HandlerValue, undefined);
  }
}

/**
 * A handler's outcome as the hub takes it: a reply (`error` false) or an error reply. One object
 * per caller, filled in place, since it is read at once.
 */
export class Answer {
  error = false;
  status = 200;
  contentType = DEFAULT_CONTENT_TYPE;
  headers: Headers | null = null;
  body: Uint8Array = EMPTY;
  code = '';
  message = '';

  /** Fills this answer from a handler's value, or from its throw when `err` is not undefined. */
  of(value: HandlerValue, err: unknown): this {
    if (err !== undefined) {
      const he = err instanceof HandlerError ? err : null;
      return this.fail(isValidStatus(he?.status) ? he!.status : 500, typeof he?.code === 'string' ? he.code : 'E_HANDLER', thrownMessage(err));
    }
    // What the hub would refuse in a Reply frame costs a worker its whole session, and an
    // in-process answer the hub cannot write would end the hub: the caller gets a 500 instead.
    // So would a reply whose reading throws (a getter, a Proxy): it is the handler's throw.
    let status: number | undefined;
    let contentType: string | null;
    let headers: Headers | null;
    let body: Uint8Array;
    try {
      const r = toReply(value);
      status = r.status;
      if (status !== undefined && !isValidStatus(status)) {
        return this.fail(500, 'E_HANDLER', `the handler returned status ${String(status)}; a reply's status is an integer from 200 to 599`);
      }
      contentType = r.contentType ?? null;
      headers = r.headers ?? null;
      check.optStr(contentType, 'its content type');
      check.optHeaders(headers);
      body = check.body(r.body ?? null);
    } catch (e) {
      return this.fail(500, 'E_HANDLER', e instanceof ProtocolError ? `the handler's reply was refused: ${e.message}` : thrownMessage(e));
    }
    this.error = false;
    this.status = status ?? 200;
    this.contentType = contentType ?? DEFAULT_CONTENT_TYPE;
    this.headers = headers;
    this.body = body;
    return this;
  }

  private fail(status: number, code: string, message: string): this {
    this.error = true;
    this.status = status;
    this.code = code;
    this.message = message;
    this.body = EMPTY;
    return this;
  }
}

/** The message of what a handler threw: anything may be thrown, and String() throws for some (`Object.create(null)`). */
function thrownMessage(err: unknown): string {
  if (err instanceof Error && typeof err.message === 'string') return err.message;
  try {
    return String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

function toReply(v: HandlerValue): WorkerReply {
  if (v === null || v === undefined) return {};
  if (typeof v === 'string' || v instanceof Uint8Array) return { body: v };
  return v;
}

const EMPTY = new Uint8Array(0);
