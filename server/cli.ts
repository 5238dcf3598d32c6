#!/usr/bin/env node
/**
 * astromesh hub [options]            start a hub (the default command)
 * astromesh echo <service...>        a worker answering meshage-style {"echoed": message}
 * astromesh request <service> [json] send one request and print the answer
 * astromesh token [name]             make a new random token and its auth-file entry
 * astromesh hash-token [token]       the SHA-256 the auth file stores for a token (or stdin)
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hubUrls, wsUrl } from '../client/connection.js';
import { BusError } from '../client/errors.js';
import { type ArgSpec, InvalidOptionError, type ParsedArgs, parseCount, parseFlags, wantsHelp } from './args.js';
import { hashToken } from './auth/auth.js';
import { Hub } from './hub.js';
import { ListenError } from './listen-error.js';
import { createLogger } from './log.js';
import { CONFIG_FLAG, hubOptionsFromSources, OPTION_SPECS } from './options.js';
import { memberSeed, rank } from './ring.js';

const URL_FLAG: ArgSpec = { flag: '--url', kind: 'string' };
const TOKEN_FLAG: ArgSpec = { flag: '--token', kind: 'string' };
const ECHO_FLAGS: ArgSpec[] = [URL_FLAG, TOKEN_FLAG, { flag: '--concurrency', kind: 'int' }, { flag: '--instance-id', kind: 'string' }];
const REQUEST_FLAGS: ArgSpec[] = [
  URL_FLAG,
  TOKEN_FLAG,
  { flag: '--key', kind: 'string' },
  { flag: '--broadcast', kind: 'boolean' },
  { flag: '--timeout-ms', kind: 'int' },
  { flag: '--verbose', kind: 'boolean', short: 'v' },
  { flag: '--count', kind: 'int' },
  { flag: '--concurrency', kind: 'int' },
];
const OWNER_FLAGS: ArgSpec[] = [URL_FLAG, TOKEN_FLAG];

/** Every command: what `astromesh <command> --help` says, the flags it takes, and what runs it. */
const COMMANDS: Record<string, { usage: string; flags: ArgSpec[]; run: (args: string[]) => number | Promise<number> }> = {
  hub: {
    usage: 'astromesh hub [options]                         start a hub (default command; options below)',
    flags: [...OPTION_SPECS, CONFIG_FLAG],
    run: runHub,
  },
  echo: {
    usage: `astromesh echo <service...> [--url URL[,URL...]] [--concurrency N] [--instance-id ID] [--token T]
    a worker answering meshage-style {"echoed": message}; prints a line once it serves, and
    when it loses and regains its hub`,
    flags: ECHO_FLAGS,
    run: runEcho,
  },
  request: {
    usage: `astromesh request <service> [json] [--key K] [--broadcast] [--url URL[,URL...]] [--timeout-ms MS] [--token T]
                  [-v] [--count N] [--concurrency C]
    sends a request; the body goes to stdout, the status and the time taken to stderr (-v: the
    headers too); exits 1 on an error status. --count N (C at a time) is a small load check
    that prints a latency summary`,
    flags: REQUEST_FLAGS,
    run: runRequest,
  },
  owner: {
    usage: `astromesh owner <stream> <key> [--url URL] [--token T]
    the workers ranked for a key as the hub sees the ring (owner first, with hub and weight)`,
    flags: OWNER_FLAGS,
    run: runOwner,
  },
  token: { usage: 'astromesh token [name]                          a new random token and its auth-file entry', flags: [], run: runToken },
  'hash-token': {
    usage: 'astromesh hash-token [token]                    the SHA-256 the auth file stores (token from stdin if not given)',
    flags: [],
    run: runHashToken,
  },
};

const HUB_OPTIONS = `hub options (flag, then environment variable, then --config file.json|.yaml, then default):
${OPTION_SPECS.map((s) => `  ${(`${s.flag} <${s.kind}>`).padEnd(34)} ${s.env.padEnd(36)} ${s.help}`).join('\n')}
  --config <file>                    ASTROMESH_CONFIG                     JSON or YAML file with any of the options above`;

