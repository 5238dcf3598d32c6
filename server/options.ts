/**
 * Every hub setting in one object. Durations are milliseconds and sizes are bytes, so tests can
 * shrink deadlines and leases to a few hundred milliseconds. Values come from flags, then
 * ASTROMESH_* environment variables, then a JSON config file, then these defaults.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { type ArgKind, type ArgSpec, InvalidOptionError, parseCount, parseFlags, parseList } from './args.js';
import { LOG_FORMATS } from './log.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface HubOptions {
  /** TCP port; 0 picks a free one and prints it. Default 3000. */
  port: number;
  /** Interface to bind. Default 127.0.0.1 (exposing the hub without auth prints a warning). */
  host: string;
  /** Name of this hub in X-Served-By and /stats. Default: a random short id. */
  hubId: string;
  /** Largest request or reply body. Default 1 MiB. */
  maxBodyBytes: number;
  /** Largest WebSocket frame. Default maxBodyBytes + 64 KiB. */
  maxFrameBytes: number;
  /** Bytes of an oversized body read and dropped before its 413 goes out anyway. Default 16 MiB. */
  bodyLingerBytes: number;
  /** Time an oversized body is read and dropped before its 413 goes out anyway. Default 5 s. */
  bodyLingerMs: number;
  /** Deadline of a job without X-Timeout-Ms. Default 30 s. */
  defaultTimeoutMs: number;
  /** Largest deadline; larger X-Timeout-Ms values are clamped to it. Default 5 min. */
  maxTimeoutMs: number;
  /** Deliveries of one job before the caller gets 502. Default 3. */
  maxAttempts: number;
  /** Queued jobs per service. Default 10,000. */
  maxQueuePerService: number;
  /** Bytes of queued bodies across all services. Default 256 MiB. */
  maxQueuedBytes: number;
  /** Number of services the hub keeps state for. Default 10,000. */
  maxServices: number;
  /** How long a service that lost its last worker still queues jobs. Default 30 s. */
  serviceLingerMs: number;
  /**
   * Interval between WebSocket pings. Default 5 s: with pongTimeoutMs 10 s a frozen worker is
   * found within 5–10 s, well within the default 30 s deadline.
   */
  pingIntervalMs: number;
  /** A WebSocket silent for this long is closed. Default 10 s (a handler blocking its event loop longer looks dead). */
  pongTimeoutMs: number;
  /** Bytes buffered at a worker socket before the hub stops sending to it. Default 4 × maxFrameBytes. */
  maxBackpressureBytes: number;
  /** Concurrent WebSocket connections. Default 20,000. */
  maxConnections: number;
  /** Requests in flight from one WebSocket client. Default 10,000. */
  maxRequestsPerSession: number;
  /**
   * Bytes of frames a session's socket has not taken (beyond maxBackpressureBytes in its buffer).
   * Past it the session's Requests are refused; at twice it, or over it for slowConsumerMs, the
   * session is closed as a slow consumer. Default 4 × maxBackpressureBytes.
   */
  maxSessionQueuedBytes: number;
  /** A session over maxSessionQueuedBytes this long is closed as a slow consumer. Default 5 s. */
  slowConsumerMs: number;
  /** A WebSocket session must say Hello within this. Default 2 s. */
  helloTimeoutMs: number;
  /** Non-fatal protocol errors one session may draw before it is closed. Default 100. */
  maxProtocolErrors: number;
  /** Services one worker session may register. Default 1,000. */
  maxServicesPerSession: number;
  /**
   * Header lines of an HTTP request on the job and long-poll routes; more get 431. Default 40:
   * uWebSockets.js closes a request of more than 48 without an answer, so this is below it.
   */
  maxHeaderCount: number;
  /** Bytes of an HTTP request's header names and values; more get 431. Default 64 KiB (uWebSockets.js closes past about 125 KiB). */
  maxHeaderBytes: number;
  /** Jobs a peer may have forwarded to this hub and not yet had answered. Default 10,000. */
  maxForwardsPerPeer: number;
  /** Time in-flight work may take to finish on shutdown. Default 10 s. */
  shutdownGraceMs: number;
  /** How long a legacy long-poll waits for a job without ?wait=. Default 30 s. */
  longPollWaitMs: number;
  /** Longest long-poll wait a poller may ask for with ?wait=. Default 120 s. */
  longPollMaxWaitMs: number;
  /** A job handed to a long-poller is redelivered if no reply comes within this (or its deadline). Default 30 s. */
  longPollLeaseMs: number;
  /** Bodies in long-poll envelopes: "json" (embedded by type) or "base64" (always, as the original hub did). Default json. */
  longPollEncoding: string;
  /** Long-polls waiting on one service. Default 5,000. */
  maxPollersPerService: number;
  /** Long-polls waiting in all. Default 20,000. */
  maxPollers: number;
  /** Request headers passed to workers. Default x-request-id, traceparent, tracestate. */
  forwardHeaders: string[];
  /** pino log level. Default info. */
  logLevel: string;
  /** Log lines as JSON (for collectors) or pretty text (for a terminal). Default json. */
  logFormat: string;
  /** Seed peers, `host:port` or `ws(s)://…` URLs; a DNS name yields every address it resolves to. Default none. */
  peers: string[];
  /** The `host:port` peers dial for this hub. Default `host:port` as bound (the cluster port when there is one). */
  advertise: string;
  /** A second port, on the same host, that serves only peer links; 0: none, peers dial `port`. Default 0. */
  clusterPort: number;
  /** Cluster secrets, comma-separated: each is accepted, the first proves this hub. Default none (a warning). */
  clusterSecret: string;
  /** A file holding the cluster secrets (one line, comma-separated). Default none. */
  clusterSecretFile: string;
  /** The auth file (tokens and what each may do); none leaves auth off, with a warning. */
  authFile: string;
  /** A peer silent for this long is dropped; pings go at a third of it. Default 3 s. */
  peerTimeoutMs: number;
  /** Readiness waits this long at most for every seed to sync its membership. Default 5 s. */
  peerSyncTimeoutMs: number;
  /** Longest wait between two dials of an unreachable peer (jittered backoff). Default 2 s. */
  peerReconnectMaxMs: number;
  /** Bytes of bodies this hub holds for jobs forwarded to one peer, until they settle. Default 64 MiB. */
  maxForwardBytesPerPeer: number;
  /** A peer learned from another (not a seed) unreachable for this long is forgotten. Default 5 min. */
  peerForgetMs: number;
  /** How often a seed that is a DNS name is resolved again. Default 30 s. */
  dnsRefreshMs: number;
  /** DNS server(s) for seed names, `host:port`; default the system's. */
  dnsServers: string[];
  /** GET /metrics and the per-request accounting behind it: "on" or "off". Default on. */
  metrics: string;
  /** Services with series of their own in /metrics; the rest share `_other`. Default 200. */
  metricsMaxServices: number;
}

