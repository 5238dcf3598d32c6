/**
 * What an open dashboard costs the hub: GET /dashboard.json once a second, as the page does,
 * until killed. Prints one JSON line once the first poll is answered.
 */
const [url] = process.argv.slice(2);
if (!url) {
  console.error('usage: dashboard-poller <hub url>');
  process.exit(2);
}

let polls = 0;
async function poll(): Promise<void> {
  const r = await fetch(`${url}/dashboard.json`);
  if (!r.ok) throw new Error(`GET /dashboard.json: ${r.status}`);
  await r.arrayBuffer();
  if (polls++ === 0) console.log(JSON.stringify({ event: 'ready' }));
}

await poll();
setInterval(() => {
  poll().catch((err: unknown) => console.error(String(err)));
}, 1000);
