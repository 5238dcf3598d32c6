/**
 * Many worker sessions from one process, for the mesh scale bench: `count` workers with
 * instanceIds `<prefix><n>`, worker n connected to hub n mod the number of URLs, each serving
 * `echo`. With a churn interval, one random worker leaves and comes back every interval (its
 * membership goes round the mesh twice).
 * usage: node fleet.js <url,url,...> <count> <prefix> [churnMs]
 */
import { Worker } from '../../client/worker.js';

const [urlsArg, countArg, prefix = 'fleet-', churnArg = '0'] = process.argv.slice(2);
const urls = urlsArg!.split(',');
const count = Number(countArg);
const churnMs = Number(churnArg);
const echo = () => ({ body: '{}' });

function make(i: number): Worker {
  return new Worker({ url: urls[i % urls.length]!, instanceId: `${prefix}${i}`, reconnectMinMs: 100 }).handle('echo', echo, { concurrency: 4 });
}

const workers = Array.from({ length: count }, (_, i) => make(i));
await Promise.all(workers.map((w) => w.start()));
console.log(JSON.stringify({ event: 'ready', count }));
if (churnMs > 0) {
  setInterval(() => {
    const i = Math.floor(Math.random() * count);
    workers[i]!.close();
    workers[i] = make(i);
    void workers[i]!.start();
  }, churnMs);
}
process.on('SIGTERM', () => process.exit(0));