/** Defaults with their units spelled out. */
export const HUB_DEFAULTS: Readonly<HubOptions> = Object.freeze({
  port: 3000,
  host: '127.0.0.1',
  hubId: '',
  maxBodyBytes: 1 * MiB,
  maxFrameBytes: 0, // derived: maxBodyBytes + 64 KiB
  bodyLingerBytes: 16 * MiB,
  bodyLingerMs: 5_000,
  defaultTimeoutMs: 30_000,
  maxTimeoutMs: 5 * 60_000,
  maxAttempts: 3,
  maxQueuePerService: 10_000,
  maxQueuedBytes: 256 * MiB,
  maxServices: 10_000,
  serviceLingerMs: 30_000,
  pingIntervalMs: 5_000,
  pongTimeoutMs: 10_000,
  maxBackpressureBytes: 0, // derived: 4 × maxFrameBytes
  maxConnections: 20_000,
  maxRequestsPerSession: 10_000,
  maxSessionQueuedBytes: 0, // derived: 4 × maxBackpressureBytes
  slowConsumerMs: 5_000,
  helloTimeoutMs: 2_000,
  maxProtocolErrors: 100,
  maxServicesPerSession: 1_000,
  maxHeaderCount: 40,
  maxHeaderBytes: 64 * KiB,
  maxForwardsPerPeer: 10_000,
  shutdownGraceMs: 10_000,
  longPollWaitMs: 30_000,
  longPollMaxWaitMs: 120_000,
  longPollLeaseMs: 30_000,
  longPollEncoding: 'json',
  maxPollersPerService: 5_000,
  maxPollers: 20_000,
  forwardHeaders: ['x-request-id', 'traceparent', 'tracestate'],
  logLevel: 'info',
  logFormat: 'json',
  peers: [],
  advertise: '',
  clusterPort: 0,
  clusterSecret: '',
  clusterSecretFile: '',
  authFile: '',
  peerTimeoutMs: 3_000,
  peerSyncTimeoutMs: 5_000,
  peerReconnectMaxMs: 2_000,
  maxForwardBytesPerPeer: 64 * MiB,
  peerForgetMs: 5 * 60_000,
  dnsRefreshMs: 30_000,
  dnsServers: [],
  metrics: 'on',
  metricsMaxServices: 200,
});

