/**
 * Requests made from inside the hub's process (an embedded node's `send` and `broadcast`): a job
 * submitted to the dispatcher like an HTTP caller's, answered through a promise instead of a
 * socket. Same admission, deadlines and answers as any caller.
 */
import { BusError } from '../client/errors.js';
import { NO_HEADERS } from '../client/handler.js';
import { asBuffer, check, DEFAULT_CONTENT_TYPE, isValidKey, isValidName, ProtocolError, RequestMode, type RequestModeCode } from '../client/protocol.js';
import { type BusResponse, makeResponse, type RequestOptions, requestError } from '../client/requester.js';
import type { Dispatcher } from './dispatcher.js';
import { Job, type JobWaiter } from './job.js';
import type { HubOptions } from './options.js';
import { now } from './timer-wheel.js';

/** Waits for one job's answer. */
class PromisedAnswer implements JobWaiter {
  onAbort: (() => void) | null = null;
  constructor(
    readonly resolve: (r: BusResponse) => void,
    readonly reject: (e: Error) => void,
    readonly signal: AbortSignal | undefined,
  ) {}

  settled(job: Job): void {
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    if (job.errorCode !== null) {
      this.reject(requestError(job.status, String(job.errorCode), job.errorMessage ?? ''));
      return;
    }
    try {
      this.resolve(makeResponse(job.status, job.replyContentType, job.replyHeaders ?? NO_HEADERS, asBuffer(job.replyBody ?? EMPTY), job.servedBy));
    } catch (err) {
      this.reject(err as Error);
    }
  }
}

/**
 * Submits a request for `service` and resolves with its answer; an error answer (the hub's or a
 * handler's) rejects with a BusError. `opts.key` routes to the key's owner; `opts.broadcast`
 * asks every member (its key, if any, is what each handler sees).
 */
export function requestInProcess(
  dispatcher: Dispatcher,
  o: HubOptions,
  service: string,
  body: Uint8Array | string,
  opts: RequestOptions = {},
): Promise<BusResponse> {
  const mode: RequestModeCode = opts.broadcast ? RequestMode.Broadcast : opts.key !== undefined ? RequestMode.Keyed : RequestMode.Any;
  const key = opts.key ?? null;
  if (!isValidName(service)) return Promise.reject(new BusError('E_BAD_NAME'));
  // A keyed request needs its key (`key: null` asks for one without); a broadcast may name one.
  if ((mode === RequestMode.Keyed || key !== null) && !isValidKey(key)) return Promise.reject(new BusError('E_BAD_KEY'));
  if (opts.timeoutMs !== undefined && !(Number.isInteger(opts.timeoutMs) && opts.timeoutMs > 0)) return Promise.reject(new BusError('E_BAD_TIMEOUT'));
  try {
    // What a worker is sent in a Job frame: a request it could not be sent in is refused here.
    check.optStr(opts.contentType ?? null, 'contentType');
    check.optStr(opts.query ?? null, 'query');
    check.optHeaders(opts.headers ?? null);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return Promise.reject(new BusError('E_BAD_REQUEST', err.message));
  }
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  if (bytes.length > o.maxBodyBytes) return Promise.reject(new BusError('E_BODY_TOO_LARGE'));
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(new BusError('E_CANCELLED'));
  let waiter!: PromisedAnswer;
  const promise = new Promise<BusResponse>((resolve, reject) => {
    waiter = new PromisedAnswer(resolve, reject, signal);
  });
  const deadline = now() + Math.min(opts.timeoutMs ?? o.defaultTimeoutMs, o.maxTimeoutMs);
  const job = new Job(service, mode, key, bytes, opts.contentType ?? DEFAULT_CONTENT_TYPE, opts.headers ?? null, opts.query ?? null, deadline, waiter);
  if (signal) {
    waiter.onAbort = () => dispatcher.abandon(job, 'E_CANCELLED');
    signal.addEventListener('abort', waiter.onAbort, { once: true });
  }
  dispatcher.submit(job);
  return promise;
}

const EMPTY = new Uint8Array(0);
