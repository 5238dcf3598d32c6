/**
 * The dispatcher below the process level: fake consumers that record what they are handed and
 * answer when the test says so, and a waiter that counts settles per job. Credit, owner queues,
 * redelivery, leases, settle-once and broadcast are pinned here, so routing changes (a mesh of
 * hubs, where a peer link is one more consumer) are tested without sockets.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ErrorCode } from '../../client/errors.js';
import { RequestMode, type RequestModeCode } from '../../client/protocol.js';
import { BROADCAST_HEADERS } from '../../server/broadcast.js';
import { Counters, type JobCounters } from '../../server/counters.js';
import { Dispatcher, PART_GONE } from '../../server/dispatcher.js';
import { type Consumer, Job, JobState, type JobWaiter, Registration, Takes, type TakesCode } from '../../server/job.js';
import { type HubOptions, resolveHubOptions } from '../../server/options.js';
import { requestTotals } from '../../server/request-tally.js';
import { memberSeed, ownerOf } from '../../server/ring.js';
import { now } from '../../server/timer-wheel.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = now() + ms;
  while (!pred()) {
    if (now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Counts settles per job, and when each first came. */
class Waiter implements JobWaiter {
  readonly settles = new Map<Job, number>();
  readonly settledAt = new Map<Job, number>();
  settled(job: Job): void {
    this.settles.set(job, (this.settles.get(job) ?? 0) + 1);
    if (!this.settledAt.has(job)) this.settledAt.set(job, now());
  }
  count(job: Job): number {
    return this.settles.get(job) ?? 0;
  }
}

/** A ring member on another hub, reached through `via` (a peer link), with credit to spare. */
function remote(d: Dispatcher, via: Consumer, instanceId: string, hubId: string): Registration {
  return d.register(via, 'svc', 1000, { instanceId, hubId, weight: 1, takes: Takes.Remote }) as Registration;
}

/** One hand-over of a job to a consumer: the attempt and the registration it ran on. */
interface Delivery {
  readonly job: Job;
  readonly attempt: number;
  readonly reg: Registration;
  /** The body as delivered (a settled job drops its body). */
  readonly body: string;
}

/** A consumer that records deliveries and cancels; the test decides when it can send. */
class FakeConsumer implements Consumer {
  sendable = true;
  /** Its hub is leaving the mesh (as a peer link says after Leaving). */
  lameDuck = false;
  /** Every delivery ever. */
  readonly delivered: Delivery[] = [];
  /** Deliveries not yet given back (reply, error, ack or lost). */
  readonly held: Delivery[] = [];
  readonly cancels: { job: Job; code: ErrorCode }[] = [];
  /** Called inside deliver, after the delivery is recorded. */
  onDeliver: ((d: Delivery) => void) | null = null;

  constructor(
    readonly name: string,
    readonly leaseMs = 0,
  ) {}

  canSend(): boolean {
    return this.sendable;
  }

  deliver(job: Job): void {
    const d = { job, attempt: job.attempt, reg: job.reg!, body: Buffer.from(job.body).toString() };
    this.delivered.push(d);
    this.held.push(d);
    this.onDeliver?.(d);
  }

  cancel(job: Job, code: ErrorCode): void {
    this.cancels.push({ job, code });
  }

  /** The held delivery of `job` (the latest, if it came more than once). */
  holding(job: Job): Delivery {
    const d = this.held.findLast((x) => x.job === job);
    assert.ok(d, `${this.name} does not hold that job`);
    return d;
  }

  drop(d: Delivery): void {
    const i = this.held.indexOf(d);
    if (i !== -1) this.held.splice(i, 1);
  }

  bodies(): string[] {
    return this.delivered.map((d) => d.body);
  }
}

const dispatchers: Dispatcher[] = [];
afterEach(() => {
  for (const d of dispatchers.splice(0)) d.wheel.stop();
});

function hub(input: Partial<HubOptions> = {}): { d: Dispatcher; c: JobCounters; o: HubOptions } {
  const o = resolveHubOptions({ hubId: 'hub-test', ...input });
  const d = new Dispatcher(o, new Counters());
  dispatchers.push(d);
  return { d, c: d.counters, o };
}

function join(
  d: Dispatcher,
  consumer: FakeConsumer,
  opts: { service?: string; concurrency?: number; takes?: TakesCode; weight?: number; instanceId?: string; existing?: Registration } = {},
): Registration {
  const r = d.register(
    consumer,
    opts.service ?? 'svc',
    opts.concurrency ?? 1,
    { instanceId: opts.instanceId ?? consumer.name, hubId: 'hub-test', weight: opts.weight ?? 1, takes: opts.takes ?? Takes.Ring },
    opts.existing,
  );
  assert.ok(r instanceof Registration, `register refused: ${String(r)}`);
  return r;
}

function job(waiter: JobWaiter, opts: { body?: string; mode?: RequestModeCode; key?: string; service?: string; timeoutMs?: number } = {}): Job {
  const mode = opts.mode ?? (opts.key !== undefined ? RequestMode.Keyed : RequestMode.Any);
  return new Job(opts.service ?? 'svc', mode, opts.key ?? null, Buffer.from(opts.body ?? 'x'), null, null, null, now() + (opts.timeoutMs ?? 10_000), waiter);
}

/** Submits and asserts acceptance. */
function submit(d: Dispatcher, j: Job): Job {
  assert.equal(d.submit(j), true, `submit refused: ${j.errorCode}`);
  return j;
}

/** The consumer answers its delivery and gives the credit back, as a session does on a Reply frame. */
function reply(d: Dispatcher, c: FakeConsumer, dl: Delivery, body = 'ok', contentType: string | null = 'text/plain'): boolean {
  c.drop(dl);
  const ok = d.resolve(dl.job, 200, contentType, null, Buffer.from(body), `hub-test/${c.name}`);
  d.release(dl.job, dl.attempt);
  return ok;
}

/** A cancel ack: the consumer gives the credit back; a job that was not settled runs again elsewhere. */
function ack(d: Dispatcher, c: FakeConsumer, dl: Delivery): void {
  c.drop(dl);
  d.release(dl.job, dl.attempt);
  if (dl.job.state !== JobState.Settled) d.lost(dl.job, dl.attempt);
}

/** The consumer lost the job (its link went down): it runs again elsewhere while attempts remain. */
function lose(d: Dispatcher, c: FakeConsumer, dl: Delivery): void {
  c.drop(dl);
  d.lost(dl.job, dl.attempt);
}

/** Keys owned by `instanceId` among `members`, by an independent rendezvous computation. */
function keysOwnedBy(instanceId: string, members: { id: string; weight?: number }[], n: number): string[] {
  const ring = members.map((m) => ({ instanceId: m.id, weight: m.weight ?? 1, seed: memberSeed(m.id) }));
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const key = `k${i}`;
    if (ownerOf(key, ring)!.instanceId === instanceId) out.push(key);
    assert.ok(i < 100_000);
  }
  return out;
}

