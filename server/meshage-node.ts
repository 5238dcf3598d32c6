/**
 * meshage's node API on an embedded hub, so a meshage service moves by changing its import:
 *
 *   meshage.init(new meshage.GrapevineCluster(CLUSTER_PORT, SEEDS), HTTP_PORT)
 *     .register('echo', (message) => ({ echoed: message }))
 *     .start();
 *
 * A node is a hub in this process: it serves the HTTP API on its HTTP port and peer links on its
 * cluster port, joins the nodes (or hubs) named as seeds, and serves its handlers as in-process
 * consumers. Other hubs and WebSocket workers can join the same mesh.
 */

import { CLIENT_DEFAULTS } from '../client/defaults.js';
import { BusError } from '../client/errors.js';
import { type MeshageHandler, meshageHandler } from '../client/meshage.js';
import { isJsonContentType } from '../client/protocol.js';
import type { BusResponse, RequestOptions } from '../client/requester.js';
import { Hub } from './hub.js';
import { hubOptionsFromSources } from './options.js';
import { now } from './timer-wheel.js';

/** A meshage message: the stream, the partition key, and whatever else the caller sent. */
export interface Message {
  stream: string;
  partitionKey?: string | number;
  [field: string]: unknown;
}

export type MessageHandler = MeshageHandler;

/** Where a node listens for its peers and whom it joins. */
export interface Cluster {
  /** `host:port` of this node's cluster port: it listens there, and other nodes dial it. */
  readonly address: string;
  /** `host:port` of nodes (or hubs' cluster ports) to join; any one reachable is enough. */
  readonly seeds: readonly string[];
}

export interface RegisterOptions {
  /** Messages of this stream the handler runs at once. Default 16. */
  concurrency?: number;
  /** Share of partition keys relative to the other nodes. Default 1. */
  weight?: number;
}

/** The HTTP port a node takes when init() names none and ASTROMESH_PORT is not set. */
export const DEFAULT_HTTP_PORT = 8080;

/**
 * meshage's gossip cluster, as astromesh peer links: `address` is this node's cluster port (`9742`
 * or `host:9742`; the host defaults to 127.0.0.1, as meshage's did), `seeds` the nodes to join
 * (empty entries, as `''.split(',')` gives, are ignored).
 */
export class GrapevineCluster implements Cluster {
  readonly address: string;
  readonly seeds: string[];

  constructor(address: string | number | undefined, seeds: ReadonlyArray<string | number | null | undefined> = []) {
    if (address === undefined || address === null || String(address).trim() === '') {
      throw new TypeError("GrapevineCluster needs this node's cluster port: a port or host:port (as CLUSTER_PORT=9742 gives)");
    }
    this.address = hostPort(address, 'the cluster address');
    this.seeds = [];
    for (const seed of seeds) {
      if (seed === undefined || seed === null || String(seed).trim() === '') continue;
      const s = hostPort(seed, 'a seed');
      if (s !== this.address && !this.seeds.includes(s)) this.seeds.push(s);
    }
  }
}

/** A node: register handlers, start it, then send and broadcast from inside it. */
export class MeshageNode {
  /** The embedded hub, once started. */
  hub: Hub | null = null;
  private readonly handlers = new Map<string, { handler: MeshageHandler; opts: RegisterOptions }>();
  private starting: Promise<this> | null = null;

  constructor(
    readonly cluster: Cluster,
    private readonly httpAddress?: string | number,
  ) {}

  /** Serves `stream` with `handler` (a value, or a promise of one; a throw is an error answer). Chainable, before or after start. */
  register(stream: string, handler: MessageHandler, opts: RegisterOptions = {}): this {
    this.handlers.set(stream, { handler, opts });
    if (this.hub) this.serve(this.hub, stream);
    return this;
  }

  /** Stops serving `stream` on this node; messages already running finish. */
  unregister(stream: string): this {
    this.handlers.delete(stream);
    this.hub?.local.unhandle(stream);
    return this;
  }

  /**
   * Starts the node: listens on its HTTP and cluster ports, joins the seeds (waiting for them up
   * to the peer sync timeout), and serves its handlers. The callback gets `(err, node)`; without
   * one, a failure rejects the promise returned (unhandled, it ends the process, as meshage's did).
   */
  start(callback?: (err: Error | null, router?: MeshageNode) => void): Promise<this> {
    this.starting ??= this.run();
    const p = this.starting;
    if (callback) {
      p.then(
        (node) => callback(null, node),
        (err: Error) => callback(err),
      );
      // The callback has the error: the promise's rejection is not left unhandled.
      p.catch(() => {});
    }
    return p;
  }

  /** Sends `message` to the handler that owns its partition key (any handler without one); resolves with its answer. */
  send(message: Message): Promise<unknown> {
    return this.call(message, false);
  }

  /** Sends `message` to every handler of its stream; resolves with their answers, in ring order. */
  broadcast(message: Message): Promise<unknown[]> {
    return this.call(message, true) as Promise<unknown[]>;
  }

