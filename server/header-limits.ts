/**
 * The header checks of the HTTP routes that take work. uWebSockets.js closes a request with
 * more than 48 header lines (or a head of more than about 125 KiB) without an answer; below
 * those points the hub answers 431 itself, so a caller learns why. Two Content-Length headers
 * are refused (400): the parser frames the body by the first, a proxy in front might by the
 * other, and that difference is how requests are smuggled past proxies.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { HubOptions } from './options.js';

// One set of counters and one callback for every request: counting allocates nothing of its own.
let count = 0;
let bytes = 0;
let lengths = 0;
const countHeader = (name: string, value: string): void => {
  count++;
  bytes += name.length + value.length;
  if (name === 'content-length') lengths++;
};

/** Why `req`'s headers cannot be taken, or null. Reads the request: call it before the handler returns. */
export function headerRefusal(req: HttpRequest, o: HubOptions): 'E_HEADERS_TOO_LARGE' | 'E_BAD_REQUEST' | null {
  count = 0;
  bytes = 0;
  lengths = 0;
  req.forEach(countHeader);
  if (count > o.maxHeaderCount || bytes > o.maxHeaderBytes) return 'E_HEADERS_TOO_LARGE';
  return lengths > 1 ? 'E_BAD_REQUEST' : null;
}
