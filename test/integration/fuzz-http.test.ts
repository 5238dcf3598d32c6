/**
 * Property-based fuzzing of the HTTP routes of a real hub process: random methods, paths (names
 * and keys of random bytes, percent-encoded or broken), headers (X-Timeout-Ms, content types,
 * forwarded headers with odd values) and bodies. Every answer must be a well-formed HTTP/1.1
 * response with a status the route documents and, for an error, the catalogue's JSON body with
 * its code in X-Error-Code; the hub never dies, and holds nothing once the run is over.
 * Bounded in time: FUZZ_MS (see test/helpers/fuzz.ts); a failure prints the seed that replays it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { fuzzParams } from '../helpers/fuzz.js';
import { type HubProc, sleep, startHub, startWorker, stopAll, waitUntil } from '../helpers/processes.js';
import { atBaseline, errorAnswerProblem, exchange, HttpConnection, type RawResponse } from '../helpers/raw-http.js';

const MAX_BODY = 2048;

type Route = 'caller' | 'broadcast' | 'poll' | 'reply' | 'operator' | 'dashboard' | 'other';
interface FuzzRequest {
  method: string;
  route: Route;
  path: string;
  headers: [string, string][];
  body: Uint8Array;
}

/** The statuses each route documents (README, "HTTP API"; PROTOCOL.md, "Error codes"). */
const STATUSES: Record<Route, number[]> = {
  // The worker here echoes with 200; the hub's own answers are 400, 413, 502, 503 and 504.
  caller: [200, 400, 413, 502, 503, 504],
  broadcast: [200, 400, 413, 503, 504],
  poll: [200, 204, 400, 503],
  reply: [200, 404, 413],
  operator: [200, 503],
  dashboard: [200],
  other: [404],
};

/** The dashboard's page, its files and its JSON (README, "Dashboard"). */
const DASHBOARD_PATHS = [
  '/',
  '/dashboard.json',
  '/dashboard/dashboard.js',
  '/dashboard/dashboard.css',
  '/dashboard/uPlot.iife.min.js',
  '/dashboard/uPlot.min.css',
];

const pct = (bytes: Uint8Array) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
/** A path segment: a good name, one of odd characters, random bytes percent-encoded, or a broken escape. */
const segment = fc.oneof(
  fc.constantFrom('fz', 'fz', 'fz2', 'ghost', '..', '.', '...', '%2E%2E', 'a'.repeat(128), 'a'.repeat(129), 'k'.repeat(256), 'k'.repeat(257)),
  fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/),
  fc.stringMatching(/^[!$&'()*+,;=:@A-Za-z0-9._~-]{1,16}$/),
  fc.uint8Array({ minLength: 1, maxLength: 12 }).map(pct),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }).map((s) => encodeURIComponent(s)),
  fc.constantFrom('%', '%Z', '%E0%A4', 'a%', '%00', '%C0%AF', '%FF', '%2F', '%3F', '%20'),
);
const query = fc.oneof(
  fc.constant(''),
  fc.constantFrom('?wait=0', '?wait=0.05', '?wait=0.2', '?wait=abc', '?wait=-1', '?wait=1e3', '?encoding=base64&wait=0', '?encoding=xml', '?wait=9999999'),
  fc.stringMatching(/^[A-Za-z0-9=&%._~-]{0,20}$/).map((q) => `?${q}`),
);
const oddValue = fc.oneof(
  fc.stringMatching(/^[\x20-\x7e]{0,40}$/),
  fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b.map((x) => (x < 0x20 || x === 0x7f ? 0x41 : x))).toString('latin1')),
  fc.constantFrom('', ' ', 'unknown', '_hidden', '[::1]', '1.2.3.4, 5.6.7.8', 'for=192.0.2.60;proto=http;by=203.0.113.43', 'a'.repeat(2000)),
);
const timeout = fc.oneof(
  fc.integer({ min: 1, max: 2000 }).map(String),
  fc.constantFrom('0', '-1', '1.5', '1e3', 'abc', '', ' 100', '100 ', '0x10', '99999999999999999999', '000100', '+5'),
);
const header: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(fc.constantFrom('X-Timeout-Ms', 'x-timeout-ms'), timeout),
  fc.tuple(
    fc.constant('Content-Type'),
    fc.oneof(fc.constantFrom('application/json', 'text/plain; charset=utf-8', 'application/octet-stream', 'application/x-www-form-urlencoded', ''), oddValue),
  ),
  fc.tuple(
    fc.constantFrom('X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'Forwarded', 'X-Real-IP', 'X-Request-Id', 'Traceparent', 'Tracestate'),
    oddValue,
  ),
  fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/), oddValue),
);