const USAGE = `usage:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage}`)
  .join('\n')}
  astromesh --version
  (echo, request and owner take --token T, or ASTROMESH_TOKEN, when the hub has auth on)

${HUB_OPTIONS}`;

/** `astromesh hub` could not bind its port (held by another process, or still closing). */
const EXIT_CANNOT_LISTEN = 3;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === 'version') {
    console.log(version());
    return 0;
  }
  if (first === 'help') {
    console.log(USAGE);
    return 0;
  }
  // No command, or flags first: the hub.
  const named = first !== undefined && !first.startsWith('-');
  if (named && !Object.hasOwn(COMMANDS, first)) {
    throw new InvalidOptionError(`unknown command ${JSON.stringify(first)} (astromesh help lists the commands)`);
  }
  const name = named ? first : 'hub';
  const command = COMMANDS[name]!;
  const args = named ? rest : argv;
  if (wantsHelp(args, command.flags)) {
    console.log(`usage: ${command.usage}${name === 'hub' ? `\n\n${HUB_OPTIONS}` : ''}`);
    return 0;
  }
  return command.run(args);
}

/** The package's version, from its package.json (two levels above dist/server). */
function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}

async function runHub(args: string[]): Promise<number> {
  const hub = new Hub(hubOptionsFromSources(args, process.env));
  const log = hub.log;
  let port: number;
  try {
    port = await hub.listen();
  } catch (err) {
    if (err instanceof ListenError) {
      console.error(`astromesh: ${err.message}`);
      return EXIT_CANNOT_LISTEN;
    }
    throw err;
  }
  const host = hub.options.host;
  const clusterPort = hub.clusterPort || undefined;
  log.info({ port, clusterPort, host, hubId: hub.hubId, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` }, 'listening');
  if (!hub.auth.enabled) {
    const exposed = host !== '127.0.0.1' && host !== 'localhost' && host !== '::1';
    log.warn(
      { host, exposed },
      exposed
        ? 'AUTH IS OFF and the hub is exposed beyond this machine: anyone who can reach it can call and serve any service (set --auth-file)'
        : 'AUTH IS OFF: any process on this machine can call and serve any service (set --auth-file)',
    );
  } else {
    log.info({ tokens: hub.auth.size }, 'auth on');
  }
  // SIGHUP reads the auth file again: revoked tokens' sessions close, the rest keeps running.
  process.on('SIGHUP', () => {
    if (!hub.auth.enabled) return log.warn('SIGHUP: auth is off, nothing to reload');
    try {
      hub.reloadAuth();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'auth file not reloaded: keeping the one in use');
    }
  });
  let signals = 0;
  const stop = (sig: string) => {
    if (++signals > 1) {
      log.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ sig }, 'shutting down');
    hub.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return -1; // keep running
}

function hubUrl(values: ParsedArgs['values']): string {
  return (values.get('--url') as string | undefined) ?? process.env.ASTROMESH_URL ?? 'http://127.0.0.1:3000';
}

/** `{token}` when --token or ASTROMESH_TOKEN gives one. */
function tokenOf(values: ParsedArgs['values']): { token?: string } {
  const token = (values.get('--token') as string | undefined) ?? process.env.ASTROMESH_TOKEN;
  return token ? { token } : {};
}

function runToken(args: string[]): number {
  const { positionals } = parseFlags(args, [], { positionals: true });
  const token = randomBytes(32).toString('base64url');
  const entry = { name: positionals[0] ?? 'my-service', sha256: hashToken(token), serve: [], request: ['>'], monitor: false };
  console.log(`token (give it to the client; it is not stored anywhere): ${token}`);
  console.log(`auth-file entry (edit serve/request/monitor):\n${JSON.stringify(entry, null, 2)}`);
  return 0;
}

