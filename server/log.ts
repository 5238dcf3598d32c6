/**
 * The hub's logger: JSON lines on stdout (pino), one line per lifecycle event, never per request.
 * `pretty` writes the same events as aligned text for a terminal.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function createLogger(level: string, name = 'astromesh', format: LogFormat = 'json'): Logger {
  const options = { name, level, base: { pid: process.pid } };
  return format === 'pretty' ? pino(options, prettyStream()) : pino(options);
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'pid', 'name', 'msg', 'hostname']);

/** `12:04:05.123 INFO  listening port=3000 url=http://…`: the JSON line's fields, as text. */
export function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = new Date(typeof o.time === 'number' ? o.time : Date.now()).toISOString().slice(11, 23);
  const fields = Object.entries(o)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${LEVELS[o.level as number] ?? String(o.level)} ${String(o.msg ?? '')}${fields ? `  ${fields}` : ''}`;
}

function prettyStream(): DestinationStream {
  return { write: (line: string) => process.stdout.write(`${prettyLine(line.trimEnd())}\n`) };
}