const request: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    // Mostly the method the route takes (null), so the routes themselves get most of the run.
    fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH')),
    fc.oneof(
      fc.tuple(fc.constant('caller' as Route), segment, query).map(([r, a, q]) => [r, `/service/${a}${q}`] as const),
      fc.tuple(fc.constant('caller' as Route), segment, segment, query).map(([r, a, b, q]) => [r, `/api/${a}/${b}${q}`] as const),
      fc.tuple(fc.constant('broadcast' as Route), segment, segment).map(([r, a, b]) => [r, `/api/broadcast/${a}/${b}`] as const),
      fc.tuple(fc.constant('poll' as Route), segment, query).map(([r, a, q]) => [r, `/service/${a}/jobs${q}`] as const),
      fc.tuple(fc.constant('reply' as Route), segment, fc.constantFrom('', '/response')).map(([r, a, s]) => [r, `/jobs/${a}${s}`] as const),
      fc.constantFrom(...['/stats', '/healthz', '/readyz', '/api/health', '/api/services'].map((p) => ['operator' as Route, p] as const)),
      fc.constantFrom(...DASHBOARD_PATHS.map((p) => ['dashboard' as Route, p] as const)),
      fc.stringMatching(/^(\/[!$&'()*+,;=:@A-Za-z0-9._~%-]{0,10}){1,4}$/).map((p) => ['other' as Route, p] as const),
    ),
    fc.array(header, { maxLength: 5 }),
    fc.oneof({ weight: 3, arbitrary: fc.uint8Array({ maxLength: 300 }) }, fc.uint8Array({ minLength: MAX_BODY - 2, maxLength: MAX_BODY + 400 })),
  )
  .map(([m, [route, path], headers, body]) => {
    const method = m ?? (route === 'poll' || route === 'operator' || route === 'dashboard' || route === 'other' ? 'GET' : 'POST');
    return { method, route: routeOf(method, route, path), path, headers, body };
  });

/** The methods the meshage routes take (`/api/...`, README "HTTP API"); the others take one each. */
const API_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Which documented route a request lands on: a method or path the routes do not take is the catch-all 404. */
function routeOf(method: string, route: Route, path: string): Route {
  const api = API_METHODS.includes(method);
  if (route === 'other') {
    if (/^\/(healthz|readyz|stats|api\/services)$/.test(path) && method === 'GET') return 'operator';
    // Probes may send HEAD to the health checks and to the dashboard's files (not its JSON).
    if (/^\/(healthz|readyz)$/.test(path) && method === 'HEAD') return 'operator';
    if (path === '/api/health' && api) return 'operator';
    if (DASHBOARD_PATHS.includes(path) && (method === 'GET' || (method === 'HEAD' && path !== '/dashboard.json'))) return 'dashboard';
    if (method === 'POST' && /^\/(service\/[^/?]+|jobs\/[^/?]+(\/response)?)(\?.*)?$/.test(path)) return 'caller';
    if (api && /^\/api\/broadcast\/[^/?]+\/[^/?]+(\?.*)?$/.test(path)) return 'broadcast';
    if (api && /^\/api\/[^/?]+\/[^/?]+(\?.*)?$/.test(path)) return 'caller';
    if (method === 'GET' && /^\/service\/[^/?]+\/jobs(\?.*)?$/.test(path)) return 'poll';
    return 'other';
  }
  const takes: Partial<Record<Route, string[]>> = {
    caller: path.startsWith('/api/') ? API_METHODS : ['POST'],
    broadcast: API_METHODS,
    poll: ['GET'],
    reply: ['POST'],
    operator: path === '/api/health' ? API_METHODS : /^\/(healthz|readyz)$/.test(path) ? ['GET', 'HEAD'] : ['GET'],
    dashboard: path === '/dashboard.json' ? ['GET'] : ['GET', 'HEAD'],
  };
  return takes[route]?.includes(method) ? route : 'other';
}

function wire(r: FuzzRequest): Buffer {
  const head = [`${r.method} ${r.path} HTTP/1.1`, 'Host: fuzz'];
  for (const [k, v] of r.headers) head.push(`${k}: ${v}`);
  const withBody = r.method !== 'GET' && r.method !== 'HEAD' && r.method !== 'OPTIONS';
  if (withBody) head.push(`Content-Length: ${r.body.length}`);
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), withBody ? r.body : Buffer.alloc(0)]);
}

