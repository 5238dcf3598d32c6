/**
 * Hub lifecycle: listen, wire routes and sockets, keep sessions alive, drain and close.
 */

import type { HttpResponse, TemplatedApp, us_listen_socket, WebSocket } from 'uWebSockets.js';
import uWS from 'uWebSockets.js';
import { nanoid } from 'nanoid';
import type { Registry } from 'prom-client';
import { CloseCode } from '../client/protocol.js';
import { endHeadNotFound, endJson, endWith, getAndHead, HttpSide, writeError } from './answer.js';
import { InvalidOptionError } from './args.js';
import { Auth } from './auth/auth.js';
import { AuthFileError, type Principal } from './auth/auth-file.js';
import { monitorAllowed } from './auth/http-auth.js';
import { type AuthCounters, Counters } from './counters.js';
import { wireDashboard } from './dashboard.js';
import { Dispatcher } from './dispatcher.js';
import { HttpIngress } from './http-ingress.js';
import { InProcessWorker } from './in-process-worker.js';
import { inProcessInstanceId } from './job.js';
import { listenError } from './listen-error.js';
import { createLogger, type LogFormat, type Logger } from './log.js';
import { LongPoll } from './longpoll.js';
import { Mesh } from './mesh/mesh.js';
import { wireMeshageRoutes } from './meshage-routes.js';
import { hubMetrics } from './metrics.js';
import { type HubOptions, resolveHubOptions } from './options.js';
import { OwedAnswer } from './request-body.js';
import type { SessionSocket, SessionSocketEvents } from './session-socket.js';
import { buildStats } from './stats.js';
import { now } from './timer-wheel.js';
import { UwsSessionSocket } from './uws-session-socket.js';
import { type SessionHost, WorkerSession } from './worker-session.js';

/** Time left after the grace period for answers already settled to be written. */
const FINAL_FLUSH_MS = 20;
/** How long the port stays open once everything is answered (see runShutdown), within the grace period. */
const SETTLE_MS = 100;
/** How long accepted connections are still served after the port closed, within the grace period. */
const LINGER_MS = 100;

export type HubState = 'new' | 'listening' | 'draining' | 'closed';

export class Hub implements SessionHost {
  readonly options: HubOptions;
  readonly hubId: string;
  readonly dispatcher: Dispatcher;
  readonly auth: Auth;
  readonly counters = new Counters();
  readonly sessions = new Set<WorkerSession>();
  readonly instances = new Map<string, WorkerSession>();
  readonly startedAt = Date.now();
  readonly log: Logger;
  state: HubState = 'new';
  port = 0;
  private app: TemplatedApp | null = null;
  private listenSocket: us_listen_socket | null = null;
  /** The cluster port's app and socket (`--cluster-port`): peer links only. */
  private clusterApp: TemplatedApp | null = null;
  private clusterSocket: us_listen_socket | null = null;
  /** The cluster port as bound; 0 without one. */
  clusterPort = 0;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private nextSessionId = 1;
  private closing: Promise<void> | null = null;
  private readonly ingress: HttpIngress;
  readonly longPoll: LongPoll;
  readonly mesh: Mesh;
  /** Handlers in this process (an embedded hub's): one ring member, no socket between. */
  readonly local: InProcessWorker;
  readonly http: HttpSide;
  /** What GET /metrics exposes; null with --metrics off. */
  readonly metrics: Registry | null;

