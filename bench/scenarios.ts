/**
 * What the bench runs: astromesh scenarios and the baselines they are compared with. Each
 * starts its own processes on the server core and says how to load it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchProc, start, which } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const js = (rel: string) => path.resolve(here, rel);
const node = process.execPath;
/** Server-side processes go on this core, the load generator on the other. */
export const SERVER_CPU = 0;
export const LOAD_CPU = 1;

export interface Target {
  /** The process whose CPU time and memory are reported (the hub, or the baseline's front). */
  measured: BenchProc;
  url: string;
  procs: BenchProc[];
  /** For Node-driven loads: extra arguments the driver needs. */
  driverArgs?: string[];
  /** Every hub of a mesh: wrk splits its connections over them. */
  urls?: string[];
  /** More processes whose CPU counts with `measured` (the other hubs of a mesh). */
  alsoMeasured?: BenchProc[];
}

export interface Scenario {
  name: string;
  description: string;
  kind: 'astromesh' | 'baseline';
  load: 'wrk' | 'ws-caller' | 'nats-requester';
  bodyBytes: number;
  connections: number;
  /** wrk: request path, or 'keyed' for random partition keys. */
  path: string;
  /** wrk: more request headers (a bearer token). */
  headers?: Record<string, string>;
  requires?: string;
  /** Baselines this scenario's throughput is divided by, when measured in the same run. */
  compareWith?: string[];
  /** Scenarios whose hub CPU per request this one's is divided by, in the same round. */
  compareCpuWith?: string[];
  /** Needs what an older build may not have (the mesh): a file of the reference build's `dist/`, without which it has no twin. */
  referenceNeeds?: string;
  /** Starts the processes; astromesh scenarios run the hub at `hubCli` when given (a reference build). */
  start(hubCli?: string): Promise<Target>;
}

/** This build's hub. */
const HUB_CLI = js('../server/cli.js');

async function startHub(hubCli = HUB_CLI, extra: string[] = []): Promise<{ hub: BenchProc; url: string }> {
  const hub = start(SERVER_CPU, node, [hubCli, 'hub', '--port', '0', '--log-level', 'warn', ...extra]);
  // The hub logs "listening" at info; at warn it is silent, so read the port from /proc instead.
  const port = await listeningPort(hub.pid);
  return { hub, url: `http://127.0.0.1:${port}` };
}

/** Waits until `pid` listens on a TCP port and returns it (read from /proc/net/tcp). */
async function listeningPort(pid: number): Promise<number> {
  const { readFileSync, readdirSync, readlinkSync } = await import('node:fs');
  for (let i = 0; i < 300; i++) {
    try {
      const inodes = new Set<string>();
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m) inodes.add(m[1]!);
        } catch {
          /* fd closed */
        }
      }
      for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        for (const row of readFileSync(file, 'utf8').split('\n').slice(1)) {
          const f = row.trim().split(/\s+/);
          if (f[3] === '0A' && inodes.has(f[9]!)) return parseInt(f[1]!.split(':')[1]!, 16);
        }
      }
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`process ${pid} never listened`);
}

async function workers(url: string, n: number, service = 'echo', concurrency = 256, env: NodeJS.ProcessEnv = {}): Promise<BenchProc[]> {
  const ps = Array.from({ length: n }, () => start(SERVER_CPU, node, [js('workers/echo-worker.js'), url, service, String(concurrency)], env));
  await Promise.all(ps.map((p) => p.line((l) => l.event === 'ready')));
  return ps;
}

async function astromesh(nWorkers: number, hubCli?: string, hubArgs: string[] = []): Promise<Target> {
  const { hub, url } = await startHub(hubCli, hubArgs);
  const ws = await workers(url, nWorkers);
  return { measured: hub, url, procs: [hub, ...ws] };
}

/** http-1w with a scraper reading /metrics once a second (on the load generator's core). */
async function astromeshScraped(hubCli?: string): Promise<Target> {
  const t = await astromesh(1, hubCli);
  const scraper = start(LOAD_CPU, node, [js('workers/scraper.js'), t.url, '1000']);
  await scraper.line((l) => l.event === 'ready');
  return { ...t, procs: [...t.procs, scraper] };
}

/** Tokens of the auth scenario: a caller that may request and a worker that may serve anything. */
const BENCH_TOKENS = { caller: 'bench-caller-token-6f1c0e5d9a8b7c6d5e4f', worker: 'bench-worker-token-1a2b3c4d5e6f7a8b9c0d' };

