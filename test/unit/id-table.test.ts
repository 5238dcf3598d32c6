import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IdTable } from '../../server/id-table.js';

describe('id table', () => {
  it('holds exactly what a Map would, whatever the order jobs are answered in', () => {
    // Each step either sends a new job (next sequential id) or answers the held job at a
    // position; some jobs are held for thousands of ids, as a hung handler's would be.
    const step = fc.oneof(
      fc.constant({ op: 'add' as const }),
      fc.nat().map((n) => ({ op: 'take' as const, n })),
      fc.nat().map((n) => ({ op: 'ghost' as const, n })),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 3000 }), fc.integer({ min: 1, max: 40 }), (steps, holdEvery) => {
        const table = new IdTable<{ wireId: number }>();
        const model = new Map<number, { wireId: number }>();
        let next = 1;
        for (const s of steps) {
          if (s.op === 'add') {
            const job = { wireId: next++ };
            table.add(job.wireId, job);
            model.set(job.wireId, job);
          } else if (s.op === 'take') {
            const ids = [...model.keys()].filter((id) => id % holdEvery !== 0);
            if (ids.length === 0) continue;
            const id = ids[s.n % ids.length]!;
            assert.equal(table.take(id), model.get(id));
            model.delete(id);
          } else {
            // An id never sent, or already answered: nothing to find.
            const id = next + (s.n % 5) - 2 - (s.n % 2) * next;
            if (!model.has(id)) assert.equal(table.take(id), undefined);
          }
          assert.equal(table.size, model.size);
        }
        for (const [id, job] of model) assert.equal(table.get(id), job);
        const drained = table
          .drain()
          .map((j) => j.wireId)
          .sort((a, b) => a - b);
        assert.deepEqual(
          drained,
          [...model.keys()].sort((a, b) => a - b),
        );
        assert.equal(table.size, 0);
        assert.equal(table.get(1), undefined);
      }),
      { numRuns: 200 },
    );
  });

  it('finds a job held across a full wrap of the ring and many later ones', () => {
    const table = new IdTable<{ wireId: number }>();
    const hung = { wireId: 1 };
    table.add(1, hung);
    for (let id = 2; id < 200_000; id++) {
      table.add(id, { wireId: id });
      assert.ok(table.take(id), `job ${id}`);
    }
    assert.equal(table.get(1), hung);
    assert.equal(table.take(1), hung);
    assert.equal(table.size, 0);
  });

  it('stays exact for ids that all land on one slot, as a hostile caller may choose them', () => {
    const table = new IdTable<number>();
    const ids = Array.from({ length: 500 }, (_, i) => i * 65_536 + 7);
    for (const id of ids) table.add(id, id);
    assert.equal(table.size, 500);
    for (const id of ids) assert.equal(table.get(id), id);
    assert.equal(table.get(7 + 64), undefined);
    for (const id of ids.filter((_, i) => i % 2)) assert.equal(table.take(id), id);
    assert.equal(table.size, 250);
    assert.deepEqual(
      table.drain().sort((a, b) => a - b),
      ids.filter((_, i) => i % 2 === 0),
    );
  });
});
