/**
 * Writing a settled job back to an HTTP caller. Answers are queued as replies arrive and
 * written from one setImmediate, each inside `res.cork`, because a write from inside a
 * WebSocket message handler cannot be corked and costs a syscall per header.
 */

import type { HttpResponse, RecognizedString, TemplatedApp } from 'uWebSockets.js';
import { STATUS_CODES } from 'node:http';
import { ERRORS, type ErrorCode, errorBody, isErrorCode } from '../client/errors.js';
import { DEFAULT_CONTENT_TYPE, ERROR_CODE_HEADER, SERVED_BY_HEADER } from '../client/protocol.js';
import type { Job, JobWaiter } from './job.js';
import { isPassableHeader, isSafeHeaderValue } from './reply-headers.js';

const statusLines = new Map<number, string>();
/** "200 OK" for 200, cached. */
export function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (!line) {
    line = `${status} ${STATUS_CODES[status] ?? 'Status'}`;
    if (statusLines.size < 512) statusLines.set(status, line);
  }
  return line;
}

/**
 * One hub's HTTP side as its answers see it. While the hub drains, every answer carries
 * `Connection: close` and the connection closes after it, so a caller's next request opens a
 * new connection (to a hub that serves, or refused once the port is closed) instead of going
 * out on a socket the hub is about to drop. `unanswered` counts requests read whose answer is
 * not written yet: the hub exits after the last of them.
 */
export class HttpSide {
  closing = false;
  unanswered = 0;
  /** Requests read on the caller routes (/service, /api) since the hub started. */
  callerRequests = 0;
  /** Error answers the hub wrote itself, not as a job's outcome, by code (a bounded set: the catalogue's). */
  readonly refused = new Map<ErrorCode, number>();

  constructor(readonly hubId: string) {}
}

/**
 * Ends an answer that has a body. While closing (or when `close`), uWS writes
 * `Connection: close`, then shuts the socket down and closes it once the answer is out of its buffer.
 */
export function endWith(res: HttpResponse, body: RecognizedString, http: HttpSide, close = http.closing): void {
  res.end(body, close);
}

/** A 404 to a HEAD request: its code in the header, and no body (a client would read one as the start of the next answer). */
export function endHeadNotFound(res: HttpResponse, http: HttpSide): void {
  endEmpty(res.writeStatus('404 Not Found').writeHeader(ERROR_CODE_HEADER, 'E_NOT_FOUND'), http);
}

/**
 * Ends an answer without a body. uWS's own close would add `Content-Length: 0`, which a 204 must
 * not carry and a HEAD answer would misreport, so while closing only the header is written and
 * the caller closes the connection, as it must after reading it. A HEAD answer may report the
 * length its GET would have (`reportedLength`).
 */
export function endEmpty(res: HttpResponse, http: HttpSide, reportedLength?: number): void {
  if (http.closing) res.writeHeader('connection', 'close');
  // uWS's own reported length leaves the response open (it waits for that many bytes).
  if (reportedLength !== undefined) res.writeHeader('content-length', String(reportedLength));
  res.endWithoutBody();
}

/**
 * Answers with `value` as JSON: the operator routes' state, never to be cached. A HEAD answer
 * has the same status and headers, and no body.
 */
export function endJson(res: HttpResponse, status: string, value: unknown, http: HttpSide, head = false): void {
  const body = JSON.stringify(value);
  res.writeStatus(status).writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store');
  if (head) endEmpty(res, http, Buffer.byteLength(body));
  else endWith(res, body, http);
}

/**
 * Writes a hub error as the whole answer, counted in `http.refused`. Call inside a cork (or a
 * uWS handler). A refusal the request accounting already counts as a job's outcome passes
 * `counted` false.
 */
export function writeError(res: HttpResponse, code: ErrorCode, http: HttpSide, message: string = ERRORS[code].message, close = false, counted = true): void {
  if (counted) http.refused.set(code, (http.refused.get(code) ?? 0) + 1);
  writeErrorAnswer(res, ERRORS[code].status, code, message, http.hubId, http, close);
}

