/** The hub's logger: JSON lines on stdout (pino), one line per lifecycle event, never per request. */
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'astromesh'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
