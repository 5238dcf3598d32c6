/**
 * The caller-facing HTTP routes: read the body within its limit, turn the request into a job,
 * and leave the answer to the HTTP answer queue. Bodies are never parsed.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { ownCopy } from '../client/bytes.js';
import { type Headers, isValidKey, isValidName, RequestMode, type RequestModeCode } from '../client/protocol.js';
import { HttpAnswerQueue, type HttpSide, writeError } from './answer.js';
import type { Auth } from './auth/auth.js';
import { httpAllowed } from './auth/http-auth.js';
import type { Dispatcher } from './dispatcher.js';
import { headerRefusal } from './header-limits.js';
import { Job, JobState } from './job.js';
import type { HubOptions } from './options.js';
import { BodyDiscard, refuseAfterBody } from './oversized-body.js';
import { now } from './timer-wheel.js';
import { decodeParam } from './url-params.js';

export class HttpIngress {
  readonly answers: HttpAnswerQueue;

  constructor(
    private readonly o: HubOptions,
    private readonly dispatcher: Dispatcher,
    private readonly http: HttpSide,
    private readonly auth: Auth,
  ) {
    this.answers = new HttpAnswerQueue(http);
  }

  /** Wires the job routes onto `app`. */
  routes(app: TemplatedApp): void {
    app.post('/service/:name', (res, req) => this.accept(res, req, RequestMode.Any));
    app.post('/api/broadcast/:stream/:key', (res, req) => this.accept(res, req, RequestMode.Broadcast));
    app.post('/api/:stream/:key', (res, req) => this.accept(res, req, RequestMode.Keyed));
  }

  private accept(res: HttpResponse, req: HttpRequest, mode: RequestModeCode): void {
    this.http.callerRequests++;
    const badHeaders = headerRefusal(req, this.o);
    if (badHeaders) return refuseAfterBody(res, this.http, this.o, badHeaders);
    // HttpRequest is stack-allocated: copy everything needed before returning.
    const service = decodeParam(req.getParameter(0));
    if (!isValidName(service)) return writeError(res, 'E_BAD_NAME', this.http);
    let key: string | null = null;
    if (mode !== RequestMode.Any) {
      key = decodeParam(req.getParameter(1));
      if (!isValidKey(key)) return writeError(res, 'E_BAD_KEY', this.http);
    }
    if (httpAllowed(res, req, this.auth, this.http, 'request', service) === false) return;
    const timeout = parseTimeout(req.getHeader('x-timeout-ms'), this.o);
    if (timeout < 0) return writeError(res, 'E_BAD_TIMEOUT', this.http);
    const length = req.getHeader('content-length');
    const declared = length === '' ? -1 : Number(length);
    if (declared > this.o.maxBodyBytes) return refuseAfterBody(res, this.http, this.o, 'E_BODY_TOO_LARGE');
    // A draining hub refuses after the body, not before: its answer closes the connection, and
    // body bytes still arriving at a closed socket would make the kernel reset it.
    const refused = this.dispatcher.draining ? null : this.dispatcher.precheck(service, mode);
    if (refused) return writeError(res, refused, this.http);
    const contentType = req.getHeader('content-type') || null;
    const query = req.getQuery() || null;
    let headers: Headers | null = null;
    for (const name of this.o.forwardHeaders) {
      const v = req.getHeader(name);
      if (v !== '') (headers ??= {})[name] = v;
    }
    const job = new Job(service, mode, key, EMPTY, contentType, headers, query, now() + timeout, this.answers);
    job.callerRef = res;
    this.http.unanswered++;
    res.onAborted(() => {
      // The caller went away: the response must never be touched again.
      if (job.callerRef === null) return;
      job.callerRef = null;
      this.http.unanswered--;
      // Whatever stage it reached (body still arriving, queued, at a worker, a broadcast's
      // parts running), the dispatcher settles it and tells whoever holds it.
      this.dispatcher.abandon(job, 'E_CANCELLED');
    });
    this.readBody(res, job, Number.isSafeInteger(declared) ? declared : -1);
  }

  /** `declared`: the Content-Length, or -1 for a chunked body. */
  private readBody(res: HttpResponse, job: Job, declared: number): void {
    // uWS hands over exactly Content-Length bytes, so with a length the chunks are copied once,
    // straight into the final buffer; a chunked body is collected and joined.
    let whole: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    let size = 0;
    let discard: BodyDiscard | null = null;
    res.onData((chunk, isLast) => {
      if (discard) return discard.chunk(chunk.byteLength, isLast);
      if (job.callerRef === null || job.state !== JobState.New) return; // answered early or aborted
      const at = size;
      size += chunk.byteLength;
      if (size > this.o.maxBodyBytes || (declared >= 0 && size > declared)) {
        // A chunked body grew past the limit: what was read goes, the rest is read and dropped.
        whole = chunks = null;
        discard = new BodyDiscard(this.o, () => this.dispatcher.reject(job, 'E_BODY_TOO_LARGE'));
        discard.chunk(0, isLast);
        return;
      }
      if (isLast && at === 0) {
        // The common case: the whole body in one chunk; copy it out of the borrowed buffer.
        if (chunk.byteLength > 0) job.body = ownCopy(chunk);
        this.dispatcher.submit(job);
        return;
      }
      if (declared >= 0) (whole ??= Buffer.allocUnsafe(declared)).set(new Uint8Array(chunk), at);
      else (chunks ??= []).push(ownCopy(chunk));
      if (isLast) {
        job.body = whole !== null ? whole.subarray(0, size) : Buffer.concat(chunks!, size);
        whole = chunks = null;
        this.dispatcher.submit(job);
      }
    });
  }
}

const EMPTY = new Uint8Array(0);

/** X-Timeout-Ms: absent → default; a positive integer, clamped to the maximum; else -1. */
function parseTimeout(raw: string, o: HubOptions): number {
  if (raw === '') return o.defaultTimeoutMs;
  if (!/^\d{1,15}$/.test(raw)) return -1;
  const n = Number(raw);
  if (n <= 0) return -1;
  return Math.min(n, o.maxTimeoutMs);
}