describe('dispatcher: credit', () => {
  it('never delivers more jobs to a registration than its concurrency at once', () => {
    const { d } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a, { concurrency: 2 });
    const w = new Waiter();
    for (let i = 0; i < 5; i++) submit(d, job(w, { body: `j${i}` }));
    assert.deepEqual(a.bodies(), ['j0', 'j1']);
    assert.equal(r.inflight, 2);
    assert.equal(d.services.get('svc')!.queued, 3);
    assert.equal(d.queuedBytes, 6);
    assert.equal(d.open, 5);
  });

  it('hands the next queued job over when a reply releases credit, in submit order', () => {
    const { d } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a);
    const w = new Waiter();
    const jobs = [0, 1, 2].map((i) => submit(d, job(w, { body: `j${i}` })));
    assert.deepEqual(a.bodies(), ['j0']);
    assert.equal(reply(d, a, a.held[0]!), true);
    assert.deepEqual(a.bodies(), ['j0', 'j1']);
    assert.equal(w.count(jobs[0]!), 1);
    reply(d, a, a.held[0]!);
    reply(d, a, a.held[0]!);
    assert.deepEqual(a.bodies(), ['j0', 'j1', 'j2']);
    assert.equal(r.inflight, 0);
    assert.equal(d.open, 0);
    assert.equal(d.queuedBytes, 0);
    assert.deepEqual(
      jobs.map((j) => w.count(j)),
      [1, 1, 1],
    );
  });

  it('gives a consumer that cannot send nothing until it is offered again after it can', () => {
    const { d } = hub();
    const a = new FakeConsumer('a');
    a.sendable = false;
    const r = join(d, a, { concurrency: 3 });
    const w = new Waiter();
    submit(d, job(w, { body: 'j0' }));
    assert.equal(a.delivered.length, 0);
    a.sendable = true;
    submit(d, job(w, { body: 'j1' }));
    assert.equal(a.delivered.length, 0, 'not in the ready list until offered');
    d.offer(r);
    assert.deepEqual(a.bodies(), ['j0', 'j1']);
    // Blocked with credit left: the next job waits in the queue.
    a.sendable = false;
    submit(d, job(w, { body: 'j2' }));
    assert.equal(a.delivered.length, 2);
    assert.equal(d.services.get('svc')!.queued, 1);
    a.sendable = true;
    d.offer(r);
    assert.deepEqual(a.bodies(), ['j0', 'j1', 'j2']);
  });

  it('sends unkeyed jobs round-robin among ready registrations and skips one that cannot send', () => {
    const { d } = hub();
    const cs = ['a', 'b', 'c'].map((n) => new FakeConsumer(n));
    for (const c of cs) join(d, c, { concurrency: 10 });
    const w = new Waiter();
    const served: string[] = [];
    for (const c of cs) c.onDeliver = () => served.push(c.name);
    for (let i = 0; i < 6; i++) submit(d, job(w));
    assert.deepEqual(served, ['a', 'b', 'c', 'a', 'b', 'c']);
    cs[1]!.sendable = false;
    for (let i = 0; i < 4; i++) submit(d, job(w));
    assert.deepEqual(served.slice(6), ['a', 'c', 'a', 'c']);
  });

  it('raises credit on a re-register at once and lowers it so new work waits until inflight falls below it', () => {
    const { d } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a, { concurrency: 1 });
    const w = new Waiter();
    for (let i = 0; i < 5; i++) submit(d, job(w, { body: `j${i}` }));
    assert.equal(a.delivered.length, 1);
    assert.equal(join(d, a, { concurrency: 3, existing: r }), r, 're-register keeps the registration');
    assert.equal(a.delivered.length, 3);
    assert.equal(r.inflight, 3);
    join(d, a, { concurrency: 1, existing: r });
    reply(d, a, a.held[0]!);
    reply(d, a, a.held[0]!);
    assert.equal(a.delivered.length, 3, 'inflight 1 is not below the new concurrency 1');
    reply(d, a, a.held[0]!);
    assert.deepEqual(a.bodies(), ['j0', 'j1', 'j2', 'j3']);
    assert.equal(r.inflight, 1);
  });
});

