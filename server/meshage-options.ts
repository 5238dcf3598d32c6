/**
 * A meshage node's addresses, and the options of its embedded hub. What `init()` and
 * `GrapevineCluster` were given counts as a flag; what a node assumes when they do not say gives
 * way to the hub's ASTROMESH_* variables and config file, as any hub default does.
 */
import { type HubOptions, optionsFromSources, resolveHubOptions } from './options.js';

/** Where a node listens for its peers and whom it joins. */
export interface Cluster {
  /** `host:port` of this node's cluster port: it listens there, and other nodes dial it. */
  readonly address: string;
  /** `host:port` of nodes (or hubs' cluster ports) to join; any one reachable is enough. */
  readonly seeds: readonly string[];
}

/** The HTTP port a node takes when init() names none and ASTROMESH_PORT is not set. */
export const DEFAULT_HTTP_PORT = 8080;

/** The host a cluster address without one stands for, as meshage's did. */
export const DEFAULT_CLUSTER_HOST = '127.0.0.1';

/**
 * The options of the hub a node embeds. Its cluster port and seeds, and the HTTP port (and
 * host) init() names, are flags. The HTTP port 8080, every interface for the host, and the
 * cluster address as what peers dial (`--advertise`) are the node's defaults: ASTROMESH_PORT,
 * ASTROMESH_HOST, ASTROMESH_ADVERTISE and the config file replace them.
 */
export function nodeOptions(cluster: Cluster, httpAddress: string | number | undefined, env: NodeJS.ProcessEnv): HubOptions {
  const address = hostPort(cluster.address, 'the cluster address', DEFAULT_CLUSTER_HOST, 1);
  const own = splitHostPort(address);
  const argv = ['--cluster-port', String(own.port)];
  if (cluster.seeds.length > 0) argv.push('--peers', cluster.seeds.map((s) => hostPort(s, 'a seed', DEFAULT_CLUSTER_HOST, 1)).join(','));
  if (httpAddress !== undefined && httpAddress !== null && String(httpAddress).trim() !== '') {
    const http = splitHostPort(hostPort(httpAddress, 'the HTTP address', '', 0));
    argv.push('--port', String(http.port));
    if (http.host !== '') argv.push('--host', http.host);
  }
  const { values, nameOf } = optionsFromSources(argv, env);
  values.port ??= DEFAULT_HTTP_PORT;
  // meshage's HTTP port listened on every interface; peers dialling an IPv6 address need IPv6 ones.
  values.host ??= own.host.includes(':') ? '::' : '0.0.0.0';
  values.advertise ??= address;
  return resolveHubOptions(values, nameOf);
}

/**
 * `9742` → `<defaultHost>:9742`; `host:9742` (an IPv6 host in brackets) as it is; anything else,
 * or a port below `minPort`, is refused, naming `what`. An empty `defaultHost` leaves a bare port bare.
 */
export function hostPort(value: string | number, what: string, defaultHost: string, minPort: number): string {
  const s = String(value).trim();
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):)?(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535 || port < minPort) {
    const range = minPort > 0 ? ` (a port from ${minPort} to 65535)` : '';
    throw new TypeError(`${what} must be a port or host:port${range}, got ${JSON.stringify(value)}`);
  }
  const host = m[1] ?? defaultHost;
  return host === '' ? String(port) : `${host}:${port}`;
}

/** `host:port` → its parts, an IPv6 host without its brackets; a bare port has the host ''. */
function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  if (i < 0) return { host: '', port: Number(s) };
  const host = s.slice(0, i);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(s.slice(i + 1)) };
}