async function runHashToken(args: string[]): Promise<number> {
  const { positionals } = parseFlags(args, [], { positionals: true });
  let token = positionals[0];
  if (token === undefined) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    token = Buffer.concat(chunks).toString('utf8').trim();
  }
  if (!token) throw new InvalidOptionError('hash-token: give a token, as an argument or on stdin');
  console.log(hashToken(token));
  return 0;
}

/** A numeric flag's value, if given. At least 1: a worker with --concurrency 0 never takes a job, and the hub refuses X-Timeout-Ms: 0. */
function count(values: ParsedArgs['values'], flag: string): number | undefined {
  const raw = values.get(flag) as string | undefined;
  return raw === undefined ? undefined : parseCount(flag, raw, 1);
}

async function runEcho(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, ECHO_FLAGS, { positionals: true });
  if (positionals.length === 0) throw new InvalidOptionError('echo: name at least one service');
  const concurrency = count(values, '--concurrency') ?? 64;
  const instanceId = values.get('--instance-id') as string | undefined;
  const format = process.env.ASTROMESH_LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const log = createLogger(process.env.ASTROMESH_LOG_LEVEL ?? 'info', 'astromesh-echo', format === 'pretty' ? 'pretty' : 'json');
  // The client library (and its HTTP stack) is loaded only by the commands that use it.
  const { meshage } = await import('../client/meshage.js');
  const node = meshage({ url: hubUrl(values), ...tokenOf(values), ...(instanceId ? { instanceId } : {}) });
  for (const s of positionals) node.register(s, (m) => ({ echoed: m }), { concurrency });
  const w = node.worker;
  let served = false;
  let serving = false;
  // The protocol has no acknowledgement of Register: a ping answered after it says the hub has
  // read it (and any refusal would have come first, as a ProtocolError line).
  w.on('welcome', (welcome: { hubId: string; instanceId: string }) => {
    const conn = w.connection;
    conn.roundTrip().then(
      () => {
        log.info(
          { hubId: welcome.hubId, instanceId: welcome.instanceId, url: wsUrl(conn.url) },
          `serving ${positionals.join(', ')} on ${wsUrl(conn.url)}${served ? ' again' : ''}`,
        );
        served = true;
        serving = true;
      },
      () => {},
    );
  });
  // One line per loss, not one per failed reconnect.
  w.on('disconnected', (err: Error) => {
    if (serving) log.warn({ err: err.message }, 'lost the hub; reconnecting');
    serving = false;
  });
  w.on('moving', (m: { from: string }) => log.info({ from: m.from }, 'the hub is shutting down; moving to the next hub'));
  w.on('protocolError', (err: Error, ref: unknown) => log.error({ ref, err: err.message }, 'hub refused'));
  await node.start();
  const stop = () => {
    node.drain().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return -1;
}

async function runRequest(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, REQUEST_FLAGS, { positionals: true });
  const [service, body = '{}', ...extra] = positionals;
  if (!service) throw new InvalidOptionError('request: name a service');
  if (extra.length) throw new InvalidOptionError(`request: unexpected argument ${JSON.stringify(extra[0])} (the body is one argument)`);
  const key = values.get('--key') as string | undefined;
  const timeoutMs = count(values, '--timeout-ms');
  const total = count(values, '--count');
  const parallel = count(values, '--concurrency') ?? 1;
  const verbose = values.has('--verbose');
  const { Client } = await import('../client/client.js');
  const client = new Client({ url: hubUrl(values), ...tokenOf(values), connections: parallel });
  const opts = { ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
  const once = () =>
    values.has('--broadcast')
      ? client.broadcast(service, key ?? '-', body, opts).then((b) => b.response)
      : key !== undefined
        ? client.requestKeyed(service, key, body, opts)
        : client.request(service, body, opts);
  try {
    if (total !== undefined) return await loadCheck(once, total, parallel);
    const t0 = performance.now();
    try {
      const res = await once();
      const ms = performance.now() - t0;
      console.error(`${res.status} in ${ms.toFixed(1)} ms${res.servedBy ? ` (served by ${res.servedBy})` : ''}`);
      if (verbose) for (const [k, v] of Object.entries(res.headers)) console.error(`${k}: ${v}`);
      process.stdout.write(res.body);
      if (!res.body.toString().endsWith('\n')) process.stdout.write('\n');
      return 0;
    } catch (err) {
      const ms = performance.now() - t0;
      if (err instanceof BusError) {
        console.error(`${err.status} ${err.code} in ${ms.toFixed(1)} ms: ${err.message}`);
        return 1;
      }
      throw err;
    }
  } catch (err) {
    console.error(`astromesh request: ${(err as Error).message}`);
    return 1;
  } finally {
    await client.close();
  }
}

