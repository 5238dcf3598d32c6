import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ownerOf, ringDigest } from '../../server/ring.js';
import { OWNER_MEMO_GENERATION, RingEntry, StreamRing } from '../../server/stream-ring.js';

const entry = (id: string, weight = 1, hubId = 'hub-a') => new RingEntry(id, hubId, weight, null);
const hex = (n: number) => n.toString(16).padStart(8, '0');

describe('stream ring: membership, epoch, memoised owners, digest', () => {
  it('answers owners equal to a fresh computation after any sequence of joins, leaves and weight changes', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), id: fc.integer({ min: 0, max: 7 }), weight: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('owner' as const), key: fc.string({ minLength: 1, maxLength: 6 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const ring = new StreamRing();
        const live = new Map<string, RingEntry>();
        let epoch = ring.epoch;
        for (const o of ops) {
          if (o.kind === 'set') {
            const e = entry(`w${o.id}`, o.weight);
            ring.set(e);
            live.set(e.instanceId, e);
            assert.ok(ring.epoch > epoch, 'a join moves the epoch');
          } else if (o.kind === 'delete') {
            const e = live.get(`w${o.id}`);
            if (!e) continue;
            assert.equal(ring.delete(e), true);
            live.delete(e.instanceId);
            assert.ok(ring.epoch > epoch, 'a leave moves the epoch');
          } else {
            assert.equal(ring.owner(o.key), ownerOf(o.key, [...live.values()]));
            assert.equal(ring.owner(o.key), ring.rank(o.key)[0] ?? null);
          }
          epoch = ring.epoch;
          assert.equal(ring.size, live.size);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps members in instanceId order and ignores the removal of a replaced entry', () => {
    const ring = new StreamRing();
    const b1 = entry('b');
    ring.set(b1);
    ring.set(entry('c'));
    ring.set(entry('a'));
    assert.deepEqual(
      ring.members().map((m) => m.instanceId),
      ['a', 'b', 'c'],
    );
    const b2 = entry('b', 3, 'hub-b');
    ring.set(b2);
    assert.equal(ring.delete(b1), false, 'the entry it replaced is no longer a member');
    assert.equal(ring.get('b'), b2);
  });

  it('remembers at most two generations of owners, keeps keys in use, and forgets them all on every change', () => {
    const ring = new StreamRing();
    ring.set(entry('x'));
    ring.set(entry('y'));
    for (let i = 0; i < OWNER_MEMO_GENERATION * 5 + 7; i++) {
      ring.owner(`key-${i}`);
      // One key asked all along stays remembered through every rotation, and stays right.
      assert.equal(ring.owner('hot'), ownerOf('hot', ring.members()));
    }
    assert.ok(ring.memoSize <= OWNER_MEMO_GENERATION * 2, `${ring.memoSize} remembered`);
    ring.set(entry('z'));
    assert.equal(ring.memoSize, 0);
    assert.equal(ring.owner('hot'), ownerOf('hot', ring.members()));
    ring.forget();
    assert.equal(ring.memoSize, 0);
  });

  it('switches the memo off while keys rarely repeat, keeps it while they do, and answers right either way', () => {
    const random = new StreamRing();
    random.set(entry('x'));
    random.set(entry('y'));
    for (let i = 0; i < 4096 * 2; i++) random.owner(`once-${i}`);
    assert.equal(random.memoOn, false);
    assert.equal(random.memoSize, 0);
    assert.equal(random.owner('k'), ownerOf('k', random.members()));
    const repeating = new StreamRing();
    repeating.set(entry('x'));
    repeating.set(entry('y'));
    for (let i = 0; i < 4096 * 3; i++) assert.equal(repeating.owner(`hot-${i % 100}`), ownerOf(`hot-${i % 100}`, repeating.members()));
    assert.equal(repeating.memoOn, true);
    assert.ok(repeating.memoSize >= 100);
  });

  it('answers a ring of one member without ranking or remembering', () => {
    const ring = new StreamRing();
    assert.equal(ring.owner('k'), null);
    const only = entry('only');
    ring.set(only);
    assert.equal(ring.owner('k'), only);
    assert.equal(ring.memoSize, 0);
  });

  it('digests the membership the same whatever the order of joins, and differently for another weight', () => {
    const ids = ['worker-a', 'worker-b', 'worker-c', 'hub-2.w', 'Zed'];
    fc.assert(
      fc.property(fc.shuffledSubarray(ids, { minLength: ids.length, maxLength: ids.length }), (order) => {
        const ring = new StreamRing();
        for (const id of order) ring.set(entry(id, id.length));
        const other = new StreamRing();
        for (const id of ids) other.set(entry(id, id.length));
        assert.equal(ring.digest(), other.digest());
      }),
    );
    const a = new StreamRing();
    a.set(entry('worker-a', 1));
    const b = new StreamRing();
    b.set(entry('worker-a', 2));
    assert.notEqual(a.digest(), b.digest());
    // The hub a member lives on is not part of the ring.
    const c = new StreamRing();
    c.set(entry('worker-a', 1, 'elsewhere'));
    assert.equal(a.digest(), c.digest());
  });

  it('matches the digest test vectors in PROTOCOL.md', () => {
    assert.equal(hex(ringDigest([])), '00000000');
    assert.equal(hex(ringDigest([{ instanceId: 'worker-a', weight: 1 }])), '952e87a7');
    assert.equal(
      hex(
        ringDigest([
          { instanceId: 'worker-c', weight: 2 },
          { instanceId: 'worker-a', weight: 1 },
          { instanceId: 'worker-b', weight: 1 },
        ]),
      ),
      '223aa4bd',
    );
  });
});
