/**
 * Requests over a WebSocket connection, multiplexed by request id: used by Worker (a service
 * calling another over its own socket) and by Client's WebSocket transport.
 */

import type { Connection } from './connection.js';
import { BusError, isErrorCode } from './errors.js';
import { asBuffer, DEFAULT_CONTENT_TYPE, ERROR_CODE_HEADER, type Headers, Op, RequestMode, type RequestModeCode, type ResponseFrame } from './protocol.js';

export interface RequestOptions {
  /** Route to the owner of this partition key. */
  key?: string;
  /** Send to every worker of the stream; the body of the answer is a JSON array. */
  broadcast?: boolean;
  timeoutMs?: number;
  contentType?: string;
  headers?: Headers;
  query?: string;
  signal?: AbortSignal;
}

/** An answer from a worker (or a broadcast's merged answer). */
export interface BusResponse {
  status: number;
  contentType: string;
  headers: Headers;
  body: Buffer;
  /** `<hubId>/<instanceId>` of the worker that answered. */
  servedBy: string | null;
  text(): string;
  json<T = unknown>(): T;
}

/** Builds a BusResponse; throws BusError when the answer carries an error code. */
export function makeResponse(status: number, contentType: string | null, headers: Headers, body: Buffer, servedBy: string | null): BusResponse {
  const code = headers[ERROR_CODE_HEADER];
  if (code !== undefined) {
    let message = `request failed with ${code}`;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { error?: { message?: string } };
      if (parsed.error?.message) message = parsed.error.message;
    } catch {
      // keep the generic message
    }
    throw requestError(status, code, message);
  }
  return new Response(status, contentType ?? 'application/json', headers, body, servedBy);
}

/** The error a failed request rejects with; a worker's own code outside the catalogue is kept as `workerCode`. */
export function requestError(status: number, code: string, message: string): BusError {
  const err = new BusError(isErrorCode(code) ? code : 'E_HANDLER', message, status);
  (err as BusError & { workerCode?: string }).workerCode = code;
  return err;
}

/** A plain class, not an object of closures: callers make many thousands a second. */
class Response implements BusResponse {
  constructor(
    readonly status: number,
    readonly contentType: string,
    readonly headers: Headers,
    readonly body: Buffer,
    readonly servedBy: string | null,
  ) {}
  text(): string {
    return this.body.toString('utf8');
  }
  json<T = unknown>(): T {
    return JSON.parse(this.body.toString('utf8')) as T;
  }
}

/** A request waiting for its Response: a plain object, no closures unless it has a signal. */
class Pending {
  onAbort: (() => void) | null = null;
  constructor(
    readonly resolve: (r: BusResponse) => void,
    readonly reject: (e: Error) => void,
    readonly signal: AbortSignal | undefined,
  ) {}
}

export class Requester {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly conn: Connection) {}

  /**
   * Sends a Request frame. `contentType` and `timeoutMs` override the ones in `opts`, so a
   * caller with defaults does not have to copy the options object on every request.
   */
  request(
    service: string,
    body: Uint8Array | string,
    opts: RequestOptions = NO_OPTIONS,
    contentType = opts.contentType,
    timeoutMs = opts.timeoutMs,
  ): Promise<BusResponse> {
    if (this.conn.state !== 'open') return Promise.reject(new BusError('E_CONNECTION_LOST', 'not connected to a hub'));
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(new BusError('E_CANCELLED'));
    const id = this.nextId++;
    const mode: RequestModeCode = opts.broadcast ? RequestMode.Broadcast : opts.key !== undefined ? RequestMode.Keyed : RequestMode.Any;
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    let p!: Pending;
    const promise = new Promise<BusResponse>((resolve, reject) => {
      p = new Pending(resolve, reject, signal);
    });
    this.pending.set(id, p);
    if (signal) this.watch(id, p, signal);
    this.conn.send([
      Op.Request,
      id,
      mode,
      service,
      opts.key ?? null,
      timeoutMs ?? null,
      contentType ?? DEFAULT_CONTENT_TYPE,
      opts.headers ?? null,
      opts.query ?? null,
      bytes,
    ]);
    return promise;
  }

  /** An abort of `signal` cancels request `id` at the hub and rejects it here. */
  private watch(id: number, p: Pending, signal: AbortSignal): void {
    p.onAbort = () => {
      if (this.pending.get(id) !== p) return;
      this.pending.delete(id);
      this.conn.send([Op.Cancel, id, 'E_CANCELLED']);
      p.reject(new BusError('E_CANCELLED'));
    };
    signal.addEventListener('abort', p.onAbort, { once: true });
  }

  onResponse(f: ResponseFrame): void {
    const [, id, status, contentType, headers, body, servedBy] = f;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    try {
      p.resolve(makeResponse(status, contentType, headers ?? NO_HEADERS, asBuffer(body), servedBy));
    } catch (err) {
      p.reject(err as Error);
    }
  }

  /** The connection dropped: every pending request fails (the caller may retry). */
  failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
      p.reject(err);
    }
  }

  get size(): number {
    return this.pending.size;
  }
}

const NO_OPTIONS: RequestOptions = {};
const NO_HEADERS: Headers = Object.freeze({}) as Headers;
