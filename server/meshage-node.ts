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
import { Hub, waitUntil } from './hub.js';
import { type Cluster, DEFAULT_CLUSTER_HOST, hostPort, nodeOptions } from './meshage-options.js';
import { now } from './timer-wheel.js';

export { type Cluster, DEFAULT_HTTP_PORT } from './meshage-options.js';

/** A meshage message: the stream, the partition key, and whatever else the caller sent. */
export interface Message {
  stream: string;
  partitionKey?: string | number;
  [field: string]: unknown;
}

export type MessageHandler = MeshageHandler;

export interface RegisterOptions {
  /** Messages of this stream the handler runs at once. Default 16. */
  concurrency?: number;
  /** Share of partition keys relative to the other nodes. Default 1. */
  weight?: number;
}

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
    this.address = hostPort(address, 'the cluster address', DEFAULT_CLUSTER_HOST, 1);
    this.seeds = [];
    for (const seed of seeds) {
      if (seed === undefined || seed === null || String(seed).trim() === '') continue;
      const s = hostPort(seed, 'a seed', DEFAULT_CLUSTER_HOST, 1);
      if (s !== this.address && !this.seeds.includes(s)) this.seeds.push(s);
    }
  }
}

/** A node: register handlers, start it, then send and broadcast from inside it. */
export class MeshageNode {
  /** The embedded hub, once started. */
  hub: Hub | null = null;
  private readonly handlers = new Map<string, { handler: MeshageHandler; opts: RegisterOptions }>();
  /** The hub from the moment start() makes it: handlers registered while it starts are served too. */
  private embedded: Hub | null = null;
  private starting: Promise<this> | null = null;
  private stopping = false;
  /** What stopOnSignals put on `process`, taken off again when the node stops. */
  private readonly signalListeners: [NodeJS.Signals, () => void][] = [];

  constructor(
    readonly cluster: Cluster,
    private readonly httpAddress?: string | number,
  ) {}

  /** Serves `stream` with `handler` (a value, or a promise of one; a throw is an error answer). Chainable, before or after start. */
  register(stream: string, handler: MessageHandler, opts: RegisterOptions = {}): this {
    this.handlers.set(stream, { handler, opts });
    if (this.embedded) this.serve(this.embedded, stream);
    return this;
  }

  /** Stops serving `stream` on this node; messages already running finish. */
  unregister(stream: string): this {
    this.handlers.delete(stream);
    this.embedded?.local.unhandle(stream);
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

  /** Leaves the mesh and closes, as a hub shuts down (once it listens, when still starting): its keys go to the other nodes at once, work in flight is answered. */
  async stop(): Promise<void> {
    this.stopping = true;
    // A node still starting has no hub yet: it is stopped once it has one (or failed to).
    await this.starting?.catch(() => {});
    await this.hub?.shutdown();
    // A stopped node's listener would end the process at the next signal, and keep a later node from putting its own.
    for (const [sig, listener] of this.signalListeners.splice(0)) process.removeListener(sig, listener);
  }

  private async run(): Promise<this> {
    const hub = new Hub(nodeOptions(this.cluster, this.httpAddress, process.env));
    this.embedded = hub;
    for (const stream of this.handlers.keys()) this.serve(hub, stream);
    await hub.listen();
    this.hub = hub;
    const o = hub.options;
    hub.log.info({ port: hub.port, clusterPort: hub.clusterPort, host: o.host, hubId: hub.hubId, streams: [...this.handlers.keys()] }, 'listening');
    if (!hub.auth.enabled)
      hub.log.warn({ host: o.host }, 'AUTH IS OFF: anyone who can reach this node can call and serve any stream (set ASTROMESH_AUTH_FILE)');
    this.stopOnSignals(hub);
    // Like a hub's /readyz: the seeds have synced (or the sync timeout passed).
    await waitUntil(() => this.stopping || hub.mesh.ready(), now() + o.peerSyncTimeoutMs + 100);
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
      const listener = () => {
        // The application began to listen after start(): ending the process is its call, not ours.
        if (process.listenerCount(sig) > 0) return;
        hub.log.info({ sig }, 'shutting down');
        hub.shutdown().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once(sig, listener);
      this.signalListeners.push([sig, listener]);
    }
  }

  private async call(message: Message, broadcast: boolean): Promise<unknown> {
    if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof message.stream !== 'string') {
      throw new BusError('E_BAD_MESSAGE', 'a message is an object with a stream');
    }
    const pk = message.partitionKey;
    const opts: RequestOptions = { broadcast, contentType: 'application/json' };
    if (pk !== undefined && pk !== null) {
      // Keys are text; any other value's String() ("[object Object]", "true") would route them all as one.
      if (typeof pk !== 'string' && !(typeof pk === 'number' && Number.isFinite(pk))) {
        throw new BusError('E_BAD_KEY', 'a partitionKey is a string or a finite number');
      }
      opts.key = String(pk);
    }
    const hub = this.hub;
    if (!hub) throw new BusError('E_SHUTTING_DOWN', 'the node is not started');
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

/** `import meshage from 'astromesh/meshage'`, as an ES module importing meshage's CommonJS export would. */
export default { init, GrapevineCluster };
