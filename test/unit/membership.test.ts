/**
 * Membership converges whatever order it arrives in: hubs that end up knowing the same
 * registrations derive the same ring, even when one instanceId is registered on two hubs
 * (the copy on the smaller hub id is the member) and whatever joined, left or changed weight
 * on the way there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Consumer, type Job, Registration, Takes } from '../../server/job.js';
import { ServiceState } from '../../server/service-queue.js';

const consumer: Consumer = { leaseMs: 0, canSend: () => true, deliver: (_: Job) => {}, cancel: () => {} };

interface Event {
  kind: 'add' | 'remove' | 'reweigh';
  instanceId: string;
  hubId: string;
  weight: number;
}

/** Applies `events` to a fresh service state and returns its ring as comparable data. */
function ringAfter(events: Event[]) {
  const svc = new ServiceState('s');
  const regs = new Map<string, Registration>();
  for (const e of events) {
    const k = `${e.hubId}/${e.instanceId}`;
    const r = regs.get(k);
    if (e.kind === 'add' && !r) {
      const reg = new Registration(consumer, 's', 1, { instanceId: e.instanceId, hubId: e.hubId, weight: e.weight, takes: Takes.Remote });
      regs.set(k, reg);
      svc.add(reg);
    } else if (e.kind === 'remove' && r) {
      regs.delete(k);
      svc.remove(r);
    } else if (e.kind === 'reweigh' && r) {
      svc.reweigh(r, e.weight);
    }
  }
  return { digest: svc.ring.digest(), members: svc.ring.members().map((m) => `${m.hubId}/${m.instanceId}:${m.weight}`) };
}

/** The registrations left at the end, with their last weights: what every hub finally knows. */
function finalState(events: Event[]): Map<string, Event> {
  const state = new Map<string, Event>();
  for (const e of events) {
    const k = `${e.hubId}/${e.instanceId}`;
    if (e.kind === 'add' && !state.has(k)) state.set(k, e);
    else if (e.kind === 'remove') state.delete(k);
    else if (e.kind === 'reweigh' && state.has(k)) state.set(k, { ...state.get(k)!, weight: e.weight });
  }
  return state;
}

const event = fc.record({
  kind: fc.constantFrom('add' as const, 'remove' as const, 'reweigh' as const),
  instanceId: fc.constantFrom('w1', 'w2', 'w3', 'w4'),
  hubId: fc.constantFrom('hub-a', 'hub-b', 'hub-c'),
  weight: fc.integer({ min: 1, max: 3 }),
});

describe('membership converges in any order', () => {
  it('gives the same ring to a hub that saw every change and one that saw only the outcome, in any order', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), fc.integer(), (events, seed) => {
        const outcome = [...finalState(events).values()].map((e) => ({ ...e, kind: 'add' as const }));
        // Another hub learns the same outcome as a snapshot, its entries in a shuffled order.
        const shuffled = fc.sample(fc.shuffledSubarray(outcome, { minLength: outcome.length, maxLength: outcome.length }), { numRuns: 1, seed })[0]!;
        const a = ringAfter(events);
        const b = ringAfter(shuffled);
        assert.deepEqual(a, b);
        // One member per instanceId: the copy on the smallest hub id.
        const expected = new Map<string, Event>();
        for (const e of outcome) {
          const cur = expected.get(e.instanceId);
          if (!cur || e.hubId < cur.hubId) expected.set(e.instanceId, e);
        }
        assert.deepEqual(
          a.members,
          [...expected.values()].sort((x, y) => (x.instanceId < y.instanceId ? -1 : 1)).map((e) => `${e.hubId}/${e.instanceId}:${e.weight}`),
        );
      }),
      { numRuns: 500 },
    );
  });
});