  constructor(input: Partial<HubOptions> = {}, log?: Logger) {
    this.options = resolveHubOptions(input);
    // A hub id names the hub in rings, X-Served-By and peer links: derived from the address
    // peers dial when there is one, so a restarted hub keeps it.
    this.hubId = this.options.hubId || (this.options.advertise ? this.options.advertise.replace(/[^A-Za-z0-9._-]/g, '-') : `hub-${nanoid(8)}`);
    this.log = log ?? createLogger(this.options.logLevel, 'astromesh', this.options.logFormat as LogFormat);
    this.dispatcher = new Dispatcher(this.options, this.counters);
    this.auth = newAuth(this.options.authFile, this.counters.auth);
    this.mesh = new Mesh(this.options, this.hubId, this.dispatcher, this.counters, this.log);
    // With auth on, a peer is trusted with everything its hub's callers and workers may do: a
    // mesh without a secret would let any process announce workers for any service.
    if (this.auth.enabled && this.options.peers.length > 0 && this.mesh.secrets.length === 0) {
      throw new InvalidOptionError('auth is on and peers are configured, but there is no cluster secret (set --cluster-secret): refusing to start');
    }
    this.mesh.onClaim = (instanceId, byHub, token) => {
      const older = this.instances.get(instanceId);
      // A draining session is in no ring and finishes its work: it is never replaced. Nor is
      // one of a leaving hub: its worker opened that session elsewhere on Drain, and finishes here.
      // With auth on, only a session of the same token may take an instance's place.
      if (older && older.state === 'open' && this.state !== 'draining' && (older.principal?.name ?? null) === token) {
        this.log.info({ instanceId, byHub }, 'worker instance moved to another hub: closing its session here');
        older.close(CloseCode.Replaced, `replaced by a newer session on hub ${byHub}`);
      }
    };
    this.http = new HttpSide(this.hubId);
    this.ingress = new HttpIngress(this.options, this.dispatcher, this.http, this.auth);
    this.longPoll = new LongPoll(this.options, this.dispatcher, this.http, this.mesh.leaseForwarder, this.auth);
    this.mesh.answerLease = (leaseId, contentType, body, poster) => this.longPoll.answerLease(leaseId, contentType, body, poster);
    this.metrics = this.dispatcher.tally ? hubMetrics(this, this.dispatcher.tally) : null;
    this.local = new InProcessWorker(this.dispatcher, this.options, this.hubId, inProcessInstanceId(this.hubId));
  }

  /**
   * Binds the port, and the cluster port when there is one (exclusively), and starts serving;
   * resolves with the port bound, rejects with a ListenError.
   */
  async listen(): Promise<number> {
    if (this.state !== 'new') throw new Error(`hub is ${this.state}`);
    const { host, port, clusterPort } = this.options;
    const app = uWS.App();
    this.app = app;
    this.wireSockets(app, clusterPort === 0);
    this.ingress.routes(app);
    this.longPoll.routes(app);
    this.wireOperatorRoutes(app);
    this.wireNotFound(app);
    try {
      this.listenSocket = await bind(app, host, port);
      this.port = uWS.us_socket_local_port(this.listenSocket);
      if (clusterPort !== 0) {
        const peers = uWS.App();
        this.clusterApp = peers;
        this.servePeers(peers);
        this.wireNotFound(peers);
        this.clusterSocket = await bind(peers, host, clusterPort);
        this.clusterPort = uWS.us_socket_local_port(this.clusterSocket);
      }
    } catch (err) {
      this.closePorts();
      this.app = this.clusterApp = null;
      throw err;
    }
    this.state = 'listening';
    // Sweeps run ten times per ping interval and each session is pinged on its own phase, so
    // thousands of idle sessions do not all get a ping (and answer it) in the same turn.
    const sweep = Math.min(this.options.pingIntervalMs / 10, this.options.peerTimeoutMs / 12, 1000);
    this.keepAliveTimer = setInterval(() => this.keepAlive(), Math.max(10, sweep));
    this.mesh.start(this.clusterPort || this.port);
    return this.port;
  }

  private wireNotFound(app: TemplatedApp): void {
    app.any('/*', (res, req) => {
      if (req.getMethod() === 'head') endHeadNotFound(res, this.http);
      else writeError(res, 'E_NOT_FOUND', this.http);
    });
  }

  /** Closes the listening sockets: connections waiting in the kernel's accept queue are reset. */
  private closePorts(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    if (this.clusterSocket) uWS.us_listen_socket_close(this.clusterSocket);
    this.listenSocket = this.clusterSocket = null;
  }

