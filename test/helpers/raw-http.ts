/**
 * HTTP/1.1 spoken byte by byte over a TCP socket, for requests no client library would send,
 * and a strict reader of what comes back: each answer must be a well-formed HTTP/1.1 response.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { ERRORS } from '../../client/errors.js';
import { type HubProc, post, stats, waitUntil } from './processes.js';

export interface RawResponse {
  status: number;
  reason: string;
  /** Lower-case names; a repeated header keeps every value, joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

export interface Exchange {
  responses: RawResponse[];
  /** The hub closed the connection (or reset it) before the wait ended. */
  closed: boolean;
  /** Bytes that did not parse as a response (a malformed answer, or one cut short). */
  rest: Buffer;
  ms: number;
}

/**
 * Writes `parts` in order (a number is a pause in ms) and reads answers until `expect` of them
 * have arrived, the hub closes the connection, or `waitMs` passes. `head` lists which requests
 * were HEAD requests (their answers have no body), by index.
 */
export function exchange(
  port: number,
  parts: (string | Buffer | number)[],
  opts: { expect?: number; waitMs?: number; head?: number[] } = {},
): Promise<Exchange> {
  const { expect = 1, waitMs = 3000, head = [] } = opts;
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ responses, closed, rest: buf, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const parsed = parseResponse(buf, head.includes(responses.length));
        if (!parsed) break;
        responses.push(parsed.response);
        buf = buf.subarray(parsed.used);
      }
      if (responses.length >= expect) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.once('connect', async () => {
      for (const p of parts) {
        if (done) return;
        if (typeof p === 'number') await new Promise((r) => setTimeout(r, p));
        else s.write(p);
      }
    });
  });
}

/** One response from the front of `b`, or null when it is not all there yet. Throws on a malformed one. */
export function parseResponse(b: Buffer, headRequest = false): { response: RawResponse; used: number } | null {
  const end = b.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = b.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) ([^\r\n]*)$/.exec(lines[0]!);
  if (!m) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const h = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?(.*)$/.exec(line);
    if (!h) throw new Error(`not a header line: ${JSON.stringify(line)}`);
    const name = h[1]!.toLowerCase();
    headers[name] = name in headers ? `${headers[name]}, ${h[2]}` : h[2]!;
  }
  const status = Number(m[1]);
  const start = end + 4;
  // 1xx, 204 and 304 answers, and answers to HEAD, have no body whatever their headers say.
  if (headRequest || status < 200 || status === 204 || status === 304) {
    return { response: { status, reason: m[2]!, headers, body: Buffer.alloc(0) }, used: start };
  }
  if (headers['transfer-encoding'] !== undefined) throw new Error('the hub answered with a chunked body');
  const cl = headers['content-length'];
  if (cl === undefined || !/^\d+$/.test(cl)) throw new Error(`an answer without a valid Content-Length: ${JSON.stringify(cl)}`);
  const n = Number(cl);
  if (b.length < start + n) return null;
  return { response: { status, reason: m[2]!, headers, body: b.subarray(start, start + n) }, used: start + n };
}

/**
 * The problem with an error answer, or null: the JSON error body of the catalogue, its code in
 * X-Error-Code, the status of that code, and Retry-After: 1 on a 503.
 */
export function errorAnswerProblem(r: RawResponse, headRequest = false): string | null {
  const code = r.headers['x-error-code'];
  if (code === undefined) return 'no x-error-code';
  if (!Object.hasOwn(ERRORS, code)) return `x-error-code ${code} is not in the catalogue`;
  if (ERRORS[code as keyof typeof ERRORS].status !== r.status) return `${code} came with status ${r.status}`;
  if (r.status === 503 && r.headers['retry-after'] !== '1') return 'a 503 without Retry-After: 1';
  if (headRequest) return r.body.length === 0 ? null : 'a HEAD answer with a body';
  if (!/^application\/json/.test(r.headers['content-type'] ?? '')) return `content type ${r.headers['content-type']}`;
  let parsed: { error?: { code?: unknown; message?: unknown } };
  try {
    parsed = JSON.parse(r.body.toString('utf8'));
  } catch {
    return `a body that is not JSON: ${r.body.toString('utf8').slice(0, 100)}`;
  }
  if (parsed?.error?.code !== code) return `body code ${String(parsed?.error?.code)} against header ${code}`;
  if (typeof parsed.error.message !== 'string') return 'no message';
  return null;
}

/**
 * Waits until the hub holds nothing for anyone: no open job, no HTTP request read and not
 * answered, nothing queued, no waiting long-poll. Returns the last /stats.
 */
// biome-ignore lint/suspicious/noExplicitAny: tests read the /stats JSON field by field
export async function atBaseline(hub: { url: string }, timeoutMs = 5000): Promise<any> {
  // biome-ignore lint/suspicious/noExplicitAny: as above
  let last: any = null;
  try {
    await waitUntil(
      async () => {
        last = await stats(hub);
        return (
          last.openJobs === 0 &&
          last.http.unanswered === 0 &&
          last.queuedBytes === 0 &&
          last.longPoll.waiting === 0 &&
          last.services.every((s: { queued: number; inflight: number }) => s.queued === 0 && s.inflight === 0)
        );
      },
      timeoutMs,
      'counters back at baseline',
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}: ${JSON.stringify({ openJobs: last?.openJobs, http: last?.http, queuedBytes: last?.queuedBytes, longPoll: last?.longPoll })}`,
    );
  }
  return last;
}

/** Resident memory of a process in KiB, from /proc/<pid>/status (Linux). */
export async function rssKiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

/** One keep-alive connection: a request is written once the answer to the one before has come. */
export class HttpConnection {
  closed = false;
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;

  private constructor(private readonly s: net.Socket) {
    s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const end = () => {
      this.closed = true;
      this.waiter?.();
    };
    s.on('close', end);
    s.on('error', end);
  }

  static async open(port: number): Promise<HttpConnection> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new HttpConnection(s);
  }

  /** Writes `bytes` and resolves with the next answer, or null when the connection closes or `waitMs` passes first. */
  async ask(bytes: Buffer | string, head = false, waitMs = 4000): Promise<RawResponse | null> {
    if (this.buf.length > 0) throw new Error(`bytes nobody asked for arrived: ${this.buf.toString('latin1').slice(0, 200)}`);
    this.s.write(bytes);
    const until = Date.now() + waitMs;
    for (;;) {
      const parsed = parseResponse(this.buf, head);
      if (parsed) {
        this.buf = this.buf.subarray(parsed.used);
        return parsed.response;
      }
      if (this.closed || Date.now() >= until) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, until - Date.now());
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Bytes that arrived after the last answer (there should be none). */
  get extra(): Buffer {
    return this.buf;
  }

  close(): void {
    this.s.destroy();
  }
}

/**
 * After an attack: the hub is alive, a normal request to `service` (an echo worker's) comes back
 * as sent, and, unless `baseline` is false, the hub holds nothing for anyone (atBaseline).
 */
export async function servesAgain(hub: HubProc, service: string, tag: string, baseline = true): Promise<void> {
  const body = JSON.stringify({ tag });
  const r = await post(`${hub.url}/service/${service}`, body);
  assert.equal(r.status, 200, tag);
  assert.equal(r.text, body, tag);
  assert.equal(hub.child.exitCode, null, `hub alive after ${tag}`);
  if (baseline) await atBaseline(hub);
}
