/**
 * Why a listen failed. uWS reports a failed listen with `false` and nothing else, so the
 * kernel's socket tables (/proc/net/tcp and tcp6, Linux) are read to tell an owner that is
 * still serving from connections of a hub that just exited.
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';

/**
 * `listener`: a listening socket holds the port; `closing`: only connections that are still
 * closing (TIME_WAIT and the like) hold it; `unknown`: the tables do not say.
 */
export type ListenFailure = 'listener' | 'closing' | 'unknown';

export class ListenError extends Error {
  constructor(
    readonly reason: ListenFailure,
    readonly host: string,
    readonly port: number,
    message: string,
  ) {
    super(message);
    this.name = 'ListenError';
  }
}

/** One row of /proc/net/tcp or /proc/net/tcp6: the local end and the TCP state. */
export interface SocketRow {
  address: string;
  family: 'ipv4' | 'ipv6';
  port: number;
  state: number;
}

const LISTEN = 0x0a;
const TIME_WAIT = 0x06;
/** Closing states that keep a local port bound after its process is gone. */
const CLOSING = new Set([0x04, 0x05, TIME_WAIT, 0x09, 0x0b]); // FIN_WAIT1, FIN_WAIT2, TIME_WAIT, LAST_ACK, CLOSING

/** Parses the text of /proc/net/tcp or /proc/net/tcp6; lines it does not understand are skipped. */
export function parseSocketTable(text: string): SocketRow[] {
  const rows: SocketRow[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\d+:\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+\S+\s+([0-9A-Fa-f]{2})\s/.exec(line);
    if (!m) continue;
    const hex = m[1]!;
    const v4 = hex.length === 8;
    rows.push({ address: v4 ? ipv4(hex) : ipv6(hex), family: v4 ? 'ipv4' : 'ipv6', port: Number.parseInt(m[2]!, 16), state: Number.parseInt(m[3]!, 16) });
  }
  return rows;
}

/** The kernel prints each 32-bit word of an address in host order: little-endian here. */
function wordBytes(hex: string): number[] {
  return [6, 4, 2, 0].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
}

function ipv4(hex: string): string {
  return wordBytes(hex).join('.');
}

function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 32; w += 8) bytes.push(...wordBytes(hex.slice(w, w + 8)));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

const WILDCARDS = ['0.0.0.0', '::'];

/**
 * Which rows conflict with a listen on `host:port`: same port, and the same address or a
 * wildcard on either side. A host name matches every address: it is not resolved here.
 */
export function endpointFilter(host: string, port: number): (row: SocketRow) => boolean {
  const family = isIP(host);
  if (family === 0 || WILDCARDS.includes(host)) return (row) => row.port === port;
  const list = new BlockList();
  list.addAddress(host, family === 4 ? 'ipv4' : 'ipv6');
  list.addAddress('0.0.0.0', 'ipv4');
  list.addAddress('::', 'ipv6');
  return (row) => row.port === port && list.check(row.address, row.family);
}

/** Classifies the rows that hold `host:port` (see ListenFailure). */
export function classify(rows: SocketRow[], host: string, port: number): { reason: ListenFailure; timeWait: number; closing: number } {
  const mine = rows.filter(endpointFilter(host, port));
  if (mine.some((r) => r.state === LISTEN)) return { reason: 'listener', timeWait: 0, closing: 0 };
  const closing = mine.filter((r) => CLOSING.has(r.state));
  const timeWait = closing.filter((r) => r.state === TIME_WAIT).length;
  return { reason: closing.length > 0 ? 'closing' : 'unknown', timeWait, closing: closing.length };
}

function readTable(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // no such table (no IPv6, not Linux)
  }
}

/** Builds the error for a failed listen on `host:port`, with the reason when the kernel tells. */
export function listenError(host: string, port: number): ListenError {
  const rows = [...parseSocketTable(readTable('/proc/net/tcp')), ...parseSocketTable(readTable('/proc/net/tcp6'))];
  const { reason, timeWait, closing } = classify(rows, host, port);
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (reason) {
    case 'listener':
      return new ListenError(reason, host, port, `cannot listen on ${where}: the port is held by a listening socket (another process)`);
    case 'closing': {
      const others = closing > timeWait ? ` and ${closing - timeWait} other closing` : '';
      return new ListenError(
        reason,
        host,
        port,
        `cannot listen on ${where}: the port is held only by ${timeWait} TIME_WAIT${others} socket(s) of connections closed from it by a process that just exited; on this kernel that blocks the port for about 60 s`,
      );
    }
    default:
      return new ListenError(
        reason,
        host,
        port,
        `cannot listen on ${where}${port !== 0 && port < 1024 ? ' (ports below 1024 need privileges)' : ''}; the address may not belong to this machine`,
      );
  }
}
