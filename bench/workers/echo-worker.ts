/**
 * Bench worker built on the client library: echoes body and content type back.
 * usage: node echo-worker.js <hubUrl> <service> [concurrency] [sessions] [idleServicePrefix]
 * With sessions > 1 the process opens that many worker sessions; session 0 serves <service>,
 * the others each serve one idle service `<idleServicePrefix><n>` (the scale scenario).
 */
import { type IncomingJob, Worker } from '../../client/worker.js';

const [url, service, concurrencyArg = '256', sessionsArg = '1', idlePrefix = 'idle-'] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const sessions = Number(sessionsArg);
const offset = Number(process.env.BENCH_IDLE_OFFSET ?? 0);

const echo = (job: IncomingJob) => ({ body: job.body, contentType: job.contentType ?? 'application/json' });
const workers: Worker[] = [];
for (let i = 0; i < sessions; i++) {
  const w = new Worker({ url: url!, reconnectMinMs: 100, ...(process.env.BENCH_TOKEN ? { token: process.env.BENCH_TOKEN } : {}) });
  w.handle(i === 0 && offset === 0 ? service! : `${idlePrefix}${offset + i}`, echo, { concurrency });
  workers.push(w);
}
await Promise.all(workers.map((w) => w.start()));
console.log(JSON.stringify({ event: 'ready', sessions }));
process.on('SIGTERM', () => process.exit(0));