describe('dispatcher: keyed routing and owner queues', () => {
  const ids = ['w-a', 'w-b', 'w-c', 'w-d'];

  it('sends each keyed job to the ring owner of its key', () => {
    const { d } = hub();
    const weights = [1, 2, 1, 3];
    const cs = ids.map((id) => new FakeConsumer(id));
    cs.forEach((c, i) => {
      join(d, c, { concurrency: 1000, weight: weights[i]! });
    });
    const svc = d.services.get('svc')!;
    const members = ids.map((id, i) => ({ instanceId: id, weight: weights[i]!, seed: memberSeed(id) }));
    const w = new Waiter();
    for (let i = 0; i < 200; i++) {
      const key = `user-${i}`;
      const j = submit(d, job(w, { key }));
      assert.equal(j.reg, svc.ring.owner(key)?.reg);
      assert.equal(j.reg!.instanceId, ownerOf(key, members)!.instanceId);
    }
    for (const c of cs) assert.ok(c.delivered.length > 0, `${c.name} owns some of 200 keys`);
  });

  it('queues a keyed job at its owner while the owner has no free credit, even when other workers are idle', () => {
    const { d } = hub();
    const cs = ids.map((id) => new FakeConsumer(id));
    const regs = cs.map((c) => join(d, c));
    const [key] = keysOwnedBy(
      'w-b',
      ids.map((id) => ({ id })),
      1,
    );
    const w = new Waiter();
    submit(d, job(w, { key: key!, body: 'first' }));
    submit(d, job(w, { key: key!, body: 'second' }));
    assert.deepEqual(cs[1]!.bodies(), ['first']);
    assert.equal(regs[1]!.ownerQueue.length, 1);
    for (const i of [0, 2, 3]) assert.equal(cs[i]!.delivered.length, 0);
    // Unkeyed work still goes to the idle workers.
    submit(d, job(w, { body: 'any' }));
    assert.equal(cs[1]!.delivered.length, 1);
    reply(d, cs[1]!, cs[1]!.held[0]!);
    assert.deepEqual(cs[1]!.bodies(), ['first', 'second']);
    assert.equal(regs[1]!.ownerQueue.length, 0);
  });

  it("holds the keyed and broadcast work of a member whose hub is leaving, and gives it to the same instance's copy on another hub", () => {
    const { d } = hub();
    const moving = (c: FakeConsumer, hubId: string) => {
      const r = remote(d, c, 'w-move', hubId);
      assert.ok(r instanceof Registration);
      return r;
    };
    const viaX = new FakeConsumer('link-x');
    const viaZ = new FakeConsumer('link-z');
    const stay = new FakeConsumer('w-stay');
    const xr = moving(viaX, 'hub-x');
    join(d, stay, { concurrency: 1000 });
    const svc = d.services.get('svc')!;
    const digest = svc.ring.digest();
    const keys = keysOwnedBy('w-move', [{ id: 'w-move' }, { id: 'w-stay' }], 3);
    // hub-x leaves: nothing new goes to it, and its member keeps its keys (the work waits).
    viaX.lameDuck = true;
    viaX.sendable = false;
    d.demote(xr);
    const w = new Waiter();
    const jobs = keys.map((key) => submit(d, job(w, { key, body: key })));
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast, key: 'b', body: 'all' }));
    assert.equal(xr.ownerQueue.length, 4);
    assert.deepEqual(stay.bodies(), ['all']);
    // The instance opens a session on hub-z: that copy is the member (though hub-x sorts first).
    const zr = moving(viaZ, 'hub-z');
    assert.equal(svc.ring.get('w-move')?.reg, zr);
    assert.equal(svc.ring.digest(), digest, 'the same instances and weights: the same ring');
    assert.deepEqual(viaZ.bodies().sort(), [...keys, 'all'].sort());
    assert.equal(xr.ownerQueue.length, 0);
    for (const j of jobs) assert.equal(j.reg, zr);
    assert.ok(parent.parts!.some((p) => p.pinned === zr));
    assert.equal(viaX.delivered.length, 0);
  });

  it("sends a broadcast part its hub handed back to the instance's copy on another hub, not to E_WORKER_GONE", () => {
    const { d } = hub();
    const viaX = new FakeConsumer('link-x');
    const viaZ = new FakeConsumer('link-z');
    const xr = remote(d, viaX, 'w-move', 'hub-x');
    const w = new Waiter();
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast, key: 'b', body: 'all' }));
    const part = parent.parts![0]!;
    assert.equal(part.reg, xr);
    // hub-x leaves; the instance registers on hub-z; hub-x hands the part back unrun.
    viaX.lameDuck = true;
    d.demote(xr);
    const zr = remote(d, viaZ, 'w-move', 'hub-z');
    viaX.drop(viaX.holding(part));
    d.release(part);
    part.attempt--;
    d.lost(part);
    assert.equal(part.reg, zr);
    assert.equal(viaZ.delivered.length, 1);
    assert.equal(w.count(parent), 0, 'not settled with a failed part');
  });

  it("keeps a hub's in-process handlers the member of their instance id when a worker elsewhere names itself the same", () => {
    const { d } = hub();
    const viaA = new FakeConsumer('link-a');
    const viaZ = new FakeConsumer('link-z');
    // A worker on hub-a (the smaller hub id) takes the id of hub-z's in-process handlers, before and after them.
    const fake = remote(d, viaA, 'hub-z.local', 'hub-a');
    const real = remote(d, viaZ, 'hub-z.local', 'hub-z');
    const svc = d.services.get('svc')!;
    assert.equal(svc.ring.get('hub-z.local')?.reg, real);
    d.unregister(fake);
    remote(d, viaA, 'hub-z.local', 'hub-a');
    assert.equal(svc.ring.get('hub-z.local')?.reg, real);
    const w = new Waiter();
    const j = submit(d, job(w, { key: 'k' }));
    assert.equal(j.reg, real);
    assert.equal(viaA.delivered.length, 0);
  });

  it("makes an instance's copy on another hub the member when the member's hub begins to leave, moving the work that waits", () => {
    const { d } = hub();
    const viaA = new FakeConsumer('link-a');
    const viaB = new FakeConsumer('link-b');
    const ar = remote(d, viaA, 'w-1', 'hub-a');
    const br = remote(d, viaB, 'w-1', 'hub-b');
    const svc = d.services.get('svc')!;
    assert.equal(svc.ring.get('w-1')?.reg, ar, 'the smaller hub id first');
    viaA.sendable = false;
    const w = new Waiter();
    const j = submit(d, job(w, { key: 'k' }));
    assert.equal(ar.ownerQueue.length, 1);
    viaA.lameDuck = true;
    d.demote(ar);
    assert.equal(svc.ring.get('w-1')?.reg, br);
    assert.equal(j.reg, br);
    assert.equal(viaB.delivered.length, 1);
  });

  it('moves the keyed jobs queued at an owner that unregisters to the next owner in the ranking', () => {
    const { d } = hub();
    const cs = ids.map((id) => new FakeConsumer(id));
    const regs = cs.map((c) => join(d, c));
    const svc = d.services.get('svc')!;
    const [key] = keysOwnedBy(
      'w-c',
      ids.map((id) => ({ id })),
      1,
    );
    const ranking = svc.ring.rank(key!).map((e) => e.instanceId);
    assert.equal(ranking[0], 'w-c');
    const w = new Waiter();
    const held = submit(d, job(w, { key: key!, body: 'held' }));
    submit(d, job(w, { key: key!, body: 'q1' }));
    submit(d, job(w, { key: key!, body: 'q2' }));
    assert.equal(regs[2]!.ownerQueue.length, 2);
    d.unregister(regs[2]!);
    const next = cs[ids.indexOf(ranking[1]!)]!;
    const nextReg = regs[ids.indexOf(ranking[1]!)]!;
    assert.deepEqual(next.bodies(), ['q1'], 'the next owner takes the first within its credit');
    assert.equal(nextReg.ownerQueue.length, 1, 'and queues the rest');
    for (const c of cs) if (c !== next && c !== cs[2]) assert.equal(c.delivered.length, 0);
    // The job the old owner holds stays there until it answers.
    assert.equal(held.reg, regs[2]);
    assert.equal(reply(d, cs[2]!, cs[2]!.held[0]!), true);
    assert.equal(w.count(held), 1);
    assert.equal(svc.queued, 1);
  });

  it('holds keyed jobs in the keyed queue while no ring member is left within linger, and hands them to the owner that joins', () => {
    const { d } = hub({ serviceLingerMs: 10_000 });
    const a = new FakeConsumer('w-a');
    d.unregister(join(d, a));
    const cap = new FakeConsumer('cap');
    join(d, cap, { takes: Takes.Capacity });
    const svc = d.services.get('svc')!;
    const w = new Waiter();
    const j = submit(d, job(w, { key: 'k1' }));
    assert.equal(svc.keyedQueue.length, 1);
    d.offer(svc.regs[0]!);
    assert.equal(cap.delivered.length, 0, 'capacity takes no keyed job');
    const b = new FakeConsumer('w-b');
    join(d, b);
    assert.equal(j.reg?.instanceId, 'w-b');
    assert.equal(svc.keyedQueue.length, 0);
    assert.equal(svc.queued, 0);
  });

  it('refuses keyed requests with E_NO_WORKERS for a service only capacity ever served, and answers a broadcast with no parts', () => {
    const { d, c } = hub();
    const cap = new FakeConsumer('cap');
    join(d, cap, { takes: Takes.Capacity });
    assert.equal(d.precheck('svc', RequestMode.Keyed), 'E_NO_WORKERS');
    assert.equal(d.precheck('svc', RequestMode.Broadcast), null);
    assert.equal(d.precheck('svc', RequestMode.Any), null);
    const w = new Waiter();
    const keyed = job(w, { key: 'k' });
    assert.equal(d.submit(keyed), false);
    assert.equal(w.count(keyed), 1);
    assert.equal(keyed.errorCode, 'E_NO_WORKERS');
    assert.equal(keyed.status, 503);
    const all = submit(d, job(w, { mode: RequestMode.Broadcast, key: 'k' }));
    assert.deepEqual([all.status, Buffer.from(all.replyBody!).toString()], [200, '[]']);
    assert.equal(cap.delivered.length, 0, 'capacity takes no broadcast part');
    const any = submit(d, job(w));
    assert.equal(any.reg?.consumer, cap);
    assert.equal(c.rejectedNoWorkers, 2);
  });

  it('never gives a capacity registration keyed or broadcast work', () => {
    const { d } = hub();
    const a = new FakeConsumer('w-a');
    const cap = new FakeConsumer('cap');
    join(d, a);
    join(d, cap, { takes: Takes.Capacity, concurrency: 100 });
    const w = new Waiter();
    submit(d, job(w, { key: 'k1' }));
    submit(d, job(w, { key: 'k2' }));
    const b = submit(d, job(w, { mode: RequestMode.Broadcast }));
    assert.equal(b.parts!.length, 1, 'capacity is not a ring member');
    assert.equal(a.delivered.length, 1);
    assert.equal(cap.delivered.length, 0);
    submit(d, job(w));
    assert.equal(cap.delivered.length, 1);
    assert.equal(cap.delivered[0]!.job.mode, RequestMode.Any);
  });

  it('makes a remote registration a ring member that takes keyed and broadcast work but no unkeyed job from the service queue', () => {
    const { d } = hub();
    const remote = new FakeConsumer('w-remote');
    const r = join(d, remote, { takes: Takes.Remote, concurrency: 10 });
    const svc = d.services.get('svc')!;
    assert.deepEqual(
      svc.ring.members().map((m) => m.instanceId),
      ['w-remote'],
    );
    const w = new Waiter();
    const unkeyed = submit(d, job(w, { body: 'any' }));
    d.offer(r);
    assert.equal(remote.delivered.length, 0);
    assert.equal(svc.queue.length, 1);
    submit(d, job(w, { key: 'k1', body: 'keyed' }));
    const b = submit(d, job(w, { mode: RequestMode.Broadcast, body: 'all' }));
    assert.deepEqual(remote.bodies(), ['keyed', 'all']);
    assert.equal(b.parts![0]!.pinned, r);
    // A local worker joins: it takes the unkeyed job; the remote still gets none.
    const local = new FakeConsumer('w-local');
    join(d, local, { concurrency: 10 });
    assert.equal(unkeyed.reg?.consumer, local);
    submit(d, job(w, { body: 'any2' }));
    assert.deepEqual(local.bodies(), ['any', 'any2']);
    assert.equal(remote.delivered.length, 2);
  });
});

