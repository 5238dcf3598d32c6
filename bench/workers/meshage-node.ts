/**
 * Bench meshage node: an embedded hub serving meshage's README echo handler in-process.
 * usage: node meshage-node.js [clusterPort]; prints {"event":"ready","port":…} once listening.
 */
import { GrapevineCluster, init } from '../../server/meshage-node.js';

const clusterPort = process.argv[2] ?? String(20_000 + Math.floor(Math.random() * 12_000));
const node = await init(new GrapevineCluster(clusterPort, []), '127.0.0.1:0')
  .register('echo', (message) => ({ echoed: message }), { concurrency: 256 })
  .start();
console.log(JSON.stringify({ event: 'ready', port: node.httpPort, clusterPort: node.clusterPort }));
