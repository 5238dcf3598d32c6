import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { memberSeed, murmur3, ownerOf, type RingMember, rank } from '../../server/ring.js';

const enc = new TextEncoder();
const member = (id: string, weight = 1): RingMember => ({ instanceId: id, weight, seed: memberSeed(id) });
const members = (n: number, prefix = 'w') => Array.from({ length: n }, (_, i) => member(`${prefix}${i}`));

describe('ring: murmur3 and weighted rendezvous hashing', () => {
  it('matches the reference murmur3_x86_32 vectors', () => {
    assert.equal(murmur3(enc.encode(''), 0), 0);
    assert.equal(murmur3(enc.encode(''), 1), 0x514e28b7);
    assert.equal(murmur3(enc.encode('hello'), 0), 0x248bfa47);
    assert.equal(murmur3(enc.encode('The quick brown fox jumps over the lazy dog'), 0), 0x2e4ff723);
    assert.equal(murmur3(enc.encode('abc'), 0), 0xb3dd93fa);
  });

  it('gives the same owner for the same key and members, in any member order', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 12 }), (key, n) => {
        const ms = members(n);
        const a = ownerOf(key, ms);
        const b = ownerOf(key, [...ms].reverse());
        assert.equal(a, b);
        assert.equal(rank(key, ms)[0], a);
      }),
    );
  });

  it('moves only the keys the new member wins when a member joins', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(fc.string({ minLength: 1, maxLength: 32 }), { minLength: 50, maxLength: 200 }), (n, keys) => {
        const before = members(n);
        const joined = member('newcomer');
        const after = [...before, joined];
        for (const k of keys) {
          const o1 = ownerOf(k, before)!;
          const o2 = ownerOf(k, after)!;
          assert.ok(o2 === o1 || o2 === joined, `key ${k} moved between old members`);
        }
      }),
      { numRuns: 50 },
    );
  });

  it("moves only the leaving member's keys, to the next in its ranking", () => {
    const ms = members(8);
    const gone = ms[3]!;
    const rest = ms.filter((m) => m !== gone);
    for (let i = 0; i < 5000; i++) {
      const k = `key-${i}`;
      const ranking = rank(k, ms);
      const o2 = ownerOf(k, rest)!;
      if (ranking[0] !== gone) assert.equal(o2, ranking[0]);
      else assert.equal(o2, ranking[1]);
    }
  });

  it('balances keys within a few percent and honours weights', () => {
    const ms = members(10);
    const counts = new Map<RingMember, number>();
    const N = 50_000;
    for (let i = 0; i < N; i++) {
      const o = ownerOf(`user:${i}`, ms)!;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const c of counts.values()) assert.ok(Math.abs(c - N / 10) < (N / 10) * 0.08, `share ${c} far from ${N / 10}`);
    const heavy = member('heavy', 3);
    const light = member('light', 1);
    let h = 0;
    for (let i = 0; i < N; i++) if (ownerOf(`k${i}`, [heavy, light]) === heavy) h++;
    assert.ok(Math.abs(h / N - 0.75) < 0.02, `weight 3:1 gave ${h / N}`);
  });

  it('returns null without members, and the next in the ranking without the owner', () => {
    assert.equal(ownerOf('k', []), null);
    const ms = members(3);
    const first = ownerOf('k', ms)!;
    const other = ownerOf(
      'k',
      ms.filter((m) => m !== first),
    )!;
    assert.notEqual(other, first);
    assert.equal(other, rank('k', ms)[1]);
  });
});