  /**
   * Reads the auth file again (SIGHUP). Sessions whose token is gone are closed (1008); their
   * registrations no longer allowed are removed (each with a non-fatal E_FORBIDDEN naming the
   * service); everything else keeps running. On a bad file nothing changes and it throws.
   */
  reloadAuth(): { closed: number; unregistered: number } {
    this.auth.reload();
    let closed = 0;
    let unregistered = 0;
    for (const s of [...this.sessions]) {
      if (!s.principal) continue;
      const now = this.auth.current(s.principal.sha256);
      if (!now) {
        closed++;
        s.close(CloseCode.Policy, 'token revoked');
        this.forget(s);
      } else {
        unregistered += s.reauthorize(now);
      }
    }
    this.log.info({ tokens: this.auth.size, closed, unregistered }, 'auth file reloaded');
    return { closed, unregistered };
  }

  /** WebSocket sessions open per token (by its digest), for a token's own connection limit. */
  private readonly sessionsByToken = new Map<string, number>();

  admitToken(p: Principal): boolean {
    const n = this.sessionsByToken.get(p.sha256) ?? 0;
    if (p.maxConnections > 0 && n >= p.maxConnections) {
      this.counters.sockets.connectionsRefused++;
      return false;
    }
    this.sessionsByToken.set(p.sha256, n + 1);
    return true;
  }

  claimInstance(session: WorkerSession, chosen: boolean): boolean {
    const older = this.instances.get(session.instanceId);
    // With auth on, an instance (and the keys it owns) belongs to the token it first came with.
    if (older && older !== session && older.state !== 'closed' && older.principal?.name !== session.principal?.name) return false;
    // A draining session is in no ring and finishes its work: it is never replaced.
    if (older && older !== session && older.state !== 'draining') older.close(CloseCode.Replaced, 'replaced by a newer session of the same instance');
    this.instances.set(session.instanceId, session);
    // An instanceId the worker chose may have a session on another hub (it moved): claim it.
    if (chosen) this.mesh.claim(session.instanceId, session.principal?.name ?? null);
    return true;
  }

  /**
   * Graceful shutdown: readiness false, new requests 503, workers told to drain, in-flight work
   * gets `shutdownGraceMs` to finish, then everything still open is answered 503 and sockets close.
   * From the start every HTTP answer closes its connection (HttpSide), and the process is left to
   * exit only once every request read has its answer.
   */
  shutdown(): Promise<void> {
    this.closing ??= this.runShutdown();
    return this.closing;
  }

