/**
 * Bench legacy worker: `loops` long-poll loops, as an original-hub worker would run them
 * (GET /service/{name}/jobs, then POST /jobs/{id} with the original request as the answer).
 * usage: node longpoll-worker.js <hubUrl> <service> [loops]
 */
import { Pool } from 'undici';

const [url, service, loopsArg = '64'] = process.argv.slice(2);
const loops = Number(loopsArg);
const pool = new Pool(url!, { connections: loops * 2, pipelining: 1 });
const path = `/service/${service}/jobs?wait=5`;

async function loop(): Promise<void> {
  for (;;) {
    const r = await pool.request({ path, method: 'GET' });
    if (r.statusCode !== 200) {
      await r.body.dump();
      continue;
    }
    const env = (await r.body.json()) as { id: string; originalRequest: unknown };
    const reply = await pool.request({
      path: `/jobs/${env.id}`,
      method: 'POST',
      body: JSON.stringify(env.originalRequest),
      headers: { 'content-type': 'application/json' },
    });
    await reply.body.dump();
  }
}

for (let i = 0; i < loops; i++) void loop();
console.log(JSON.stringify({ event: 'ready' }));
process.on('SIGTERM', () => process.exit(0));
