/**
 * Bench scraper: reads a hub's /metrics once a second, as Prometheus would (more often than its
 * usual 15 s), so the cost of collecting lands in the hub's CPU per request.
 * usage: node scraper.js <hubUrl> [intervalMs]
 */
const [url, intervalArg = '1000'] = process.argv.slice(2);

let scrapes = 0;
async function scrape(): Promise<void> {
  const r = await fetch(`${url}/metrics`);
  const text = await r.text();
  if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}: ${text.slice(0, 200)}`);
  if (scrapes++ === 0) process.stdout.write(`${JSON.stringify({ event: 'ready', bytes: text.length })}\n`);
}

await scrape();
setInterval(() => {
  scrape().catch((err: Error) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
}, Number(intervalArg));
