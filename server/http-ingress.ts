/**
 * The caller-facing HTTP routes: read the body within its limit, turn the request into a job,
 * and leave the answer to the HTTP answer queue. Bodies are never parsed.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { isValidKey, isValidName, RequestMode, type RequestModeCode } from '../client/protocol.js';
import { HttpAnswerQueue, type HttpSide, writeError } from './answer.js';
import type { Auth } from './auth/auth.js';
import { httpAllowed } from './auth/http-auth.js';
import type { Dispatcher } from './dispatcher.js';
import { Job, JobState } from './job.js';
import type { HubOptions } from './options.js';
import { BodyReader, refuseAfterBody } from './request-body.js';
import { head, readHead } from './request-head.js';
import { now } from './timer-wheel.js';
import { decodeParam } from './url-params.js';

export class HttpIngress {
  readonly answers: HttpAnswerQueue;

  constructor(
    private readonly o: HubOptions,
    readonly dispatcher: Dispatcher,
    private readonly http: HttpSide,
    private readonly auth: Auth,
  ) {
    this.answers = new HttpAnswerQueue(http);
  }

  /**
   * Wires the job routes onto `app`. meshage's routes took any method (an express `app.all`), so
   * the /api routes take every method that may carry a body; HEAD and OPTIONS stay with the
   * catch-all. One handler per route, made here: nothing is allocated per request.
   */
  routes(app: TemplatedApp): void {
    app.post('/service/:name', (res, req) => this.accept(res, req, RequestMode.Any));
    const broadcast = (res: HttpResponse, req: HttpRequest) => this.accept(res, req, RequestMode.Broadcast);
    const keyed = (res: HttpResponse, req: HttpRequest) => this.accept(res, req, RequestMode.Keyed);
    for (const method of API_METHODS) {
      app[method]('/api/broadcast/:stream/:key', broadcast);
      app[method]('/api/:stream/:key', keyed);
    }
  }

  private accept(res: HttpResponse, req: HttpRequest, mode: RequestModeCode): void {
    this.http.callerRequests++;
    const badHeaders = readHead(req, this.o);
    if (badHeaders) return refuseAfterBody(res, this.http, this.o, badHeaders);
    // HttpRequest is stack-allocated: copy everything needed before returning.
    const service = decodeParam(req.getParameter(0));
    if (!isValidName(service)) return writeError(res, 'E_BAD_NAME', this.http);
    let key: string | null = null;
    if (mode !== RequestMode.Any) {
      key = decodeParam(req.getParameter(1));
      if (!isValidKey(key)) return writeError(res, 'E_BAD_KEY', this.http);
    }
    if (httpAllowed(res, head.authorization, this.auth, this.http, 'request', service) === false) return;
    const timeout = parseTimeout(head.timeout, this.o);
    if (timeout < 0) return writeError(res, 'E_BAD_TIMEOUT', this.http);
    const declared = head.contentLength === '' ? -1 : Number(head.contentLength);
    if (declared > this.o.maxBodyBytes) return refuseAfterBody(res, this.http, this.o, 'E_BODY_TOO_LARGE');
    // A draining hub refuses after the body, not before: its answer closes the connection, and
    // body bytes still arriving at a closed socket would make the kernel reset it.
    const refused = this.dispatcher.draining ? null : this.dispatcher.precheck(service, mode);
    // Counted where it was decided: the request accounting has it as a refusal of its service.
    if (refused) return writeError(res, refused, this.http, undefined, false, false);
    const query = req.getQuery() || null;
    const job = new Job(service, mode, key, EMPTY, head.contentType || null, head.forwarded, query, now() + timeout, this.answers);
    job.callerRef = res;
    this.http.unanswered++;
    const reader = new JobBody(res, this.o, declared, job, this);
    res.onAborted(() => {
      // The caller went away: the response must never be touched again.
      if (job.callerRef === null) return;
      job.callerRef = null;
      this.http.unanswered--;
      reader.stop();
      // Whatever stage it reached (body still arriving, queued, at a worker, a broadcast's
      // parts running), the dispatcher settles it and tells whoever holds it.
      this.dispatcher.abandon(job, 'E_CANCELLED');
    });
  }

  /**
   * The body grew past the limit (and what followed was read and dropped): 413, and the
   * connection closes, since bytes of it may still come.
   */
  refuseTooLarge(job: Job): void {
    const res = job.callerRef as HttpResponse | null;
    if (res === null) return;
    job.callerRef = null;
    this.http.unanswered--;
    // Settled (and counted) like any refusal; the answer is written here, where its connection's end is known.
    this.dispatcher.reject(job, 'E_BODY_TOO_LARGE');
    res.cork(() => writeError(res, 'E_BODY_TOO_LARGE', this.http, undefined, true, false));
  }
}

const EMPTY = new Uint8Array(0);

/** The methods the meshage routes (`/api/...`) take, as uWS names its route methods. */
export const API_METHODS = ['get', 'post', 'put', 'patch', 'del'] as const;

/** A caller's body, for its job: submitted whole, or refused past the limit. */
class JobBody extends BodyReader {
  constructor(
    res: HttpResponse,
    o: HubOptions,
    declared: number,
    private readonly job: Job,
    private readonly ingress: HttpIngress,
  ) {
    super(res, o, declared);
  }

  protected body(body: Uint8Array): void {
    const job = this.job;
    if (job.callerRef === null || job.state !== JobState.New) return; // answered early or aborted
    job.body = body;
    this.ingress.dispatcher.submit(job);
  }

  protected tooLarge(): void {
    this.ingress.refuseTooLarge(this.job);
  }
}

/** X-Timeout-Ms: absent → default; a positive integer, clamped to the maximum; else -1. */
function parseTimeout(raw: string, o: HubOptions): number {
  if (raw === '') return o.defaultTimeoutMs;
  if (!/^\d{1,15}$/.test(raw)) return -1;
  const n = Number(raw);
  if (n <= 0) return -1;
  return Math.min(n, o.maxTimeoutMs);
}
