/**
 * Discovery by DNS, as on Kubernetes: every hub is seeded with one name that resolves to every
 * hub's address (a headless Service), all on one port. The test's own DNS server answers for
 * the name, with hubs bound on 127.0.0.2–127.0.0.4, and changes its answer mid-test.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { TestDns } from '../helpers/dns-server.js';
import { MESH_FLAGS } from '../helpers/mesh.js';
import { fixedPort, type HubProc, startHub, stats, stopAll, waitUntil } from '../helpers/processes.js';

const NAME = 'hubs.mesh.test';

async function openPeers(h: HubProc): Promise<string[]> {
  return (await stats(h)).mesh.peers
    .filter((p: { state: string }) => p.state === 'open')
    .map((p: { hubId: string }) => p.hubId)
    .sort();
}

describe('discovery by DNS', { timeout: 60_000 }, () => {
  const cleanups: (() => void)[] = [];
  after(async () => {
    for (const c of cleanups) c();
    await stopAll();
  });

  it('links every address a seed name yields, its own excluded, and follows a changed answer', async () => {
    const dns = await TestDns.start(NAME);
    cleanups.push(() => dns.close());
    dns.addresses = ['127.0.0.2', '127.0.0.3'];
    // Hubs of a StatefulSet share one port on many addresses; the port is the test's pick.
    const port = fixedPort();
    const flags = { ...MESH_FLAGS, port, peers: `${NAME}:${port}`, 'dns-servers': dns.address, 'dns-refresh-ms': 300 };
    const h2 = await startHub({ ...flags, host: '127.0.0.2', 'hub-id': 'dns-2' });
    const h3 = await startHub({ ...flags, host: '127.0.0.3', 'hub-id': 'dns-3' });
    // The fourth hub is not in the answer yet, and has no seed of its own.
    const h4 = await startHub({ ...MESH_FLAGS, port, host: '127.0.0.4', 'hub-id': 'dns-4' });
    for (const h of [h2, h3, h4]) h.url = `http://${h === h2 ? '127.0.0.2' : h === h3 ? '127.0.0.3' : '127.0.0.4'}:${port}`;
    await waitUntil(async () => (await openPeers(h2)).join() === 'dns-3' && (await openPeers(h3)).join() === 'dns-2', 5000, 'dns-2 and dns-3 linked');
    // Seeded by name, each is ready once the name resolved and its addresses synced.
    for (const h of [h2, h3]) await waitUntil(async () => (await fetch(`${h.url}/readyz`)).status === 200, 3000, `${h.url} ready`);
    const seen = (await stats(h2)).mesh;
    assert.deepEqual(seen.seedNames, [{ name: `${NAME}:${port}`, addresses: [`127.0.0.2:${port}`, `127.0.0.3:${port}`] }]);
    assert.deepEqual(
      seen.dialing.map((d: { address: string }) => d.address),
      [`127.0.0.3:${port}`],
      'its own address is not dialled',
    );
    assert.deepEqual(await openPeers(h4), []);
    // The answer grows: within the refresh interval the others dial the new address.
    dns.addresses = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
    await waitUntil(async () => (await openPeers(h4)).join() === 'dns-2,dns-3', 5000, 'dns-4 linked to both after re-resolution');
    assert.ok(dns.queries >= 4, `${dns.queries} queries`);
    // It shrinks: the dropped address is no longer a seed (it stays linked while reachable).
    dns.addresses = ['127.0.0.2', '127.0.0.3'];
    await waitUntil(
      async () => (await stats(h2)).mesh.dialing.find((d: { address: string }) => d.address === `127.0.0.4:${port}`)?.seed === false,
      5000,
      'the dropped address no longer a seed',
    );
  });
});
