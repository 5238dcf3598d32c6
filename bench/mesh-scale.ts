/**
 * The mesh at scale, by simulation on this machine (bench only, never in tests or CI):
 * `npm run bench:mesh-scale [-- --hubs 4,8,16,32] [--workers 256] [--window 5]`.
 * For each size N it runs N hubs as processes, a few hundred workers from a handful of
 * processes spread over them, and measures: how long a new hub takes to converge, membership
 * traffic per hub per second at rest and under worker churn, hub memory per peer link, and how
 * many keys move when a hub with workers dies. Prints a table and writes bench/out/mesh-scale.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitOnInvalidOption, parseCount, parseFlags } from '../server/args.js';
import { memberSeed, ownerOf } from '../server/ring.js';
import { type BenchProc, peakRss, start } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const opts = exitOnInvalidOption('bench:mesh-scale', () => {
  const { values } = parseFlags(process.argv.slice(2), [
    { flag: '--hubs', kind: 'string' },
    { flag: '--workers', kind: 'int' },
    { flag: '--window', kind: 'int' },
  ]);
  return {
    sizes: ((values.get('--hubs') as string | undefined) ?? '4,8,16,32').split(',').map((s) => parseCount('--hubs', s, 2)),
    workers: parseCount('--workers', (values.get('--workers') as string | undefined) ?? '256', 1),
    windowS: parseCount('--window', (values.get('--window') as string | undefined) ?? '5', 1),
  };
});
const FLEET_PROCESSES = 4;
const CHURN_MS = 100;

interface Hub {
  proc: BenchProc;
  url: string;
  id: string;
}
// biome-ignore lint/suspicious/noExplicitAny: /stats is read field by field
type Stats = any;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stats = async (h: Hub): Promise<Stats> => (await fetch(`${h.url}/stats`)).json();

async function startHub(id: string, seed?: Hub): Promise<Hub> {
  const args = [path.join(here, '../server/cli.js'), 'hub', '--port', '0', '--hub-id', id, '--log-level', 'info', '--peer-timeout-ms', '2000'];
  if (seed) args.push('--peers', seed.url.replace('http://', ''));
  const proc = start(null, process.execPath, args);
  const line = await proc.line((l) => l.msg === 'listening', 20_000);
  return { proc, url: `http://127.0.0.1:${line.port as number}`, id };
}

async function until(what: string, ms: number, fn: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await fn()) return performance.now() - t0;
    if (performance.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

/** Every hub links to every other and has `members` workers in the echo ring, with one digest. */
async function converged(hubs: Hub[], members: number): Promise<boolean> {
  const all = await Promise.all(hubs.map(stats));
  const digests = new Set<string>();
  for (const st of all) {
    if (st.mesh.peers.filter((p: { state: string }) => p.state === 'open').length !== hubs.length - 1) return false;
    const ring = st.services.find((s: { name: string }) => s.name === 'echo')?.ring;
    if (!ring || ring.members.length !== members) return false;
    digests.add(ring.digest);
  }
  return digests.size === 1;
}

/** Peer-link bytes in and out of every hub, summed per hub. */
async function linkBytes(hubs: Hub[]): Promise<number[]> {
  return Promise.all(
    hubs.map(async (h) => (await stats(h)).mesh.peers.reduce((n: number, p: { bytesIn: number; bytesOut: number }) => n + p.bytesIn + p.bytesOut, 0)),
  );
}

async function trafficPerHub(hubs: Hub[], seconds: number): Promise<number> {
  const a = await linkBytes(hubs);
  await sleep(seconds * 1000);
  const b = await linkBytes(hubs);
  return b.reduce((n, v, i) => n + v - a[i]!, 0) / hubs.length / seconds;
}

function owners(members: { instanceId: string; weight: number }[], keys: string[]): string[] {
  const ring = members.map((m) => ({ ...m, seed: memberSeed(m.instanceId) }));
  return keys.map((k) => ownerOf(k, ring)!.instanceId);
}