  private async runShutdown(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'closed';
      return;
    }
    this.state = 'draining';
    this.dispatcher.draining = true;
    this.http.closing = true;
    // In-process handlers cannot move: those another member can stand in for go before the lame duck.
    this.local.close();
    this.mesh.leave();
    this.log.info({ open: this.dispatcher.open, grace: this.options.shutdownGraceMs }, 'draining');
    for (const s of this.sessions) s.sendDrain();
    const until = now() + this.options.shutdownGraceMs;
    // In a mesh, a lame duck first: its members keep their keys until their workers have moved
    // to other hubs (or the peer timeout passes), then leave the rings.
    await waitUntil(() => this.mesh.lameDuckOver(), until);
    this.mesh.withdraw();
    await waitUntil(() => this.dispatcher.open === 0, until);
    if (this.dispatcher.open > 0) {
      this.log.warn({ open: this.dispatcher.open }, 'grace period over; answering the rest with 503');
      this.dispatcher.failAll('E_SHUTTING_DOWN');
    }
    this.longPoll.stop();
    await this.answered(until);
    // The callers of the last answers reconnect at once: the port stays open a moment longer, so
    // that burst is answered 503 instead of being reset by the port's close.
    await sleep(remaining(until, SETTLE_MS));
    await this.answered(until);
    // Closing the port resets the connections still waiting in the kernel's accept queue (their
    // requests were never read). Accepted connections stay open: a request that arrives on one
    // within LINGER_MS is still read and answered rather than met by a closed socket.
    this.closePorts();
    for (const s of [...this.sessions]) s.close(CloseCode.GoingAway, 'hub shutting down');
    this.mesh.stop();
    await sleep(remaining(until, LINGER_MS));
    await this.answered(until);
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.dispatcher.wheel.stop();
    for (const app of [this.app, this.clusterApp]) (app as unknown as { close?: () => void } | null)?.close?.();
    this.state = 'closed';
    const { callerRequests, unanswered } = this.http;
    if (unanswered > 0) this.log.warn({ callerRequests, unanswered }, 'closed with requests still being read');
    else this.log.info({ callerRequests }, 'closed');
  }

  /**
   * Resolves once every HTTP request read has its answer written (answers wait for the next turn,
   * bodies may still be arriving), or at `until`; settled answers get FINAL_FLUSH_MS past it.
   */
  private answered(until: number): Promise<void> {
    return waitUntil(() => this.http.unanswered === 0, Math.max(until, now() + FINAL_FLUSH_MS));
  }

  /** Worker and caller sessions at /ws; peer hubs at /peer, unless a cluster port serves them. */
  private wireSockets(app: TemplatedApp, peers: boolean): void {
    this.serveSockets(
      app,
      '/ws',
      (remote) => new WorkerSession(this, this.nextSessionId++, remote),
      (session) => this.sessions.add(session),
      (session) => this.forget(session),
    );
    if (peers) this.servePeers(app);
  }

  /** Peer hubs at /peer (they dial with ws; here uWS accepts). */
  private servePeers(app: TemplatedApp): void {
    this.serveSockets(
      app,
      '/peer',
      (remote) => this.mesh.accepted(remote),
      () => {},
      () => {},
    );
  }

  /** One WebSocket route whose connections are sessions or links over the uWS adapter. */
  private serveSockets<E extends SessionSocketEvents & { attach(socket: SessionSocket): void }>(
    app: TemplatedApp,
    path: string,
    make: (remoteAddress: string) => E,
    opened: (events: E) => void,
    closed: (events: E) => void,
  ): void {
    const o = this.options;
    app.ws<SocketData<E>>(path, {
      maxPayloadLength: o.maxFrameBytes,
      // Our own ping sweep does keep-alive with millisecond options; uWS's own is in seconds.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      // A hard ceiling well above our soft limit: we stop sending at the soft limit, so uWS
      // never has to drop a frame (it drops silently past this).
      maxBackpressure: o.maxBackpressureBytes * 2 + o.maxFrameBytes,
      closeOnBackpressureLimit: 0,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => {
        if (this.state !== 'listening') return writeError(res, 'E_SHUTTING_DOWN', this.http);
        if (this.sessions.size + this.mesh.linkCount >= o.maxConnections) {
          this.counters.sockets.connectionsRefused++;
          return writeError(res, 'E_OVERLOADED', this.http, 'too many WebSocket connections');
        }
        res.upgrade<SocketData<E>>(
          { events: make(remoteAddress(res)) },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      open: (ws: WebSocket<SocketData<E>>) => {
        const events = ws.getUserData().events;
        events.attach(new UwsSessionSocket(ws));
        opened(events);
      },
      // The message's bytes are lent by uWS for this call only.
      message: (ws, message, isBinary) => ws.getUserData().events.onMessage(new Uint8Array(message), isBinary, true),
      drain: (ws) => ws.getUserData().events.onDrain(),
      pong: (ws) => ws.getUserData().events.onPong(),
      close: (ws) => {
        // The socket can no longer be used here: only our own state is touched.
        const events = ws.getUserData().events;
        events.onClose();
        closed(events);
      },
    });
  }

  private forget(session: WorkerSession): void {
    if (this.sessions.delete(session) && session.principal) {
      const n = (this.sessionsByToken.get(session.principal.sha256) ?? 1) - 1;
      if (n > 0) this.sessionsByToken.set(session.principal.sha256, n);
      else this.sessionsByToken.delete(session.principal.sha256);
    }
    if (this.instances.get(session.instanceId) === session) this.instances.delete(session.instanceId);
  }

  private wireOperatorRoutes(app: TemplatedApp): void {
    getAndHead(app, '/healthz', (res, head) => endJson(res, '200 OK', { ok: true, hubId: this.hubId }, this.http, head));
    getAndHead(app, '/readyz', (res, head) => {
      // In a mesh, ready once the seeds have synced (or the sync timeout passed).
      const ready = this.state === 'listening' && this.mesh.ready();
      endJson(res, ready ? '200 OK' : '503 Service Unavailable', { ready, state: this.state }, this.http, head);
    });
    app.get('/stats', (res, req) => {
      if (!monitorAllowed(res, req, this.auth, this.http)) return;
      endJson(res, '200 OK', buildStats(this), this.http);
    });
    const metrics = this.metrics;
    if (metrics) {
      app.get('/metrics', (res, req) => {
        if (!monitorAllowed(res, req, this.auth, this.http)) return;
        serveMetrics(res, metrics, this.http);
      });
    }
    wireDashboard(app, this, this.http);
    wireMeshageRoutes(app, this.dispatcher, this.auth, this.http);
  }

  private lastServiceSweep = 0;

  private keepAlive(): void {
    const at = now();
    // A Set may lose its current entry while iterated: no copy of every session per sweep.
    for (const s of this.sessions) {
      if (s.state === 'closed') {
        this.forget(s);
        continue;
      }
      if (s.state === 'hello' && at - s.createdAt > this.options.helloTimeoutMs) {
        s.close(CloseCode.Protocol, 'no hello');
        this.forget(s);
        continue;
      }
      if (s.overCapSince !== 0) s.sweepQueue(at);
      if (at >= s.nextPingAt) s.keepAlive(at);
    }
    this.mesh.keepAlive(at);
    if (at - this.lastServiceSweep > 1000) {
      this.lastServiceSweep = at;
      this.dispatcher.sweepServices();
    }
  }
}

/** What uWS keeps with each accepted WebSocket: the session or link it carries. */
interface SocketData<E> {
  events: E;
}

/** The binding takes (host, port, options, callback); its typings list options only without a host. */
type ListenWithHost = (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => TemplatedApp;
const EXCLUSIVE_PORT = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT: number }).LIBUS_LISTEN_EXCLUSIVE_PORT;

