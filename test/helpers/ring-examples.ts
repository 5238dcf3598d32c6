/**
 * The partitioning examples PROTOCOL.md shows, computed with the hub's own ring code. The doc
 * test checks that PROTOCOL.md holds exactly these tables. Run this file to print them:
 *
 *   node dist/test/helpers/ring-examples.js
 */
import { fileURLToPath } from 'node:url';
import { memberSeed, murmur3, type RingMember, rank, ringDigest, score } from '../../server/ring.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Reference inputs for murmur3_x86_32; the first four are the widely published vectors. */
export const MURMUR_VECTORS: readonly [string, number][] = [
  ['', 0],
  ['', 1],
  ['hello', 0],
  ['The quick brown fox jumps over the lazy dog', 0],
  ['abc', 0],
  ['abcd', 0],
  ['worker-a', 0],
];

export const EXAMPLE_WORKERS: readonly { instanceId: string; weight: number }[] = [
  { instanceId: 'worker-a', weight: 1 },
  { instanceId: 'worker-b', weight: 1 },
  { instanceId: 'worker-c', weight: 2 },
];
export const EXAMPLE_KEYS: readonly string[] = ['4985', 'user-42', 'ключ'];

/** Table rows of the murmur3 reference values. */
export function murmurRows(): string {
  return MURMUR_VECTORS.map(([s, seed]) => {
    const h = murmur3(utf8(s), seed);
    return `| ${JSON.stringify(s)} | ${seed} | ${h} (0x${h.toString(16).padStart(8, '0')}) |`;
  }).join('\n');
}

/** The worked example: seeds, hashes and scores per key, then each key's ranking. */
export function partitionExample(): string {
  const members: RingMember[] = EXAMPLE_WORKERS.map((w) => ({ instanceId: w.instanceId, weight: w.weight, seed: memberSeed(w.instanceId) }));
  const rows: string[] = [
    `| | ${EXAMPLE_WORKERS.map((w) => `${w.instanceId} (weight ${w.weight})`).join(' | ')} |`,
    `|---|${EXAMPLE_WORKERS.map(() => '---').join('|')}|`,
    `| seed | ${members.map((m) => m.seed).join(' | ')} |`,
  ];
  for (const key of EXAMPLE_KEYS) {
    rows.push(`| h(${JSON.stringify(key)}) | ${members.map((m) => murmur3(utf8(key), m.seed)).join(' | ')} |`);
    rows.push(`| score(${JSON.stringify(key)}) | ${members.map((m) => score(utf8(key), m.seed, m.weight).toFixed(6)).join(' | ')} |`);
  }
  const rankings = EXAMPLE_KEYS.map((key) => {
    const bytes = [...utf8(key)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return `- \`${key}\` (UTF-8 \`${bytes}\`): ${rank(key, members)
      .map((m) => m.instanceId)
      .join(' > ')}`;
  });
  return `${rows.join('\n')}\n\nThe rankings, owner first:\n\n${rankings.join('\n')}`;
}

/** Memberships whose digests PROTOCOL.md lists. */
export const DIGEST_EXAMPLES: readonly (readonly { instanceId: string; weight: number }[])[] = [
  [],
  [{ instanceId: 'worker-a', weight: 1 }],
  EXAMPLE_WORKERS,
  [{ instanceId: 'worker-a', weight: 1.5 }],
];

/** The digest table, and the bytes hashed for the one-member ring. */
export function digestExample(): string {
  const rows = DIGEST_EXAMPLES.map((ms) => {
    const d = ringDigest(ms);
    const label = ms.length === 0 ? '(empty)' : ms.map((m) => `${m.instanceId} ${m.weight}`).join(', ');
    return `| ${label} | ${d} (0x${d.toString(16).padStart(8, '0')}) |`;
  });
  const one = [...utf8('worker-a'), 0, ...new Uint8Array(new Float64Array([1]).buffer).reverse()];
  const bytes = one.map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return `| members (instanceId weight) | digest |\n|---|---|\n${rows.join('\n')}\n\nThe bytes hashed for \`worker-a 1\`: \`${bytes}\`.`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${murmurRows()}\n\n${partitionExample()}\n\n${digestExample()}\n`);
}