describe('dispatcher: redelivery', () => {
  it('runs a lost job again elsewhere with the next attempt number, and answers 502 E_WORKER_GONE after maxAttempts', () => {
    const { d, c } = hub({ maxAttempts: 3 });
    const cs = ['a', 'b', 'c', 'd'].map((n) => new FakeConsumer(n));
    const regs = cs.map((x) => join(d, x));
    const w = new Waiter();
    const j = submit(d, job(w));
    for (let i = 0; i < 3; i++) {
      assert.equal(cs[i]!.delivered.length, 1);
      assert.equal(cs[i]!.delivered[0]!.attempt, i + 1);
      assert.equal(w.count(j), 0);
      // The consumer vanished, as a session's teardown reports it.
      d.unregister(regs[i]!);
      d.lost(j);
    }
    assert.equal(cs[3]!.delivered.length, 0, 'no fourth attempt');
    assert.equal(w.count(j), 1);
    assert.equal(j.errorCode, 'E_WORKER_GONE');
    assert.equal(j.status, 502);
    assert.equal(c.redelivered, 2);
    assert.equal(d.open, 0);
  });

  it('never redelivers a broadcast part: a lost part fails alone and the parent still gathers', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('w-a');
    const b = new FakeConsumer('w-b');
    const ra = join(d, a);
    join(d, b);
    const w = new Waiter();
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast }));
    d.unregister(ra);
    d.lost(a.delivered[0]!.job);
    assert.equal(parent.parts![0]!.errorCode, 'E_WORKER_GONE');
    assert.equal(b.delivered.length, 1, 'the part did not move to the other member');
    assert.equal(c.redelivered, 0);
    assert.equal(w.count(parent), 0);
    reply(d, b, b.held[0]!, '{"b":1}', 'application/json');
    assert.equal(w.count(parent), 1);
    assert.deepEqual(JSON.parse(Buffer.from(parent.replyBody!).toString()), [{ error: { code: 'E_WORKER_GONE', message: PART_GONE } }, { b: 1 }]);
    assert.equal(parent.replyHeaders![BROADCAST_HEADERS.failed], '1');
  });

  it('redelivers a job whose lease ran out without a reply, and still expires it at the original deadline', async () => {
    const { d, c } = hub();
    // Wide margins: a loaded machine may stall the event loop for a while.
    const leased = new FakeConsumer('leased', 50);
    const plain = new FakeConsumer('plain');
    join(d, leased);
    join(d, plain);
    const w = new Waiter();
    const j = submit(d, job(w, { timeoutMs: 600 }));
    assert.equal(j.reg?.consumer, leased);
    await until(() => c.leasesExpired === 1, 'the lease to run out');
    assert.equal(c.redelivered, 1);
    assert.equal(plain.delivered.length, 1);
    assert.equal(plain.delivered[0]!.attempt, 2);
    assert.equal(w.count(j), 0);
    await until(() => w.count(j) === 1, 'the deadline');
    assert.equal(j.errorCode, 'E_DEADLINE');
    assert.equal(j.status, 504);
    const at = w.settledAt.get(j)!;
    assert.ok(at >= j.deadline, 'not before the deadline');
    assert.ok(at < j.deadline + 300, `close to the deadline (${(at - j.deadline).toFixed(1)} ms late)`);
    assert.deepEqual(plain.cancels, [{ job: j, code: 'E_DEADLINE' }]);
    assert.equal(leased.cancels.length, 0, 'the withdrawn attempt is not told');
    assert.equal(c.expired, 1);
    assert.equal(d.open, 0);
  });

  it('arms no lease longer than the time left: the deadline fires instead', async () => {
    const { d, c } = hub();
    const leased = new FakeConsumer('leased', 500);
    join(d, leased);
    const w = new Waiter();
    const j = submit(d, job(w, { timeoutMs: 40 }));
    await until(() => w.count(j) === 1, 'the deadline');
    assert.equal(j.errorCode, 'E_DEADLINE');
    assert.equal(c.leasesExpired, 0);
    assert.deepEqual(leased.cancels, [{ job: j, code: 'E_DEADLINE' }]);
  });

  it('runs a job again elsewhere when its consumer gives it back uncancelled (release, then lost)', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    const b = new FakeConsumer('b');
    const ra = join(d, a);
    join(d, b);
    const w = new Waiter();
    const j = submit(d, job(w));
    assert.equal(j.reg, ra);
    ack(d, a, a.held[0]!);
    assert.equal(ra.inflight, 0);
    assert.equal(b.delivered.length, 1);
    assert.equal(b.delivered[0]!.attempt, 2);
    assert.equal(c.redelivered, 1);
    // Its credit came back: a has room for the next job.
    submit(d, job(w));
    assert.equal(a.delivered.length, 2);
    reply(d, b, b.held[0]!);
    assert.equal(w.count(j), 1);
  });
});

describe('dispatcher: every job settles once', () => {
  it('refuses a duplicate reply and counts it as late', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a);
    const w = new Waiter();
    const j = submit(d, job(w));
    const dl = a.held[0]!;
    assert.equal(reply(d, a, dl, 'first'), true);
    assert.equal(d.resolve(j, 201, null, null, Buffer.from('second'), 'hub-test/a'), false);
    assert.equal(d.resolveError(j, 500, 'E_X', null, 'hub-test/a'), false);
    d.release(j);
    assert.equal(w.count(j), 1);
    assert.equal(Buffer.from(j.replyBody!).toString(), 'first');
    assert.equal(j.status, 200);
    assert.equal(c.lateReplies, 2);
    assert.equal(c.replied, 1);
    assert.equal(r.inflight, 0);
  });

  it('ignores an abandon, a lost report and a reject after the reply', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    const b = new FakeConsumer('b');
    join(d, a);
    join(d, b);
    const w = new Waiter();
    const j = submit(d, job(w));
    reply(d, a, a.held[0]!);
    d.abandon(j, 'E_CANCELLED');
    d.lost(j);
    assert.equal(d.reject(j, 'E_BAD_REQUEST'), false);
    assert.equal(w.count(j), 1);
    assert.equal(j.errorCode, null);
    assert.equal(a.cancels.length, 0);
    assert.equal(b.delivered.length, 0);
    assert.equal(c.cancelled, 0);
    assert.equal(c.redelivered, 0);
    assert.equal(c.rejected, 0);
    assert.equal(d.open, 0);
  });

  it('refuses a reply after the deadline as late; the consumer was told and gets its credit back on release', async () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a);
    const w = new Waiter();
    const j = submit(d, job(w, { timeoutMs: 30 }));
    submit(d, job(w, { body: 'next' }));
    await until(() => w.count(j) === 1, 'the deadline');
    assert.equal(j.errorCode, 'E_DEADLINE');
    assert.deepEqual(a.cancels, [{ job: j, code: 'E_DEADLINE' }]);
    assert.equal(r.inflight, 1, 'the credit stays until the consumer answers');
    assert.equal(a.delivered.length, 1);
    assert.equal(reply(d, a, a.held[0]!), false);
    assert.equal(c.lateReplies, 1);
    assert.equal(w.count(j), 1);
    assert.deepEqual(a.bodies(), ['x', 'next']);
  });

  it('settles an error reply with the worker status and code, and turns an invalid code into E_HANDLER', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    join(d, a, { concurrency: 2 });
    const w = new Waiter();
    const j1 = submit(d, job(w));
    const j2 = submit(d, job(w));
    assert.equal(d.resolveError(j1, 409, 'E_CONFLICT', 'taken', 'hub-test/a'), true);
    assert.equal(d.resolveError(j2, null, 'not a code', null, 'hub-test/a'), true);
    d.release(j1);
    d.release(j2);
    assert.deepEqual([j1.status, j1.errorCode, j1.errorMessage], [409, 'E_CONFLICT', 'taken']);
    assert.deepEqual([j2.status, j2.errorCode], [500, 'E_HANDLER']);
    assert.equal(c.errorReplies, 2);
    assert.deepEqual([w.count(j1), w.count(j2)], [1, 1]);
  });

  it('cancels a queued job without involving any consumer and frees its queue place', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    join(d, a);
    const w = new Waiter();
    submit(d, job(w));
    const queued = submit(d, job(w, { body: 'queued' }));
    assert.equal(d.queuedBytes, 6);
    d.abandon(queued, 'E_CANCELLED');
    assert.equal(w.count(queued), 1);
    assert.equal(queued.status, 499);
    assert.equal(d.queuedBytes, 0);
    assert.equal(d.services.get('svc')!.queued, 0);
    assert.equal(a.cancels.length, 0);
    assert.equal(c.cancelled, 1);
    reply(d, a, a.held[0]!);
    assert.equal(a.delivered.length, 1, 'the cancelled job is not delivered');
    assert.equal(d.open, 0);
  });
});