/** Room a frame needs beyond its body for ids, names and headers. */
export const FRAME_OVERHEAD_BYTES = 64 * KiB;

export { InvalidOptionError };

type Kind = Exclude<ArgKind, 'boolean'>;
/** How each option is spelled on the command line and in the environment. */
export const OPTION_SPECS: ReadonlyArray<{ key: keyof HubOptions; flag: string; env: string; kind: Kind; help: string }> = [
  spec('port', 'int', 'TCP port (0 picks a free one)'),
  spec('host', 'string', 'interface to bind'),
  spec('hubId', 'string', 'hub name in X-Served-By and /stats'),
  spec('maxBodyBytes', 'int', 'largest request/reply body, bytes'),
  spec('maxFrameBytes', 'int', 'largest WebSocket frame, bytes'),
  spec('bodyLingerBytes', 'int', 'bytes of an oversized body read (and dropped) before its 413'),
  spec('bodyLingerMs', 'int', 'time an oversized body is read (and dropped) before its 413, ms'),
  spec('defaultTimeoutMs', 'int', 'deadline without X-Timeout-Ms, ms'),
  spec('maxTimeoutMs', 'int', 'largest deadline, ms'),
  spec('maxAttempts', 'int', 'deliveries of one job before 502'),
  spec('maxQueuePerService', 'int', 'queued jobs per service'),
  spec('maxQueuedBytes', 'int', 'queued body bytes, all services'),
  spec('maxServices', 'int', 'services the hub keeps state for'),
  spec('serviceLingerMs', 'int', 'how long a service without workers still queues, ms'),
  spec('pingIntervalMs', 'int', 'WebSocket ping interval, ms'),
  spec('pongTimeoutMs', 'int', 'close a silent WebSocket after, ms'),
  spec('maxBackpressureBytes', 'int', 'buffered bytes at a worker before the hub stops sending'),
  spec('maxConnections', 'int', 'concurrent WebSocket connections'),
  spec('maxRequestsPerSession', 'int', 'in-flight requests per WebSocket client'),
  spec('maxSessionQueuedBytes', 'int', 'unsent bytes per WebSocket session before its requests are refused'),
  spec('slowConsumerMs', 'int', 'close a session over its unsent-bytes cap after, ms'),
  spec('helloTimeoutMs', 'int', 'close a WebSocket that has not said hello after, ms'),
  spec('maxProtocolErrors', 'int', 'refused frames per WebSocket session before it is closed'),
  spec('maxServicesPerSession', 'int', 'services one worker session may register'),
  spec('maxHeaderCount', 'int', 'header lines of an HTTP request before 431'),
  spec('maxHeaderBytes', 'int', 'header bytes of an HTTP request before 431'),
  spec('maxForwardsPerPeer', 'int', 'jobs in flight forwarded by one peer hub (and to it)'),
  spec('shutdownGraceMs', 'int', 'time in-flight work gets on shutdown, ms'),
  spec('longPollWaitMs', 'int', 'long-poll wait without ?wait=, ms', 'longpoll-wait-ms'),
  spec('longPollMaxWaitMs', 'int', 'longest long-poll wait, ms', 'longpoll-max-wait-ms'),
  spec('longPollLeaseMs', 'int', 'long-poll lease before redelivery, ms', 'longpoll-lease-ms'),
  spec('longPollEncoding', 'string', 'long-poll body encoding: json or base64', 'longpoll-encoding'),
  spec('maxPollersPerService', 'int', 'waiting long-polls per service'),
  spec('maxPollers', 'int', 'waiting long-polls in all'),
  spec('forwardHeaders', 'list', 'request headers passed to workers (comma-separated)'),
  spec('logLevel', 'string', 'log level: fatal, error, warn, info, debug, trace, silent'),
  spec('logFormat', 'string', 'log lines: json, or pretty for a terminal'),
  spec('peers', 'list', 'seed peers: host:port or ws(s):// URLs (comma-separated)'),
  spec('advertise', 'string', 'host:port peers dial for this hub'),
  spec('clusterPort', 'int', 'a second port serving only peer links (0: none, peers use --port)'),
  spec('clusterSecret', 'string', 'cluster secrets, comma-separated (the first proves this hub)'),
  spec('clusterSecretFile', 'string', 'file holding the cluster secrets'),
  spec('authFile', 'string', 'auth file: tokens and their rights (none: auth off)'),
  spec('peerTimeoutMs', 'int', 'drop a silent peer after, ms'),
  spec('peerSyncTimeoutMs', 'int', 'longest wait for seeds before ready, ms'),
  spec('peerReconnectMaxMs', 'int', 'longest backoff between dials of a peer, ms'),
  spec('maxForwardBytesPerPeer', 'int', 'body bytes held for jobs forwarded to one peer'),
  spec('peerForgetMs', 'int', 'forget a learned (not seed) peer unreachable for, ms'),
  spec('dnsRefreshMs', 'int', 'resolve seed DNS names again every, ms'),
  spec('dnsServers', 'list', 'DNS servers for seed names, host:port (default: the system)'),
  spec('metrics', 'string', 'GET /metrics and per-request accounting: on or off'),
  spec('metricsMaxServices', 'int', 'services with their own series in /metrics (the rest: _other)'),
];