/** What is wrong with the hub's answer to `r`, or null. */
function problem(r: FuzzRequest, a: RawResponse): string | null {
  const head = r.method === 'HEAD';
  // A route the fuzzer meant may still be the catch-all (an empty segment, a path the routes do not match).
  const allowed = [...STATUSES[r.route], ...(r.route === 'other' ? [] : [404])];
  if (!allowed.includes(a.status)) return `status ${a.status} is not documented for ${r.route}`;
  if (a.status >= 400) return errorAnswerProblem(a, head);
  if (a.status === 204) return a.body.length === 0 ? null : 'a 204 with a body';
  if (head) return null;
  if (r.route === 'operator' || r.route === 'broadcast' || r.route === 'poll' || (r.route === 'dashboard' && r.path === '/dashboard.json')) {
    try {
      const v = JSON.parse(a.body.toString('utf8'));
      if (r.route === 'broadcast' && !Array.isArray(v)) return 'a broadcast answer that is not an array';
      if (r.route === 'poll' && typeof v.id !== 'string') return 'a long-poll job without an id';
    } catch {
      return `a ${r.route} answer that is not JSON`;
    }
  }
  if (r.route === 'caller' && r.path.startsWith('/service/fz') && a.headers['x-served-by'] === undefined) return 'an answer without X-Served-By';
  return null;
}

describe('fuzzing the HTTP routes of a real hub', { timeout: 120_000 }, () => {
  let hub: HubProc;
  before(async () => {
    hub = await startHub({
      'hub-id': 'fuzz-hub',
      'max-body-bytes': MAX_BODY,
      'body-linger-ms': 300,
      'default-timeout-ms': 500,
      'max-timeout-ms': 1000,
      'service-linger-ms': 300,
      'longpoll-wait-ms': 100,
      'longpoll-max-wait-ms': 300,
      'longpoll-lease-ms': 200,
      'max-attempts': 2,
      'ping-interval-ms': 200,
      'pong-timeout-ms': 1000,
    });
    await startWorker({ url: hub.url, instanceId: 'fz-worker', services: [{ name: 'fz' }, { name: 'fz2', concurrency: 2 }] });
  });
  after(stopAll);

  it('answers every request with a documented status and, on an error, the JSON error of its code', async (t) => {
    let sent = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        sent++;
        const x = await exchange(hub.port, [wire(r)], { waitMs: 4000, head: r.method === 'HEAD' ? [0] : [] });
        const a = x.responses[0];
        if (!a) throw new Error(`no answer within 4 s (closed: ${x.closed}) to ${r.method} ${r.path}`);
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        const p = problem(r, a);
        if (p)
          throw new Error(
            `${p}: ${r.method} ${r.path} ${JSON.stringify(r.headers)} → ${a.status} ${JSON.stringify(a.headers)} ${a.body.toString().slice(0, 200)}`,
          );
        if (hub.child.exitCode !== null) throw new Error('the hub exited');
      }),
      fuzzParams(4000),
    );
    t.diagnostic(`${sent} requests; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.ok(sent >= 20, `only ${sent} requests were made`);
    // The run reached the routes, not just the catch-all.
    assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0 && (statuses.get(404) ?? 0) > 0, JSON.stringify([...statuses]));
    const st = await atBaseline(hub);
    assert.equal(st.state, 'listening');
    assert.equal(hub.child.exitCode, null, 'hub alive');
    const healthy = await exchange(hub.port, ['POST /service/fz HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{"n":1}']);
    assert.equal(healthy.responses[0]?.status, 200);
    assert.equal(healthy.responses[0]?.body.toString(), '{"n":1}');
  });

  it('answers fuzzed requests on one keep-alive connection one at a time, each exactly once, with nothing left over', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 6 }), async (rs) => {
        // A body the hub refused before reading it must still be read past: were its bytes taken
        // for the next request, that request would get a forged answer or none.
        let conn = await HttpConnection.open(hub.port);
        try {
          for (const r of rs) {
            if (conn.closed) conn = await HttpConnection.open(hub.port);
            const a = await conn.ask(wire(r), r.method === 'HEAD');
            if (!a) throw new Error(`no answer on the connection to ${r.method} ${r.path}`);
            const p = problem(r, a);
            if (p) throw new Error(`${p}: ${r.method} ${r.path}`);
            // An answer that closes the connection (413) ends it; the rest go on a new one.
            if (/close/i.test(a.headers.connection ?? '')) {
              await waitUntil(() => conn.closed, 2000, 'the connection to close after Connection: close');
            }
          }
          await sleep(20);
          if (conn.extra.length > 0) throw new Error(`an answer nobody asked for: ${conn.extra.toString('latin1').slice(0, 200)}`);
        } finally {
          conn.close();
        }
      }),
      fuzzParams(3000),
    );
    await atBaseline(hub);
  });
});