describe('dispatcher: reject and precheck', () => {
  it('settles a job that was never accepted once, with the code and its status', () => {
    const { d, c } = hub();
    const w = new Waiter();
    const j = job(w);
    assert.equal(d.reject(j, 'E_BODY_TOO_LARGE'), false);
    assert.equal(d.reject(j, 'E_BAD_REQUEST'), false);
    assert.equal(w.count(j), 1);
    assert.deepEqual([j.errorCode, j.status], ['E_BODY_TOO_LARGE', 413]);
    assert.equal(c.rejected, 1);
    assert.equal(c.accepted, 0);
    assert.equal(d.open, 0);
  });

  it('refuses a service nobody serves with E_NO_WORKERS, and one whose last worker left once the linger is over', async () => {
    const { d, c } = hub({ serviceLingerMs: 30 });
    const w = new Waiter();
    const unknown = job(w, { service: 'nobody' });
    assert.equal(d.submit(unknown), false);
    assert.deepEqual([unknown.errorCode, unknown.status, w.count(unknown)], ['E_NO_WORKERS', 503, 1]);
    const a = new FakeConsumer('a');
    d.unregister(join(d, a));
    // Within the linger a job is accepted and waits; after it, it is refused.
    const waiting = submit(d, job(w, { timeoutMs: 1000 }));
    assert.equal(d.services.get('svc')!.queued, 1);
    await sleep(50);
    const late = job(w);
    assert.equal(d.submit(late), false);
    assert.equal(late.errorCode, 'E_NO_WORKERS');
    assert.equal(c.rejectedNoWorkers, 2);
    assert.equal(c.rejected, 2);
    d.abandon(waiting, 'E_CANCELLED');
    assert.equal(d.open, 0);
  });

  it('refuses with E_QUEUE_FULL once the service queue holds maxQueuePerService jobs', () => {
    const { d, c } = hub({ maxQueuePerService: 2 });
    const a = new FakeConsumer('a');
    join(d, a);
    const w = new Waiter();
    for (let i = 0; i < 3; i++) submit(d, job(w));
    const over = job(w);
    assert.equal(d.submit(over), false);
    assert.deepEqual([over.errorCode, over.status, w.count(over)], ['E_QUEUE_FULL', 503, 1]);
    assert.equal(c.rejectedQueueFull, 1);
    assert.equal(c.accepted, 3);
    assert.equal(d.open, 3);
    assert.equal(d.services.get('svc')!.queued, 2);
  });

  it('refuses with E_QUEUE_FULL once queued bodies would pass maxQueuedBytes', () => {
    const { d, c } = hub({ maxBodyBytes: 1024, maxQueuedBytes: 2048 });
    const a = new FakeConsumer('a');
    const r = join(d, a);
    const w = new Waiter();
    const big = 'y'.repeat(1000);
    submit(d, job(w, { body: big }));
    submit(d, job(w, { body: big }));
    submit(d, job(w, { body: big }));
    assert.equal(d.queuedBytes, 2000);
    const over = job(w, { body: 'z'.repeat(100) });
    assert.equal(d.submit(over), false);
    assert.equal(over.errorCode, 'E_QUEUE_FULL');
    assert.equal(c.rejectedQueueFull, 1);
    assert.equal(d.submit(job(w, { body: 'z'.repeat(48) })), true, 'exactly at the limit fits');
    while (a.held.length > 0) reply(d, a, a.held[0]!);
    assert.equal(d.queuedBytes, 0);
    assert.equal(r.inflight, 0);
    assert.equal(d.open, 0);
  });

  it('refuses everything with E_SHUTTING_DOWN while draining', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    join(d, a);
    d.draining = true;
    assert.equal(d.precheck('svc', RequestMode.Any), 'E_SHUTTING_DOWN');
    const w = new Waiter();
    const j = job(w);
    assert.equal(d.submit(j), false);
    assert.deepEqual([j.errorCode, j.status, w.count(j)], ['E_SHUTTING_DOWN', 503, 1]);
    assert.equal(a.delivered.length, 0);
    assert.equal(c.rejected, 1);
  });
});