/** One hub with auth on and one worker that proves its token. */
async function astromeshWithAuth(hubCli?: string): Promise<Target> {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { hashToken } = await import('../server/auth/auth.js');
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-bench-')), 'auth.json');
  const tokens = [
    { name: 'caller', sha256: hashToken(BENCH_TOKENS.caller), request: ['>'] },
    { name: 'worker', sha256: hashToken(BENCH_TOKENS.worker), serve: ['>'] },
  ];
  writeFileSync(file, JSON.stringify({ tokens }));
  const { hub, url } = await startHub(hubCli, ['--auth-file', file]);
  const ws = await workers(url, 1, 'echo', 256, { BENCH_TOKEN: BENCH_TOKENS.worker });
  return { measured: hub, url, procs: [hub, ...ws] };
}

/**
 * `hubs` hubs linked into a mesh (each seeded with the first), `perHub[i]` echo workers on hub
 * i, and the load spread over every hub; returns once every hub has every worker in its ring.
 */
async function mesh(perHub: number[], hubCli?: string): Promise<Target> {
  const first = await startHub(hubCli, ['--hub-id', 'bench-0']);
  const hubs = [first];
  for (let i = 1; i < perHub.length; i++) hubs.push(await startHub(hubCli, ['--hub-id', `bench-${i}`, '--peers', first.url.replace('http://', '')]));
  const ws: BenchProc[] = [];
  for (const [i, n] of perHub.entries()) ws.push(...(await workers(hubs[i]!.url, n)));
  const total = perHub.reduce((a, b) => a + b, 0);
  const until = Date.now() + 15_000;
  for (;;) {
    const rings = await Promise.all(
      hubs.map(async (h) => ((await (await fetch(`${h.url}/stats`)).json()) as { services: { name: string; ring: { members: unknown[] } }[] }).services),
    );
    if (rings.every((svcs) => svcs.find((s) => s.name === 'echo')?.ring.members.length === total)) break;
    if (Date.now() > until) throw new Error('the bench mesh did not converge');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    measured: first.hub,
    alsoMeasured: hubs.slice(1).map((h) => h.hub),
    url: first.url,
    urls: hubs.map((h) => h.url),
    procs: [...hubs.map((h) => h.hub), ...ws],
  };
}

async function portOf(p: BenchProc): Promise<number> {
  return (await p.line((l) => typeof l.port === 'number')).port as number;
}

async function natsServer(): Promise<{ server: BenchProc; natsUrl: string }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = start(SERVER_CPU, 'nats-server', ['-a', '127.0.0.1', '-p', String(port)]);
  await listeningPort(server.pid);
  return { server, natsUrl: `nats://127.0.0.1:${port}` };
}

const HTTP_BASELINES = ['limit-batched', 'limit-1frame', 'raw', 'nats-http'];

function rawEcho(bodyBytes: number): Scenario {
  return {
    name: bodyBytes === 100 ? 'raw' : `raw-${label(bodyBytes)}`,
    kind: 'baseline',
    load: 'wrk',
    bodyBytes,
    connections: 64,
    path: '/echo',
    description: `RAW: uWS HTTP echo, no worker hop (ceiling of any HTTP front), ${label(bodyBytes)}`,
    async start() {
      const p = start(SERVER_CPU, node, [js('baselines/raw-echo.js')]);
      return { measured: p, url: `http://127.0.0.1:${await portOf(p)}`, procs: [p] };
    },
  };
}

function limit(variant: 'batched' | '1frame', bodyBytes: number): Scenario {
  return {
    name: `limit-${variant}${bodyBytes === 100 ? '' : `-${label(bodyBytes)}`}`,
    kind: 'baseline',
    load: 'wrk',
    bodyBytes,
    connections: 64,
    path: '/echo',
    description: `LIMIT: minimal uWS → WS worker → HTTP forwarder, ${variant === 'batched' ? 'frames batched per loop turn' : 'one frame per job'}, ${label(bodyBytes)}`,
    async start() {
      const hub = start(SERVER_CPU, node, [js('baselines/limit-hub.js'), ...(variant === '1frame' ? ['--unbatched'] : [])]);
      const url = `http://127.0.0.1:${await portOf(hub)}`;
      const w = start(SERVER_CPU, node, [js('baselines/limit-worker.js'), `${url.replace('http', 'ws')}/ws`]);
      await w.line((l) => l.event === 'ready');
      return { measured: hub, url, procs: [hub, w] };
    },
  };
}

