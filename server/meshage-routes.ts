/**
 * meshage's own routes besides its job routes (those are the HTTP ingress's): `/api/health`,
 * which its probes call, and `GET /api/services`, which lists who serves what. Both answer as
 * meshage's express app did, so its callers and probes change nothing.
 */
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { MESHAGE_CONTENT_TYPE } from '../client/protocol.js';
import { endWith, type HttpSide } from './answer.js';
import type { Auth } from './auth/auth.js';
import { monitorAllowed } from './auth/http-auth.js';
import type { Dispatcher } from './dispatcher.js';
import { API_METHODS } from './http-ingress.js';

const UP = JSON.stringify({ status: 'up' });

/** One handler of one stream, as meshage listed it. */
export interface MeshageService {
  /** `<hubId>/<instanceId>`, as X-Served-By names it. */
  id: string;
  stream: string;
  /** The hub that holds the worker's session. */
  address: string;
}

/**
 * Every ring member this hub knows (its own workers and its peers' members), one entry per
 * stream it serves, sorted by stream, then id: the order does not depend on when each joined.
 */
export function meshageServices(d: Dispatcher): MeshageService[] {
  const out: MeshageService[] = [];
  for (const svc of d.services.values()) {
    for (const m of svc.ring.members()) out.push({ id: `${m.hubId}/${m.instanceId}`, stream: svc.name, address: m.hubId });
  }
  return out.sort((a, b) => compare(a.stream, b.stream) || compare(a.id, b.id));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function wireMeshageRoutes(app: TemplatedApp, d: Dispatcher, auth: Auth, http: HttpSide): void {
  // A liveness check, like /healthz: open with auth on, and up while the hub drains (it serves
  // what it has until it exits; /readyz is what turns a load balancer away).
  const health = (res: HttpResponse) => json(res, UP, http);
  for (const method of API_METHODS) app[method]('/api/health', health);
  app.get('/api/services', (res, req) => {
    // Who serves what is the mesh's layout: read like /stats.
    if (!monitorAllowed(res, req, auth, http)) return;
    json(res, JSON.stringify(meshageServices(d)), http);
  });
}

function json(res: HttpResponse, body: string, http: HttpSide): void {
  endWith(res.writeStatus('200 OK').writeHeader('content-type', MESHAGE_CONTENT_TYPE), body, http);
}