async function measure(n: number) {
  const procs: BenchProc[] = [];
  try {
    const hubs: Hub[] = [await startHub('scale-0')];
    for (let i = 1; i < n - 1; i++) hubs.push(await startHub(`scale-${i}`, hubs[0]));
    for (const h of hubs) procs.push(h.proc);
    const urls = hubs.map((h) => h.url).join(',');
    const per = Math.ceil(opts.workers / FLEET_PROCESSES);
    for (let f = 0; f < FLEET_PROCESSES; f++) {
      const p = start(null, process.execPath, [path.join(here, 'workers/fleet.js'), urls, String(per), `f${f}-`]);
      procs.push(p);
      await p.line((l) => l.event === 'ready', 60_000);
    }
    const total = per * FLEET_PROCESSES;
    await until('the mesh to converge', 60_000, () => converged(hubs, total));
    await sleep(500);
    const restBytes = await trafficPerHub(hubs, opts.windowS);
    const rss = hubs.map((h) => peakRss(h.proc.pid) / 2 ** 20);
    // A new hub joins: seeded with one hub, it must link to every hub and agree on every ring.
    const t0 = performance.now();
    const newcomer = await startHub(`scale-${n - 1}`, hubs[0]);
    procs.push(newcomer.proc);
    const all = [...hubs, newcomer];
    await until('the newcomer to converge', 60_000, () => converged(all, total));
    const convergeMs = performance.now() - t0;
    // Churn: one worker leaves and comes back every CHURN_MS.
    const churn = start(null, process.execPath, [path.join(here, 'workers/fleet.js'), all.map((h) => h.url).join(','), '16', 'churn-', String(CHURN_MS)]);
    procs.push(churn);
    await churn.line((l) => l.event === 'ready', 60_000);
    const churnBytes = await trafficPerHub(all, opts.windowS);
    churn.child.kill('SIGKILL');
    await until('churn to settle', 60_000, () => converged(all, total));
    // A hub with workers dies: the keys that move are those of its workers.
    const keys = Array.from({ length: 10_000 }, (_, i) => `key-${i}`);
    const ring0 = (await stats(all[0]!)).services.find((s: { name: string }) => s.name === 'echo').ring.members;
    const victim = all[1]!;
    const victimShare = ring0.filter((m: { hubId: string }) => m.hubId === victim.id).length / ring0.length;
    victim.proc.child.kill('SIGKILL');
    const live = all.filter((h) => h !== victim);
    const lost = ring0.filter((m: { hubId: string }) => m.hubId === victim.id).length;
    await until('the rings to drop the dead hub', 60_000, async () => {
      const st = await stats(live[0]!);
      return st.services.find((s: { name: string }) => s.name === 'echo').ring.members.length === total - lost;
    });
    const ring1 = (await stats(live[0]!)).services.find((s: { name: string }) => s.name === 'echo').ring.members;
    const before = owners(ring0, keys);
    const after = owners(ring1, keys);
    const moved = before.filter((o, i) => o !== after[i]).length / keys.length;
    const movedElsewhere = before.filter((o, i) => o !== after[i] && ring1.some((m: { instanceId: string }) => m.instanceId === o)).length;
    return {
      hubs: n,
      workers: total,
      convergeMs: Math.round(convergeMs),
      restBytesPerHubPerS: Math.round(restBytes),
      churnBytesPerHubPerS: Math.round(churnBytes),
      churnEventsPerS: 2 * (1000 / CHURN_MS),
      meanHubRssMB: Math.round((rss.reduce((a, b) => a + b, 0) / rss.length) * 10) / 10,
      keysMoved: Math.round(moved * 1000) / 10,
      deadHubShare: Math.round(victimShare * 1000) / 10,
      movedBetweenLiveWorkers: movedElsewhere,
    };
  } finally {
    for (const p of procs) await p.stop();
  }
}

const results = [];
for (const n of opts.sizes) {
  process.stderr.write(`measuring ${n} hubs…\n`);
  results.push(await measure(n));
}
const head =
  "| hubs | workers | new hub converges (ms) | membership bytes/s per hub at rest | under churn (20 events/s) | mean hub RSS MB | keys moved when a hub dies (%) | its workers' share (%) | keys moved between live workers |";
const rows = results.map(
  (r) =>
    `| ${r.hubs} | ${r.workers} | ${r.convergeMs} | ${r.restBytesPerHubPerS} | ${r.churnBytesPerHubPerS} | ${r.meanHubRssMB} | ${r.keysMoved} | ${r.deadHubShare} | ${r.movedBetweenLiveWorkers} |`,
);
console.log(
  [
    head,
    `|${head
      .split('|')
      .slice(1, -1)
      .map(() => '---')
      .join('|')}|`,
    ...rows,
  ].join('\n'),
);
mkdirSync(path.join(repoRoot, 'bench/out'), { recursive: true });
writeFileSync(path.join(repoRoot, 'bench/out/mesh-scale.json'), JSON.stringify({ date: new Date().toISOString(), opts, results }, null, 2));
process.exit(0);
