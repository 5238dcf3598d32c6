/**
 * Which reply headers of a worker may reach a caller, over HTTP and in WebSocket Response
 * frames alike: a worker cannot set framing or hop-by-hop headers, nor forge the hub's own.
 */
import { ERROR_CODE_HEADER, type Headers, SERVED_BY_HEADER } from '../client/protocol.js';
import type { Job } from './job.js';

/** Headers a worker may not set: framing, hop-by-hop, and the ones the hub writes itself. */
const RESERVED = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'date',
  'proxy-authenticate',
  'proxy-connection',
  'content-type',
  SERVED_BY_HEADER,
  ERROR_CODE_HEADER,
  'retry-after',
]);
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const VALUE_RE = /^[\t\x20-\x7e\x80-\xff]{0,8192}$/;

/** Whether a header value can be written without splitting the HTTP answer (no CR, LF or NUL). */
export function isSafeHeaderValue(value: string): boolean {
  return VALUE_RE.test(value);
}

/** Whether a worker-supplied header may reach an HTTP caller. */
export function isPassableHeader(name: string, value: string): boolean {
  return TOKEN_RE.test(name) && !RESERVED.has(name.toLowerCase()) && VALUE_RE.test(value);
}

/**
 * Headers of a WebSocket Response frame: the error code for an error, else the reply's own
 * headers with the same filter HTTP answers get (a worker cannot forge `x-error-code`).
 */
export function answerHeaders(job: Job): Headers | null {
  if (job.errorCode !== null) {
    const h: Headers = { [ERROR_CODE_HEADER]: String(job.errorCode) };
    if (job.status === 503) h['retry-after'] = '1';
    return h;
  }
  const own = job.replyHeaders;
  if (!own) return null;
  let passed: Headers | null = null;
  for (const name in own) if (isPassableHeader(name, own[name]!)) (passed ??= {})[name] = own[name]!;
  return passed;
}
