/** The bearer-token check of the HTTP routes: 401 without a valid token, 403 without the right. */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { type HttpSide, writeError } from '../answer.js';
import type { Auth } from './auth.js';
import type { Principal } from './auth-file.js';

/** Auth is off: every caller may. */
const ANYONE = null;

/** What a route asks of its caller's token. */
export type Right = 'request' | 'serve' | 'monitor' | 'token';

/** Whether `p` has `right` (on `service`, for request and serve). */
export function has(p: Principal, right: Right, service: string): boolean {
  switch (right) {
    case 'request':
      return p.request.allows(service);
    case 'serve':
      return p.serve.allows(service);
    case 'monitor':
      return p.monitor;
    default:
      return true;
  }
}

/**
 * The principal of the request's `Authorization: Bearer` token (the header's value, '' for
 * none) when it has `right` (on `service`); ANYONE when auth is off; false when refused (the
 * 401 or 403 is written).
 */
export function httpAllowed(res: HttpResponse, authorization: string, auth: Auth, http: HttpSide, right: Right, service = ''): Principal | null | false {
  if (!auth.enabled) return ANYONE;
  const p = auth.bearer(authorization);
  if (!p) {
    writeError(res, 'E_UNAUTHORIZED', http);
    return false;
  }
  if (!has(p, right, service)) {
    auth.forbid();
    writeError(res, 'E_FORBIDDEN', http);
    return false;
  }
  return p;
}

/** Whether the request's token may read the hub's state (the monitor right); when not, the 401 or 403 is written. */
export function monitorAllowed(res: HttpResponse, req: HttpRequest, auth: Auth, http: HttpSide): boolean {
  return httpAllowed(res, req.getHeader('authorization'), auth, http, 'monitor') !== false;
}
