/**
 * Request bodies, read within the limit. A body over it is read on and dropped before its 413
 * is written, with `Connection: close`: a client that writes its whole body before it reads the
 * answer (Node's fetch and undici do) would otherwise meet a closed socket (EPIPE or a reset)
 * instead of the 413. What is dropped is bounded, like nginx's lingering close: past
 * `bodyLingerBytes` more bytes or `bodyLingerMs`, the answer goes out and the connection closes.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { ownCopy } from '../client/bytes.js';
import { type HttpSide, writeError } from './answer.js';
import type { HubOptions } from './options.js';

/** Reads and drops the rest of a body, then calls `done` once (unless stopped). */
class BodyDiscard {
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

const EMPTY = new Uint8Array(0);

/**
 * Reads one request's body: with a Content-Length the chunks are copied once, straight into one
 * buffer; a chunked body is collected and joined. `body` gets it whole; a body that grows past
 * `maxBodyBytes` (or its Content-Length) is read on and dropped, then `tooLarge` is called.
 * Neither is called after `stop` (the caller went away).
 */
export abstract class BodyReader {
  private whole: Buffer | null = null;
  private chunks: Buffer[] | null = null;
  private size = 0;
  private discard: BodyDiscard | null = null;
  private stopped = false;
  private readonly declared: number;

  /** `declared`: the Content-Length (anything but a whole number of bytes: none, the body is chunked). */
  constructor(
    res: HttpResponse,
    private readonly o: HubOptions,
    declared: number,
  ) {
    this.declared = Number.isSafeInteger(declared) ? declared : -1;
    res.onData((chunk, isLast) => this.chunk(chunk, isLast));
  }

  protected abstract body(body: Uint8Array): void;
  protected abstract tooLarge(): void;

  stop(): void {
    this.stopped = true;
    this.whole = this.chunks = null;
    this.discard?.stop();
  }

  private chunk(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.discard !== null) return this.discard.chunk(chunk.byteLength, isLast);
    if (this.stopped) return;
    const at = this.size;
    this.size += chunk.byteLength;
    if (this.size > this.o.maxBodyBytes || (this.declared >= 0 && this.size > this.declared)) {
      // What was read goes; the rest is read and dropped.
      this.whole = this.chunks = null;
      this.discard = new BodyDiscard(this.o, () => this.tooLarge());
      this.discard.chunk(0, isLast);
      return;
    }
    if (isLast && at === 0) {
      // The common case: the whole body in one chunk; copy it out of the borrowed buffer.
      this.stopped = true;
      this.body(chunk.byteLength > 0 ? ownCopy(chunk) : EMPTY);
      return;
    }
    if (this.declared >= 0) (this.whole ??= Buffer.allocUnsafe(this.declared)).set(new Uint8Array(chunk), at);
    else (this.chunks ??= []).push(ownCopy(chunk));
    if (!isLast) return;
    const body = this.whole !== null ? this.whole.subarray(0, this.size) : Buffer.concat(this.chunks!, this.size);
    this.stopped = true;
    this.whole = this.chunks = null;
    this.body(body);
  }
}

/**
 * A request read and not yet answered, counted in `HttpSide.unanswered` until `answered` (or
 * the caller going away) takes it off, once.
 */
export class OwedAnswer {
  private owed = true;
  constructor(private readonly http: HttpSide) {
    http.unanswered++;
  }
  /** False when it was taken off before (answered, or the caller went away). */
  answered(): boolean {
    if (!this.owed) return false;
    this.owed = false;
    this.http.unanswered--;
    return true;
  }
}

/**
 * Answers a request that cannot be taken (a declared Content-Length over the limit: 413; too
 * many or too large headers: 431; two Content-Lengths: 400) with `Connection: close`, after
 * reading and dropping its body within the linger bounds: closing a socket with unread bytes
 * resets it, and the client may lose the answer.
 */
export function refuseAfterBody(res: HttpResponse, http: HttpSide, o: HubOptions, code: 'E_BODY_TOO_LARGE' | 'E_HEADERS_TOO_LARGE' | 'E_BAD_REQUEST'): void {
  const owed = new OwedAnswer(http);
  const discard = new BodyDiscard(o, () => {
    if (owed.answered()) res.cork(() => writeError(res, code, http, code === 'E_BAD_REQUEST' ? 'two Content-Length headers' : undefined, true));
  });
  res.onAborted(() => {
    owed.answered();
    discard.stop();
  });
  res.onData((chunk, isLast) => discard.chunk(chunk.byteLength, isLast));
}
