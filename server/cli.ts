#!/usr/bin/env node
/**
 * astromesh hub [options]            start a hub (the default command)
 * astromesh echo <service...>        a worker answering meshage-style {"echoed": message}
 * astromesh request <service> [json] send one request and print the answer
 */
import { BusError } from '../client/errors.js';
import { Hub } from './hub.js';
import { ListenError } from './listen-error.js';
import { createLogger } from './log.js';
import { InvalidOptionError, OPTION_SPECS, optionsFromSources, resolveHubOptions } from './options.js';

const USAGE = `usage:
  astromesh hub [options]                         start a hub (default command)
  astromesh echo <service...> [--url URL] [--concurrency N] [--instance-id ID]
  astromesh request <service> [json] [--key K] [--broadcast] [--url URL] [--timeout-ms MS]

hub options (flag, then environment variable, then --config file.json, then default):
${OPTION_SPECS.map((s) => `  ${(`${s.flag} <${s.kind}>`).padEnd(34)} ${s.env.padEnd(36)} ${s.help}`).join('\n')}
  --config <file>                    ASTROMESH_CONFIG                     JSON file with any of the options above`;

/** `astromesh hub` could not bind its port (held by another process, or still closing). */
const EXIT_CANNOT_LISTEN = 3;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'help' || first === '--help' || first === '-h') {
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
    default:
      console.error(`unknown command ${first}\n${USAGE}`);
      return 2;
  }
}

async function runHub(args: string[]): Promise<number> {
  let hub: Hub;
  try {
    hub = new Hub(resolveHubOptions(optionsFromSources(args, process.env)));
  } catch (err) {
    if (err instanceof InvalidOptionError) {
      console.error(`astromesh: ${err.message}`);
      return 2;
    }
    throw err;
  }
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
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
    log.warn({ host }, 'auth is off and the hub is exposed beyond this machine: anyone who can reach it can call and serve any service');
  }
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

function flags(args: string[]): { positional: string[]; named: Map<string, string> } {
  const positional: string[] = [];
  const named = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    if (eq !== -1) named.set(a.slice(2, eq), a.slice(eq + 1));
    else if (a === '--broadcast') named.set('broadcast', 'true');
    else named.set(a.slice(2), args[++i] ?? '');
  }
  return { positional, named };
}

function hubUrl(named: Map<string, string>): string {
  return named.get('url') ?? process.env.ASTROMESH_URL ?? 'http://127.0.0.1:3000';
}

async function runEcho(args: string[]): Promise<number> {
  const { positional, named } = flags(args);
  if (positional.length === 0) {
    console.error('astromesh echo: name at least one service');
    return 2;
  }
  const log = createLogger(process.env.ASTROMESH_LOG_LEVEL ?? 'info', 'astromesh-echo');
  const concurrency = Number(named.get('concurrency') ?? 64);
  const instanceId = named.get('instance-id');
  // The client library (and its HTTP stack) is loaded only by the commands that use it.
  const { meshage } = await import('../client/meshage.js');
  const node = meshage({ url: hubUrl(named), ...(instanceId ? { instanceId } : {}) });
  for (const s of positional) node.register(s, (m) => ({ echoed: m }), { concurrency });
  node.worker.connection.on('welcome', (w) => log.info({ hubId: w.hubId, instanceId: w.instanceId, services: positional }, 'serving'));
  node.worker.connection.on('protocolError', (err: Error, ref: unknown) => log.error({ ref, err: err.message }, 'hub refused'));
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
  const { positional, named } = flags(args);
  const [service, body = '{}'] = positional;
  if (!service) {
    console.error('astromesh request: name a service');
    return 2;
  }
  const { Client } = await import('../client/client.js');
  const client = new Client({ url: hubUrl(named) });
  const key = named.get('key');
  const timeout = named.get('timeout-ms');
  try {
    const opts = { ...(timeout ? { timeoutMs: Number(timeout) } : {}) };
    const res = named.has('broadcast')
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
    console.error(err);
    process.exit(1);
  },
);
