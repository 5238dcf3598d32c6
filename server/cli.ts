#!/usr/bin/env node
/**
 * astromesh hub [options]            start a hub (the default command)
 * astromesh echo <service...>        a worker answering meshage-style {"echoed": message}
 * astromesh request <service> [json] send one request and print the answer
 * astromesh token [name]             make a new random token and its auth-file entry
 * astromesh hash-token [token]       the SHA-256 the auth file stores for a token (or stdin)
 */
import { randomBytes } from 'node:crypto';
import { BusError } from '../client/errors.js';
import { type ArgSpec, InvalidOptionError, type ParsedArgs, parseCount, parseFlags, wantsHelp } from './args.js';
import { hashToken } from './auth/auth.js';
import { Hub } from './hub.js';
import { ListenError } from './listen-error.js';
import { createLogger } from './log.js';
import { CONFIG_FLAG, hubOptionsFromSources, OPTION_SPECS } from './options.js';

const USAGE = `usage:
  astromesh hub [options]                         start a hub (default command)
  astromesh echo <service...> [--url URL[,URL...]] [--concurrency N] [--instance-id ID]
  astromesh request <service> [json] [--key K] [--broadcast] [--url URL[,URL...]] [--timeout-ms MS]
  astromesh token [name]                          a new random token and its auth-file entry
  astromesh hash-token [token]                    the SHA-256 the auth file stores (token from stdin if not given)
  (echo and request take --token T, or ASTROMESH_TOKEN, when the hub has auth on)

hub options (flag, then environment variable, then --config file.json, then default):
${OPTION_SPECS.map((s) => `  ${(`${s.flag} <${s.kind}>`).padEnd(34)} ${s.env.padEnd(36)} ${s.help}`).join('\n')}
  --config <file>                    ASTROMESH_CONFIG                     JSON file with any of the options above`;

const URL_FLAG: ArgSpec = { flag: '--url', kind: 'string' };
const TOKEN_FLAG: ArgSpec = { flag: '--token', kind: 'string' };
const ECHO_FLAGS: ArgSpec[] = [URL_FLAG, TOKEN_FLAG, { flag: '--concurrency', kind: 'int' }, { flag: '--instance-id', kind: 'string' }];
const REQUEST_FLAGS: ArgSpec[] = [
  URL_FLAG,
  TOKEN_FLAG,
  { flag: '--key', kind: 'string' },
  { flag: '--broadcast', kind: 'boolean' },
  { flag: '--timeout-ms', kind: 'int' },
];
/** `astromesh hub` could not bind its port (held by another process, or still closing). */
const EXIT_CANNOT_LISTEN = 3;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  // `astromesh <command> --help` shows the usage too, before the command rejects --help as unknown.
  const specs = first === 'echo' ? ECHO_FLAGS : first === 'request' ? REQUEST_FLAGS : [...OPTION_SPECS, CONFIG_FLAG];
  if (first === 'help' || wantsHelp(first === 'echo' || first === 'request' || first === 'hub' ? rest : argv, specs)) {
    console.log(USAGE);
    return 0;
  }
  if (first === undefined || first.startsWith('-')) return runHub(argv);
  switch (first) {
    case 'hub':
      return runHub(rest);
    case 'echo':
      return runEcho(rest);
    case 'request':
      return runRequest(rest);
    case 'token':
      return runToken(rest);
    case 'hash-token':
      return runHashToken(rest);
    default:
      throw new InvalidOptionError(`unknown command ${JSON.stringify(first)} (astromesh help lists the commands)`);
  }
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
  log.info({ port, host, hubId: hub.hubId, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` }, 'listening');
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
  const log = createLogger(process.env.ASTROMESH_LOG_LEVEL ?? 'info', 'astromesh-echo');
  // The client library (and its HTTP stack) is loaded only by the commands that use it.
  const { meshage } = await import('../client/meshage.js');
  const node = meshage({ url: hubUrl(values), ...tokenOf(values), ...(instanceId ? { instanceId } : {}) });
  for (const s of positionals) node.register(s, (m) => ({ echoed: m }), { concurrency });
  node.worker.on('welcome', (w) => log.info({ hubId: w.hubId, instanceId: w.instanceId, services: positionals }, 'serving'));
  node.worker.on('protocolError', (err: Error, ref: unknown) => log.error({ ref, err: err.message }, 'hub refused'));
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
  const { Client } = await import('../client/client.js');
  const client = new Client({ url: hubUrl(values), ...tokenOf(values) });
  try {
    const opts = { ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
    const res = values.has('--broadcast')
      ? (await client.broadcast(service, key ?? '-', body, opts)).response
      : key !== undefined
        ? await client.requestKeyed(service, key, body, opts)
        : await client.request(service, body, opts);
    process.stdout.write(res.body);
    if (!res.body.toString().endsWith('\n')) process.stdout.write('\n');
    return 0;
  } catch (err) {
    if (err instanceof BusError) {
      console.error(`astromesh request: ${err.status} ${err.code}: ${err.message}`);
      return 1;
    }
    console.error(`astromesh request: ${(err as Error).message}`);
    return 1;
  } finally {
    await client.close();
  }
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