describe('dispatcher: broadcast', () => {
  it('sends one part per ring member in instanceId order and settles the parent once, with the JSON array, after every part', () => {
    const { d, c } = hub();
    const cs = ['w-c', 'w-a', 'w-b'].map((n) => new FakeConsumer(n));
    for (const x of cs) join(d, x);
    const byName = new Map(cs.map((x) => [x.name, x]));
    const w = new Waiter();
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast, body: 'ping' }));
    assert.deepEqual(
      parent.parts!.map((p) => p.pinned!.instanceId),
      ['w-a', 'w-b', 'w-c'],
    );
    assert.equal(d.open, 3, 'parts count as open, the parent does not');
    assert.equal(c.accepted, 1);
    for (const x of cs) assert.deepEqual(x.bodies(), ['ping']);
    // Replies in any order; the answer is in ring order.
    reply(d, byName.get('w-c')!, byName.get('w-c')!.held[0]!, 'hello', 'text/plain');
    assert.equal(w.count(parent), 0);
    reply(d, byName.get('w-a')!, byName.get('w-a')!.held[0]!, '{"n":1}', 'application/json');
    assert.equal(w.count(parent), 0);
    const b = byName.get('w-b')!;
    assert.equal(d.resolveError(b.held[0]!.job, 503, 'E_BUSY', 'busy', 'hub-test/w-b'), true);
    d.release(b.held[0]!.job);
    assert.equal(w.count(parent), 1);
    assert.equal(parent.status, 200);
    assert.equal(parent.replyContentType, 'application/json');
    assert.deepEqual(JSON.parse(Buffer.from(parent.replyBody!).toString()), [{ n: 1 }, { error: { code: 'E_BUSY', message: 'busy' } }, 'hello']);
    assert.deepEqual(parent.replyHeaders, { [BROADCAST_HEADERS.asked]: '3', [BROADCAST_HEADERS.failed]: '1', [BROADCAST_HEADERS.timedOut]: '0' });
    assert.equal(d.open, 0);
  });

  it('queues a part at a busy member and delivers it when the member has credit again', () => {
    const { d } = hub();
    const a = new FakeConsumer('w-a');
    const b = new FakeConsumer('w-b');
    const ra = join(d, a);
    join(d, b);
    const w = new Waiter();
    const [key] = keysOwnedBy('w-a', [{ id: 'w-a' }, { id: 'w-b' }], 1);
    submit(d, job(w, { key: key!, body: 'keyed' }));
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast, body: 'all' }));
    assert.equal(ra.ownerQueue.length, 1);
    assert.deepEqual(b.bodies(), ['all']);
    reply(d, a, a.held[0]!);
    assert.deepEqual(a.bodies(), ['keyed', 'all']);
    reply(d, a, a.held[0]!);
    reply(d, b, b.held[0]!);
    assert.equal(w.count(parent), 1);
  });

  it('cancels every part at its consumer when the parent is abandoned, and settles the parent once', () => {
    const { d, c } = hub();
    const cs = ['w-a', 'w-b', 'w-c'].map((n) => new FakeConsumer(n));
    const regs = cs.map((x) => join(d, x));
    const w = new Waiter();
    // w-c is busy with a keyed job: its part waits in its owner queue.
    const [key] = keysOwnedBy('w-c', [{ id: 'w-a' }, { id: 'w-b' }, { id: 'w-c' }], 1);
    submit(d, job(w, { key: key! }));
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast, body: 'all' }));
    assert.equal(regs[2]!.ownerQueue.length, 1);
    reply(d, cs[0]!, cs[0]!.held[0]!, '1', 'application/json');
    d.abandon(parent, 'E_CANCELLED');
    assert.equal(w.count(parent), 1);
    assert.equal(cs[0]!.cancels.length, 0, 'an answered part is not cancelled');
    assert.deepEqual(
      cs[1]!.cancels.map((x) => x.code),
      ['E_CANCELLED'],
    );
    assert.equal(cs[1]!.cancels[0]!.job, parent.parts![1]);
    assert.equal(cs[2]!.cancels.length, 0, 'a part still queued is dropped, not cancelled at the consumer');
    assert.equal(regs[2]!.ownerQueue.length, 0);
    assert.equal(c.cancelled, 2);
    assert.deepEqual(JSON.parse(Buffer.from(parent.replyBody!).toString()), [
      1,
      { error: { code: 'E_CANCELLED', message: 'the caller went away' } },
      { error: { code: 'E_CANCELLED', message: 'the caller went away' } },
    ]);
    d.abandon(parent, 'E_CANCELLED');
    assert.equal(w.count(parent), 1);
    // The cancelled part's ack returns the credit; the keyed job at w-c is still open.
    ack(d, cs[1]!, cs[1]!.held[0]!);
    assert.equal(regs[1]!.inflight, 0);
    assert.equal(d.open, 1);
  });

  it('fails the part of a member that leaves before taking it with E_WORKER_GONE', () => {
    const { d } = hub();
    const a = new FakeConsumer('w-a');
    const b = new FakeConsumer('w-b');
    join(d, a);
    const rb = join(d, b);
    const w = new Waiter();
    const [key] = keysOwnedBy('w-b', [{ id: 'w-a' }, { id: 'w-b' }], 1);
    const keyed = submit(d, job(w, { key: key! }));
    const parent = submit(d, job(w, { mode: RequestMode.Broadcast }));
    d.unregister(rb);
    assert.equal(parent.parts![1]!.errorCode, 'E_WORKER_GONE');
    assert.equal(keyed.reg, rb, 'the job it holds stays with it');
    reply(d, a, a.held[0]!, 'null', 'application/json');
    assert.equal(w.count(parent), 1);
    assert.equal(parent.replyHeaders![BROADCAST_HEADERS.failed], '1');
    assert.equal(d.services.get('svc')!.queued, 0);
  });

  it('answers a broadcast to a stream never seen at once: 200, [] and counts of 0, creating no service', () => {
    const { d, c } = hub();
    const w = new Waiter();
    assert.equal(d.precheck('ghost', RequestMode.Broadcast), null);
    const parent = job(w, { service: 'ghost', mode: RequestMode.Broadcast, key: 'k' });
    assert.equal(d.submit(parent), true);
    assert.equal(w.count(parent), 1);
    assert.deepEqual(
      [parent.status, parent.errorCode, parent.replyContentType, Buffer.from(parent.replyBody!).toString()],
      [200, null, 'application/json', '[]'],
    );
    assert.deepEqual(parent.replyHeaders, { [BROADCAST_HEADERS.asked]: '0', [BROADCAST_HEADERS.failed]: '0', [BROADCAST_HEADERS.timedOut]: '0' });
    assert.equal(d.services.has('ghost'), false);
    assert.deepEqual([c.accepted, c.rejected, c.rejectedNoWorkers, d.open], [1, 0, 0, 0]);
    // Counted as a 2xx, and timed, in the series names the hub does not know share.
    const other = d.tally!.other;
    assert.deepEqual(requestTotals(other), { requests: 1, errors: 0 });
    assert.equal(other.latencyCount, 1);
    assert.equal(d.tally!.services.has('ghost'), false);
  });

  it('answers a broadcast with [] when the ring emptied, within the linger as after it', async () => {
    const { d } = hub({ serviceLingerMs: 30 });
    d.unregister(join(d, new FakeConsumer('w-a')));
    const w = new Waiter();
    const within = job(w, { mode: RequestMode.Broadcast, key: 'k' });
    assert.equal(d.precheck('svc', RequestMode.Broadcast), null);
    assert.equal(d.submit(within), true);
    await sleep(50);
    const after = job(w, { mode: RequestMode.Broadcast, key: 'k' });
    assert.equal(d.submit(after), true);
    for (const parent of [within, after]) {
      assert.equal(w.count(parent), 1);
      assert.deepEqual([parent.status, Buffer.from(parent.replyBody!).toString()], [200, '[]']);
      assert.equal(parent.replyHeaders![BROADCAST_HEADERS.asked], '0');
    }
    // Counted in the service's own series, not _other.
    assert.deepEqual(requestTotals(d.services.get('svc')!.tally!), { requests: 2, errors: 0 });
  });

  it('refuses a broadcast while draining, with or without handlers, and keyed and unkeyed requests without any', () => {
    const { d } = hub();
    const w = new Waiter();
    for (const mode of [RequestMode.Any, RequestMode.Keyed]) {
      const j = job(w, { service: 'ghost', mode, key: 'k' });
      assert.equal(d.precheck('ghost', mode), 'E_NO_WORKERS');
      assert.equal(d.submit(j), false);
      assert.deepEqual([j.errorCode, j.status], ['E_NO_WORKERS', 503]);
    }
    join(d, new FakeConsumer('w-a'));
    d.draining = true;
    for (const service of ['ghost', 'svc']) {
      assert.equal(d.precheck(service, RequestMode.Broadcast), 'E_SHUTTING_DOWN');
      const parent = job(w, { service, mode: RequestMode.Broadcast, key: 'k' });
      assert.equal(d.submit(parent), false);
      assert.deepEqual([parent.errorCode, parent.status, parent.parts], ['E_SHUTTING_DOWN', 503, null]);
    }
  });
});

describe('dispatcher: leases and withdrawn attempts', () => {
  it('gives a consumer whose lease ran out its credit back, so it takes the next job', async () => {
    const { d, c } = hub();
    const leased = new FakeConsumer('leased', 40);
    const plain = new FakeConsumer('plain');
    const rl = join(d, leased);
    const rp = join(d, plain);
    const w = new Waiter();
    const j1 = submit(d, job(w, { body: 'j1', timeoutMs: 2000 }));
    assert.equal(j1.reg, rl);
    await until(() => c.leasesExpired === 1, 'the lease to run out');
    assert.equal(j1.reg, rp);
    assert.equal(rl.inflight, 0, 'the withdrawn attempt holds no credit');
    submit(d, job(w, { body: 'j2', timeoutMs: 2000 }));
    assert.deepEqual(leased.bodies(), ['j1', 'j2']);
  });

  it('accepts a late reply from a withdrawn attempt without taking credit from the consumer that runs the job now', async () => {
    const { d, c } = hub();
    const leased = new FakeConsumer('leased', 40);
    const plain = new FakeConsumer('plain');
    join(d, leased, { concurrency: 2 });
    const rp = join(d, plain);
    const w = new Waiter();
    const j1 = submit(d, job(w, { body: 'j1', timeoutMs: 2000 }));
    await until(() => c.leasesExpired === 1, 'the lease to run out');
    assert.equal(j1.reg, rp);
    // The first attempt answers after all: the job settles with it.
    assert.equal(reply(d, leased, leased.holding(j1)), true);
    assert.equal(w.count(j1), 1);
    assert.equal(rp.inflight, 1, 'plain still works on its attempt and keeps its credit');
    leased.sendable = false;
    submit(d, job(w, { body: 'j2', timeoutMs: 2000 }));
    assert.deepEqual(plain.bodies(), ['j1'], 'plain gets nothing beyond its concurrency');
    assert.equal(reply(d, plain, plain.holding(j1)), false);
    assert.deepEqual(plain.bodies(), ['j1', 'j2']);
    assert.equal(rp.inflight, 1);
  });

  it('ignores a lost report for an attempt already withdrawn: the attempt that runs now stays', async () => {
    const { d, c } = hub();
    const leased = new FakeConsumer('leased', 40);
    const plain = new FakeConsumer('plain');
    const rl = join(d, leased);
    const rp = join(d, plain);
    const w = new Waiter();
    const j1 = submit(d, job(w, { timeoutMs: 2000 }));
    await until(() => c.leasesExpired === 1, 'the lease to run out');
    assert.equal(j1.reg, rp);
    // The leased consumer's link drops: it reports every job it still holds.
    d.unregister(rl);
    for (const dl of [...leased.held]) lose(d, leased, dl);
    assert.equal(j1.reg, rp);
    assert.equal(j1.attempt, 2);
    assert.equal(c.redelivered, 1);
    assert.equal(d.services.get('svc')!.queued, 0);
    assert.equal(reply(d, plain, plain.holding(j1)), true);
    assert.equal(rp.inflight, 0);
    assert.equal(w.count(j1), 1);
  });

  it('gives the credit back when a consumer reports a job lost that was cancelled meanwhile', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a);
    const w = new Waiter();
    const j = submit(d, job(w));
    d.abandon(j, 'E_CANCELLED');
    assert.equal(r.inflight, 1, 'the consumer keeps the credit until it answers the cancel');
    // Instead of acknowledging, the consumer reports the job lost (its link went down).
    lose(d, a, a.held[0]!);
    assert.equal(r.inflight, 0);
    assert.equal(c.redelivered, 0);
    assert.equal(w.count(j), 1);
    submit(d, job(w, { body: 'next' }));
    assert.deepEqual(a.bodies(), ['x', 'next']);
  });
});

