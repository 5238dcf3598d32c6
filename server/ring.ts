/**
 * Consistent hashing by weighted rendezvous (highest random weight). Every hub, in any
 * language, ranks the workers of a stream for a key the same way (PROTOCOL.md, "Partitioning"):
 *
 *   seed(w)     = murmur3_32(utf8(instanceId), 0)
 *   h(key, w)   = murmur3_32(utf8(key), seed(w))
 *   u           = (h + 0.5) / 2^32                       (uniform in (0, 1))
 *   score(w)    = -weight(w) / ln(u)
 *
 * The highest score owns the key; ties go to the smaller instanceId (byte order). The ranking
 * is the failover order. Weights are exact, and a join or leave moves only the keys the
 * changed worker wins or loses (the theoretical minimum).
 */

/** A ring member: anything with an instance id, a weight and its precomputed seed. */
export interface RingMember {
  readonly instanceId: string;
  readonly weight: number;
  readonly seed: number;
}

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit of `data` with `seed`, as an unsigned integer. */
export function murmur3(data: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const n = data.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // The tail: up to three bytes, the last one mixed in first (murmur3's fall-through switch).
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= data[blocks + 2]! << 16;
    if (tail >= 2) k ^= data[blocks + 1]! << 8;
    k ^= data[blocks]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A member's hash seed, computed once when it joins. */
export function memberSeed(instanceId: string): number {
  return murmur3(encoder.encode(instanceId), 0);
}

/** A member's score for a key already encoded as UTF-8. */
export function score(keyBytes: Uint8Array, seed: number, weight: number): number {
  const u = (murmur3(keyBytes, seed) + 0.5) / 4294967296;
  return -weight / Math.log(u);
}

/** The member that owns `key`, or null when there are none. */
export function ownerOf<M extends RingMember>(key: string, members: readonly M[]): M | null {
  const bytes = encoder.encode(key);
  let best: M | null = null;
  let bestScore = -1;
  for (const m of members) {
    const s = score(bytes, m.seed, m.weight);
    if (s > bestScore || (s === bestScore && best !== null && m.instanceId < best.instanceId)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

/** All members ranked for `key`, owner first: the failover order. */
export function rank<M extends RingMember>(key: string, members: readonly M[]): M[] {
  const bytes = encoder.encode(key);
  return members
    .map((m) => ({ m, s: score(bytes, m.seed, m.weight) }))
    .sort((a, b) => b.s - a.s || (a.m.instanceId < b.m.instanceId ? -1 : 1))
    .map((x) => x.m);
}

/**
 * A digest of a ring's membership that two hubs can compare: murmur3 (seed 0) over the members
 * sorted by instanceId, each written as its UTF-8 instanceId, a zero byte and its weight as a
 * big-endian IEEE-754 double. Equal digests mean equal rings (barring a 32-bit collision).
 */
export function ringDigest(members: readonly { readonly instanceId: string; readonly weight: number }[]): number {
  const sorted = [...members].sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
  const parts = sorted.map((m) => encoder.encode(m.instanceId));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length + 9, 0));
  const view = new DataView(bytes.buffer);
  let at = 0;
  sorted.forEach((m, i) => {
    bytes.set(parts[i]!, at);
    at += parts[i]!.length + 1; // the zero byte is already there
    view.setFloat64(at, m.weight, false);
    at += 8;
  });
  return murmur3(bytes, 0);
}