  /** The HTTP port as bound (0 before start). */
  get httpPort(): number {
    return this.hub?.port ?? 0;
  }

  /** The cluster port as bound (0 before start). */
  get clusterPort(): number {
    return this.hub?.clusterPort ?? 0;
  }

  /** Leaves the mesh and closes, as a hub shuts down: its keys go to the other nodes at once, work in flight is answered. */
  async stop(): Promise<void> {
    await this.hub?.shutdown();
  }

  private async run(): Promise<this> {
    const c = this.cluster;
    const advertise = hostPort(c.address, 'the cluster address');
    const env = process.env;
    // init()'s arguments are flags; the rest of the hub's options come from ASTROMESH_* variables.
    const argv = ['--cluster-port', String(splitHostPort(advertise).port), '--advertise', advertise];
    if (c.seeds.length > 0) argv.push('--peers', c.seeds.map((s) => hostPort(s, 'a seed')).join(','));
    const given = this.httpAddress;
    if (given !== undefined && given !== null && String(given).trim() !== '') {
      const http = splitHostPort(hostPort(given, 'the HTTP address', ''));
      argv.push('--port', String(http.port));
      if (http.host !== '') argv.push('--host', http.host);
      else if (env.ASTROMESH_HOST === undefined) argv.push('--host', '0.0.0.0');
    } else {
      if (env.ASTROMESH_PORT === undefined) argv.push('--port', String(DEFAULT_HTTP_PORT));
      // meshage's HTTP port listened on every interface.
      if (env.ASTROMESH_HOST === undefined) argv.push('--host', '0.0.0.0');
    }
    const hub = new Hub(hubOptionsFromSources(argv, env));
    for (const stream of this.handlers.keys()) this.serve(hub, stream);
    await hub.listen();
    this.hub = hub;
    const o = hub.options;
    hub.log.info({ port: hub.port, clusterPort: hub.clusterPort, host: o.host, hubId: hub.hubId, streams: [...this.handlers.keys()] }, 'listening');
    if (!hub.auth.enabled)
      hub.log.warn({ host: o.host }, 'AUTH IS OFF: anyone who can reach this node can call and serve any stream (set ASTROMESH_AUTH_FILE)');
    this.stopOnSignals(hub);
    // Like a hub's /readyz: the seeds have synced (or the sync timeout passed).
    const until = now() + o.peerSyncTimeoutMs + 100;
    while (!hub.mesh.ready() && now() < until) await new Promise((r) => setTimeout(r, 10));
    return this;
  }

  private serve(hub: Hub, stream: string): void {
    const h = this.handlers.get(stream)!;
    hub.local.handle(stream, meshageHandler(h.handler), {
      concurrency: h.opts.concurrency ?? CLIENT_DEFAULTS.concurrency,
      weight: h.opts.weight ?? CLIENT_DEFAULTS.weight,
    });
  }

  /** SIGTERM and SIGINT stop the node and end the process, unless the application handles them itself. */
  private stopOnSignals(hub: Hub): void {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      if (process.listenerCount(sig) > 0) continue;
      process.once(sig, () => {
        hub.log.info({ sig }, 'shutting down');
        hub.shutdown().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      });
    }
  }

  private async call(message: Message, broadcast: boolean): Promise<unknown> {
    const hub = this.hub;
    if (!hub) throw new BusError('E_SHUTTING_DOWN', 'the node is not started');
    if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof message.stream !== 'string') {
      throw new BusError('E_BAD_MESSAGE', 'a message is an object with a stream');
    }
    const pk = message.partitionKey;
    const opts: RequestOptions = { broadcast, contentType: 'application/json' };
    if (pk !== undefined && pk !== null) opts.key = String(pk);
    return answerValue(await hub.local.request(message.stream, JSON.stringify(message), opts));
  }
}

/** Starts building a node: `init(cluster, httpPort).register(...).start()`. */
export function init(cluster: Cluster, httpAddress?: string | number): MeshageNode {
  return new MeshageNode(cluster, httpAddress);
}

/** A JSON answer as its value (an empty one: undefined); any other as its text. */
function answerValue(r: BusResponse): unknown {
  if (r.body.length === 0) return undefined;
  return isJsonContentType(r.contentType) ? r.json() : r.text();
}

/** `9742` → `127.0.0.1:9742`; `host:9742` as it is; anything else is refused, naming `what`. */
function hostPort(value: string | number, what: string, defaultHost = '127.0.0.1'): string {
  const s = String(value).trim();
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):)?(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535) throw new TypeError(`${what} must be a port or host:port, got ${JSON.stringify(value)}`);
  const host = m[1] ?? defaultHost;
  return host === '' ? String(port) : `${host}:${port}`;
}

function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  if (i < 0) return { host: '', port: Number(s) };
  const host = s.slice(0, i);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(s.slice(i + 1)) };
}

/** `import meshage from 'astromesh/meshage'`, as an ES module importing meshage's CommonJS export would. */
export default { init, GrapevineCluster };