function writeErrorAnswer(res: HttpResponse, status: number, code: string, message: string, servedBy: string, http: HttpSide, close = false): void {
  res.writeStatus(statusLine(status));
  res.writeHeader('content-type', 'application/json');
  res.writeHeader(ERROR_CODE_HEADER, code);
  res.writeHeader(SERVED_BY_HEADER, servedBy);
  if (status === 503) res.writeHeader('retry-after', '1');
  if (status === 401) res.writeHeader('www-authenticate', 'Bearer realm="astromesh"');
  const body = isErrorCode(code) ? errorBody(code, message) : JSON.stringify({ error: { code, message } });
  // `close`: the rest of a refused request may still be on its way, so the connection cannot carry another.
  if (close) endWith(res, body, http, true);
  else endAnswer(res, status, body, http);
}

/** Writes a settled job as the whole answer. Call inside a cork. */
export function writeJobAnswer(res: HttpResponse, job: Job, http: HttpSide): void {
  if (job.errorCode !== null) {
    writeErrorAnswer(res, job.status, String(job.errorCode), job.errorMessage ?? '', job.servedBy ?? http.hubId, http);
    return;
  }
  res.writeStatus(statusLine(job.status));
  // A content type with CR/LF would let a worker split the response (forge headers, answer
  // the next request on a keep-alive connection): such a value falls back to the default.
  const ct = job.replyContentType;
  res.writeHeader('content-type', ct !== null && isSafeHeaderValue(ct) ? ct : DEFAULT_CONTENT_TYPE);
  res.writeHeader(SERVED_BY_HEADER, job.servedBy ?? http.hubId);
  const h = job.replyHeaders;
  if (h) for (const name in h) if (isPassableHeader(name, h[name]!)) res.writeHeader(name, h[name]!);
  endAnswer(res, job.status, job.replyBody ?? EMPTY, http);
}

/**
 * 204 and 304 answers have no body (RFC 9110): written after them, a worker's body would be
 * read as the next answer on a keep-alive connection, so it is dropped.
 */
function endAnswer(res: HttpResponse, status: number, body: RecognizedString, http: HttpSide): void {
  if (status === 204 || status === 304) endEmpty(res, http);
  else endWith(res, body, http);
}

const EMPTY = new Uint8Array(0);

/**
 * The waiter of every HTTP job: collects settled jobs and answers them all in the next
 * setImmediate. `job.callerRef` holds the response until it is answered or aborted (null);
 * while it does, the request counts in `HttpSide.unanswered`.
 */
export class HttpAnswerQueue implements JobWaiter {
  private pending: Job[] = [];
  private scheduled = false;
  private current: Job | null = null;
  private readonly flushBound = (): void => this.flush();
  private readonly writeCurrent = (): void => {
    const job = this.current!;
    writeJobAnswer(job.callerRef as HttpResponse, job, this.http);
  };

  constructor(private readonly http: HttpSide) {}

  settled(job: Job): void {
    if (job.callerRef === null) return;
    this.pending.push(job);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    for (const job of batch) {
      const res = job.callerRef as HttpResponse | null;
      if (res === null) continue; // aborted while the answer waited
      this.current = job;
      res.cork(this.writeCurrent);
      job.callerRef = null;
      job.replyBody = null;
      this.http.unanswered--;
    }
    this.current = null;
  }
}

/**
 * Serves `path` for GET and HEAD alike: probes and link checkers send HEAD, and get the status
 * and headers a GET would, with no body (`serve` is told which it answers).
 */
export function getAndHead(app: TemplatedApp, path: string, serve: (res: HttpResponse, head: boolean) => void): void {
  app.get(path, (res) => serve(res, false));
  app.head(path, (res) => serve(res, true));
}
