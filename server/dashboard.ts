/**
 * The operator dashboard: a static page at `/` with its script and styles under `/dashboard/`,
 * and `/dashboard.json`, the state it polls once a second. The page's files ship in the package
 * (server/dashboard/, uPlot from its own package) and are read once, on first use.
 */

import type { TemplatedApp } from 'uWebSockets.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { endEmpty, endHeadNotFound, endJson, endWith, getAndHead, type HttpSide, writeError } from './answer.js';
import { monitorAllowed } from './auth/http-auth.js';
import { LATENCY_BOUNDS_MS, requestTotals } from './request-tally.js';
import { buildStats, type StatsSource } from './stats.js';

/**
 * The state the page polls: /stats with each service's request counts and latency histogram,
 * read from the same accounting /metrics reads (none with `--metrics off`; a service past the
 * metrics cap shares `_other` there and shows none here).
 */
export function buildDashboard(hub: StatsSource) {
  const stats = buildStats(hub);
  const services = stats.services.map((s) => {
    const t = hub.dispatcher.services.get(s.name)?.tally;
    if (!t || t.name !== s.name) return { ...s, requests: 0, errors: 0, latency: [] as number[] };
    return { ...s, ...requestTotals(t), latency: Array.from(t.buckets) };
  });
  return { ...stats, services, latencyBuckets: { boundsMs: LATENCY_BOUNDS_MS } };
}

interface Asset {
  file: string;
  type: string;
}

/** What the page may load, by URL path; nothing else under /dashboard/ is served. */
const ASSETS: Record<string, Asset> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/dashboard/uPlot.iife.min.js': { file: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/uPlot.min.css': { file: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};

/**
 * The page's own files sit in server/dashboard/ of the package: next to this module when it runs
 * from source, two levels up from dist/server/ when compiled.
 */
function readAsset(file: string): Buffer {
  if (file.startsWith('uplot/')) return readFileSync(createRequire(import.meta.url).resolve(file));
  for (const dir of ['../../server/dashboard/', './dashboard/']) {
    try {
      return readFileSync(fileURLToPath(new URL(dir + file, import.meta.url)));
    } catch {
      // not in this layout
    }
  }
  throw new Error(`dashboard file ${file} not found`);
}

/** Scripts and styles come from this hub only, and the page is never framed. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function wireDashboard(app: TemplatedApp, hub: StatsSource, http: HttpSide): void {
  for (const [path, asset] of Object.entries(ASSETS)) {
    let body: Buffer | undefined;
    getAndHead(app, path, (res, head) => {
      if (!body) {
        try {
          body = readAsset(asset.file);
        } catch {
          if (head) return endHeadNotFound(res, http);
          return writeError(res, 'E_NOT_FOUND', http, 'the dashboard files are not installed');
        }
      }
      res.writeStatus('200 OK').writeHeader('content-type', asset.type).writeHeader('x-content-type-options', 'nosniff');
      res.writeHeader('cache-control', 'no-cache').writeHeader('content-security-policy', CSP);
      // A HEAD answer reports the length a GET would get, and has no body.
      if (head) endEmpty(res, http, body.length);
      else endWith(res, body, http);
    });
  }
  // The page itself loads without a token; the state behind it needs the monitor right.
  app.get('/dashboard.json', (res, req) => {
    if (!monitorAllowed(res, req, hub.auth, http)) return;
    endJson(res, '200 OK', buildDashboard(hub), http);
  });
}
