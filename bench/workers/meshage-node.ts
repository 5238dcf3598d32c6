/**
 * Bench meshage node: an embedded hub serving meshage's README echo handler in-process, or with
 * `bytes`, a handler that echoes the body as it came (no JSON), to part the hub's in-process path
 * from the handler's JSON work.
 * usage: node meshage-node.js [meshage|bytes] [clusterPort]; prints {"event":"ready","port":…}.
 */
import { GrapevineCluster, init } from '../../server/meshage-node.js';

const [kind = 'meshage', port] = process.argv.slice(2);
const clusterPort = port ?? String(20_000 + Math.floor(Math.random() * 12_000));
const node = init(new GrapevineCluster(clusterPort, []), '127.0.0.1:0');
if (kind === 'meshage') node.register('echo', (message) => ({ echoed: message }), { concurrency: 256 });
await node.start();
if (kind === 'bytes')
  node.hub!.local.handle('echo', (job) => ({ body: job.body, contentType: job.contentType ?? 'application/json' }), { concurrency: 256, weight: 1 });
console.log(JSON.stringify({ event: 'ready', port: node.httpPort, clusterPort: node.clusterPort }));
