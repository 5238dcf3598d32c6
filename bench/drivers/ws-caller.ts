/**
 * Load driver for WebSocket callers: keeps `concurrency` requests in flight over one
 * multiplexed astromesh WebSocket for `durationMs`, then prints JSON results.
 * usage: node ws-caller.js <hubUrl> <service> <concurrency> <durationMs> <bodyBytes>
 */
import { Client } from '../../client/client.js';
import { cpuOf, Latencies } from './latency.js';

const [url, service, c, d, size] = process.argv.slice(2);
const concurrency = Number(c);
const durationMs = Number(d);
const body = Buffer.from(JSON.stringify({ data: 'x'.repeat(Math.max(0, Number(size) - 11)) }));
const client = new Client({ url: url!, transport: 'ws' });
await client.request(service!, body);
const lat = new Latencies();
let errors = 0;
const end = performance.now() + durationMs;
async function loop(): Promise<void> {
  while (performance.now() < end) {
    const t = performance.now();
    try {
      await client.request(service!, body);
      lat.add((performance.now() - t) * 1000);
    } catch {
      errors++;
    }
  }
}
const start = performance.now();
const cpuStart = process.cpuUsage();
await Promise.all(Array.from({ length: concurrency }, loop));
const elapsed = (performance.now() - start) / 1000;
const loadCpuUs = cpuOf(process.cpuUsage(cpuStart));
const [p50, p99, p999] = lat.percentiles([50, 99, 99.9]);
console.log(JSON.stringify({ requests: lat.count, errors, seconds: elapsed, rps: lat.count / elapsed, p50us: p50, p99us: p99, p999us: p999, loadCpuUs }));
await client.close();
process.exit(0);