/**
 * Binds `port` exclusively: by default uWS binds with SO_REUSEPORT, so a second hub on the
 * port would "listen" too and the kernel would split connections between the two.
 */
function bind(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    (app.listen as unknown as ListenWithHost).call(app, host, port, EXCLUSIVE_PORT, (socket) => {
      if (socket) resolve(socket);
      else reject(listenError(host, port));
    });
  });
}

/** Answers with the registry's exposition; prom-client collects asynchronously, so the caller may leave first. */
function serveMetrics(res: HttpResponse, registry: Registry, http: HttpSide): void {
  const owed = new OwedAnswer(http);
  res.onAborted(() => owed.answered());
  const answer = (status: string, contentType: string, body: string) => {
    if (!owed.answered()) return; // the caller went away
    res.cork(() => endWith(res.writeStatus(status).writeHeader('content-type', contentType), body, http));
  };
  registry.metrics().then(
    (text) => answer('200 OK', registry.contentType, text),
    (err: Error) => answer('500 Internal Server Error', 'text/plain', `metrics collection failed: ${err.message}\n`),
  );
}

function remoteAddress(res: HttpResponse): string {
  try {
    return Buffer.from(res.getRemoteAddressAsText()).toString();
  } catch {
    return '';
  }
}

/** The auth of `file` (off without one); a bad file is a configuration error. */
function newAuth(file: string, counters: AuthCounters): Auth {
  try {
    return new Auth(file, counters);
  } catch (err) {
    if (err instanceof AuthFileError) throw new InvalidOptionError(err.message);
    throw err;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `ms`, or what is left of it before `until` (a `now()` time). */
function remaining(until: number, ms: number): number {
  return Math.max(0, Math.min(ms, until - now()));
}

/** Resolves when `done()` holds or at `until` (a `now()` time), checking every 10 ms. */
export async function waitUntil(done: () => boolean, until: number): Promise<void> {
  while (!done() && now() < until) await sleep(10);
}