describe('dispatcher: consumers that answer inside deliver', () => {
  it('settles a job answered inside deliver once and leaves no open job behind', () => {
    const { d, c } = hub();
    const a = new FakeConsumer('a');
    const r = join(d, a);
    a.onDeliver = (dl) => reply(d, a, dl);
    const w = new Waiter();
    const jobs = [0, 1, 2].map(() => submit(d, job(w)));
    assert.deepEqual(
      jobs.map((j) => w.count(j)),
      [1, 1, 1],
    );
    assert.equal(c.accepted, 3);
    assert.equal(d.open, 0);
    assert.equal(d.wheel.size, 0, 'nothing settled is left on the wheel');
    assert.equal(r.inflight, 0);
  });

  it('still expires a job whose deadline shares a wheel slot with a lease whose expiry settles another job of that slot', async () => {
    const { d, c } = hub();
    const leased = new FakeConsumer('leased', 20);
    join(d, leased, { concurrency: 3 });
    const w = new Waiter();
    const j1 = submit(d, job(w, { body: 'j1', timeoutMs: 5000 }));
    leased.sendable = false;
    // Two jobs wait, due exactly when j1's lease runs out: the lease expiry hands them over.
    const due = j1.due;
    const k = submit(d, new Job('svc', RequestMode.Any, null, Buffer.from('k'), null, null, null, due, w));
    const m = submit(d, new Job('svc', RequestMode.Any, null, Buffer.from('m'), null, null, null, due, w));
    leased.sendable = true;
    // It answers m at once (inside deliver) and never answers k.
    leased.onDeliver = (dl) => {
      if (dl.job === m) reply(d, leased, dl);
    };
    await until(() => c.leasesExpired === 1, 'the lease to run out');
    await until(() => w.count(k) === 1, "k's deadline", 500);
    assert.equal(k.errorCode, 'E_DEADLINE');
    assert.equal(w.count(m), 1);
    assert.equal(m.errorCode, null);
  });

  it('settles a job lost inside deliver on its last attempt once and leaves no open job behind', () => {
    const { d } = hub({ maxAttempts: 1 });
    const a = new FakeConsumer('a');
    const r = join(d, a);
    a.onDeliver = (dl) => {
      d.unregister(r);
      lose(d, a, dl);
    };
    const w = new Waiter();
    const j = submit(d, job(w));
    assert.equal(w.count(j), 1);
    assert.equal(j.errorCode, 'E_WORKER_GONE');
    assert.equal(d.open, 0);
    assert.equal(d.wheel.size, 0);
  });
});

/** One step of the random walk: a caller, a consumer, the hub's clock or its sweep. */
type Step =
  | { k: 'submit'; mode: RequestModeCode; key: number; timeoutMs: number; size: number }
  | { k: 'reply' | 'error' | 'ack' | 'release' | 'lose'; c: number; pick: number }
  | { k: 'teardown' | 'block' | 'offer' | 'unregister'; c: number }
  | { k: 'register'; c: number; concurrency: number }
  | { k: 'abandon'; pick: number }
  | { k: 'wait'; ms: number }
  | { k: 'sweep' };

const consumerIndex = fc.integer({ min: 0, max: 3 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('submit' as const),
      mode: fc.constantFrom<RequestModeCode>(RequestMode.Any, RequestMode.Any, RequestMode.Keyed, RequestMode.Broadcast),
      key: fc.integer({ min: 0, max: 5 }),
      timeoutMs: fc.integer({ min: 30, max: 80 }),
      size: fc.integer({ min: 0, max: 16 }),
    }),
  },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('reply' as const), c: consumerIndex, pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('error' as const), c: consumerIndex, pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('ack' as const), c: consumerIndex, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('release' as const), c: consumerIndex, pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('lose' as const), c: consumerIndex, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('teardown' as const), c: consumerIndex }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('block' as const), c: consumerIndex }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('offer' as const), c: consumerIndex }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('unregister' as const), c: consumerIndex }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('register' as const), c: consumerIndex, concurrency: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('abandon' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 5, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('sweep' as const) }) },
);

/** The four consumers of the walk: a worker, a leasing worker, leasing capacity and a remote member. */
const WALKERS: { name: string; leaseMs: number; takes: TakesCode }[] = [
  { name: 'w-a', leaseMs: 0, takes: Takes.Ring },
  { name: 'w-b', leaseMs: 20, takes: Takes.Ring },
  { name: 'cap', leaseMs: 25, takes: Takes.Capacity },
  { name: 'w-r', leaseMs: 0, takes: Takes.Remote },
];

/**
 * Runs `steps` against a fresh dispatcher, checking at every delivery that it is within credit and
 * for a registration that may take it, and after every step that no job settled twice and that
 * open jobs, queued bytes and each registration's inflight agree with the jobs; then waits out
 * every deadline, gives back everything the consumers still hold, and checks that all of it
 * returned to zero.
 */
