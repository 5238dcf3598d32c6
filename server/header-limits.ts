/**
 * Header limits of the HTTP routes that take work. uWebSockets.js closes a request with more
 * than 48 header lines (or a head of more than about 125 KiB) without an answer; below those
 * points the hub answers 431 itself, so a caller learns why.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { HubOptions } from './options.js';

// One counter and one callback for every request: counting allocates nothing of its own.
let count = 0;
let bytes = 0;
const countHeader = (name: string, value: string): void => {
  count++;
  bytes += name.length + value.length;
};

/** Whether `req`'s headers are within the hub's limits. Reads the request: call it before the handler returns. */
export function headersWithinLimits(req: HttpRequest, o: HubOptions): boolean {
  count = 0;
  bytes = 0;
  req.forEach(countHeader);
  return count <= o.maxHeaderCount && bytes <= o.maxHeaderBytes;
}
