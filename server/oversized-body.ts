/**
 * Bodies over the limit. The 413 is written only once the caller has sent its body (read here
 * and dropped), and with `Connection: close`: a client that writes its whole body before it
 * reads the answer (Node's fetch and undici do) would otherwise meet a closed socket (EPIPE or
 * a reset) instead of the 413. What is read is bounded, like nginx's lingering close: past
 * `bodyLingerBytes` more bytes or `bodyLingerMs`, the 413 goes out and the connection closes.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { type HttpSide, writeError } from './answer.js';
import type { HubOptions } from './options.js';

/** Reads and drops the rest of a body, then calls `done` once (unless stopped). */
export class BodyDiscard {
  private seen = 0;
  private finished = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly o: HubOptions,
    private readonly done: () => void,
  ) {
    this.timer = setTimeout(() => this.finish(), o.bodyLingerMs);
  }

  /** Another chunk of the body arrived (and is dropped). */
  chunk(bytes: number, isLast: boolean): void {
    if (this.finished) return;
    this.seen += bytes;
    if (isLast || this.seen > this.o.bodyLingerBytes) this.finish();
  }

  /** The caller went away: nothing to answer. */
  stop(): void {
    this.finished = true;
    clearTimeout(this.timer);
  }

  private finish(): void {
    if (this.finished) return;
    this.stop();
    this.done();
  }
}

/**
 * Answers a request that cannot be taken (a declared Content-Length over the limit: 413; too
 * many or too large headers: 431; two Content-Lengths: 400) with `Connection: close`, after
 * reading and dropping its body within the linger bounds: closing a socket with unread bytes
 * resets it, and the client may lose the answer.
 */
export function refuseAfterBody(res: HttpResponse, http: HttpSide, o: HubOptions, code: 'E_BODY_TOO_LARGE' | 'E_HEADERS_TOO_LARGE' | 'E_BAD_REQUEST'): void {
  let aborted = false;
  http.unanswered++;
  const discard = new BodyDiscard(o, () => {
    if (aborted) return;
    http.unanswered--;
    res.cork(() => writeError(res, code, http, code === 'E_BAD_REQUEST' ? 'two Content-Length headers' : undefined, true));
  });
  res.onAborted(() => {
    aborted = true;
    http.unanswered--;
    discard.stop();
  });
  res.onData((chunk, isLast) => discard.chunk(chunk.byteLength, isLast));
}