/** Flags are the option names in kebab case unless `kebab` names them (`--longpoll-…`, as the design spells them). */
function spec(key: keyof HubOptions, kind: Kind, help: string, kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)) {
  const env = `ASTROMESH_${kebab.replace(/-/g, '_').toUpperCase()}`;
  return { key, flag: `--${kebab}`, env, kind, help };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** How an error names an option: the field for code that passes options, the flag, variable or file key for the CLI. */
export type OptionNamer = (key: keyof HubOptions) => string;
const fieldName: OptionNamer = (key) => `"${key}"`;

/**
 * Merges input over the defaults, derives dependent values and rejects contradictions. Errors
 * name options with `nameOf`: field names by default, whatever the user typed when the CLI
 * passes the namer from optionsFromSources.
 */
export function resolveHubOptions(input: Partial<HubOptions> = {}, nameOf: OptionNamer = fieldName): HubOptions {
  const n = nameOf;
  const o: HubOptions = { ...HUB_DEFAULTS, forwardHeaders: [...HUB_DEFAULTS.forwardHeaders] };
  for (const [k, v] of Object.entries(input)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  // Types first: a config file can hold anything, and the derivations below assume numbers.
  for (const s of OPTION_SPECS) {
    const v = o[s.key];
    if (s.kind === 'int' && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new InvalidOptionError(`${n(s.key)} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    if (s.kind === 'string' && typeof v !== 'string') throw new InvalidOptionError(`${n(s.key)} must be a string, got ${JSON.stringify(v)}`);
    if (s.kind === 'list' && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) {
      throw new InvalidOptionError(`${n(s.key)} must be a list of strings, got ${JSON.stringify(v)}`);
    }
  }
  if (!o.maxFrameBytes) o.maxFrameBytes = o.maxBodyBytes + FRAME_OVERHEAD_BYTES;
  if (!o.maxBackpressureBytes) o.maxBackpressureBytes = 4 * o.maxFrameBytes;
  if (!o.maxSessionQueuedBytes) o.maxSessionQueuedBytes = 4 * o.maxBackpressureBytes;
  o.forwardHeaders = o.forwardHeaders.map((h) => h.trim().toLowerCase()).filter(Boolean);
  if (o.port > 65535) throw new InvalidOptionError(`${n('port')} must be at most 65535, got ${o.port}`);
  if (o.clusterPort > 65535) throw new InvalidOptionError(`${n('clusterPort')} must be at most 65535, got ${o.clusterPort}`);
  if (o.clusterPort !== 0 && o.clusterPort === o.port) throw new InvalidOptionError(`${n('clusterPort')} must differ from ${n('port')} (${o.port})`);
  const positive: (keyof HubOptions)[] = [
    'maxBodyBytes',
    'defaultTimeoutMs',
    'maxTimeoutMs',
    'maxAttempts',
    'maxQueuePerService',
    'maxServices',
    'pingIntervalMs',
    'pongTimeoutMs',
    'maxConnections',
    'maxRequestsPerSession',
    'slowConsumerMs',
    'helloTimeoutMs',
    'maxProtocolErrors',
    'maxServicesPerSession',
    'maxHeaderCount',
    'maxHeaderBytes',
    'maxForwardsPerPeer',
    'longPollWaitMs',
    'longPollMaxWaitMs',
    'longPollLeaseMs',
    'maxPollersPerService',
    'maxPollers',
    'peerTimeoutMs',
    'peerReconnectMaxMs',
    'maxForwardBytesPerPeer',
    'dnsRefreshMs',
  ];
  for (const k of positive) if ((o[k] as number) <= 0) throw new InvalidOptionError(`${n(k)} must be greater than 0`);
  const notAbove = (a: keyof HubOptions, b: keyof HubOptions) => {
    if ((o[a] as number) > (o[b] as number)) throw new InvalidOptionError(`${n(a)} must not exceed ${n(b)} (${o[a]} > ${o[b]})`);
  };
  notAbove('longPollWaitMs', 'longPollMaxWaitMs');
  if (o.longPollEncoding !== 'json' && o.longPollEncoding !== 'base64') {
    throw new InvalidOptionError(`${n('longPollEncoding')} must be "json" or "base64", got ${JSON.stringify(o.longPollEncoding)}`);
  }
  notAbove('defaultTimeoutMs', 'maxTimeoutMs');
  if (o.metrics !== 'on' && o.metrics !== 'off') throw new InvalidOptionError(`${n('metrics')} must be "on" or "off", got ${JSON.stringify(o.metrics)}`);
  if (o.maxFrameBytes < o.maxBodyBytes + 1024) {
    throw new InvalidOptionError(`${n('maxFrameBytes')} must exceed ${n('maxBodyBytes')} by at least 1 KiB (${o.maxFrameBytes} vs ${o.maxBodyBytes})`);
  }
  notAbove('maxBodyBytes', 'maxQueuedBytes');
  if (o.maxBackpressureBytes < o.maxFrameBytes) {
    throw new InvalidOptionError(`${n('maxBackpressureBytes')} must be at least ${n('maxFrameBytes')} (${o.maxBackpressureBytes} < ${o.maxFrameBytes})`);
  }
  if (o.maxSessionQueuedBytes < o.maxFrameBytes) {
    throw new InvalidOptionError(`${n('maxSessionQueuedBytes')} must be at least ${n('maxFrameBytes')} (${o.maxSessionQueuedBytes} < ${o.maxFrameBytes})`);
  }
  if (o.pongTimeoutMs < o.pingIntervalMs) {
    throw new InvalidOptionError(`${n('pongTimeoutMs')} must be at least ${n('pingIntervalMs')} (${o.pongTimeoutMs} < ${o.pingIntervalMs})`);
  }
  if (o.forwardHeaders.some((h) => h === 'authorization' || h === 'cookie' || h === 'proxy-authorization')) {
    throw new InvalidOptionError(`${n('forwardHeaders')} may not include authorization or cookie headers`);
  }
  if (o.hubId !== '' && !/^[A-Za-z0-9._-]{1,64}$/.test(o.hubId)) {
    throw new InvalidOptionError(`${n('hubId')} must be 1-64 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(o.hubId)}`);
  }
  if (o.advertise !== '' && !/^[^\s:/]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(o.advertise)) {
    throw new InvalidOptionError(`${n('advertise')} must be host:port, got ${JSON.stringify(o.advertise)}`);
  }
  if (o.peerTimeoutMs < 30) throw new InvalidOptionError(`${n('peerTimeoutMs')} must be at least 30 ms`);
  // pino throws on an unknown level, and later, from inside the hub, with a stack trace.
  if (!LOG_LEVELS.includes(o.logLevel))
    throw new InvalidOptionError(`${n('logLevel')} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(o.logLevel)}`);
  if (!(LOG_FORMATS as readonly string[]).includes(o.logFormat))
    throw new InvalidOptionError(`${n('logFormat')} must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(o.logFormat)}`);
  return o;
}

/** `--config FILE`: a JSON file with any hub option. */
export const CONFIG_FLAG: ArgSpec = { flag: '--config', kind: 'string' };

/** Options as read from the sources, and how to name each in an error: where its value came from. */
export interface OptionSources {
  values: Partial<HubOptions>;
  nameOf: OptionNamer;
}

/**
 * Reads options from argv flags (`--max-body-bytes 100` or `--max-body-bytes=100`), then the
 * environment, then the config file named by `--config` or ASTROMESH_CONFIG: JSON, or YAML when
 * it ends in .yaml or .yml, its keys the option names (`maxBodyBytes`) or the flags without
 * dashes (`max-body-bytes`). Unknown flags and unknown keys in the file throw.
 */
export function optionsFromSources(argv: readonly string[], env: NodeJS.ProcessEnv): OptionSources {
  const { values: flags } = parseFlags(argv, [...OPTION_SPECS, CONFIG_FLAG]);
  const configPath = (flags.get(CONFIG_FLAG.flag) as string | undefined) ?? env.ASTROMESH_CONFIG;
  let file: Record<string, unknown> = {};
  /** The key each option has in the file, as the user wrote it. */
  const typed = new Map<string, string>();
  if (configPath) {
    const yaml = /\.ya?ml$/i.test(configPath);
    try {
      const text = readFileSync(configPath, 'utf8');
      file = (yaml ? parseYaml(text) : JSON.parse(text)) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidOptionError(`cannot read config file ${configPath}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (file === null || typeof file !== 'object' || Array.isArray(file))
      throw new InvalidOptionError(`config file ${configPath} must hold ${yaml ? 'a YAML mapping' : 'a JSON object'}`);
    const byFlag = new Map(OPTION_SPECS.map((s) => [s.flag.slice(2), s.key as string]));
    const named: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(file)) {
      const key = OPTION_SPECS.some((s) => s.key === k) ? k : byFlag.get(k);
      if (!key) throw new InvalidOptionError(`unknown option "${k}" in ${configPath}`);
      if (typed.has(key)) throw new InvalidOptionError(`"${typed.get(key)}" and "${k}" in ${configPath} name the same option`);
      named[key] = v;
      typed.set(key, k);
    }
    file = named;
  }
  const values: Partial<HubOptions> = {};
  const origin = new Map<keyof HubOptions, string>();
  for (const s of OPTION_SPECS) {
    const flag = flags.get(s.flag) as string | undefined;
    const [name, raw] = flag !== undefined ? [s.flag, flag] : [s.env, env[s.env]];
    const fromFile = raw === undefined && Object.hasOwn(file, s.key);
    if (raw === undefined && !fromFile) continue;
    const where = fromFile ? `"${typed.get(s.key) ?? s.key}" in ${configPath}` : name;
    // A count is read the same way wherever it comes from (`2_097_152` in a file too); a file's
    // list is a list (a string there is refused, as a typo of one).
    const text = fromFile ? file[s.key] : raw;
    const v = typeof text === 'string' && s.kind === 'int' ? parseCount(where, text) : !fromFile && s.kind === 'list' ? parseList(text as string) : text;
    (values as Record<string, unknown>)[s.key] = v;
    origin.set(s.key, where);
  }
  // An option set nowhere is named by its flag, the way to change it from the command line.
  const flagOf = new Map(OPTION_SPECS.map((s) => [s.key, s.flag]));
  return { values, nameOf: (key) => origin.get(key) ?? flagOf.get(key) ?? `"${key}"` };
}

/** optionsFromSources then resolveHubOptions, errors naming flags, variables and file keys. */
export function hubOptionsFromSources(argv: readonly string[], env: NodeJS.ProcessEnv): HubOptions {
  const { values, nameOf } = optionsFromSources(argv, env);
  return resolveHubOptions(values, nameOf);
}