/** `--count N --concurrency C`: N requests, C at a time; a summary of outcomes and latencies. */
async function loadCheck(once: () => Promise<unknown>, total: number, parallel: number): Promise<number> {
  const latencies: number[] = [];
  const outcomes = new Map<string, number>();
  let started = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (started < total) {
      started++;
      const t = performance.now();
      let outcome = 'ok';
      try {
        await once();
      } catch (err) {
        outcome = err instanceof BusError ? `${err.status} ${err.code}` : (err as Error).message;
      }
      latencies.push(performance.now() - t);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, total) }, lane));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(1);
  const ok = outcomes.get('ok') ?? 0;
  console.log(`${total} requests, ${parallel} at a time, in ${seconds.toFixed(2)} s: ${(total / seconds).toFixed(0)} req/s`);
  console.log(`outcomes: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(
    `latency ms: min ${latencies[0]!.toFixed(1)}  p50 ${at(0.5)}  p90 ${at(0.9)}  p99 ${at(0.99)}  max ${latencies[latencies.length - 1]!.toFixed(1)}`,
  );
  return ok === total ? 0 : 1;
}

async function runOwner(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, OWNER_FLAGS, { positionals: true });
  const [stream, key, ...extra] = positionals;
  if (!stream || key === undefined) throw new InvalidOptionError('owner: name a stream and a key');
  if (extra.length) throw new InvalidOptionError(`owner: unexpected argument ${JSON.stringify(extra[0])}`);
  const base = hubUrls(hubUrl(values))[0]!;
  const { token } = tokenOf(values);
  const res = await fetch(`${base.replace(/\/$/, '')}/stats`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  if (!res.ok) {
    console.error(
      `astromesh owner: /stats answered ${res.status}${res.status === 401 || res.status === 403 ? ' (a token with the monitor right is needed: --token)' : ''}`,
    );
    return 1;
  }
  const stats = (await res.json()) as {
    hubId: string;
    services: { name: string; ring: { digest: string; members: { instanceId: string; hubId: string; weight: number }[] } }[];
  };
  const svc = stats.services.find((s) => s.name === stream);
  if (!svc || svc.ring.members.length === 0) {
    console.error(`astromesh owner: hub ${stats.hubId} has no worker owning keys of ${stream}`);
    return 1;
  }
  const ranked = rank(
    key,
    svc.ring.members.map((m) => ({ ...m, seed: memberSeed(m.instanceId) })),
  );
  console.log(`key ${JSON.stringify(key)} of ${stream}, as hub ${stats.hubId} sees the ring (digest ${svc.ring.digest}):`);
  for (const [i, m] of ranked.entries())
    console.log(`${String(i + 1).padStart(3)}  ${m.instanceId}  hub ${m.hubId}  weight ${m.weight}${i === 0 ? '  <- owner' : ''}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    // A usage mistake gets one line and exit code 2; anything else is a bug worth its stack trace.
    if (err instanceof InvalidOptionError) {
      console.error(`astromesh: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
