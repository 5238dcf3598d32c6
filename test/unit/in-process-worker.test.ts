/**
 * The in-process consumer against the real dispatcher: handlers run after the dispatcher's call
 * returns, credit comes back when a handler is done (cancelled or not), a job cancelled before
 * its handler ran never runs it, and each job settles once.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { BusError } from '../../client/errors.js';
import type { IncomingJob } from '../../client/handler.js';
import { RequestMode } from '../../client/protocol.js';
import { Dispatcher } from '../../server/dispatcher.js';
import { InProcessWorker } from '../../server/in-process-worker.js';
import { Job, type JobWaiter } from '../../server/job.js';
import { resolveHubOptions } from '../../server/options.js';
import { now } from '../../server/timer-wheel.js';

const o = resolveHubOptions({ defaultTimeoutMs: 2000 });
const dispatchers: Dispatcher[] = [];
afterEach(() => {
  for (const d of dispatchers.splice(0)) d.wheel.stop();
});

function setup() {
  const d = new Dispatcher(o);
  dispatchers.push(d);
  return { d, w: new InProcessWorker(d, o, 'hub-a', 'hub-a.local') };
}

class Waiter implements JobWaiter {
  readonly settles = new Map<Job, number>();
  settled(job: Job): void {
    this.settles.set(job, (this.settles.get(job) ?? 0) + 1);
  }
}

function job(waiter: JobWaiter, body = 'x', key: string | null = null, timeoutMs = 2000): Job {
  return new Job('svc', key === null ? RequestMode.Any : RequestMode.Keyed, key, Buffer.from(body), 'text/plain', null, null, now() + timeoutMs, waiter);
}

const tick = () => new Promise((r) => setImmediate(r));

describe('InProcessWorker', () => {
  it('runs a handler after the dispatcher returns, and answers with what it returned', async () => {
    const { d, w } = setup();
    let during = false;
    w.handle(
      'svc',
      (j: IncomingJob) => {
        during = true;
        return { status: 201, contentType: 'text/plain', body: `got ${j.text()} key ${j.key} attempt ${j.attempt}` };
      },
      { concurrency: 1, weight: 1 },
    );
    const waiter = new Waiter();
    const j = job(waiter, 'hello', 'k1');
    d.submit(j);
    assert.equal(during, false, 'not from inside submit');
    await tick();
    assert.equal(waiter.settles.get(j), 1);
    assert.equal(j.status, 201);
    assert.equal(Buffer.from(j.replyBody!).toString(), 'got hello key k1 attempt 1');
    assert.equal(j.servedBy, 'hub-a/hub-a.local');
    assert.equal(d.services.get('svc')!.regs.values().next().value!.inflight, 0);
  });

  it('holds its credit until a cancelled handler returns; a job cancelled before it ran never runs', async () => {
    const { d, w } = setup();
    const started: string[] = [];
    const reasons: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    w.handle(
      'svc',
      async (j: IncomingJob) => {
        started.push(j.text());
        j.signal.addEventListener('abort', () => reasons.push((j.signal.reason as BusError).code));
        await gate;
        return 'late';
      },
      { concurrency: 1, weight: 1 },
    );
    const waiter = new Waiter();
    const a = job(waiter, 'a');
    const b = job(waiter, 'b');
    const c = job(waiter, 'c');
    d.submit(a);
    await tick();
    d.submit(b);
    d.submit(c);
    d.abandon(a, 'E_CANCELLED');
    d.abandon(b, 'E_DEADLINE');
    await tick();
    assert.deepEqual(reasons, ['E_CANCELLED']);
    assert.deepEqual(started, ['a'], 'the credit is still held: c waits, b is gone');
    assert.equal(a.errorCode, 'E_CANCELLED');
    release();
    await tick();
    await tick();
    assert.deepEqual(started, ['a', 'c'], 'b was cancelled before it ran, c got the credit');
    await tick();
    assert.equal(waiter.settles.get(a), 1, 'a settled once: its late answer is dropped');
    assert.equal(waiter.settles.get(b), 1);
    assert.equal(waiter.settles.get(c), 1);
    assert.equal(Buffer.from(c.replyBody!).toString(), 'late');
  });

  it('a throw is an error answer, a HandlerError keeps its status and code', async () => {
    const { d, w } = setup();
    const { HandlerError } = await import('../../client/handler.js');
    w.handle(
      'svc',
      (j: IncomingJob) => {
        if (j.text() === 'typed') throw new HandlerError('nope', 409, 'E_CONFLICT');
        throw new Error('boom');
      },
      { concurrency: 2, weight: 1 },
    );
    const waiter = new Waiter();
    const typed = job(waiter, 'typed');
    const plain = job(waiter, 'plain');
    d.submit(typed);
    d.submit(plain);
    await tick();
    assert.deepEqual([typed.status, typed.errorCode, typed.errorMessage], [409, 'E_CONFLICT', 'nope']);
    assert.deepEqual([plain.status, plain.errorCode, plain.errorMessage], [500, 'E_HANDLER', 'boom']);
  });

  it('a reply the hub could not write (a body, content type or header value of the wrong type) is a 500 error answer', async () => {
    const { d, w } = setup();
    const replies: Record<string, unknown> = {
      body: { body: 42 },
      object: { body: { a: 1 } },
      type: { contentType: 7, body: 'x' },
      header: { headers: { 'x-a': 1 }, body: 'x' },
      headers: { headers: 'x-a: 1', body: 'x' },
    };
    w.handle('svc', (j: IncomingJob) => replies[j.text()] as never, { concurrency: 8, weight: 1 });
    const waiter = new Waiter();
    const jobs = Object.keys(replies).map((name) => job(waiter, name));
    for (const j of jobs) d.submit(j);
    await tick();
    for (const j of jobs) {
      assert.equal(waiter.settles.get(j), 1);
      assert.deepEqual([j.status, j.errorCode, j.replyBody], [500, 'E_HANDLER', null], String(j.errorMessage));
      assert.match(j.errorMessage!, /the handler's reply was refused: (body|its content type|header|headers) /);
    }
    assert.equal(d.services.get('svc')!.regs.values().next().value!.inflight, 0);
  });

  it('a reply whose reading throws (a getter, a Proxy) is a 500 error answer, and the next jobs still run', async () => {
    const { d, w } = setup();
    const replies: Record<string, unknown> = {
      getter: {
        get body(): string {
          throw new Error('no body for you');
        },
      },
      proxy: new Proxy(
        {},
        {
          get() {
            throw new Error('trapped');
          },
        },
      ),
      plain: 'fine',
    };
    w.handle('svc', (j: IncomingJob) => replies[j.text()] as never, { concurrency: 8, weight: 1 });
    const waiter = new Waiter();
    const jobs = Object.keys(replies).map((name) => job(waiter, name));
    for (const j of jobs) d.submit(j);
    await tick();
    for (const j of jobs) assert.equal(waiter.settles.get(j), 1);
    assert.deepEqual([jobs[0]!.status, jobs[0]!.errorCode, jobs[0]!.errorMessage], [500, 'E_HANDLER', 'no body for you']);
    assert.deepEqual([jobs[1]!.status, jobs[1]!.errorCode, jobs[1]!.errorMessage], [500, 'E_HANDLER', 'trapped']);
    assert.deepEqual([jobs[2]!.status, Buffer.from(jobs[2]!.replyBody!).toString()], [200, 'fine']);
    assert.equal(d.services.get('svc')!.regs.values().next().value!.inflight, 0);
  });

  it('a request from inside the process resolves with the answer, or rejects with the error', async () => {
    const { w } = setup();
    w.handle('svc', (j: IncomingJob) => ({ contentType: 'application/json', body: JSON.stringify({ key: j.key }) }), { concurrency: 1, weight: 1 });
    const r = await w.request('svc', '{}', { key: 'k9' });
    assert.deepEqual(r.json(), { key: 'k9' });
    await assert.rejects(w.request('nobody', '{}'), (e: BusError) => e.code === 'E_NO_WORKERS' && e.status === 503);
    await assert.rejects(w.request('svc', 'x', { key: '' }), (e: BusError) => e.code === 'E_BAD_KEY');
    // A key that is there but null asks for a keyed request without a key, as a Request frame with a nil key does.
    await assert.rejects(w.request('svc', 'x', { key: null as unknown as string }), (e: BusError) => e.code === 'E_BAD_KEY');
    // Headers a Job frame could not carry are refused, not handed to a worker.
    const bad = { headers: { 'x-n': 1 as unknown as string } };
    await assert.rejects(w.request('svc', 'x', bad), (e: BusError) => e.code === 'E_BAD_REQUEST' && e.status === 400);
    await assert.rejects(w.request('svc', 'x', { contentType: 7 as unknown as string }), (e: BusError) => e.code === 'E_BAD_REQUEST');
  });

  it('unhandle: the service leaves the ring, a job already handed over still runs on its handler', async () => {
    const { d, w } = setup();
    let ran = 0;
    w.handle(
      'svc',
      () => {
        ran++;
        return 'ok';
      },
      { concurrency: 1, weight: 1 },
    );
    const waiter = new Waiter();
    const j = job(waiter, 'x', 'k');
    d.submit(j);
    assert.equal(w.unhandle('svc'), true);
    await tick();
    assert.equal(ran, 1);
    assert.equal(j.status, 200);
    assert.equal(d.services.get('svc')?.ring.members().length ?? 0, 0);
    assert.throws(() => w.handle('bad name!', () => null, { concurrency: 1, weight: 1 }), /E_BAD_NAME|name/);
    assert.throws(() => w.handle('svc', () => null, { concurrency: 0, weight: 1 }), /concurrency/);
  });
});
