/**
 * What the routes that take work read of a request's head, in one pass over its headers: the
 * checks of its size, and the few values the routes use. uWebSockets.js closes a request with
 * more than 48 header lines (or a head of more than about 125 KiB) without an answer; below
 * those points the hub answers 431 itself, so a caller learns why. Two Content-Length headers
 * are refused (400): the parser frames the body by the first, a proxy in front might by the
 * other, and that difference is how requests are smuggled past proxies.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { Headers } from '../client/protocol.js';
import type { HubOptions } from './options.js';

/**
 * The head just read, valid until the next request's (uWS calls handlers one at a time): one
 * object and one callback for every request, so reading allocates nothing but the values.
 * A header given twice counts its first value, as `HttpRequest.getHeader` would.
 */
export const head = {
  count: 0,
  bytes: 0,
  lengths: 0,
  contentLength: '',
  contentType: '',
  timeout: '',
  authorization: '',
  /** The headers on the hub's allowlist (`forwardHeaders`), for the worker; null when none came. */
  forwarded: null as Headers | null,
};

let forwardNames: readonly string[] = [];

const readHeader = (name: string, value: string): void => {
  head.count++;
  head.bytes += name.length + value.length;
  if (value !== '' && forwardNames.includes(name)) {
    const f = (head.forwarded ??= {});
    if (!(name in f)) f[name] = value;
  }
  switch (name) {
    case 'content-length':
      if (head.lengths++ === 0) head.contentLength = value;
      return;
    case 'content-type':
      if (head.contentType === '') head.contentType = value;
      return;
    case 'x-timeout-ms':
      if (head.timeout === '') head.timeout = value;
      return;
    case 'authorization':
      if (head.authorization === '') head.authorization = value;
      return;
  }
};

/** Reads `req`'s head into `head`; returns why it cannot be taken, or null. Call before the handler returns. */
export function readHead(req: HttpRequest, o: HubOptions): 'E_HEADERS_TOO_LARGE' | 'E_BAD_REQUEST' | null {
  head.count = head.bytes = head.lengths = 0;
  head.contentLength = head.contentType = head.timeout = head.authorization = '';
  head.forwarded = null;
  forwardNames = o.forwardHeaders;
  req.forEach(readHeader);
  if (head.count > o.maxHeaderCount || head.bytes > o.maxHeaderBytes) return 'E_HEADERS_TOO_LARGE';
  return head.lengths > 1 ? 'E_BAD_REQUEST' : null;
}
