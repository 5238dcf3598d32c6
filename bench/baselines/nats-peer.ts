/**
 * PEER baseline: NATS request/reply, as a NATS user would build it.
 *   node nats-peer.js responder <natsUrl>            echo responder in queue group "workers"
 *   node nats-peer.js http-front <natsUrl>           plain node:http front: POST body → request → answer
 *   node nats-peer.js requester <natsUrl> <concurrency> <durationMs> <bodyBytes>
 */
import http from 'node:http';
import { connect } from 'nats';
import { cpuOf, Latencies } from '../drivers/latency.js';

const [role, natsUrl, ...rest] = process.argv.slice(2);
const nc = await connect({ servers: natsUrl!, noEcho: true });

if (role === 'responder') {
  nc.subscribe('echo', { queue: 'workers', callback: (_err, msg) => msg.respond(msg.data) });
  console.log(JSON.stringify({ event: 'ready' }));
} else if (role === 'http-front') {
  // The ~30 lines a NATS user writes to put HTTP in front of request/reply.
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      nc.request('echo', Buffer.concat(chunks), { timeout: 30_000 }).then(
        (m) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(m.data);
        },
        (err: Error) => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: err.message }));
        },
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    console.log(JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 }));
  });
} else if (role === 'requester') {
  const [c, d, size] = rest;
  const body = Buffer.from(JSON.stringify({ data: 'x'.repeat(Math.max(0, Number(size) - 11)) }));
  const lat = new Latencies();
  let errors = 0;
  const end = performance.now() + Number(d);
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await nc.request('echo', body, { timeout: 10_000 });
        lat.add((performance.now() - t) * 1000);
      } catch {
        errors++;
      }
    }
  };
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  await Promise.all(Array.from({ length: Number(c) }, loop));
  const elapsed = (performance.now() - start) / 1000;
  const loadCpuUs = cpuOf(process.cpuUsage(cpuStart));
  const [p50, p99, p999] = lat.percentiles([50, 99, 99.9]);
  console.log(JSON.stringify({ requests: lat.count, errors, seconds: elapsed, rps: lat.count / elapsed, p50us: p50, p99us: p99, p999us: p999, loadCpuUs }));
  await nc.close();
  process.exit(0);
}