/** HTTP POST /api/echo/{random key} → a meshage node (an embedded hub) → `handler`, run in the node's process. */
function meshageNode(name: string, handler: 'bytes' | 'meshage', what: string): Scenario {
  return {
    name,
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: 'keyed',
    compareWith: ['raw', 'http-1w'],
    compareCpuWith: ['raw', 'http-1w'],
    referenceNeeds: 'server/meshage-node.js',
    description: `HTTP POST /api/echo/{random key} → a meshage node (embedded hub) → ${what}; CPU of the node, handler included`,
    async start(hubCli) {
      const script = hubCli ? path.resolve(path.dirname(hubCli), '../bench/workers/meshage-node.js') : js('workers/meshage-node.js');
      const p = start(SERVER_CPU, node, [script, handler], { ASTROMESH_LOG_LEVEL: 'warn' });
      const ready = await p.line((l) => l.event === 'ready');
      return { measured: p, url: `http://127.0.0.1:${ready.port as number}`, procs: [p] };
    },
  };
}

function label(bytes: number): string {
  return bytes >= 1024 ? `${bytes / 1024}k` : `${bytes}B`;
}

export const SCENARIOS: Scenario[] = [
  rawEcho(100),
  limit('batched', 100),
  limit('1frame', 100),
  rawEcho(1024),
  limit('batched', 1024),
  rawEcho(64 * 1024),
  limit('batched', 64 * 1024),
  {
    name: 'nats-http',
    kind: 'baseline',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/echo',
    requires: 'nats-server',
    description: 'PEER: NATS request/reply behind a plain node:http front',
    async start() {
      const { server, natsUrl } = await natsServer();
      const responder = start(SERVER_CPU, node, [js('baselines/nats-peer.js'), 'responder', natsUrl]);
      await responder.line((l) => l.event === 'ready');
      const front = start(SERVER_CPU, node, [js('baselines/nats-peer.js'), 'http-front', natsUrl]);
      return { measured: front, url: `http://127.0.0.1:${await portOf(front)}`, procs: [front, responder, server] };
    },
  },
  {
    name: 'nats-reqrep',
    kind: 'baseline',
    load: 'nats-requester',
    bodyBytes: 100,
    connections: 64,
    path: '',
    requires: 'nats-server',
    description: 'PEER: NATS request/reply, Node requester → nats-server → Node responder',
    async start() {
      const { server, natsUrl } = await natsServer();
      const responder = start(SERVER_CPU, node, [js('baselines/nats-peer.js'), 'responder', natsUrl]);
      await responder.line((l) => l.event === 'ready');
      return { measured: server, url: natsUrl, procs: [server, responder] };
    },
  },
  {
    name: 'http-1w',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    compareWith: HTTP_BASELINES,
    description: 'HTTP caller → hub → 1 WS worker (client library), 100 B',
    start: (hubCli) => astromesh(1, hubCli),
  },
  {
    name: 'http-1w-auth',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    headers: { Authorization: `Bearer ${BENCH_TOKENS.caller}` },
    compareWith: HTTP_BASELINES,
    compareCpuWith: ['http-1w'],
    referenceNeeds: 'server/auth/auth.js',
    description: 'http-1w with auth on: every request carries a bearer token the hub checks',
    start: (hubCli) => astromeshWithAuth(hubCli),
  },
  {
    name: 'http-1w-metrics',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    compareCpuWith: ['http-1w-nometrics'],
    referenceNeeds: 'server/metrics.js',
    description: 'http-1w with metrics on (the default) and a scraper reading /metrics once a second',
    start: (hubCli) => astromeshScraped(hubCli),
  },
  {
    name: 'http-1w-nometrics',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    referenceNeeds: 'server/metrics.js',
    description: 'http-1w with --metrics off: no /metrics, no per-request accounting',
    start: (hubCli) => astromesh(1, hubCli, ['--metrics', 'off']),
  },
  {
    name: 'http-1w-dashboard',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    compareCpuWith: ['http-1w'],
    referenceNeeds: 'server/dashboard.js',
    description: 'http-1w with a dashboard open: GET /dashboard.json once a second (the poller on the load core)',
    async start(hubCli) {
      const t = await astromesh(1, hubCli);
      const poller = start(LOAD_CPU, node, [js('drivers/dashboard-poller.js'), t.url]);
      await poller.line((l) => l.event === 'ready');
      return { ...t, procs: [...t.procs, poller] };
    },
  },
  {
    name: 'http-4w',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    compareWith: HTTP_BASELINES,
    description: 'HTTP caller → hub → 4 WS workers, 100 B',
    start: (hubCli) => astromesh(4, hubCli),
  },
  {
    name: 'ws-caller',
    kind: 'astromesh',
    load: 'ws-caller',
    bodyBytes: 100,
    connections: 64,
    path: 'echo',
    compareWith: ['nats-reqrep'],
    description: 'WS caller (one multiplexed socket) → hub → 1 WS worker, 100 B',
    start: (hubCli) => astromesh(1, hubCli),
  },
  {
    name: 'http-1k',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 1024,
    connections: 64,
    path: '/service/echo',
    compareWith: ['limit-batched-1k', 'raw-1k'],
    description: 'HTTP caller → hub → 1 WS worker, 1 KiB',
    start: (hubCli) => astromesh(1, hubCli),
  },
  {
    name: 'http-64k',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 64 * 1024,
    connections: 64,
    path: '/service/echo',
    compareWith: ['limit-batched-64k', 'raw-64k'],
    description: 'HTTP caller → hub → 1 WS worker, 64 KiB',
    start: (hubCli) => astromesh(1, hubCli),
  },
  {
    name: 'keyed',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: 'keyed',
    compareWith: HTTP_BASELINES,
    description: 'HTTP POST /api/echo/{random key} → owner among 4 WS workers, 100 B',
    start: (hubCli) => astromesh(4, hubCli),
  },
  meshageNode('meshage-node', 'bytes', 'an in-process handler that echoes the body as it came, as RAW does'),
  meshageNode('meshage-node-json', 'meshage', "meshage's README echo handler (the JSON message in, a JSON answer out)"),
  {
    name: 'mesh-keyed',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: 'keyed',
    compareWith: ['keyed'],
    compareCpuWith: ['keyed'],
    description: 'HTTP POST /api/echo/{random key} spread over 3 meshed hubs → owner among 4 WS workers (2+1+1): about 2/3 forwarded; CPU of all 3 hubs',
    referenceNeeds: 'server/mesh/mesh.js',
    start: (hubCli) => mesh([2, 1, 1], hubCli),
  },
  {
    name: 'mesh-broadcast',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/api/broadcast/echo/k',
    description: 'HTTP broadcast spread over 3 meshed hubs → 8 WS workers (3+3+2); CPU of all 3 hubs',
    referenceNeeds: 'server/mesh/mesh.js',
    start: (hubCli) => mesh([3, 3, 2], hubCli),
  },
  {
    name: 'longpoll',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    compareWith: ['http-1w', ...HTTP_BASELINES],
    description: 'HTTP caller → hub → legacy long-poll worker (64 poll loops: GET /service/echo/jobs, POST /jobs/{id}), 100 B',
    async start(hubCli) {
      const { hub, url } = await startHub(hubCli);
      const w = start(SERVER_CPU, node, [js('workers/longpoll-worker.js'), url, 'echo', '64']);
      await w.line((l) => l.event === 'ready');
      // The service exists once the first poll waits.
      await new Promise((r) => setTimeout(r, 300));
      return { measured: hub, url, procs: [hub, w] };
    },
  },
  {
    name: 'scale-idle',
    kind: 'astromesh',
    load: 'wrk',
    bodyBytes: 100,
    connections: 64,
    path: '/service/echo',
    compareWith: ['http-1w', ...HTTP_BASELINES],
    description: '1 loaded worker + 1,000 idle worker sessions on 1,000 services (from 4 processes)',
    async start(hubCli) {
      const { hub, url } = await startHub(hubCli);
      const loaded = await workers(url, 1);
      const idle = [0, 1, 2, 3].map((i) =>
        start(SERVER_CPU, node, [js('workers/echo-worker.js'), url, 'unused', '16', '250', 'idle-'], { BENCH_IDLE_OFFSET: String(1 + i * 250) }),
      );
      await Promise.all(idle.map((p) => p.line((l) => l.event === 'ready', 60_000)));
      return { measured: hub, url, procs: [hub, ...loaded, ...idle] };
    },
  },
];

/**
 * The same scenario with the hub of another build (`dir` holds its compiled `dist/`), so a
 * change is measured against an earlier commit in the same rounds, on the same machine state.
 */
export function referenceTwin(s: Scenario, dir: string): Scenario {
  const hubCli = path.resolve(dir, 'dist/server/cli.js');
  return {
    ...s,
    name: `${s.name}@ref`,
    description: `${s.description} — reference build`,
    compareWith: [],
    // Its CPU ratio is to the reference build's own twins.
    compareCpuWith: s.compareCpuWith?.map((b) => `${b}@ref`),
    start: () => s.start(hubCli),
  };
}

/** Whether the reference build in `dir` can run `s`. */
export function referenceCanRun(s: Scenario, dir: string): boolean {
  return s.kind === 'astromesh' && (!s.referenceNeeds || existsSync(path.resolve(dir, 'dist', s.referenceNeeds)));
}

export function available(s: Scenario): boolean {
  return !s.requires || which(s.requires);
}