async function walk(linger: number, eager: number, concurrency: number[], steps: Step[]): Promise<void> {
  const { d } = hub({ maxAttempts: 2, maxQueuePerService: 6, serviceLingerMs: linger });
  const w = new Waiter();
  const jobs: Job[] = [];
  const regs: Registration[] = [];
  /** Credit above concurrency a registration may still hold after its concurrency was lowered. */
  const grandfathered = new Map<Registration, number>();
  const consumers = WALKERS.map((s) => new FakeConsumer(s.name, s.leaseMs));
  const current: (Registration | null)[] = WALKERS.map(() => null);
  const register = (i: number, n: number) => {
    const cur = current[i];
    if (cur && !cur.closed) {
      grandfathered.set(cur, cur.inflight);
      join(d, consumers[i]!, { concurrency: n, takes: WALKERS[i]!.takes, existing: cur });
    } else {
      const r = join(d, consumers[i]!, { concurrency: n, takes: WALKERS[i]!.takes });
      regs.push(r);
      current[i] = r;
    }
  };
  consumers.forEach((c, i) => {
    c.onDeliver = (dl) => {
      assert.equal(dl.job.state, JobState.Assigned);
      assert.equal(dl.reg.closed, false, 'delivered to a closed registration');
      assert.ok(dl.reg.inflight <= dl.reg.concurrency, `${c.name} got a job beyond its credit`);
      if (dl.reg.takes === Takes.Capacity) assert.equal(dl.job.mode, RequestMode.Any, 'capacity got keyed or broadcast work');
      if (dl.reg.takes === Takes.Remote) assert.notEqual(dl.job.mode, RequestMode.Any, 'a remote member got unkeyed work');
      if (dl.job.pinned) assert.equal(dl.job.pinned, dl.reg, 'a broadcast part left its member');
      // The eager consumer (if any) answers some jobs inside deliver.
      if (i === eager && dl.body.length % 2 === 0) reply(d, c, dl);
    };
  });
  const check = () => {
    let open = 0;
    let bytes = 0;
    let queued = 0;
    const charged = new Map<Registration, number>();
    for (const j of jobs) {
      assert.ok(w.count(j) <= 1, 'a job settled twice');
      if (j.parts && w.count(j) === 1)
        assert.ok(
          j.parts.every((p) => p.state === JobState.Settled),
          'a broadcast answered before its parts',
        );
      for (const x of j.parts ?? [j]) {
        if (x.reg) {
          // Credit is charged for exactly the attempts consumers hold.
          charged.set(x.reg, (charged.get(x.reg) ?? 0) + 1);
          const holder = x.reg.consumer as FakeConsumer;
          assert.ok(
            holder.held.some((dl) => dl.job === x && dl.attempt === x.attempt),
            `${holder.name} is charged for an attempt it does not hold`,
          );
        }
        if (x.accepted && x.state !== JobState.Settled) open++;
        if (x.state === JobState.Queued) {
          queued++;
          bytes += x.body.length;
        }
      }
    }
    assert.equal(d.open, open, 'open jobs');
    assert.equal(d.queuedBytes, bytes, 'queued bytes');
    assert.equal(
      [...d.services.values()].reduce((n, s) => n + s.queued, 0),
      queued,
      'queued jobs',
    );
    for (const r of regs) {
      assert.equal(r.inflight, charged.get(r) ?? 0, `${r.instanceId} inflight against the attempts it holds`);
      const allowed = Math.max(r.concurrency, grandfathered.get(r) ?? 0);
      assert.ok(r.inflight <= allowed, `${r.instanceId} inflight ${r.inflight} over ${allowed}`);
      grandfathered.set(r, Math.min(grandfathered.get(r) ?? 0, r.inflight));
    }
  };
  try {
    concurrency.forEach((n, i) => {
      register(i, n);
    });
    for (const s of steps) {
      if (s.k === 'submit') {
        const key = s.mode === RequestMode.Keyed ? `k${s.key}` : undefined;
        const j = job(w, { mode: s.mode, key, body: 'b'.repeat(s.size), timeoutMs: s.timeoutMs });
        jobs.push(j);
        d.submit(j);
      } else if (s.k === 'abandon') {
        if (jobs.length > 0) d.abandon(jobs[s.pick % jobs.length]!, 'E_CANCELLED');
      } else if (s.k === 'wait') {
        await sleep(s.ms);
      } else if (s.k === 'sweep') {
        d.sweepServices();
      } else if (s.k === 'register') {
        register(s.c, s.concurrency);
      } else {
        const c = consumers[s.c]!;
        const r = current[s.c];
        if (s.k === 'block') c.sendable = false;
        else if (s.k === 'offer') {
          c.sendable = true;
          if (r) d.offer(r);
        } else if (s.k === 'unregister') {
          if (r) d.unregister(r);
        } else if (s.k === 'teardown') {
          if (r) d.unregister(r);
          for (const dl of [...c.held]) lose(d, c, dl);
        } else if ('pick' in s && c.held.length > 0) {
          const dl = c.held[s.pick % c.held.length]!;
          if (s.k === 'reply') reply(d, c, dl);
          else if (s.k === 'ack') ack(d, c, dl);
          else if (s.k === 'lose') lose(d, c, dl);
          else {
            c.drop(dl);
            if (s.k === 'error') d.resolveError(dl.job, 500, 'E_WALK', 'failed', `hub-test/${c.name}`);
            d.release(dl.job, dl.attempt);
          }
        }
      }
      check();
    }
    // Every accepted job has a deadline: wait them out, then hand back whatever is still held.
    const last = Math.max(now(), ...jobs.map((j) => j.deadline));
    await until(() => jobs.every((j) => w.count(j) === 1), 'every job to settle', last - now() + 5000);
    for (const c of consumers) for (const dl of [...c.held]) reply(d, c, dl);
    check();
    assert.equal(d.open, 0);
    assert.equal(d.queuedBytes, 0);
    for (const r of regs) assert.equal(r.inflight, 0, `${r.instanceId} keeps credit after everything settled`);
    for (const j of jobs) assert.equal(w.count(j), 1);
  } finally {
    d.wheel.stop();
  }
}

describe('dispatcher: random sequences of operations', () => {
  it('settles every job once and returns open jobs, queued bytes and credit to zero, never delivering beyond credit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 10_000),
        fc.integer({ min: -1, max: 3 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
        fc.array(step, { minLength: 10, maxLength: 60, size: 'max' }),
        walk,
      ),
      { numRuns: Number(process.env.DISPATCHER_WALKS ?? 40), includeErrorInReport: true },
    );
  });
});

describe('dispatcher: the service table', () => {
  it("keeps services only peers serve in a budget of their own, so a peer's announcements cannot lock this hub's workers out", () => {
    const { d } = hub({ maxServices: 2 });
    const link = new FakeConsumer('link');
    join(d, link, { service: 'far-1', takes: Takes.Remote });
    join(d, link, { service: 'far-2', takes: Takes.Peer });
    const third = d.register(link, 'far-3', 1, { instanceId: 'x', hubId: 'peer', weight: 1, takes: Takes.Remote });
    assert.equal(third, 'E_OVERLOADED');
    // This hub's own workers still have their two services.
    join(d, new FakeConsumer('w1'), { service: 'mine-1' });
    join(d, new FakeConsumer('w2'), { service: 'mine-2' });
    assert.equal(d.register(new FakeConsumer('w3'), 'mine-3', 1, { instanceId: 'w3', hubId: 'hub-test', weight: 1, takes: Takes.Ring }), 'E_OVERLOADED');
    // A worker here that serves a peer's service makes it this hub's own: the peer budget frees a slot.
    assert.equal(d.peerServices, 2);
    const { d: d2 } = hub({ maxServices: 2 });
    join(d2, link, { service: 'shared', takes: Takes.Remote });
    join(d2, new FakeConsumer('w'), { service: 'shared' });
    assert.equal(d2.peerServices, 0);
  });

  it('keeps names only long-polls asked for in an LRU of their own: polls on made-up names never lock a worker out', () => {
    const { d } = hub({ maxServices: 3 });
    const poll = (name: string) =>
      d.register(new FakeConsumer(`poll-${name}`), name, 1, { instanceId: '', hubId: 'hub-test', weight: 1, takes: Takes.Capacity });
    // Five made-up names, each polled and hung up: each lingers, and the oldest give way to the newest.
    for (const name of ['p0', 'p1', 'p2', 'p3', 'p4']) {
      const r = poll(name);
      assert.ok(r instanceof Registration, `poll on ${name}: ${String(r)}`);
      d.unregister(r);
    }
    assert.deepEqual([...d.services.keys()].sort(), ['p2', 'p3', 'p4']);
    assert.equal(d.precheck('p0', RequestMode.Any), 'E_NO_WORKERS', 'a name that gave way serves no more');
    assert.equal(d.precheck('p4', RequestMode.Any), null, 'the newest still lingers');
    // This hub's workers still have their services.
    for (const name of ['real-1', 'real-2']) join(d, new FakeConsumer(name), { service: name });
    // A name a poller waits on (or with a caller's job queued) does not give way: a full LRU of those refuses.
    const held = ['h1', 'h2', 'h3'].map((name) => poll(name));
    for (const r of held) assert.ok(r instanceof Registration);
    assert.equal(poll('h4'), 'E_OVERLOADED');
    // A worker registering on a polled name makes it this hub's own (out of the LRU).
    d.unregister(held[0] as Registration);
    join(d, new FakeConsumer('w-h1'), { service: 'h1' });
    assert.equal(d.pollServices.size, 2);
    // ... within this hub's own budget, which is full now.
    assert.equal(d.register(new FakeConsumer('w-h2'), 'h2', 1, { instanceId: 'w-h2', hubId: 'hub-test', weight: 1, takes: Takes.Ring }), 'E_OVERLOADED');
  });
});
