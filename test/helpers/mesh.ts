/** Meshes of hub processes for tests. */
import { type HubProc, startHub, stats, waitUntil } from './processes.js';

/** Fast failure detection, so a dead peer is noticed in well under a second. */
export const MESH_FLAGS = {
  'peer-timeout-ms': 600,
  'peer-reconnect-max-ms': 200,
  'peer-sync-timeout-ms': 2000,
  'default-timeout-ms': 5000,
  'ping-interval-ms': 200,
  'pong-timeout-ms': 600,
};

/** Starts hubs `ids`, the first alone and each later one seeded with the first only (the rest come by gossip). */
export async function startMesh(ids: string[], flags: Record<string, string | number> = {}, statsToken?: string): Promise<HubProc[]> {
  const hubs: HubProc[] = [];
  for (const id of ids) {
    const seed: Record<string, string> = hubs[0] ? { peers: `127.0.0.1:${hubs[0].port}` } : {};
    hubs.push(await startHub({ ...MESH_FLAGS, 'hub-id': id, ...seed, ...flags }));
  }
  await waitUntil(
    async () => {
      for (const h of hubs) {
        const open = (await stats(h, statsToken)).mesh.peers.filter((p: { state: string }) => p.state === 'open').length;
        if (open !== hubs.length - 1) return false;
      }
      return true;
    },
    8000,
    'a full mesh',
  );
  return hubs;
}

/** Waits until every hub has the same ring for `service`, with `n` members; returns it. */
export async function converged(
  hubs: HubProc[],
  service: string,
  n: number,
  statsToken?: string,
): Promise<{ instanceId: string; hubId: string; weight: number }[]> {
  let members: { instanceId: string; hubId: string; weight: number }[] = [];
  await waitUntil(
    async () => {
      const rings = await Promise.all(hubs.map(async (h) => (await stats(h, statsToken)).services.find((s: { name: string }) => s.name === service)?.ring));
      if (rings.some((r) => !r || r.members.length !== n)) return false;
      if (new Set(rings.map((r) => r.digest)).size !== 1) return false;
      members = rings[0].members;
      return true;
    },
    8000,
    `every hub to agree on the ring of ${service}`,
  );
  return members;
}
