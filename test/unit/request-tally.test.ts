/**
 * The per-service tallies behind /metrics: outcome cells, latency buckets, and the series cap
 * (a returning service keeps its counts; a gone one makes room only once the cap is reached).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestMode } from '../../client/protocol.js';
import { Job, type JobWaiter } from '../../server/job.js';
import { ERROR_CODES, OTHER_SERVICE, RequestTally, type ServiceTally, STATUS_CLASSES } from '../../server/request-tally.js';
import { ServiceState } from '../../server/service-queue.js';

const waiter: JobWaiter = { settled() {} };
const job = (service: string) => new Job(service, RequestMode.Any, null, new Uint8Array(0), null, null, null, 0, waiter);

function cell(t: ServiceTally, cls: string, code: string): number {
  return t.outcomes[STATUS_CLASSES.indexOf(cls as (typeof STATUS_CLASSES)[number]) * ERROR_CODES.length + ERROR_CODES.indexOf(code)]!;
}

describe('request tally', () => {
  it('counts outcomes by status class and code, folding codes outside the catalogue, and times accepted jobs', () => {
    const tally = new RequestTally(10);
    const svc = new ServiceState('a');
    const outcomes: [number, string | null][] = [
      [200, null],
      [404, null],
      [503, 'E_NO_WORKERS'],
      [500, 'E_MADE_UP'],
      [500, 'E_HANDLER'],
      [999, null],
    ];
    for (const [status, code] of outcomes) {
      const j = job('a');
      tally.begin(j, svc);
      j.status = status;
      j.errorCode = code;
      j.accepted = code !== 'E_NO_WORKERS';
      tally.settled(j, j.tally!);
    }
    const t = svc.tally!;
    assert.equal(cell(t, '2xx', 'none'), 1);
    assert.equal(cell(t, '4xx', 'none'), 1);
    assert.equal(cell(t, '5xx', 'E_NO_WORKERS'), 1);
    assert.equal(cell(t, '5xx', 'other'), 1);
    assert.equal(cell(t, '5xx', 'E_HANDLER'), 1);
    assert.equal(cell(t, 'other', 'none'), 1);
    assert.equal(t.latencyCount, 5, 'the refused job is not timed');
    assert.equal(
      t.buckets.reduce((a, b) => a + b, 0),
      5,
    );
  });

  it('folds services past the cap into _other, and a gone service makes room only when needed', () => {
    const tally = new RequestTally(2);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new ServiceState(n)) as [ServiceState, ServiceState, ServiceState];
    assert.equal(tally.bind(a).name, 'a');
    assert.equal(tally.bind(b).name, 'b');
    assert.equal(tally.bind(c).name, OTHER_SERVICE);
    tally.bind(a).latencyCount = 7;
    // a leaves and comes back under the cap: its series continue.
    tally.unbind(a);
    const a2 = new ServiceState('a');
    assert.equal(tally.bind(a2).latencyCount, 7);
    // a leaves again and a new name needs room: a's series give way.
    tally.unbind(a2);
    const d = new ServiceState('d');
    assert.equal(tally.bind(d).name, 'd');
    assert.deepEqual([...tally.services.keys()].sort(), ['b', 'd']);
    assert.equal(tally.seriesOf('a', undefined), tally.other);
    assert.equal(tally.seriesOf('nowhere', undefined), tally.other);
  });
});
